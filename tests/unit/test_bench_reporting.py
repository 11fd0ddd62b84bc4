"""What the bench publishes: a crash fails the run, no rate after a failure, provenance always."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import bench.__main__ as bench_main
from bench.api_sections import achieved_rate
from bench.http_load import parse_wrk
from bench.provenance import PROVENANCE_FIELDS, cpu_model, java_version, memory_gib, write_results
from bench.streaming import streaming_report


def _crash() -> dict[str, Any]:
    raise RuntimeError("the server did not answer")


def test_a_section_that_raises_is_crashed_not_skipped() -> None:
    section = bench_main.run_section("streaming", _crash)
    assert "skipped" not in section
    assert section == {"crashed": "RuntimeError: the server did not answer", "section": "streaming"}


def test_a_section_that_cannot_run_here_stays_skipped_and_passes() -> None:
    results = {
        "training": {"quality_target_met": True},
        "api": {"skipped": "no REDIS_URL"},
        "extra": {"streaming": bench_main.run_section("streaming", lambda: {"skipped": "no broker"})},
    }
    assert bench_main.crashed_sections(results) == [] and bench_main.exit_code(results) == 0


def test_any_crashed_section_fails_the_run() -> None:
    for where in ("training", "api", "peers"):
        results: dict[str, Any] = {
            "training": {"quality_target_met": True},
            "api": {},
            "extra": {"peers": {}},
        }
        crashed = bench_main.run_section(where, _crash)
        if where in ("training", "api"):
            results[where] = crashed
        else:
            results["extra"][where] = crashed
        assert bench_main.crashed_sections(results) == [where]
        assert bench_main.exit_code(results) == 1


def test_the_whole_run_exits_non_zero_when_a_section_crashes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """main() with every heavy section stubbed: one crashes, the rest are written, exit 1."""
    monkeypatch.setattr(bench_main, "run_api_bench", lambda *a, **k: _crash())
    monkeypatch.setattr(bench_main, "_blas", lambda: {"blas_implementation": "stub"})
    out = tmp_path / "latest.json"
    skip = ["--skip", "training", "--skip", "streaming", "--skip", "realtime", "--skip", "airflow"]
    code = bench_main.main([*skip, "--skip", "peers", "--root", str(tmp_path / "root"), "--out", str(out)])
    assert code == 1
    written = json.loads(out.read_text())
    assert written["api"]["crashed"].startswith("RuntimeError")
    assert written["extra"]["blas"] == {"blas_implementation": "stub"}
    assert set(written["provenance"]) == set(PROVENANCE_FIELDS)
    printed = capsys.readouterr().out
    assert "API: CRASHED" in printed and "FAILED: section(s) crashed: api" in printed


def _report(**overrides: int) -> dict[str, Any]:
    counts = {"sent": 1000, "failed": 0, "invalid": 0, "written": 1000, "quarantined": 0} | overrides
    return streaming_report("ratings.csv", replay_seconds=2.0, ingest_seconds=4.0, batches=1, **counts)


def test_streaming_publishes_rates_only_when_every_event_was_written() -> None:
    clean = _report()
    assert clean["complete"] and clean["failures"] == []
    assert clean["replay_events_per_s"] == 500.0 and clean["ingest_events_per_s"] == 250.0
    for overrides, reason in (
        ({"failed": 3}, "3 events not acknowledged by the broker"),
        ({"invalid": 2}, "2 rows refused by the contract"),
        ({"quarantined": 1, "written": 999}, "1 events quarantined"),
        ({"written": 990}, "Delta wrote 990 of the 1000 events the broker acknowledged"),
    ):
        report = _report(**overrides)
        assert not report["complete"] and reason in report["failures"]
        assert report["replay_events_per_s"] is None and report["ingest_events_per_s"] is None


def _window(requests: int, **errors: int) -> Any:
    counts = " ".join(str(errors.get(kind, 0)) for kind in ("status", "connect", "read", "write", "timeout"))
    return parse_wrk("soak window", "u", f"FILMREC {requests} {counts} 1.0 5.0\n", seconds=10, connections=16)


def test_the_soak_publishes_no_rate_when_any_request_failed() -> None:
    assert achieved_rate([_window(8000), _window(8200)]) == 810.0
    assert achieved_rate([_window(8000), _window(8200, status=1)]) is None
    assert achieved_rate([_window(8000, timeout=2), _window(8200)]) is None


def test_every_results_file_starts_with_its_provenance(tmp_path: Path) -> None:
    path = tmp_path / "results" / "peers.json"
    write_results(path, {"splits": []}, command=["python", "-m", "bench.peers", "--seeds", "2001"])
    written = json.loads(path.read_text())
    assert list(written) == ["provenance", "splits"]
    stamp = written["provenance"]
    assert tuple(stamp) == PROVENANCE_FIELDS
    assert stamp["command"] == "python -m bench.peers --seeds 2001"
    assert stamp["date"].endswith("+00:00") and "T" in stamp["date"]
    assert isinstance(stamp["cores"], int) and stamp["python"].count(".") == 2
    # A provenance the caller took earlier (at the start of make bench) is kept.
    write_results(path, {"provenance": {"date": "then"}, "x": 1})
    assert json.loads(path.read_text())["provenance"] == {"date": "then"}


def test_provenance_reads_the_cpu_the_memory_and_java() -> None:
    cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC 7763 64-Core Processor\nflags\t: fpu\n"
    assert cpu_model(cpuinfo) == "AMD EPYC 7763 64-Core Processor"
    assert memory_gib("MemTotal:       24683772 kB\nMemFree: 1 kB\n") == 23.5
    java = 'openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment (build 17.0.15+6)\n'
    assert java_version(java) == "17.0.15"
