"""The benchmarks renderer's provenance: recorded fields, older files' fallbacks, "not recorded"."""

from __future__ import annotations

from bench.render_docs import NOT_RECORDED, ROOT, Source, table

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
