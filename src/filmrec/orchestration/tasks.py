"""What the DAG tasks do, as plain functions of the settings.

Every function here is called inside a running task, never at DAG parse time, and
imports what it needs (MLflow, httpx, Kafka clients) lazily. Steps that need an
optional service skip with a log line saying why when it is not configured.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filmrec.config import Settings
from filmrec.lakehouse import delta_log
from filmrec.lakehouse.tables import LakehouseTables

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

# Where the bundled MovieLens data is mounted in the Compose images (bootstrap DAG).
_IMAGE_MOVIELENS = Path("/opt/filmrec/data/ml-latest-small")


def run_dir(settings: Settings, dag_id: str, run_id: str) -> Path:
    """A per-run directory for the small JSON files that jobs hand back to Airflow."""
    safe_run_id = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)
    return settings.var_dir / "airflow" / dag_id / safe_run_id


def read_json(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


# --- als_training: 1. is there enough new data? ---------------------------------


@dataclass(frozen=True)
class DataCheck:
    """The training gate's decision and the evidence for it."""

    should_train: bool
    reason: str
    data_version: int | None
    trained_data_version: int | None
    new_rows: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def last_trained_data_version(client: MlflowClient, model_name: str) -> int | None:
    """The newest data version any registered version was trained on.

    Registered versions, not only the champion: a version that lost to the champion
    on some data need not be trained again on the same data (training is seeded, so
    it would lose again).
    """
    from filmrec.model.registry import TAG_DATA_VERSION

    versions = client.search_model_versions(f"name = '{model_name}'")
    tagged = [int(v.tags[TAG_DATA_VERSION]) for v in versions if v.tags.get(TAG_DATA_VERSION, "").isdigit()]
    return max(tagged) if tagged else None


def gate_decision(
    table: str | Path, trained: int | None, *, min_new_rows: int = 1, force: bool = False
) -> DataCheck:
    """Whether the clean ratings at `table` hold enough rows the model at `trained` lacks."""
    current = delta_log.latest_version(table)
    if current is None:
        return DataCheck(False, f"no clean ratings table at {table}: load data first", None, trained, None)
    if force:
        return DataCheck(True, "forced by the run's `force` parameter", current, trained, None)
    if trained is None:
        return DataCheck(True, "no registered model yet", current, None, None)
    if current == trained:
        return DataCheck(False, f"clean ratings still at version {current}: nothing new", current, trained, 0)
    new_rows = delta_log.rows_changed_since(table, trained)
    if new_rows is None:
        reason = f"clean ratings at version {current}, last trained on {trained}, and the log no longer"
        return DataCheck(True, reason + " says how much changed: train", current, trained, None)
    if new_rows < min_new_rows:
        reason = f"{new_rows} rows changed since version {trained}, fewer than {min_new_rows}"
        return DataCheck(False, reason, current, trained, new_rows)
    reason = f"{new_rows} rows changed between versions {trained} and {current}"
    return DataCheck(True, reason, current, trained, new_rows)


def check_new_data(settings: Settings, *, min_new_rows: int = 1, force: bool = False) -> DataCheck:
    """Compare the clean ratings table with the data the last registered model saw."""
    from filmrec.model.registry import configure_mlflow

    table = LakehouseTables(settings.lakehouse_path).clean_ratings
    if delta_log.latest_version(table) is None:  # no registry query (and no MLflow DB) for nothing
        return gate_decision(table, None, min_new_rows=min_new_rows, force=force)
    trained = last_trained_data_version(configure_mlflow(settings), settings.model_name)
    return gate_decision(table, trained, min_new_rows=min_new_rows, force=force)


def training_gate(settings: Settings, *, params: Mapping[str, Any], run_id: str) -> dict[str, Any] | None:
    """The check_new_data task: None to skip the run, else what the training job needs."""
    from filmrec.orchestration.spark_jobs import parse_search

    search = params.get("search") or settings.training_search
    trials = int(params.get("trials") or settings.training_trials or 0)
    seconds = float(params.get("search_seconds") or settings.training_search_seconds or 0)
    parse_search(search, trials=trials, seconds=seconds)  # a bad name fails here, not after a JVM started
    check = check_new_data(
        settings, min_new_rows=int(params.get("min_new_ratings", 1)), force=bool(params.get("force"))
    )
    log.info("training gate: %s", check.reason)
    if not check.should_train:
        return None
    directory = run_dir(settings, "als_training", run_id)
    return check.as_dict() | {
        "search": search if isinstance(search, str) else json.dumps(search),
        "trials": trials,
        "search_seconds": seconds,
        "run_dir": str(directory),
        "result_path": str(directory / "training_result.json"),
    }


# --- als_training: 3. evaluate and promote ---------------------------------------


def evaluate_promotion(settings: Settings, result_path: str | Path) -> dict[str, Any]:
    """Read the training job's result and confirm the registry agrees with it.

    The job applies the promotion rule itself, right after registering (nDCG@10
    against the champion under the same protocol), so the decision and the
    registration cannot drift apart. Here the result is checked against the
    registry as it is now: a concurrent run may have moved the alias since.
    """
    from filmrec.model.registry import PROMOTION_METRIC, champion_version, configure_mlflow

    result = read_json(result_path)
    version = str(result["model_version"])
    decision = result["promotion"]
    client = configure_mlflow(settings)
    champion = champion_version(client, name=settings.model_name, alias=settings.champion_alias)
    champion_now = str(champion.version) if champion is not None else None
    promoted = bool(decision["promoted"]) and champion_now == version
    reason = decision["reason"]
    if decision["promoted"] and not promoted:
        reason = f"promoted, then superseded: @{settings.champion_alias} is now v{champion_now}"
    summary = {
        "promoted": promoted,
        "reason": reason,
        "model_version": version,
        "champion_version": champion_now,
        "data_version": result.get("data_version"),
        PROMOTION_METRIC: result["metrics"].get(PROMOTION_METRIC),
        f"baseline_{PROMOTION_METRIC}": result.get("baseline_metrics", {}).get(PROMOTION_METRIC),
    }
    log.info("training result: %s", json.dumps(summary))
    return summary


# --- als_training: 5. warm the cache ----------------------------------------------


def warm_serving_cache(settings: Settings) -> dict[str, Any]:
    """Pre-compute the new champion's recommendations into Redis, if there is one."""
    if not settings.redis_url:
        log.info("embedded cache: nothing to warm (REDIS_URL is not set; the API fills its own cache)")
        return {"warmed": False, "reason": "REDIS_URL is not set"}
    from filmrec.serving.warmup import warm_cache

    outcome = warm_cache(settings)
    log.info("cache warmed: %s", outcome)
    return {"warmed": True, "outcome": outcome.as_dict()}


# --- als_training: 6. the API picks up the new champion ----------------------------


def notify_api(
    settings: Settings,
    *,
    model_version: str,
    api_url: str | None = None,
    timeout_seconds: float | None = None,
) -> dict[str, Any]:
    """Make sure the API serves `model_version`, or say that it will on its next poll.

    The API polls the registry for alias changes every MODEL_POLL_SECONDS and swaps
    models atomically, so nothing has to be pushed. With API_URL set, the task waits
    until GET /model reports the new version, so a finished DAG run means the API
    serves the new model.
    """
    import httpx

    api_url = api_url or settings.api_url
    if not api_url:
        log.info(
            "API_URL is not set: the API polls the registry every %.0fs and will load v%s itself",
            settings.model_poll_seconds,
            model_version,
        )
        return {"notified": False, "reason": "API_URL is not set; the API polls the registry"}
    # Two polls and a model load: past that the API is not picking the model up.
    timeout_seconds = timeout_seconds or 2 * settings.model_poll_seconds + 60
    with httpx.Client(base_url=api_url, timeout=10.0) as http:
        deadline = time.monotonic() + timeout_seconds
        served = None
        while time.monotonic() < deadline:
            try:
                response = http.get("/model")
                if response.status_code == 200:
                    served = str(response.json().get("version"))
                    if served == model_version:
                        log.info("API at %s serves v%s", api_url, served)
                        return {"notified": True, "api_url": api_url, "served_version": served}
            except httpx.TransportError as error:
                log.info("API at %s not reachable yet: %s", api_url, error)
            time.sleep(min(2.0, settings.model_poll_seconds))
    raise TimeoutError(
        f"API at {api_url} still serves v{served} after {timeout_seconds:.0f}s; expected v{model_version}"
    )


# --- ratings_ingestion and bootstrap_movielens --------------------------------------


def kafka_configured(settings: Settings) -> bool:
    if settings.kafka_bootstrap_servers:
        return True
    log.info("KAFKA_BOOTSTRAP_SERVERS is not set: no broker to ingest from, nothing to do")
    return False


def checkpoint_busy_reason(settings: Settings) -> str | None:
    """Why an ingestion run must not start now (another run holds the checkpoint), or None.

    The rule is one ingestion mode per deployment at a time, and the checkpoint lock
    enforces it: while the continuous job runs, the scheduled runs have nothing to
    do (it ingests every event within a trigger interval), so the DAGs skip rather
    than start a Spark job that would fail on the lock. A probe, not a reservation:
    a run that starts in between still fails fast on the lock itself.
    """
    from filmrec.ingestion.checkpoint_lock import CheckpointBusyError, checkpoint_holder
    from filmrec.ingestion.kafka_ingest import checkpoint_dir

    checkpoint = checkpoint_dir(LakehouseTables(settings.lakehouse_path))
    holder = checkpoint_holder(checkpoint)
    if holder is None:
        return None
    return str(CheckpointBusyError(checkpoint, holder))


def skip_while_checkpoint_busy(settings: Settings, *, meanwhile: str) -> None:
    """The checkpoint_free tasks: skip the rest of the run while another run holds the checkpoint."""
    from airflow.sdk.exceptions import AirflowSkipException

    reason = checkpoint_busy_reason(settings)
    if reason:
        log.info("ingestion skipped: %s", reason)
        raise AirflowSkipException(f"{reason}. Skipped: {meanwhile}.")


def ingestion_gate(settings: Settings, *, run_id: str) -> dict[str, Any] | None:
    """The kafka_configured task: None to skip the run, else where the job reports."""
    if not kafka_configured(settings):
        return None
    return {"report_path": str(run_dir(settings, "ratings_ingestion", run_id) / "report.json")}


def movielens_dir(settings: Settings, explicit: str | None = None) -> Path:
    """The MovieLens directory to bootstrap from, checked against its SHA256SUMS.

    In order: the run's parameter, FILMREC_MOVIELENS_DIR, data/ml-latest-small
    searched upwards from the working directory (a checkout), the Compose mount.
    """
    from filmrec.data.movielens import find_bundled_dir, verify_checksums

    candidates: list[Path] = [Path(p) for p in (explicit, settings.movielens_dir) if p]
    if not candidates:
        with contextlib.suppress(FileNotFoundError):
            candidates.append(find_bundled_dir(Path.cwd()))
        candidates.append(_IMAGE_MOVIELENS)
    for directory in candidates:
        if (directory / "ratings.csv").exists():
            if (directory / "SHA256SUMS").exists():
                bad = verify_checksums(directory)
                if bad:
                    raise ValueError(f"{directory} does not match its SHA256SUMS: {', '.join(bad)}")
            return directory.resolve()
    raise FileNotFoundError(f"no ratings.csv in any of {', '.join(map(str, candidates))}")


def replay_ratings(settings: Settings, ratings_csv: str | Path) -> dict[str, Any]:
    """Publish a ratings CSV to Kafka, as the live platform would receive it."""
    from filmrec.ingestion.replay import replay

    report = replay(Path(ratings_csv), settings=settings, progress=False)
    outcome = report.as_dict()
    log.info("replayed %s: %s", ratings_csv, outcome)
    if report.failed:
        raise RuntimeError(f"{report.failed} events were not delivered to Kafka")
    return outcome
