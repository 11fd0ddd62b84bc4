"""The private engine's stand-in images: one for every image the platform names, documented.

docker/stand-ins/build.sh builds them (in the private engine only) and tags them with
the official names, so docker-compose.yml and the Dockerfiles run unchanged; this
checks that the list cannot fall behind those files, and the shell scripts around it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.static.static_helpers import ROOT, load_compose_raw, require_tool
from tests.static.test_dockerfiles import DOCKERFILES

pytestmark = pytest.mark.static

BUILD_SCRIPT = ROOT / "docker" / "stand-ins" / "build.sh"
COMPOSE_DOC = ROOT / "docs" / "compose.md"
# Images without a stand-in, each with its reason in docs/compose.md's table.
WITHOUT_STAND_IN = {"grafana/grafana:12.1.1", "provectuslabs/kafka-ui:v0.7.2"}
SCRIPTS = [
    ROOT / "scripts" / "compose.sh",
    ROOT / "scripts" / "private-engine.sh",
    BUILD_SCRIPT,
    *sorted((ROOT / "docker" / "stand-ins").glob("*/entrypoint.sh")),
    *sorted((ROOT / "docker" / "stand-ins" / "kafka" / "bin").iterdir()),
]


def stand_ins() -> dict[str, tuple[str, str]]:
    """official image -> (stand-in folder, build target) from build.sh's table."""
    table = re.search(r"readonly STAND_INS=\((.*?)\n\)", BUILD_SCRIPT.read_text(encoding="utf-8"), re.S)
    assert table, "build.sh has no STAND_INS table"
    entries = re.findall(r'"(\S+) (\S+) (\S+)"', table.group(1))
    return {official: (folder, target) for folder, target, official in entries}


def dockerfile_base_images() -> set[str]:
    images = set()
    for dockerfile in DOCKERFILES:
        images |= set(re.findall(r"^ARG \w+_IMAGE=(\S+)$", dockerfile.read_text(encoding="utf-8"), re.M))
    return images


def third_party_images() -> set[str]:
    services = load_compose_raw()["services"]
    return {
        service["image"]
        for service in services.values()
        if "image" in service and "build" not in service and not str(service["image"]).startswith("filmrec-")
    }


def test_every_base_image_of_the_dockerfiles_has_a_stand_in() -> None:
    assert dockerfile_base_images() - set(stand_ins()) == set()


def test_every_third_party_image_of_compose_has_a_stand_in_or_a_documented_reason() -> None:
    assert third_party_images() - set(stand_ins()) == WITHOUT_STAND_IN


def test_each_stand_in_folder_has_its_dockerfile_and_targets() -> None:
    for official, (folder, target) in stand_ins().items():
        dockerfile = ROOT / "docker" / "stand-ins" / folder / "Dockerfile"
        assert dockerfile.is_file(), official
        if target != "-":
            text = dockerfile.read_text(encoding="utf-8")
            assert re.search(rf"^FROM \S+ AS {target}$", text, re.M), official


def test_the_docs_table_names_every_official_image() -> None:
    text = COMPOSE_DOC.read_text(encoding="utf-8")
    for official in [*stand_ins(), *WITHOUT_STAND_IN]:
        assert f"`{official}`" in text, official


def test_the_project_dockerfiles_fetch_no_frontend_image() -> None:
    # `# syntax=docker/dockerfile:1` makes BuildKit pull a frontend from a registry.
    for dockerfile in [*DOCKERFILES, *(ROOT / "docker" / "stand-ins").glob("*/Dockerfile")]:
        assert "# syntax=" not in dockerfile.read_text(encoding="utf-8"), dockerfile


def test_the_stand_ins_override_only_leaves_grafana_out() -> None:
    override = yaml.safe_load((ROOT / "docker" / "stand-ins" / "compose.stand-ins.yml").read_text())
    assert override == {"services": {"grafana": {"profiles": ["no-stand-in"]}}}


STAND_IN_DOCKERFILES = sorted((ROOT / "docker" / "stand-ins").glob("*/Dockerfile"))


@pytest.mark.parametrize("dockerfile", STAND_IN_DOCKERFILES, ids=lambda path: Path(path).parent.name)
def test_hadolint(dockerfile: Path) -> None:
    hadolint = require_tool("hadolint")
    completed = subprocess.run(
        [hadolint, "--failure-threshold", "warning", str(dockerfile)], capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: str(Path(path).relative_to(ROOT)))
def test_shellcheck(script: Path) -> None:
    shellcheck = require_tool("shellcheck")
    completed = subprocess.run([shellcheck, "--shell=bash", str(script)], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout
