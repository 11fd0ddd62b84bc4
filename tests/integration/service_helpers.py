"""Helpers for the integration tests: settings, data slices, servers, waits, metrics.

Fixtures live in tests/integration/conftest.py; this module holds only what tests
call. The shared services come from `scripts/services.sh up` (or `.ci/run`), which
exports FILMREC_TEST_DATABASE_URL, FILMREC_TEST_REDIS_URL and FILMREC_TEST_MLFLOW_URI.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from filmrec.config import Settings
from filmrec.ingestion.producer import make_producer
from filmrec.ingestion.topics import ensure_topic
from tests.conftest import require

REPO = Path(__file__).resolve().parents[2]


BUNDLED = REPO / "data" / "ml-latest-small"


SCREENSHOTS = REPO / "var" / "screenshots"
DOC_IMAGES = REPO / "docs" / "images"
# Screenshot name -> the docs image it becomes (the page's model is trained_root's, the
# one `make demo` trains). Written only with FILMREC_SCREENSHOTS=1: a test run leaves
# the tree clean.
DOC_SCREENSHOTS = {"new-visitor": "web-page.png", "airflow-home": "airflow-home.png"}


def save_screenshot(page: Any, name: str) -> None:
    """A Playwright page's full screenshot in var/screenshots/ (and docs/images/, above)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    if os.environ.get("FILMREC_SCREENSHOTS") == "1" and name in DOC_SCREENSHOTS:
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOC_IMAGES / DOC_SCREENSHOTS[name]), full_page=True)


# The embedded default's API key (no FILMREC_API_KEYS configured): POST /ratings needs it.
DEMO_KEY = {"X-API-Key": "demo"}


# The tests' reads (load threads, polls) come from one address and are not abuse: the
# limiter counts them but does not refuse them. Its own tests set a small limit. API
# processes a test starts get it through their environment.
TEST_READ_RATE_LIMIT = "1000000/minute"


def make_settings(root: Path, **overrides: object):  # type: ignore[no-untyped-def]
    """Settings with every piece of local state under `root` (lakehouse, MLflow, SQLite)."""
    from filmrec.config import Settings

    values: dict[str, object] = {
        "FILMREC_VAR_DIR": root / "var",
        "LAKEHOUSE_PATH": root / "lakehouse",
        # Jars are shared between tests: they are big and immutable.
        "FILMREC_JARS_DIR": Path(os.environ.get("FILMREC_JARS_DIR", REPO / "var" / "jars")),
        "SPARK_DRIVER_MEMORY": "2g",
        "MODEL_POLL_SECONDS": 0.2,
        # mlflow.set_tracking_uri() exports MLFLOW_TRACKING_URI to the process environment,
        # so without this a test would silently use the store of the previous test.
        "MLFLOW_TRACKING_URI": None,
        # Embedded defaults unless a test asks for a real service explicitly.
        "DATABASE_URL": None,
        "REDIS_URL": None,
        "REDIS_STATE_URL": None,
        "KAFKA_BOOTSTRAP_SERVERS": None,
        "FILMREC_READ_RATE_LIMIT": TEST_READ_RATE_LIMIT,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def write_slice(directory: Path, *, users: int | None) -> Path:
    """The bundled ratings of the first `users` users (None: all), as a MovieLens ratings.csv."""
    import pandas as pd

    directory.mkdir(parents=True, exist_ok=True)
    ratings = pd.read_csv(BUNDLED / "ratings.csv")
    path = directory / "ratings.csv"
    kept = ratings if users is None else ratings[ratings["userId"] <= users]
    kept.to_csv(path, index=False, float_format="%.1f")
    return path


SLICE_USERS = 150


def service_env(name: str, what: str) -> str:
    value = os.environ.get(name)
    require(
        bool(value),
        f"{name} ({what}; run `scripts/services.sh up` and source var/services/test-services.env)",
    )
    assert value is not None
    return value


def with_database(base_url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(base_url).set(database=database).render_as_string(hide_password=False)


@dataclass(frozen=True)
class TrainedModel:
    """A small model trained on Spark and registered on the real MLflow server."""

    root: Path
    overrides: dict[str, Any]  # Settings aliases shared by every test using this model
    model_name: str
    version: str
    run_id: str

    def settings(self, **more: Any):  # type: ignore[no-untyped-def]
        return make_settings(self.root, **(self.overrides | more))


def promote_copy(settings: Any, version: str) -> str:
    """Register the artifacts of `version` again as a new version and move the alias to it.

    What a better retrained model does to the registry, without a second Spark run.
    """
    import mlflow

    from filmrec.model.registry import configure_mlflow

    client = configure_mlflow(settings)
    source = client.get_model_version(settings.model_name, version)
    new = mlflow.register_model(source.source, settings.model_name, tags=dict(source.tags))
    client.set_registered_model_alias(settings.model_name, settings.champion_alias, new.version)
    return str(new.version)


def sync_movies_into(spark: Any, settings: Any) -> int:
    from filmrec.pipeline import sync_metadata

    return sync_metadata(spark, settings)


def wait_for(check: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def metric_value(client: Any, name: str, **labels: str) -> float:
    """One sample of the API's /metrics (0 when absent), read over HTTP like Prometheus."""
    from prometheus_client.parser import text_string_to_metric_families

    text = client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def postgres_tmpdir() -> Path:
    """A directory the postgres user can use (pytest's tmp dirs are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="filmrec-pg-"))
    path.chmod(0o755)
    return path


class ServerThread:
    """A real uvicorn server in a thread, for clients outside the process (Prometheus)."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        self.port = port
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=60, what="uvicorn to start")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def unavailable(reason: str) -> NoReturn:
    """Skip on a developer machine; fail in CI, where every service must be there."""
    require(False, reason)
    raise AssertionError("unreachable: require() skips or fails")


def publish(settings: Settings, messages: list[tuple[bytes | None, bytes | None]]) -> None:
    """Send (key, value) messages to the settings' topic (created if missing); all must be acked."""
    ensure_topic(settings)
    producer = make_producer(settings, delivery_timeout_s=30.0)
    failures: list[object] = []
    for key, value in messages:
        producer.produce(
            settings.kafka_topic,
            key=key,
            value=value,
            on_delivery=lambda error, _msg: failures.append(error) if error else None,
        )
        producer.poll(0)
    assert producer.flush(60) == 0
    assert failures == []
