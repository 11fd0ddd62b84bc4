"""No JVM in the API: the serving process refuses to import the Spark side at all.

The API scores numpy artifacts and needs nothing from Spark, Delta or Airflow. Where
those packages happen to be installed (a development virtualenv with every extra),
libraries still import them opportunistically (MLflow's schema module tries
`import pyspark`), so an API process would carry them for nothing. The guard makes
every such import fail as if the package were absent, which those libraries handle,
and turns an accidental import of ours into an immediate, named error.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

FORBIDDEN_IN_API = frozenset({"pyspark", "py4j", "delta", "airflow"})


class JVMSideRefused(importlib.abc.MetaPathFinder):
    """A meta path finder that answers every forbidden top-level package with ModuleNotFoundError."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname.split(".")[0] in FORBIDDEN_IN_API:
            raise ModuleNotFoundError(
                f"{fullname} is not importable in the API process (no JVM in the API)", name=fullname
            )
        return None


def refuse_jvm_side() -> None:
    """Install the guard (idempotent); fail if the Spark side is already imported."""
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in FORBIDDEN_IN_API)
    if loaded:
        raise RuntimeError(
            f"the API process must not load the JVM side, but already has: {', '.join(loaded[:5])}"
        )
    if not any(isinstance(finder, JVMSideRefused) for finder in sys.meta_path):
        sys.meta_path.insert(0, JVMSideRefused())
