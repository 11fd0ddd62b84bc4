"""The benchmarks renderer's provenance: recorded fields, older files' fallbacks, "not recorded"."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from bench.api_sections import ratios
from bench.render_docs import (
    NOT_RECORDED,
    RESULTS,
    ROOT,
    Source,
    headline_throughput,
    paced_cell,
    render_benchmarks,
    table,
)

PATH = ROOT / "bench" / "results" / "example.json"


def test_recorded_provenance_is_shown_field_by_field() -> None:
    provenance = {
        "date": "2026-12-07T06:00:00+00:00",
        "commit": "abc1234",
        "cpu_model": "Intel Xeon",
        "cores": 2,
        "memory_gib": 24,
        "java": "17.0.13",
        "python": "3.11.7",
        "command": "python -m bench",
    }
    shown = Source(PATH, {"provenance": provenance}).provenance()
    assert shown == {**{key: str(value) for key, value in provenance.items()}, "date": "2026-12-07 06:00 UTC"}


def test_a_file_without_provenance_shows_what_it_has_and_not_recorded_for_the_rest() -> None:
    data = {"started_at": "2026-12-02T21:34:35+00:00", "machine": {"cpus": 2, "python": "3.11.7"}}
    shown = Source(PATH, data).provenance()
    assert shown["date"] == "2026-12-02 21:34 UTC" and shown["cores"] == "2" and shown["python"] == "3.11.7"
    assert {shown[key] for key in ("commit", "cpu_model", "memory_gib", "java", "command")} == {NOT_RECORDED}
    assert set(Source(PATH, {}).provenance().values()) == {NOT_RECORDED}


def test_a_pipe_in_a_recorded_value_stays_in_its_cell() -> None:
    rows = table(["command"], [["a | b"]])
    assert rows[-1] == "| a \\| b |"


# -- results as the bench writes them now ---------------------------------------------


def _row(name: str, rate: float | None, p99: float = 1.0) -> dict[str, Any]:
    return {"name": name, "requests_per_second": rate, "p50_ms": p99 / 2, "p99_ms": p99, "rounds": []}


def _open_loop(offered: float, achieved: float | None, p99: float) -> dict[str, Any]:
    return {"offered_requests_per_second": offered, "achieved_requests_per_second": achieved, "p99_ms": p99}


def _by_workers() -> dict[str, Any]:
    rows = {"raw_bare": _row("raw", 40_600.0), "bare": _row("bare", 13_500.0),
            "cache_hit": _row("hit", 23_000.0), "model": _row("model", None)}  # fmt: skip
    return {
        **rows,
        "targets": ratios(rows),
        "ratio_vs_bare": {"cache_hit": 1.704, "model": None},
        "cache_hit_at_half_peak": {
            "generator": "vegeta v12.13.0 (open loop)",
            "offered_requests_per_second": 11_500.0,
            "achieved_requests_per_second": 11_300.0,
            "rate_held": False,
            "cache_hit": _open_loop(11_500.0, 11_300.0, 4.0),
            "raw_bare": _open_loop(11_500.0, 11_500.0, 1.0),
            "p99_target_ms": 10.0,
            "p99_target_met": False,
        },
    }


def _hang(target_met: bool) -> dict[str, Any]:
    return {"fault_seconds": 15.0, "seconds_from_end_of_fault_to_ready": None, "reads_5xx": 0,
            "writes_5xx": 3, "unanswered": 0, "degraded_answers": 12, "p99_ms": 250.0,
            "p99_bound_ms": 1200.0, "target_met": target_met, "run": {"sent": 3000}}  # fmt: skip


def _results_now(tmp_path: Path) -> Path:
    """A results directory in the bench's current format: provenance on the main file,
    the raw ASGI yardstick, open-loop pacing, crashed and failed sections, hangs."""
    results = tmp_path / "results"
    results.mkdir()
    for name in ("realtime.json", "blas.json", "scale.json"):
        shutil.copy(RESULTS / name, results / name)
    latest = json.loads((RESULTS / "latest.json").read_text())
    for old in ("started_at", "machine"):
        latest.pop(old)
    latest["provenance"] = {"date": "2026-12-07T15:00:00+00:00", "commit": "abc1234", "cpu_model": "Xeon",
                            "cores": 2, "memory_gib": 23.5, "java": "17.0.15", "python": "3.11.7",
                            "command": "python -m bench --soak 30"}  # fmt: skip
    latest["api"]["by_workers"] = {"1": _by_workers(), "2": {"skipped": "API_WORKERS > 1 needs REDIS_URL"}}
    latest["extra"]["streaming"] = {"crashed": "RuntimeError: the broker went away", "section": "streaming"}
    latest["extra"]["soak"] = {"failed": "the unpaced peak run failed ({'timeout': 3})", "peak": {}}
    outages = latest["extra"]["outages"]
    outages["hangs"] = {"redis": _hang(True), "kafka": _hang(False)}
    (results / "latest.json").write_text(json.dumps(latest))
    return results


def test_results_in_the_current_format_render_with_their_yardsticks_and_verdicts(tmp_path: Path) -> None:
    text = render_benchmarks(_results_now(tmp_path))
    api = text[text.index("## API throughput") :].split("\n## ")[0]
    # The hit path against the raw ASGI app, the model path against the FastAPI route.
    assert "23,000, **0.57×** the raw ASGI app (target ≥ 0.8×: not met)" in api
    assert "no rate (failed requests), **no ratio** the FastAPI route (target ≥ 0.5×: not met)" in api
    assert "40,600 (p99 1.0 ms)" in api and "not measured (API_WORKERS > 1 needs REDIS_URL)" in api
    # Paced: offered and achieved; 11,300 of 11,500 is below 99 %, so no verdict of "met".
    assert "11,300 of 11,500 offered (vegeta v12.13.0 (open loop)); rate not held" in api
    assert "target < 10 ms: not met; raw ASGI at that rate: p99 1.0 ms" in api
    # A crash is a section without a result, named as such; a failed soak says why.
    assert "| Streaming (replay and Kafka → Delta) | crashed: RuntimeError: the broker went away |" in text
    assert "Soak in `" in text and "failed: the unpaced peak run failed" in text
    # Stops and hangs in one table, each with its verdict.
    assert "| hang redis | 15.0 s | 3,000 | **0** / 3 | 0 | 12 | 250.0 ms (bound 1200.0 ms) |" in text
    assert "| not ready in 120 s | met |" in text and "| not ready in 120 s | not met |" in text
    # The provenance the file records, field by field.
    assert "| abc1234 | Xeon | 2 | 23.5 | 17.0.15 | 3.11.7 | python -m bench --soak 30 |" in text


def test_the_paced_row_holds_only_at_99_percent_of_the_offered_rate() -> None:
    held = {**_by_workers()["cache_hit_at_half_peak"], "achieved_requests_per_second": 11_400.0}
    held |= {"rate_held": True, "p99_target_met": True}
    assert "rate held" in paced_cell(held) and "target < 10 ms: met" in paced_cell(held)
    # An older file measured closed loop and recorded no rule: it is applied to its numbers.
    closed = {"offered_requests_per_second": 8566.9, "p99_target_ms": 10.0, "p99_target_met": True,
              "cache_hit": {"tool": "wrk", "requests_per_second": 6734.9, "p99_ms": 4.974},
              "bare": {"p99_ms": 1.418}}  # fmt: skip
    cell = paced_cell(closed)
    assert "6,735 of 8,567 offered (wrk, closed loop); rate not held" in cell
    assert "target < 10 ms: not met" in cell
    assert paced_cell({"skipped": "no Go"}) == "not measured (no Go)"


def test_the_headline_names_each_path_s_yardstick() -> None:
    run = _by_workers()
    assert headline_throughput(run, "cache_hit") == "23,000 req/s, 0.57× a raw ASGI app"
    older = {"cache_hit": _row("hit", 17_134.0), "ratio_vs_bare": {"cache_hit": 1.148}}
    assert headline_throughput(older, "cache_hit") == "17,134 req/s, 1.15× a bare FastAPI route"
