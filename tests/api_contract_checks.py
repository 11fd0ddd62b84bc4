"""What the schemathesis runs share (the unit-tier run on fakes, CI's run on the real API).

Every default check is on. One rule the document can only state in words: a rating's
rated_at must be within RatedAtRule's window (after FILMREC_RATED_AT_FLOOR, at most a
few minutes ahead of the clock), which JSON Schema cannot say of a `date-time`. So
POST /ratings may answer a schema-valid body 422, and `rated_at_is_the_only_refusal`
checks that every such 422 is that rule and nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from filmrec.ingestion.contract import RatedAtRule

# positive_data_acceptance's defaults, and 422 for POST /ratings (the docstring above).
ACCEPTED_WITH_RATED_AT_RULE = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx", "422"]
RATINGS_OPERATION = {
    "include-path": "/ratings",
    "include-method": "POST",
    "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED_WITH_RATED_AT_RULE}},
}


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


_registered: list[bool] = []


def register() -> None:
    """Add the check to schemathesis's (process-wide) registry, once."""
    import schemathesis

    if not _registered:
        schemathesis.check(rated_at_is_the_only_refusal)
        _registered.append(True)


@dataclass
class Run:
    """What one schemathesis run found and reached."""

    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    tested: set[str] = field(default_factory=set)
    statuses: set[int] = field(default_factory=set)
    stateful_steps: int = 0


def run(schema: Any) -> Run:
    from schemathesis.engine import Status, events, from_schema

    found = Run()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            if event.label:
                found.tested.add(event.label)
            if "stateful" in str(event.phase):
                found.stateful_steps += len(event.recorder.interactions)
            for interaction in event.recorder.interactions.values():
                if interaction.response is not None:
                    found.statuses.add(interaction.response.status_code)
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        found.failures.append(
                            f"{event.label}: {check.name}: {failure.title}: {failure.message}"[:600]
                        )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            found.errors.append(str(getattr(event, "info", event))[:600])
    return found
