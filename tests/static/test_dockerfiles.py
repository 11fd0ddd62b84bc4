"""The Dockerfiles: hadolint, and what the build context must provide."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path

import pytest

from tests.static.static_helpers import ROOT, require_tool

pytestmark = pytest.mark.unit

DOCKERFILES = [
    ROOT / "api" / "Dockerfile",
    ROOT / "docker" / "spark" / "Dockerfile",
    ROOT / "docker" / "airflow" / "Dockerfile",
    ROOT / "docker" / "mlflow" / "Dockerfile",
]
IDS = [str(path.relative_to(ROOT)) for path in DOCKERFILES]


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, arguments = stripped.partition(" ")
            result.append((keyword.upper(), arguments.strip()))
    return result


def copy_sources(dockerfile: Path) -> list[str]:
    """Build-context paths that COPY/ADD read (not those copied from other stages)."""
    sources = []
    for keyword, arguments in instructions(dockerfile):
        if keyword not in {"COPY", "ADD"} or "--from=" in arguments:
            continue
        words = [word for word in arguments.split() if not word.startswith("--")]
        sources.extend(words[:-1])
    return sources


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatchcase(candidate, glob) for candidate in candidates):
            excluded = not negated
    return excluded


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_hadolint(dockerfile: Path) -> None:
    hadolint = require_tool("hadolint")
    completed = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_build_context_provides_every_copied_file(dockerfile: Path) -> None:
    patterns = dockerignore_patterns()
    for source in copy_sources(dockerfile):
        assert (ROOT / source).exists(), f"{source} does not exist (build context is the repo root)"
        assert not dockerignore_excludes(source, patterns), f".dockerignore excludes {source}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_runs_as_a_non_root_user_from_pinned_bases(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    users = [arguments for keyword, arguments in steps if keyword == "USER"]
    assert users and users[-1] not in {"root", "0"}, "the last USER must not be root"
    defaults = {
        match[1]: match[2]
        for keyword, arguments in steps
        if keyword == "ARG" and (match := re.match(r"(\w+)=(\S+)", arguments))
    }
    for keyword, arguments in steps:
        if keyword == "FROM":
            image = arguments.split()[0]
            image = re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m[1], m[0]), image)
            if ":" not in image:  # an earlier stage
                continue
            assert not image.endswith(":latest") and re.search(r":.*\d", image), f"pin {image}"


def test_versions_agree_across_images() -> None:
    """Driver (Airflow) and cluster (Spark) images share Python, Java and Spark versions."""

    def arg(dockerfile: Path, name: str) -> str:
        match = re.search(rf"^ARG {name}=(\S+)", dockerfile.read_text(encoding="utf-8"), re.MULTILINE)
        assert match, f"{dockerfile}: no ARG {name}"
        return match[1]

    spark, airflow = ROOT / "docker" / "spark" / "Dockerfile", ROOT / "docker" / "airflow" / "Dockerfile"
    assert arg(spark, "JRE_IMAGE") == arg(airflow, "JRE_IMAGE")
    assert arg(spark, "JRE_IMAGE").split(":")[1].startswith("17")
    assert arg(airflow, "AIRFLOW_IMAGE").endswith("-python3.11")
    assert "python:3.11" in arg(spark, "PYTHON_IMAGE")
    assert arg(airflow, "AIRFLOW_VERSION") in arg(airflow, "AIRFLOW_IMAGE")
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"pyspark==4.2.0"' in pyproject, "the images get Spark 4.2.0 from the [spark] extra"
    mlflow_pin = re.search(r'"mlflow==([\d.]+)\.\*"', pyproject)
    assert mlflow_pin and arg(ROOT / "docker" / "mlflow" / "Dockerfile", "MLFLOW_VERSION").startswith(
        mlflow_pin[1] + "."
    )


def test_api_image_checks_health() -> None:
    steps = instructions(ROOT / "api" / "Dockerfile")
    healthchecks = [arguments for keyword, arguments in steps if keyword == "HEALTHCHECK"]
    assert healthchecks and "/health" in healthchecks[0]


def test_api_dockerignore_explains_the_root_one() -> None:
    # With the repository root as context Docker never reads api/.dockerignore.
    assert ".dockerignore" in (ROOT / "api" / ".dockerignore").read_text(encoding="utf-8")
    assert dockerignore_excludes(".env", dockerignore_patterns())
    assert dockerignore_excludes("src/filmrec/__pycache__/x.pyc", dockerignore_patterns())
