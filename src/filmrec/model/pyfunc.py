"""The MLflow pyfunc that wraps a `Recommender` of any family, for MLflow's users.

Its artifacts are plain numpy files (factors or item weights, id maps, rated movies,
popularity), so anything that can load a pyfunc can score it, and the API needs no JVM.
The API itself never loads the pyfunc (that unpickles the wrapper and runs its bundled
code): it downloads the artifacts alone, checks their hash against the version's tag
and reads them with numpy (`load_registered_recommender`, model/artifacts.py).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.pyfunc import PythonModel, PythonModelContext
from pydantic import BaseModel, Field

from filmrec.model.artifacts import (
    PYFUNC_ARTIFACTS_DIR,
    artifact_paths,
    artifacts_sha256,
    load_verified,
    recommender_from_artifacts,
)
from filmrec.model.recommender import Recommender

MODEL_ARTIFACT_PATH = "model"


class RecommendationQuery(BaseModel):
    """One scoring request: a user and how many movies to return."""

    user_id: int
    k: int = Field(default=10, ge=1, le=100)


class RecommendationList(BaseModel):
    user_id: int
    movie_ids: list[int]
    scores: list[float]
    strategy: str


class RecommenderModel(PythonModel):
    """pyfunc face of the recommender: `load_context` reads the numpy artifacts."""

    def __init__(self) -> None:
        self.recommender: Recommender | None = None

    def load_context(self, context: PythonModelContext) -> None:
        self.recommender = recommender_from_artifacts(context.artifacts)

    def predict(
        self,
        context: PythonModelContext,
        model_input: list[RecommendationQuery],
        params: dict[str, Any] | None = None,
    ) -> list[RecommendationList]:
        if self.recommender is None:
            raise RuntimeError("load_context was not called")
        results = []
        for query in model_input:
            recs = self.recommender.recommend(query.user_id, k=query.k)
            results.append(
                RecommendationList(
                    user_id=query.user_id,
                    movie_ids=recs.movie_ids.tolist(),
                    scores=np.round(recs.scores.astype(float), 6).tolist(),
                    strategy=recs.strategy,
                )
            )
        return results


# The modules the pyfunc needs at load time, shipped with it (MLflow code_paths), so a
# model loads where filmrec is not installed. MLflow prepends them to sys.path; a
# process that has already imported filmrec (the API) keeps using its own modules.
MODEL_CODE = (
    "__init__.py",
    "model/__init__.py",
    "model/pyfunc.py",
    "model/artifacts.py",
    "model/recommender.py",
    "model/fold_in.py",
    "model/item_weights.py",
    "model/quantized_weights.py",
    "model/top_k.py",
)

# Models logged before the second family pickled the wrapper under this name.
FactorRecommenderModel = RecommenderModel


def _model_code(directory: Path) -> Path:
    """A copy of the `filmrec` package trimmed to MODEL_CODE, for code_paths."""
    import importlib.resources

    source = importlib.resources.files("filmrec")  # the installed package itself, not a checkout
    target = directory / "filmrec"
    for relative in MODEL_CODE:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        (target / relative).write_bytes(source.joinpath(relative).read_bytes())
    return target


@dataclass(frozen=True)
class LoggedRecommender:
    """A logged model's URI, and the SHA-256 of its serving artifacts (for the version tag)."""

    model_uri: str
    artifacts_sha256: str


def log_recommender(recommender: Recommender, *, input_user_id: int) -> LoggedRecommender:
    """Log `recommender` as a pyfunc in the active run; return its URI and artifacts' hash.

    Register it with `register_recommender`, which records the hash on the version: the
    API serves no version without it.
    """
    with tempfile.TemporaryDirectory(prefix="filmrec-model-") as tmp:
        paths = recommender.save(Path(tmp) / "artifacts")
        digest = artifacts_sha256(paths)
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT_PATH,
            python_model=RecommenderModel(),
            artifacts={name: str(path) for name, path in paths.items()},
            code_paths=[str(_model_code(Path(tmp) / "code"))],
            input_example=[{"user_id": input_user_id, "k": 10}],
            pip_requirements=["numpy", "numba", "pydantic", f"mlflow=={mlflow.__version__}"],
        )
    return LoggedRecommender(model_uri=info.model_uri, artifacts_sha256=digest)


def register_recommender(logged: LoggedRecommender, name: str, *, tags: dict[str, str] | None = None) -> str:
    """Register a logged recommender as a new version of `name`, hash tag included."""
    from filmrec.model.registry import TAG_ARTIFACTS_SHA256

    registered = mlflow.register_model(
        logged.model_uri, name, tags={**(tags or {}), TAG_ARTIFACTS_SHA256: logged.artifacts_sha256}
    )
    return str(registered.version)


def download_serving_artifacts(client: MlflowClient, *, name: str, version: str, directory: Path) -> Path:
    """Download one version's serving artifacts into `directory`; return where they are.

    Only the artifacts: not the pickled wrapper (python_model.pkl) nor the bundled code.
    """
    model_uri = client.get_model_version_download_uri(name, version).rstrip("/")
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{model_uri}/{PYFUNC_ARTIFACTS_DIR}",
        dst_path=str(directory),
        tracking_uri=client.tracking_uri,
    )
    return Path(local)


def load_registered_recommender(
    client: MlflowClient, *, name: str, version: str, expected_sha256: str
) -> Recommender:
    """Load one registered version through `client` (no global tracking URI involved).

    Reads the numpy artifacts alone, once their hash is `expected_sha256` (raises
    ArtifactDigestError otherwise): nothing from the registry is unpickled or imported.
    Loading by version, not by alias, guarantees that what is served is the version
    the caller looked up, even if the alias moves meanwhile.
    """
    with tempfile.TemporaryDirectory(prefix="filmrec-load-") as tmp:
        directory = download_serving_artifacts(client, name=name, version=version, directory=Path(tmp))
        return load_verified(directory, expected_sha256=expected_sha256)


def record_artifacts_sha256(client: MlflowClient, *, name: str, version: str) -> str:
    """Hash a registered version's serving artifacts as they are now, and tag the version.

    For versions registered before the tag existed: whoever runs it vouches that the
    registry's current content is what training wrote.
    """
    from filmrec.model.registry import TAG_ARTIFACTS_SHA256

    with tempfile.TemporaryDirectory(prefix="filmrec-hash-") as tmp:
        directory = download_serving_artifacts(client, name=name, version=version, directory=Path(tmp))
        paths = artifact_paths(directory)
        if not paths:
            raise ValueError(f"{name} v{version} has no serving artifacts")
        digest = artifacts_sha256(paths)
    client.set_model_version_tag(name, version, TAG_ARTIFACTS_SHA256, digest)
    return digest


def load_recommender(model_uri: str) -> Recommender:
    """Load a logged or registered model through MLflow's pyfunc (MLflow users, notebooks).

    This unpickles the model's wrapper and imports its bundled code: only for models
    you trust. The API uses `load_registered_recommender` instead.
    """
    pyfunc_model = mlflow.pyfunc.load_model(model_uri)
    wrapper = pyfunc_model.unwrap_python_model()
    if not isinstance(wrapper, RecommenderModel) or wrapper.recommender is None:
        raise TypeError(f"{model_uri} is not a filmrec factor model")
    return wrapper.recommender
