"""The fuzzed contract: schemathesis against the real API (a trained model, a real server).

Every operation of the OpenAPI document gets its examples, the coverage phase's
boundary and negative cases, and property-based fuzzing, with a configured write key
in X-API-Key, under every default check of schemathesis: no server error, no response
that breaks the document (schema, status code, content type, headers), every
schema-valid request accepted (positive data acceptance), every invalid one refused,
and the auth and resource checks. The document states every rule it can.

One rule it cannot, rated_at's window: tests/api_contract_checks.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.processes import free_port
from filmrec.ingestion.topics import ensure_topic
from filmrec.serving.api_keys import hash_key, new_key
from filmrec.serving.app import create_app
from tests.api_contract_checks import RATINGS_OPERATION, register, run
from tests.integration.service_helpers import ServerThread, make_settings

MAX_EXAMPLES = 30


@pytest.fixture(scope="module")
def fuzzed_api(trained_root: Path, kafka_bootstrap: str) -> Iterator[tuple[str, str]]:
    key = new_key()
    settings = make_settings(
        trained_root,
        FILMREC_API_KEYS=f"fuzzer:{hash_key(key)}",
        # The fuzzer's writes and reads are not the limiters' test: stay under them.
        FILMREC_RATE_LIMIT="100000/minute",
        FILMREC_READ_RATE_LIMIT="100000/minute",  # on (its 429 documented), never reached
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        KAFKA_RATINGS_TOPIC=f"ratings-fuzz-{uuid.uuid4().hex[:10]}",
    )
    ensure_topic(settings)
    with ServerThread(create_app(settings), free_port()) as server:
        yield server.url, key


def _config(key: str) -> Any:
    import schemathesis

    register()
    return schemathesis.Config.from_dict(
        {
            "seed": 13,
            "headers": {"X-API-Key": key},
            "request-timeout": 10,
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                # Sequences along the links of POST /ratings' 202 (serving/responses.py).
                "stateful": {"enabled": True, "max-steps": 6},
            },
            # Every default check (none turned off), and tests/api_contract_checks.py's.
            "operations": [
                {
                    "include-path": "/ratings",
                    "include-method": "POST",
                    "checks": {
                        **RATINGS_OPERATION["checks"],
                        "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", 503]},
                    },
                }
            ],
        }
    )


def test_schemathesis_finds_no_server_error_and_no_schema_violation(fuzzed_api: tuple[str, str]) -> None:
    import schemathesis

    url, key = fuzzed_api
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=_config(key))
    operations = {result.ok().label for result in schema.get_all_operations()}
    assert {
        "GET /recommendations/{user_id}",
        "GET /movies/{movie_id}",
        "GET /movies/{movie_id}/similar",
        "POST /ratings",
        "GET /model",
        "GET /health",
        "GET /ready",
    } <= operations

    found = run(schema)
    assert not found.errors, found.errors
    assert not found.failures, "\n".join(sorted(set(found.failures)))
    assert operations <= found.tested, operations - found.tested
    assert 200 in found.statuses and 422 in found.statuses  # the run reached the model and the validation
    assert 202 in found.statuses  # ratings were accepted, so the links had a start
    assert found.stateful_steps > 0, "the stateful phase followed no link"
