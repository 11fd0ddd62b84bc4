"""The hang section's reading of a faulted run, and its proxy plumbing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.hangs import rating_write, request_wait_bound_seconds, through, upstream_of, verdict
from bench.open_loop import OpenLoopResult, targets_text
from filmrec.config import Settings


def _run(
    *,
    p99_ms: float = 50.0,
    sent: int = 2000,
    by_method: dict[str, dict[str, int]] | None = None,
    **kinds: int,
) -> OpenLoopResult:
    return OpenLoopResult(
        name="hang redis", url="u", tool="vegeta", seconds=10.0, offered_requests_per_second=200,
        sent=sent, ok=sent - sum(kinds.values()), achieved_requests_per_second=None if kinds else 200.0,
        p50_ms=2.0, p99_ms=p99_ms, max_ms=p99_ms, error_kinds=kinds,
        by_method=by_method or {"GET": {"requests": 1900, "ok": 1900, "5xx": 0}},
    )  # fmt: skip


def test_a_run_that_kept_answering_in_time_meets_every_target() -> None:
    checked = verdict(_run(), bound_seconds=2.0, writes_may_503=False)
    assert checked["target_met"] and checked["p99_bound_ms"] == 2000.0
    assert checked["every_request_answered"] and checked["schedule_kept"]


def test_a_read_answering_5xx_fails_whatever_hangs() -> None:
    methods = {"GET": {"requests": 1900, "ok": 1899, "5xx": 1}}
    for kafka in (False, True):
        checked = verdict(_run(by_method=methods, status_503=1), bound_seconds=2.0, writes_may_503=kafka)
        assert (
            checked["reads_5xx"] == 1
            and not checked["server_errors_target_met"]
            and not checked["target_met"]
        )


def test_a_write_may_answer_503_only_while_kafka_hangs() -> None:
    methods = {
        "GET": {"requests": 1900, "ok": 1900, "5xx": 0},
        "POST": {"requests": 100, "ok": 90, "5xx": 10},
    }
    assert verdict(_run(by_method=methods, status_503=10), bound_seconds=2.0, writes_may_503=True)[
        "target_met"
    ]
    assert not verdict(_run(by_method=methods, status_503=10), bound_seconds=2.0, writes_may_503=False)[
        "server_errors_target_met"
    ]
    # A 500 is never the documented answer.
    assert not verdict(_run(by_method=methods, status_500=10), bound_seconds=2.0, writes_may_503=True)[
        "server_errors_target_met"
    ]


def test_a_slow_tail_an_unanswered_request_or_a_lost_schedule_fails() -> None:
    assert not verdict(_run(p99_ms=2500.0), bound_seconds=2.0, writes_may_503=False)["p99_target_met"]
    unanswered = verdict(_run(timeout=3), bound_seconds=2.0, writes_may_503=False)
    assert unanswered["unanswered"] == 3 and not unanswered["target_met"]
    assert not verdict(_run(sent=1900), bound_seconds=2.0, writes_may_503=False)["schedule_kept"]


def test_the_bound_is_the_longest_configured_wait_of_a_request() -> None:
    settings = Settings(_env_file=None, REDIS_TIMEOUT_SECONDS=0.2, DEPENDENCY_TIMEOUT_SECONDS=0.5)
    assert request_wait_bound_seconds(settings) == 2.0  # the title lookup's 4 x 0.5, and Kafka's 2 s
    slower = Settings(_env_file=None, DEPENDENCY_TIMEOUT_SECONDS=1.0)
    assert request_wait_bound_seconds(slower) == 4.0


def test_urls_go_through_the_proxy_with_their_credentials() -> None:
    url = "postgresql+psycopg://filmrec:secret@127.0.0.1:5432/filmrec"
    assert upstream_of(url) == "127.0.0.1:5432"
    assert through(url, "127.0.0.1:40001") == "postgresql+psycopg://filmrec:secret@127.0.0.1:40001/filmrec"
    assert through("redis://127.0.0.1:6379/0", "127.0.0.1:40002") == "redis://127.0.0.1:40002/0"


def test_the_load_sends_one_rating_in_twenty_requests() -> None:
    write = rating_write(1, 2)
    text = targets_text("http://h", [f"/r/{i}" for i in range(38)], write=write, body_file=None)
    targets = text.strip().split("\n\n")
    assert len(targets) == 40 and sum(t.startswith("POST http://h/ratings") for t in targets) == 2
    assert "X-API-Key: demo" in text and b'"rating": 4.0' in write.body


def test_a_tool_that_cannot_be_built_here_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without Go, the section that needs vegeta or toxiproxy is skipped with this reason."""
    from bench import go_tools

    monkeypatch.setenv("FILMREC_TOOLS_DIR", str(tmp_path))
    monkeypatch.setattr(go_tools, "go_binary", lambda: None)
    with pytest.raises(go_tools.ToolUnavailable, match="Go is needed to build"):
        go_tools.tool("toxiproxy")
    built = go_tools.TOOLS["vegeta"].directory(tmp_path) / "vegeta"
    built.parent.mkdir(parents=True)
    built.write_text("")
    assert go_tools.tool("vegeta") == built  # built once, then reused
