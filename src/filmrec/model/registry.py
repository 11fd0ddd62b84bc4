"""MLflow tracking and the model registry: setup, registration and promotion.

Promotion moves the `champion` alias (registry aliases, not stages), and only when
the new version beats the champion on nDCG@10 under the same evaluation protocol.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from filmrec.config import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

PROMOTION_METRIC = "ndcg_at_10"
TAG_PROTOCOL = "eval_protocol"
TAG_DATA_VERSION = "data_version"
TAG_MODEL_FAMILY = "model_family"
# SHA-256 of the version's serving artifacts (model/artifacts.py), recorded at
# registration; the API serves no version whose artifacts do not hash to it.
TAG_ARTIFACTS_SHA256 = "artifacts_sha256"

# Names registries made before the platform's model had one name (see migrate_registry).
FORMER_MODEL_NAME = "filmrec-als"
FORMER_EXPERIMENT_NAME = "filmrec-als"
# Version tags renamed: the coverage over the model's scored movies had the bare name.
RENAMED_TAGS = {
    "coverage": "scored_coverage_at_10",
    "baseline_popularity_coverage": "baseline_popularity_scored_coverage_at_10",
}


def registry_client(settings: Settings) -> MlflowClient:
    """A client bound to the configured tracking server (or local store), with no global state."""
    import mlflow

    uri = settings.effective_mlflow_tracking_uri
    if uri.startswith("sqlite:"):
        settings.var_dir.mkdir(parents=True, exist_ok=True)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def configure_mlflow(settings: Settings) -> MlflowClient:
    """Point MLflow's fluent API (runs, logging) at the configured store; return a client."""
    import mlflow

    client = registry_client(settings)
    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_registry_uri(client.tracking_uri)
    return client


def ensure_experiment(settings: Settings) -> str:
    """The experiment id, creating the experiment with a local artifact root if needed."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(settings.mlflow_experiment)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow.create_experiment(
        settings.mlflow_experiment, artifact_location=settings.mlflow_artifact_root
    )


@dataclass(frozen=True)
class PromotionDecision:
    promoted: bool
    reason: str
    version: str
    previous_champion: str | None


def champion_version(client: MlflowClient, *, name: str, alias: str) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def promote_if_better(
    client: MlflowClient, *, name: str, alias: str, version: str, metric: float, protocol: str
) -> PromotionDecision:
    """Give `version` the alias when there is no champion or when it beats it."""
    current = champion_version(client, name=name, alias=alias)
    if current is None:
        reason = "no champion yet"
    elif current.version == version:
        return PromotionDecision(False, "already champion", version, current.version)
    elif current.tags.get(TAG_PROTOCOL) != protocol:
        reason = f"champion was evaluated under another protocol ({current.tags.get(TAG_PROTOCOL)})"
    else:
        champion_metric = float(current.tags.get(PROMOTION_METRIC, "-inf"))
        if metric <= champion_metric:
            return PromotionDecision(
                False,
                f"{PROMOTION_METRIC} {metric:.4f} does not beat champion v{current.version} "
                f"({champion_metric:.4f})",
                version,
                current.version,
            )
        reason = f"{PROMOTION_METRIC} {metric:.4f} beats champion v{current.version} ({champion_metric:.4f})"
    client.set_registered_model_alias(name, alias, version)
    log.info("promoted %s v%s to @%s: %s", name, version, alias, reason)
    return PromotionDecision(True, reason, version, current.version if current else None)


def migrate_registry(
    client: MlflowClient,
    settings: Settings,
    *,
    former_model: str = FORMER_MODEL_NAME,
    former_experiment: str = FORMER_EXPERIMENT_NAME,
) -> list[str]:
    """Bring a registry made under the former names to the current ones; say what changed.

    Renames the registered model (its versions and aliases move with it) and the
    experiment, and each version's `coverage` tags to their defined names. Idempotent:
    a second run changes nothing. Runs logged before keep their metric names (MLflow
    metrics cannot be renamed).
    """
    from mlflow.exceptions import MlflowException

    def registered(name: str) -> bool:
        try:
            client.get_registered_model(name)
        except MlflowException:
            return False
        return True

    done: list[str] = []
    if former_model != settings.model_name and registered(former_model):
        if registered(settings.model_name):
            raise ValueError(
                f"both {former_model!r} and {settings.model_name!r} are registered: "
                f"move the versions by hand, or set MODEL_NAME={former_model}"
            )
        client.rename_registered_model(former_model, settings.model_name)
        done.append(f"registered model {former_model!r} renamed {settings.model_name!r}")
    if former_experiment != settings.mlflow_experiment:
        old = client.get_experiment_by_name(former_experiment)
        if old is not None and client.get_experiment_by_name(settings.mlflow_experiment) is None:
            client.rename_experiment(old.experiment_id, settings.mlflow_experiment)
            done.append(f"experiment {former_experiment!r} renamed {settings.mlflow_experiment!r}")
    if registered(settings.model_name):
        for version in client.search_model_versions(f"name = '{settings.model_name}'"):
            for old_tag, new_tag in RENAMED_TAGS.items():
                if old_tag not in version.tags:
                    continue
                if new_tag not in version.tags:
                    client.set_model_version_tag(
                        settings.model_name, version.version, new_tag, version.tags[old_tag]
                    )
                client.delete_model_version_tag(settings.model_name, version.version, old_tag)
                done.append(f"version {version.version}: tag {old_tag!r} renamed {new_tag!r}")
    return done
