"""Shared test rules.

Integration tests use real services. On a developer's machine a missing service or
tool skips the test with a reason naming what is missing; under CI=true it fails,
because CI installs and starts everything itself.
"""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"

# Kafka fixtures (a real broker) for the streaming and API tests.
pytest_plugins = ["tests.integration.conftest_kafka"]


def require(condition: bool, missing: str) -> None:
    """Skip (developer machine) or fail (CI) when `condition` is false."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI but missing: {missing}")
    pytest.skip(f"missing: {missing}")  # reached only off CI: under CI=true the line above fails


def require_binary(name: str, *, package: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"`{name}` (install {package})")
    assert path is not None
    return path


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never let a developer's .env or a previous test's cached settings leak in."""
    from filmrec.config import get_settings

    monkeypatch.chdir(os.environ.get("FILMREC_TEST_CWD", os.getcwd()))
    get_settings.cache_clear()
