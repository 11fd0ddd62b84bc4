"""api/requirements.txt is the API image's lock, and it is not stale (no network needed)."""

from __future__ import annotations

import re

from packaging.requirements import Requirement

from devstack.api_requirements import LOCK, api_dependencies, dependencies_hash, recorded_hash


def pins() -> dict[str, str]:
    found = {}
    for line in LOCK.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if match:
            found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return found


def test_the_lock_was_made_from_the_current_pyproject() -> None:
    assert recorded_hash() == dependencies_hash(), (
        "api/requirements.txt is out of date: run `make api-requirements`"
    )


def test_every_api_dependency_is_pinned_within_its_specifier() -> None:
    pinned = pins()
    for spec in api_dependencies():
        requirement = Requirement(spec)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in pinned, f"{name} is not pinned in api/requirements.txt"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (spec, pinned[name])


def test_the_api_image_installs_the_lock_and_the_wheel_without_deps() -> None:
    dockerfile = (LOCK.parent / "Dockerfile").read_text()
    assert "COPY requirements.txt" in dockerfile
    assert "pip install --requirement /tmp/requirements.txt" in dockerfile
    assert re.search(r"pip install --no-deps .*filmrec-\*\.whl", dockerfile)


def test_no_jvm_side_package_is_in_the_api_lock() -> None:
    assert not {"pyspark", "delta-spark", "apache-airflow"} & pins().keys()
