"""What the Spark and Airflow images install before the package: its requirements, pinned.

docker/package_requirements.py lists them from pyproject.toml; the images install them
under airflow/config/constraints.txt, then the wheel alone with --no-deps. A requirement
the constraints do not pin would be resolved afresh at every build (and could differ
between the driver's image and the executors').
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO / "airflow" / "config" / "constraints.txt"


def load_script() -> ModuleType:
    script = REPO / "docker" / "package_requirements.py"
    spec = importlib.util.spec_from_file_location("package_requirements", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str:
    return canonical(re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0])


def test_extras_that_name_the_package_are_expanded() -> None:
    project = {
        "dependencies": ["numpy>=1"],
        "optional-dependencies": {"a": ["filmrec[b]", "x>=1"], "b": ["y", "numpy>=1"]},
    }
    assert load_script().requirements(project, ["a"]) == ["numpy>=1", "x>=1", "y"]


def test_every_requirement_of_the_images_is_pinned_by_the_constraints() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pinned = {
        canonical(line.split("==")[0])
        for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.startswith("#")
    }
    airflow_image = load_script().requirements(project, ["airflow", "spark", "api"])
    wanted = {requirement_name(line) for line in airflow_image}
    assert wanted - pinned == set()
