"""Shared test rules.

Integration tests use real services. On a developer's machine a missing service or
tool skips the test with a reason naming what is missing; under CI=true it fails,
because CI installs and starts everything itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"

TESTS = Path(__file__).resolve().parent
# The tier is the folder: tests/unit (no JVM, no service), tests/static (the platform's
# files checked without running it), tests/integration (real Spark, Kafka, services).
TIERS = ("unit", "static", "integration")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its folder's tier, so `-m unit` etc. select by folder."""
    for item in items:
        parts = Path(str(item.path)).resolve().relative_to(TESTS).parts
        if parts and parts[0] in TIERS:
            item.add_marker(getattr(pytest.mark, parts[0]))


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
