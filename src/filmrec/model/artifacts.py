"""A recommender's serving artifacts: their files, their content hash, and loading them.

What the API serves is read from these numpy files alone (`np.load` with
`allow_pickle=False`), never through MLflow's pyfunc loader, which unpickles the
wrapper and puts the model's bundled code on `sys.path`: whoever can write to the
registry could otherwise run code in every API process. The SHA-256 of the files,
recorded on the model version at training (registry.TAG_ARTIFACTS_SHA256), is
checked before anything is parsed.

No MLflow here: the pyfunc ships this module with the model (pyfunc.MODEL_CODE).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from filmrec.model.item_weights import ITEM_WEIGHTS_ARTIFACTS, ItemWeightsRecommender
from filmrec.model.recommender import FACTOR_ARTIFACTS, SHARED_ARTIFACTS, FactorRecommender, Recommender

# Every artifact a family may write, by artifact name (the names MLflow hands the pyfunc).
SERVING_ARTIFACTS: dict[str, str] = SHARED_ARTIFACTS | FACTOR_ARTIFACTS | ITEM_WEIGHTS_ARTIFACTS
# Where MLflow's pyfunc keeps the `artifacts=` files inside a logged model.
PYFUNC_ARTIFACTS_DIR = "artifacts"

_CHUNK = 1 << 20


class ArtifactDigestError(ValueError):
    """The artifacts are not the ones whose hash was recorded at training."""


def artifacts_sha256(paths: Mapping[str, str | Path]) -> str:
    """SHA-256 over the serving artifacts, in artifact-name order.

    Each contributes its name, its size and its bytes, so the hash also pins which
    artifacts there are (an added or removed file changes it, as would renaming one).
    """
    digest = hashlib.sha256()
    for name in sorted(paths):
        path = Path(paths[name])
        digest.update(f"{name}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as file:
            while chunk := file.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def artifact_paths(directory: Path) -> dict[str, Path]:
    """The serving artifacts in `directory`, by artifact name; any other file is ignored."""
    return {
        name: directory / file for name, file in SERVING_ARTIFACTS.items() if (directory / file).is_file()
    }


def recommender_from_artifacts(paths: Mapping[str, str | Path]) -> Recommender:
    """The family the artifacts were written by (item weights: EASE; else factors)."""
    if ITEM_WEIGHTS_ARTIFACTS.keys() <= paths.keys():
        return ItemWeightsRecommender.load(paths)
    return FactorRecommender.load(paths)


def load_verified(directory: Path, *, expected_sha256: str) -> Recommender:
    """The recommender whose artifacts are in `directory`, once their hash matches.

    Raises ArtifactDigestError on a mismatch, before any file is parsed.
    """
    paths = artifact_paths(directory)
    if not paths:
        raise ArtifactDigestError(f"no serving artifacts in {directory}")
    actual = artifacts_sha256(paths)
    if actual != expected_sha256.strip().lower():
        raise ArtifactDigestError(
            f"artifacts_sha256 mismatch: the version's tag says {expected_sha256}, "
            f"its artifacts hash to {actual}"
        )
    return recommender_from_artifacts(paths)
