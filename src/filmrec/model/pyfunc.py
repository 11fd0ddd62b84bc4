"""The MLflow pyfunc that wraps a `Recommender` of any family.

Its artifacts are plain numpy files (factors or item weights, id maps, rated movies,
popularity), so anything that can load a pyfunc can score it, and the API needs no JVM.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.pyfunc import PythonModel, PythonModelContext
from pydantic import BaseModel, Field

from filmrec.model.item_weights import ITEM_WEIGHTS_ARTIFACTS, ItemWeightsRecommender
from filmrec.model.recommender import FactorRecommender, Recommender

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


def recommender_from_artifacts(paths: dict[str, str | Path]) -> Recommender:
    """The family the artifacts were written by (item weights: EASE; else factors)."""
    if ITEM_WEIGHTS_ARTIFACTS.keys() <= paths.keys():
        return ItemWeightsRecommender.load(paths)
    return FactorRecommender.load(paths)


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


def log_recommender(recommender: Recommender, *, input_user_id: int) -> str:
    """Log `recommender` as a pyfunc in the active run; return the model URI."""
    with tempfile.TemporaryDirectory(prefix="filmrec-model-") as tmp:
        paths = recommender.save(Path(tmp) / "artifacts")
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT_PATH,
            python_model=RecommenderModel(),
            artifacts={name: str(path) for name, path in paths.items()},
            code_paths=[str(_model_code(Path(tmp) / "code"))],
            input_example=[{"user_id": input_user_id, "k": 10}],
            pip_requirements=["numpy", "numba", "pydantic", f"mlflow=={mlflow.__version__}"],
        )
    return info.model_uri


def load_registered_recommender(client: MlflowClient, *, name: str, version: str) -> Recommender:
    """Load one registered version through `client` (no global tracking URI involved).

    Loading by version, not by alias, guarantees that what is served is the version
    the caller looked up, even if the alias moves meanwhile.
    """
    artifact_uri = client.get_model_version_download_uri(name, version)
    with tempfile.TemporaryDirectory(prefix="filmrec-load-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=artifact_uri, dst_path=tmp, tracking_uri=client.tracking_uri
        )
        return load_recommender(local)


def load_recommender(model_uri: str) -> Recommender:
    """Load a logged or registered model and return the numpy recommender inside it."""
    pyfunc_model = mlflow.pyfunc.load_model(model_uri)
    wrapper = pyfunc_model.unwrap_python_model()
    if not isinstance(wrapper, RecommenderModel) or wrapper.recommender is None:
        raise TypeError(f"{model_uri} is not a filmrec factor model")
    return wrapper.recommender
