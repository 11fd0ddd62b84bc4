"""The API loads the champion from its numpy artifacts alone, once their hash matches.

On a local MLflow store: nothing from the registry is unpickled or imported, a version
whose artifacts changed after training or that has no hash tag is refused (the current
model keeps serving, a log line and a metric say why), and `registry hash` records the
tag of a version registered before it existed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from prometheus_client import REGISTRY

from filmrec.cli import main
from filmrec.config import Settings
from filmrec.model.artifacts import (
    ArtifactDigestError,
    artifact_paths,
    artifacts_sha256,
    load_verified,
)
from filmrec.model.pyfunc import MODEL_CODE, log_recommender, register_recommender
from filmrec.model.recommender import FactorRecommender
from filmrec.model.registry import TAG_ARTIFACTS_SHA256, configure_mlflow, ensure_experiment
from filmrec.serving.model_holder import ChampionLoader, ModelHolder
from filmrec.training.factor_models import popularity_model
from tests.recommender_contract import tiny_matrix

MARKER = "pickle-ran"


class _RunsCode:
    """What an attacker would store: unpickling it writes a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, MARKER))


@pytest.fixture(scope="module")
def model() -> FactorRecommender:
    return popularity_model(tiny_matrix()[0])


def refused(reason: str) -> float:
    return REGISTRY.get_sample_value("filmrec_model_refused_total", {"reason": reason}) or 0.0


# --- the hash and the pickle-free loader --------------------------------------------


def test_the_hash_pins_each_artifact_its_name_and_the_set(model: FactorRecommender, tmp_path: Path) -> None:
    paths = model.save(tmp_path / "a")
    digest = artifacts_sha256(paths)
    assert digest == artifacts_sha256(dict(reversed(list(paths.items()))))  # a stable order
    assert digest == artifacts_sha256(artifact_paths(tmp_path / "a"))  # what a download finds
    assert artifacts_sha256({k: v for k, v in paths.items() if k != "popularity"}) != digest
    renamed = {("zz" if k == "popularity" else k): v for k, v in paths.items()}
    assert artifacts_sha256(renamed) != digest
    (tmp_path / "a" / "python_model.pkl").write_bytes(b"ignored: not a serving artifact")
    assert artifacts_sha256(artifact_paths(tmp_path / "a")) == digest
    data = bytearray(paths["popularity"].read_bytes())
    data[-1] ^= 1
    paths["popularity"].write_bytes(bytes(data))
    assert artifacts_sha256(paths) != digest


def test_load_verified_loads_only_a_matching_hash(model: FactorRecommender, tmp_path: Path) -> None:
    digest = artifacts_sha256(model.save(tmp_path))
    loaded = load_verified(tmp_path, expected_sha256=digest.upper())
    assert isinstance(loaded, FactorRecommender)
    np.testing.assert_array_equal(loaded.recommend(1, k=5).movie_ids, model.recommend(1, k=5).movie_ids)
    with pytest.raises(ArtifactDigestError, match="mismatch"):
        load_verified(tmp_path, expected_sha256="0" * 64)
    with pytest.raises(ArtifactDigestError, match="no serving artifacts"):
        load_verified(tmp_path / "empty", expected_sha256=digest)


def test_an_object_array_is_never_unpickled_even_with_a_matching_hash(
    model: FactorRecommender, tmp_path: Path
) -> None:
    """Whoever can write the registry can also write the tag: the hash is not the only
    guard. numpy refuses object arrays (allow_pickle=False), so no code runs."""
    paths = model.save(tmp_path / "model")
    marker = tmp_path / "marker"
    payload = np.empty(1, dtype=object)
    payload[0] = _RunsCode(marker)
    np.savez(paths["popularity"], items=payload, scores=payload)
    with pytest.raises(ValueError, match="allow_pickle"):
        load_verified(tmp_path / "model", expected_sha256=artifacts_sha256(paths))
    assert not marker.exists()


def test_the_pyfunc_ships_the_loader_it_imports() -> None:
    assert "model/artifacts.py" in MODEL_CODE


# --- the API's loader against a registry ---------------------------------------------


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    settings = Settings(_env_file=None, FILMREC_VAR_DIR=tmp_path / "var", MLFLOW_TRACKING_URI=None)  # type: ignore[call-arg]
    configure_mlflow(settings)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # mlflow.set_tracking_uri exports it
    # The API path must never reach MLflow's pyfunc loader (it unpickles the wrapper).
    monkeypatch.setattr(mlflow.pyfunc, "load_model", _forbidden)
    yield settings
    mlflow.set_tracking_uri(None)


def _forbidden(*_args: Any, **_kwargs: Any) -> None:
    raise AssertionError("the API loaded a pyfunc")


def _register(settings: Settings, model: FactorRecommender, *, alias: bool = True) -> str:
    with mlflow.start_run(experiment_id=ensure_experiment(settings)):
        logged = log_recommender(model, input_user_id=int(model.user_ids[0]))
    version = register_recommender(logged, settings.model_name, tags={"model_family": "factors"})
    if alias:
        mlflow.MlflowClient().set_registered_model_alias(
            settings.model_name, settings.champion_alias, version
        )
    return version


def _stored_artifacts(settings: Settings, version: str) -> Path:
    uri = mlflow.MlflowClient().get_model_version_download_uri(settings.model_name, version)
    return Path(uri.removeprefix("file://")) / "artifacts"


def test_the_champion_is_served_from_its_verified_artifacts(
    registry: Settings, model: FactorRecommender
) -> None:
    version = _register(registry, model)
    tags = mlflow.MlflowClient().get_model_version(registry.model_name, version).tags
    assert tags[TAG_ARTIFACTS_SHA256] == artifacts_sha256(
        artifact_paths(_stored_artifacts(registry, version))
    )
    loader = ChampionLoader(registry, ModelHolder())
    assert loader.refresh()
    served = loader.holder.current
    assert served is not None and served.version == version and served.family == "factors"
    np.testing.assert_array_equal(
        served.recommender.recommend(1, k=5).movie_ids, model.recommend(1, k=5).movie_ids
    )


def test_changed_artifacts_are_refused_and_the_current_model_keeps_serving(
    registry: Settings, model: FactorRecommender, caplog: pytest.LogCaptureFixture
) -> None:
    first = _register(registry, model)
    loader = ChampionLoader(registry, ModelHolder())
    assert loader.refresh()
    second = _register(registry, model)
    stored = _stored_artifacts(registry, second) / "popularity.npz"
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))

    before = refused("mismatch")
    with caplog.at_level(logging.ERROR, logger="filmrec.serving.model_holder"):
        assert not loader.refresh()
    assert loader.holder.current is not None and loader.holder.current.version == first
    assert refused("mismatch") == before + 1
    assert f"refusing to serve champion {registry.model_name} v{second} (mismatch)" in caplog.text
    assert f"still serving v{first}" in caplog.text and "artifacts_sha256 mismatch" in caplog.text
    assert loader.registry_up and "refused" in (loader.last_error or "")
    # Polled again: not downloaded again, not counted again, still refused.
    assert not loader.refresh() and refused("mismatch") == before + 1
    assert loader.holder.current.version == first


def test_a_version_without_the_tag_is_refused_until_registry_hash_records_it(
    registry: Settings,
    model: FactorRecommender,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A champion registered before the tag existed (or by hand).
    with mlflow.start_run(experiment_id=ensure_experiment(registry)):
        logged = log_recommender(model, input_user_id=int(model.user_ids[0]))
    version = str(mlflow.register_model(logged.model_uri, registry.model_name).version)
    mlflow.MlflowClient().set_registered_model_alias(registry.model_name, registry.champion_alias, version)

    loader = ChampionLoader(registry, ModelHolder())
    before = refused("unverified")
    with caplog.at_level(logging.ERROR, logger="filmrec.serving.model_holder"):
        assert not loader.refresh()
    assert loader.holder.current is None and refused("unverified") == before + 1
    assert REGISTRY.get_sample_value("filmrec_model_champion_refused") == 1
    assert (
        "python -m filmrec registry hash --version" in caplog.text and "still serving no model" in caplog.text
    )

    # The documented command, in the platform's environment: the champion by default.
    environment = {"FILMREC_VAR_DIR": str(registry.var_dir), "MLFLOW_TRACKING_URI": ""}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in environment.items():
            patch.setenv(key, value)
        assert main(["registry", "hash"]) == 0
    assert f"v{version}: {TAG_ARTIFACTS_SHA256}={logged.artifacts_sha256}" in capsys.readouterr().out
    assert loader.refresh() and loader.holder.current is not None
    assert loader.holder.current.version == version
    assert REGISTRY.get_sample_value("filmrec_model_champion_refused") == 0
