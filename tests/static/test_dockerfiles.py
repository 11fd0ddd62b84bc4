"""The Dockerfiles: hadolint, and what the build context must provide."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.static.static_helpers import ROOT, load_compose_raw, require_tool

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


@dataclass(frozen=True)
class ImageBuild:
    """One build of docker-compose.yml: its Dockerfile, main context and named contexts."""

    dockerfile: Path
    context: Path
    named_contexts: dict[str, Path]

    def ignore_file(self, name: str | None) -> Path | None:
        """The ignore file Docker applies to a context; None (main) or a named context.

        BuildKit prefers <Dockerfile>.dockerignore next to the Dockerfile for the main
        context; otherwise, and for a named local context, <context>/.dockerignore.
        """
        if name is None:
            beside = self.dockerfile.with_name(self.dockerfile.name + ".dockerignore")
            if beside.exists():
                return beside
        root = self.context if name is None else self.named_contexts[name]
        candidate = root / ".dockerignore"
        return candidate if candidate.exists() else None


def compose_builds() -> list[ImageBuild]:
    """Each distinct build in docker-compose.yml (several Airflow services share one)."""
    builds: dict[Path, ImageBuild] = {}
    for service in load_compose_raw()["services"].values():
        build = service.get("build")
        if not build:
            continue
        context = (ROOT / build.get("context", ".")).resolve()
        dockerfile = (context / build.get("dockerfile", "Dockerfile")).resolve()
        additional = build.get("additional_contexts") or {}
        named = {name: (ROOT / path).resolve() for name, path in additional.items()}
        builds[dockerfile] = ImageBuild(dockerfile, context, named)
    return list(builds.values())


def build_of(dockerfile: Path) -> ImageBuild:
    found = [build for build in compose_builds() if build.dockerfile == dockerfile.resolve()]
    assert found, f"docker-compose.yml builds no image from {dockerfile}"
    return found[0]


def copy_sources(dockerfile: Path) -> list[tuple[str | None, str]]:
    """(context, path) for each source COPY/ADD reads from a build context.

    The context is None for the main one, or the name of the named context a
    --from= refers to; copies from earlier build stages and images are left out.
    Named contexts replace stages of the same name, so they are listed whether or
    not the Dockerfile declares such a stage.
    """
    named = build_of(dockerfile).named_contexts
    sources = []
    for keyword, arguments in instructions(dockerfile):
        if keyword not in {"COPY", "ADD"}:
            continue
        words = arguments.split()
        origin = next((word.split("=", 1)[1] for word in words if word.startswith("--from=")), None)
        if origin is not None and origin not in named:
            continue
        paths = [word for word in words if not word.startswith("--")]
        sources.extend((origin, path) for path in paths[:-1])
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


def dockerignore_patterns(ignore_file: Path | None) -> list[str]:
    if ignore_file is None:
        return []
    lines = ignore_file.read_text(encoding="utf-8").splitlines()
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


def test_compose_builds_every_dockerfile() -> None:
    built = {build.dockerfile for build in compose_builds()}
    assert built == {path.resolve() for path in DOCKERFILES}
    # docker/stand-ins: built by docker/stand-ins/build.sh, not Compose (test_stand_ins.py).
    skipped = {".venv", "var", ".git", "stand-ins"}
    on_disk = {path.resolve() for path in ROOT.glob("**/Dockerfile") if not skipped & set(path.parts)}
    assert on_disk == built, "a Dockerfile that docker-compose.yml does not build"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_build_contexts_provide_every_copied_file(dockerfile: Path) -> None:
    build = build_of(dockerfile)
    for context_name, source in copy_sources(dockerfile):
        root = build.context if context_name is None else build.named_contexts[context_name]
        where = f"context {context_name or 'main'} ({root.relative_to(ROOT) or '.'})"
        assert (root / source).exists(), f"{source} does not exist in the {where}"
        patterns = dockerignore_patterns(build.ignore_file(context_name))
        assert not dockerignore_excludes(source, patterns), f"the {where} .dockerignore excludes {source}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_every_context_filters_secrets_and_bytecode(dockerfile: Path) -> None:
    build = build_of(dockerfile)
    for context_name in [None, *build.named_contexts]:
        ignore_file = build.ignore_file(context_name)
        assert ignore_file is not None, f"{dockerfile}: context {context_name or 'main'} has no .dockerignore"
        patterns = dockerignore_patterns(ignore_file)
        for path in (".env", ".env.local", "src/filmrec/__pycache__/x.pyc", "__pycache__/main.pyc"):
            assert dockerignore_excludes(path, patterns), f"{ignore_file} lets {path} in"


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


def test_api_image_builds_from_api_dir_with_the_package_as_named_context() -> None:
    """api/.dockerignore is the file Docker reads: api/ is the API image's main context."""
    build = build_of(ROOT / "api" / "Dockerfile")
    assert build.context == (ROOT / "api").resolve()
    assert build.ignore_file(None) == ROOT / "api" / ".dockerignore"
    assert build.named_contexts == {"filmrec": ROOT}
    sources = copy_sources(ROOT / "api" / "Dockerfile")
    assert (None, "main.py") in sources, "the image runs the api/main.py entry point"
    assert ("filmrec", "src") in sources
    # Nothing but the entry point enters from api/: not the Dockerfile, not api/.env.
    patterns = dockerignore_patterns(build.ignore_file(None))
    for path in ("Dockerfile", ".env.example", ".dockerignore"):
        assert dockerignore_excludes(path, patterns), path
    cmd = [arguments for keyword, arguments in instructions(ROOT / "api" / "Dockerfile") if keyword == "CMD"]
    # `python main.py`: the launcher of serving/server.py (API_WORKERS uvicorn workers).
    assert cmd and '"main.py"' in cmd[-1]
    entry = (ROOT / "api" / "main.py").read_text(encoding="utf-8")
    assert "from filmrec.serving.server import main" in entry and "app = create_served_app()" in entry
