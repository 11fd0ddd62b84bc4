"""The model the API serves, and its atomic replacement when the champion moves.

A request reads `holder.current` once and uses that object to the end, so a swap in
the middle of a request never mixes two models. Swapping is one reference
assignment, which is atomic in CPython; the lock only keeps two loaders apart.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from filmrec.config import Settings
from filmrec.model.registry import TAG_ARTIFACTS_SHA256, TAG_MODEL_FAMILY
from filmrec.serving import metrics
from filmrec.serving.loaded_model import LoadedModel

log = logging.getLogger(__name__)


class ModelHolder:
    def __init__(self) -> None:
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def swap(self, model: LoadedModel) -> LoadedModel | None:
        with self._lock:
            previous, self._current = self._current, model
        metrics.observe_model(model)
        return previous


def _metrics_from_tags(tags: dict[str, str]) -> dict[str, float]:
    values = {}
    for key, value in tags.items():
        try:
            values[key] = float(value)
        except ValueError:
            continue
    return values


def fail_fast_mlflow_http(settings: Settings) -> list[str]:
    """Bound every MLflow HTTP call of this process (read by MLflow at call time).

    MLflow's defaults (120 s timeout, 7 retries with backoff) would keep a poll of a
    dead tracking server hanging for minutes; the poller is our retry loop. Values
    already in the environment win, so an operator can still raise them. Returns the
    variables it set, for the API to remove at shutdown (tests run jobs in-process).
    """
    wanted = {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(math.ceil(settings.mlflow_request_timeout_seconds)),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    added = [name for name in wanted if name not in os.environ]
    for name in added:
        os.environ[name] = wanted[name]
    return added


def champion_version(settings: Settings) -> tuple[str, str | None, dict[str, str], datetime | None]:
    """(version, run_id, tags, created_at) of the version the alias points to."""
    from filmrec.model.registry import registry_client

    # A bound client, not MLflow's process-wide tracking URI: another thread (training,
    # a second app in tests) may point the global at another store.
    client = registry_client(settings)
    version = client.get_model_version_by_alias(settings.model_name, settings.champion_alias)
    created = (
        datetime.fromtimestamp(version.creation_timestamp / 1000, tz=UTC)
        if version.creation_timestamp
        else None
    )
    return str(version.version), version.run_id, dict(version.tags), created


class ModelRefusedError(RuntimeError):
    """A version the API will not serve: its artifacts are not provably training's."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # mismatch | unverified (the metric's label)


def load_version(
    settings: Settings, version: str, run_id: str | None, tags: dict[str, str], created_at: datetime | None
) -> LoadedModel:
    """Load one version from its numpy artifacts, once their hash matches its tag.

    Raises ModelRefusedError for a version without the tag, or whose artifacts changed
    since training; nothing of it is parsed then (and nothing is ever unpickled).
    """
    from filmrec.model.artifacts import ArtifactDigestError
    from filmrec.model.pyfunc import load_registered_recommender
    from filmrec.model.registry import registry_client

    name = settings.model_name
    expected = tags.get(TAG_ARTIFACTS_SHA256)
    if not expected:
        raise ModelRefusedError(
            "unverified",
            f"{name} v{version} has no {TAG_ARTIFACTS_SHA256} tag (registered before the API "
            "checked artifact hashes, or not by the training job), so nothing proves its "
            "artifacts are what training wrote. Retrain, or if you trust the registry's "
            f"content, run `python -m filmrec registry hash --version {version}` "
            "(docs/operations.md)",
        )
    try:
        # By version, not by alias: the alias may move between looking it up and loading.
        recommender = load_registered_recommender(
            registry_client(settings), name=name, version=version, expected_sha256=expected
        )
    except ArtifactDigestError as error:
        raise ModelRefusedError(
            "mismatch",
            f"{name} v{version}: {error}. Its artifacts changed after training (tampering, "
            "or a broken copy): retrain, or restore the artifact store",
        ) from error
    return LoadedModel(
        recommender=recommender,
        name=settings.model_name,
        version=version,
        run_id=run_id,
        metrics=_metrics_from_tags(tags),
        created_at=created_at,
        family=tags.get(TAG_MODEL_FAMILY),
    )


def load_champion(settings: Settings) -> LoadedModel:
    """The current champion, loaded (for jobs such as the cache warm-up)."""
    return load_version(settings, *champion_version(settings))


_REGISTRY_ANSWERS = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"})

SwapHook = Callable[[LoadedModel, "LoadedModel | None"], None]


class ChampionLoader:
    """Loads the registry's champion, and polls for the alias to move.

    Any failure (registry down, download timeout) keeps the current model serving and
    is retried at the next poll. `on_swap` runs after each swap, in the loader's thread.
    """

    def __init__(self, settings: Settings, holder: ModelHolder, *, on_swap: SwapHook | None = None) -> None:
        self.settings = settings
        self.holder = holder
        self.on_swap = on_swap
        self.last_error: str | None = None
        self.last_check: float | None = None
        self.last_latency_ms: float | None = None  # of the last alias lookup, for /ready
        # The registry answered the last poll (even if only to say there is no champion yet).
        self.registry_up = False
        # The (version, hash tag) last refused: not downloaded again until either changes.
        self._refused: tuple[str, str | None] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def champion_version(self) -> tuple[str, str | None, dict[str, str], datetime | None]:
        return champion_version(self.settings)

    def refresh(self) -> bool:
        """Load the champion if it differs from what is served; True when swapped."""
        self.last_check = time.time()
        started = time.perf_counter()
        try:
            try:
                version, run_id, tags, created_at = self.champion_version()
            finally:
                self.last_latency_ms = round((time.perf_counter() - started) * 1000, 2)
            current = self.holder.current
            self.registry_up = True
            if current is not None and current.version == version:
                self.last_error = None
                metrics.DEPENDENCY_UP.labels(dependency="model_registry").set(1)
                metrics.MODEL_CHAMPION_REFUSED.set(0)
                return False
            if self._refused == (version, tags.get(TAG_ARTIFACTS_SHA256)):
                metrics.DEPENDENCY_UP.labels(dependency="model_registry").set(1)
                return False  # last_error still says why
            model = load_version(self.settings, version, run_id, tags, created_at)
        except ModelRefusedError as error:
            self._refuse(version, tags, error)
            return False
        except Exception as error:  # the registry may be down: keep serving what we have
            self.last_error = f"{type(error).__name__}: {error}"[:500]
            # "No such model" or "no such alias" is an answer: the registry is up, just
            # without a champion. Unreachable servers surface as INTERNAL_ERROR.
            self.registry_up = getattr(error, "error_code", None) in _REGISTRY_ANSWERS
            metrics.MODEL_RELOAD_FAILURES.inc()
            metrics.DEPENDENCY_UP.labels(dependency="model_registry").set(int(self.registry_up))
            log.warning("could not load the champion: %s", self.last_error)
            return False
        previous = self.holder.swap(model)
        self.last_error = None
        metrics.MODEL_CHAMPION_REFUSED.set(0)
        metrics.MODEL_RELOADS.inc()
        metrics.DEPENDENCY_UP.labels(dependency="model_registry").set(1)
        log.info("serving %s v%s", self.settings.model_name, version)
        if self.on_swap is not None:
            try:
                self.on_swap(model, previous)
            except Exception:  # bookkeeping must never undo a good swap
                log.exception("on_swap hook failed")
        return True

    def _refuse(self, version: str, tags: dict[str, str], error: ModelRefusedError) -> None:
        """Keep serving what is served; say why, once per refused version and tag."""
        self._refused = (version, tags.get(TAG_ARTIFACTS_SHA256))
        self.last_error = f"refused: {error}"[:1000]
        self.registry_up = True  # it answered; what it answered is not served
        metrics.DEPENDENCY_UP.labels(dependency="model_registry").set(1)
        metrics.MODEL_REFUSED.labels(reason=error.reason).inc()
        metrics.MODEL_CHAMPION_REFUSED.set(1)
        current = self.holder.current
        log.error(
            "refusing to serve champion %s v%s (%s), still serving %s: %s",
            self.settings.model_name,
            version,
            error.reason,
            f"v{current.version}" if current is not None else "no model",
            error,
        )

    def start_polling(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._poll, name="champion-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _poll(self) -> None:
        while not self._stop.wait(self.settings.model_poll_seconds):
            self.refresh()
