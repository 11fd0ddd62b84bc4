"""The bench's reading of load runs: a run with any failed request publishes no requests/s."""

from __future__ import annotations

from bench.api_sections import _summary, mixed_script
from bench.http_load import paced_delay_lua, parse_wrk


def _wrk(requests: int, **errors: int) -> str:
    """wrk's output with our done() line: requests, then errors by kind, then p50 and p99."""
    counts = " ".join(str(errors.get(kind, 0)) for kind in ("status", "connect", "read", "write", "timeout"))
    return f"Running 5s test\nFILMREC {requests} {counts} 1.500 9.250\n"


def test_a_clean_run_reports_its_rate() -> None:
    row = parse_wrk("api", "http://127.0.0.1:1/x", _wrk(5000), seconds=5, connections=16)
    assert not row.failed and row.requests_per_second == 1000.0 and row.errors == 0
    assert row.p50_ms == 1.5 and row.p99_ms == 9.25


def test_any_failed_request_withholds_the_rate_and_says_why() -> None:
    for kinds in ({"status": 1}, {"connect": 2}, {"read": 1}, {"write": 1}, {"timeout": 3}):
        row = parse_wrk("api", "http://127.0.0.1:1/x", _wrk(5000, **kinds), seconds=5, connections=16)
        assert row.failed and row.requests_per_second is None
        assert row.error_kinds == kinds and row.as_dict()["failed"] is True


def test_rounds_summarise_to_the_median_only_when_every_round_succeeded() -> None:
    clean = [parse_wrk("bare", "u", _wrk(n), seconds=1, connections=16) for n in (900, 1000, 1100)]
    summary = _summary(clean)
    assert summary["requests_per_second"] == 1000.0 and summary["failed_rounds"] == 0
    assert summary["min_requests_per_second"] == 900.0 and summary["max_requests_per_second"] == 1100.0
    assert summary["spread_pct"] == 20.0 and len(summary["rounds"]) == 3
    one_failed = [*clean[:2], parse_wrk("bare", "u", _wrk(1100, status=1), seconds=1, connections=16)]
    summary = _summary(one_failed)
    assert summary["requests_per_second"] is None and summary["failed_rounds"] == 1 and summary["errors"] == 1


def test_the_soak_script_paces_connections_and_posts_with_the_demo_key() -> None:
    script = mixed_script([1, 2], [10, 20], rate=400.0, connections=16, post_pct=5)
    assert "local pause_ms = 40.000000" in script  # 16 connections at 400/s: 40 ms apart each
    assert '["X-API-Key"] = "demo"' in script and '"POST", "/ratings"' in script


def test_a_paced_run_keeps_the_fraction_of_a_millisecond() -> None:
    # wrk truncates delay() to whole milliseconds: 16 connections at 6000/s pause 2.67 ms
    # each, which must not become 2 ms (8000/s).
    script = paced_delay_lua(rate=6000.0, connections=16)
    assert "local pause_ms = 2.666667" in script
    assert "return whole_ms + 1" in script and "math.random() < pause_ms - whole_ms" in script
