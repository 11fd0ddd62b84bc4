"""Shared test rules.

Integration tests use real services. On a developer's machine a missing service or
tool skips the test with a reason naming what is missing; under CI=true it fails,
because CI installs and starts everything itself.
"""

from __future__ import annotations

import os

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


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never let a developer's .env or a previous test's cached settings leak in."""
    from filmrec.config import Settings, get_settings

    # Settings reads ./.env by default (init.sh writes one); tests that want a file
    # pass _env_file themselves.
    monkeypatch.setitem(Settings.model_config, "env_file", None)
    get_settings.cache_clear()
