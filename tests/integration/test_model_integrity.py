"""The API serves only a champion whose artifacts hash to the version's tag, on a real
MLflow server, and never loads the pyfunc (which would unpickle the registry's wrapper).

A version that points at other artifacts than the ones its tag describes (what whoever
can write to the registry could register) is refused: the current model keeps serving,
and /metrics counts the refusal.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from filmrec.config import Settings
from filmrec.model.pyfunc import log_recommender, register_recommender
from filmrec.model.registry import TAG_ARTIFACTS_SHA256, configure_mlflow, ensure_experiment
from filmrec.serving.app import create_app
from filmrec.training.factor_models import popularity_model
from tests.integration.service_helpers import make_settings, metric_value, wait_for
from tests.recommender_contract import tiny_matrix


@pytest.fixture
def settings(mlflow_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    run = uuid.uuid4().hex[:10]
    chosen = make_settings(
        tmp_path,
        MLFLOW_TRACKING_URI=mlflow_uri,
        MODEL_NAME=f"integrity-{run}",
        MLFLOW_EXPERIMENT_NAME=f"integrity-{run}",
        ONLINE_STATE_ENABLED=False,
    )
    configure_mlflow(chosen)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # mlflow.set_tracking_uri exports it

    def forbidden(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the API loaded the pyfunc")

    monkeypatch.setattr(mlflow.pyfunc, "load_model", forbidden)
    yield chosen
    mlflow.set_tracking_uri(None)


def _logged(settings: Settings, ratings: pd.DataFrame) -> Any:
    model = popularity_model(ratings)
    with mlflow.start_run(experiment_id=ensure_experiment(settings)):
        return log_recommender(model, input_user_id=int(model.user_ids[0]))


def test_a_version_whose_artifacts_do_not_match_its_tag_is_refused(settings: Settings) -> None:
    client = mlflow.MlflowClient()
    train, test = tiny_matrix()
    trained = _logged(settings, train)
    first = register_recommender(trained, settings.model_name)
    client.set_registered_model_alias(settings.model_name, settings.champion_alias, first)

    with TestClient(create_app(settings)) as api:
        assert api.get("/model").json()["version"] == first
        # Other artifacts, registered under the hash of the trained ones.
        other = _logged(settings, pd.concat([train, test]))
        assert other.artifacts_sha256 != trained.artifacts_sha256
        forged = str(
            mlflow.register_model(
                other.model_uri, settings.model_name, tags={TAG_ARTIFACTS_SHA256: trained.artifacts_sha256}
            ).version
        )
        client.set_registered_model_alias(settings.model_name, settings.champion_alias, forged)
        wait_for(
            lambda: metric_value(api, "filmrec_model_refused_total", reason="mismatch") >= 1,
            what="the forged champion refused",
        )
        assert api.get("/model").json()["version"] == first
        assert api.get("/recommendations/1").status_code == 200
        registry = next(d for d in api.get("/ready").json()["dependencies"] if d["name"] == "model_registry")
        assert registry["status"] == "up" and "artifacts_sha256 mismatch" in registry["detail"]

        # A version registered by the training path is served again.
        good = register_recommender(other, settings.model_name)
        client.set_registered_model_alias(settings.model_name, settings.champion_alias, good)
        wait_for(lambda: api.get("/model").json()["version"] == good, what="the good champion served")
