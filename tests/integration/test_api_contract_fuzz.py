"""The fuzzed contract: schemathesis against the real API (a trained model, a real server).

Every operation of the OpenAPI document gets its examples, the coverage phase's
boundary and negative cases, and property-based fuzzing, with a configured write key
in X-API-Key, under every default check of schemathesis: no server error, no response
that breaks the document (schema, status code, content type, headers), every
schema-valid request accepted (positive data acceptance), every invalid one refused,
and the auth and resource checks. The document states every rule it can.

One rule it cannot: a rating's rated_at must be within RatedAtRule's window (after
FILMREC_RATED_AT_FLOOR, at most a few minutes ahead of the clock), which JSON Schema
cannot say of a `date-time`. The document describes it and its 422; here POST
/ratings may answer a schema-valid body 422, and `rated_at_is_the_only_refusal`
checks that every such 422 is that rule and nothing else.

The API has a real Kafka broker, so POST /ratings answers 202 and the stateful phase
follows the document's links from an accepted rating to the rater's recommendations
(now with the rating folded in), the rated movie and the movies like it. The only 5xx
allowed is POST /ratings' documented 503 (Kafka did not take the rating).
Examples per operation are bounded to keep the run within about two minutes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from devstack.processes import free_port
from filmrec.ingestion.contract import RatedAtRule
from filmrec.ingestion.topics import ensure_topic
from filmrec.serving.api_keys import hash_key, new_key
from filmrec.serving.app import create_app
from tests.integration.service_helpers import ServerThread, make_settings

MAX_EXAMPLES = 30
# positive_data_acceptance's defaults, and 422 for POST /ratings (the module docstring).
ACCEPTED_WITH_RATED_AT_RULE = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx", "422"]


def rated_at_is_the_only_refusal(ctx: Any, response: Any, case: Any) -> bool | None:
    """A schema-valid rating refused with 422 names rated_at only, and its rated_at
    breaks RatedAtRule: the one rule the document states in words."""
    meta = case.meta
    if (
        case.operation.label != "POST /ratings"
        or response.status_code != 422
        or meta is None
        or not meta.generation.mode.is_positive
    ):
        return None
    errors = json.loads(response.content)["errors"]
    assert {tuple(error["loc"]) for error in errors} == {("body", "rated_at")}, errors
    rated_at = datetime.fromisoformat(str(case.body["rated_at"]).upper().replace("Z", "+00:00"))
    assert RatedAtRule.current().violation(rated_at) is not None, (case.body, errors)
    return None


@pytest.fixture(scope="module")
def fuzzed_api(trained_root: Path, kafka_bootstrap: str) -> Iterator[tuple[str, str]]:
    key = new_key()
    settings = make_settings(
        trained_root,
        FILMREC_API_KEYS=f"fuzzer:{hash_key(key)}",
        # The fuzzer's writes are not the limiter's test: stay under it.
        FILMREC_RATE_LIMIT="100000/minute",
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        KAFKA_RATINGS_TOPIC=f"ratings-fuzz-{uuid.uuid4().hex[:10]}",
    )
    ensure_topic(settings)
    with ServerThread(create_app(settings), free_port()) as server:
        yield server.url, key


def _config(key: str) -> Any:
    import schemathesis

    schemathesis.check(rated_at_is_the_only_refusal)
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
            # Every default check (none turned off), and the one above.
            "operations": [
                {
                    "include-path": "/ratings",
                    "include-method": "POST",
                    "checks": {
                        "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", 503]},
                        "positive_data_acceptance": {"expected-statuses": ACCEPTED_WITH_RATED_AT_RULE},
                    },
                }
            ],
        }
    )


def test_schemathesis_finds_no_server_error_and_no_schema_violation(fuzzed_api: tuple[str, str]) -> None:
    import schemathesis
    from schemathesis.engine import Status, events, from_schema

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

    failures: list[str] = []
    errors: list[str] = []
    tested: set[str] = set()
    statuses: set[int] = set()
    stateful_steps = 0
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            if event.label:
                tested.add(event.label)
            if "stateful" in str(event.phase):
                stateful_steps += len(event.recorder.interactions)
            for interaction in event.recorder.interactions.values():
                if interaction.response is not None:
                    statuses.add(interaction.response.status_code)
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        failures.append(
                            f"{event.label}: {check.name}: {failure.title}: {failure.message}"[:600]
                        )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            errors.append(str(getattr(event, "info", event))[:600])

    assert not errors, errors
    assert not failures, "\n".join(sorted(set(failures)))
    assert operations <= tested, operations - tested
    assert 200 in statuses and 422 in statuses  # the run reached the model and the validation
    assert 202 in statuses  # ratings were accepted, so the links had a start
    assert stateful_steps > 0, "the stateful phase followed no link"
