"""`filmrec registry migrate`: a registry made under the former names, on a local MLflow store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from filmrec.config import Settings
from filmrec.model.registry import FORMER_EXPERIMENT_NAME, FORMER_MODEL_NAME, migrate_registry


@pytest.fixture
def client(tmp_path: Path) -> mlflow.MlflowClient:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _former_registry(client: mlflow.MlflowClient, tmp_path: Path) -> None:
    client.create_experiment(FORMER_EXPERIMENT_NAME, artifact_location=str(tmp_path / "artifacts"))
    client.create_registered_model(FORMER_MODEL_NAME)
    version = client.create_model_version(FORMER_MODEL_NAME, source=str(tmp_path / "model"))
    client.set_model_version_tag(FORMER_MODEL_NAME, version.version, "coverage", "0.23")
    client.set_model_version_tag(FORMER_MODEL_NAME, version.version, "baseline_popularity_coverage", "0.005")
    client.set_registered_model_alias(FORMER_MODEL_NAME, "champion", version.version)


def test_migrate_renames_model_experiment_and_coverage_tags(
    client: mlflow.MlflowClient, tmp_path: Path
) -> None:
    _former_registry(client, tmp_path)
    settings = Settings(_env_file=None, MODEL_NAME="filmrec", MLFLOW_EXPERIMENT_NAME="filmrec")  # type: ignore[call-arg]

    done = migrate_registry(client, settings)

    assert len(done) == 4
    champion = client.get_model_version_by_alias("filmrec", "champion")
    assert champion.tags["scored_coverage_at_10"] == "0.23"
    assert champion.tags["baseline_popularity_scored_coverage_at_10"] == "0.005"
    assert "coverage" not in champion.tags
    assert client.get_experiment_by_name("filmrec") is not None
    assert client.get_experiment_by_name(FORMER_EXPERIMENT_NAME) is None
    assert migrate_registry(client, settings) == []  # idempotent


def test_migrate_refuses_when_both_names_are_registered(client: mlflow.MlflowClient, tmp_path: Path) -> None:
    _former_registry(client, tmp_path)
    client.create_registered_model("filmrec")
    settings = Settings(_env_file=None, MODEL_NAME="filmrec", MLFLOW_EXPERIMENT_NAME="filmrec")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="both"):
        migrate_registry(client, settings)
