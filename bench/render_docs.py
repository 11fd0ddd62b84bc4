"""docs/benchmarks.md and the README's headline table, rendered from bench/results.

    python -m bench.render_docs            # (make docs) rewrite both from the results files
    python -m bench.render_docs --check    # exit 1 when a committed file differs from its rendering

Every figure is read from a results file, and every table names its file and the
file's provenance (date, commit, machine, command): what a results file lacks is
rendered "not recorded". Nothing here measures; `make bench` writes the files.
The README's table sits between the two marker comments below and is replaced whole.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"
IMAGES = ROOT / "docs" / "images"
API_PLOT = IMAGES / "bench-api.png"
SOAK_PLOT = IMAGES / "bench-soak.png"
README = ROOT / "README.md"
README_START = "<!-- headline-figures:start (make docs renders this table from bench/results) -->"
README_END = "<!-- headline-figures:end -->"
NOT_RECORDED = "not recorded"

# Provenance fields, as the bench records them in a results file's `provenance` object.
PROVENANCE_FIELDS = (
    ("date", "date"),
    ("commit", "commit"),
    ("cpu_model", "CPU"),
    ("cores", "cores"),
    ("memory_gib", "memory (GiB)"),
    ("java", "Java"),
    ("python", "Python"),
    ("command", "command"),
)


@dataclass(frozen=True)
class Source:
    """One results file: its data and where it is, relative to the repository."""

    path: Path
    data: dict[str, Any]

    @property
    def name(self) -> str:
        """The file as the docs name it: relative to the repository when it is in it."""
        return self.path.relative_to(ROOT).as_posix() if self.path.is_relative_to(ROOT) else str(self.path)

    def provenance(self) -> dict[str, str]:
        """The file's provenance fields; older files' started_at / machine fill what they can."""
        recorded: dict[str, Any] = dict(self.data.get("provenance") or {})
        machine = self.data.get("machine") or {}
        fallbacks = {
            "date": self.data.get("started_at"),
            "cores": machine.get("cpus"),
            "python": machine.get("python"),
            "command": self.data.get("command"),
        }
        for key, value in fallbacks.items():
            if recorded.get(key) is None and value is not None:
                recorded[key] = value
        if recorded.get("date") is not None:
            recorded["date"] = readable_date(str(recorded["date"]))
        return {
            key: NOT_RECORDED if recorded.get(key) is None else str(recorded[key])
            for key, _ in PROVENANCE_FIELDS
        }


def readable_date(value: str) -> str:
    """An ISO timestamp to the minute, in UTC; anything else as recorded."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M") if "T" in value else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def load_sources(results: Path = RESULTS) -> dict[str, Source]:
    """Every results file under `results`, by its path relative to it."""
    return {
        path.relative_to(results).as_posix(): Source(path, json.loads(path.read_text(encoding="utf-8")))
        for path in sorted(results.rglob("*.json"))
    }


# -- formatting ---------------------------------------------------------------------


def count(value: float | int) -> str:
    return f"{value:,.0f}"


def rate(value: float | None) -> str:
    # The bench withholds a rate (None) when any request or event failed.
    return "no rate (failed requests)" if value is None else f"{value:,.0f}"


def ms(value: float) -> str:
    return f"{value:.1f} ms"


def seconds(value: float) -> str:
    return f"{value:.1f} s"


def ratio(value: float | None) -> str:
    return "no ratio" if value is None else f"{value:.2f}×"


def metric(value: float | None, digits: int = 4) -> str:
    return NOT_RECORDED if value is None else f"{value:.{digits}f}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    # A recorded value may hold a pipe (a command line): escaped, it stays in its cell.
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def source_line(source: Source, part: str | None = None) -> str:
    where = f"`{source.name}`" + (f", `{part}`" if part else "")
    return f"Source: {where} ({source.provenance()['date']})."


def skipped(section: Any) -> str | None:
    """Why a section has no results (not run, or crashed), or None when it has them."""
    if not isinstance(section, dict):
        return "absent"
    if section.get("crashed"):
        return f"crashed: {section['crashed']}"
    if isinstance(section.get("failed"), str):  # ran, and could not measure (the soak's peak run)
        return f"failed: {section['failed']}"
    reason = section.get("skipped")
    return str(reason) if reason else None


def scored_coverage(metrics: dict[str, Any]) -> float | None:
    # Results files written before the two coverages were named call this one `coverage`.
    value = metrics.get("scored_coverage_at_10", metrics.get("coverage"))
    return None if value is None else float(value)


# -- sections -----------------------------------------------------------------------


def provenance_section(sources: Sequence[Source]) -> list[str]:
    rows = [[f"`{s.name}`", *(s.provenance()[key] for key, _ in PROVENANCE_FIELDS)] for s in sources]
    return [
        "## Sources",
        "",
        "Each results file and how it was made, as the file records it.",
        "",
        *table(["file", *(label for _, label in PROVENANCE_FIELDS)], rows),
    ]


def training_section(source: Source) -> list[str]:
    training = source.data["training"]
    if skipped(training):
        return ["## Model quality", "", f"Not measured in `{source.name}` ({skipped(training)})."]
    champion, baseline = training["champion"], training["popularity_baseline"]
    family = training["chosen_family"]
    other = [
        name for name, f in training["families"].items() if name != family and not f.get("skipped_reason")
    ]
    columns = [(f"champion ({family.upper()})", champion, champion)]
    for name in other:
        f = training["families"][name]
        columns.append((f"{name.upper()}, best of its search", f["test"], f["lists"]))
    columns.append(("popularity", baseline, baseline))
    rows_spec: list[tuple[str, Callable[[dict[str, Any], dict[str, Any]], str]]] = [
        ("nDCG@10", lambda t, _l: metric(t["ndcg_at_10"])),
        ("Precision@10", lambda t, _l: metric(t["precision_at_10"])),
        ("Recall@10", lambda t, _l: metric(t["recall_at_10"])),
        ("MAP@10", lambda t, _l: metric(t["map_at_10"])),
        ("catalogue coverage@10", lambda _t, lists: metric(lists.get("catalogue_coverage_at_10"))),
        ("scored coverage@10", lambda t, _l: metric(scored_coverage(t))),
        (
            "novelty (mean popularity rank)",
            lambda _t, lists: metric(lists.get("novelty_mean_popularity_rank"), 1),
        ),
        ("genre diversity@10", lambda _t, lists: metric(lists.get("genre_diversity_at_10"), 3)),
    ]
    rows = [[label, *(render(t, lists) for _, t, lists in columns)] for label, render in rows_spec]
    steps = training["training_step_seconds"]
    params = ", ".join(f"{key} = {value}" for key, value in training["chosen_params"].items())
    step_rows = [[name, seconds(value)] for name, value in steps.items() if name != "total"]
    return [
        "## Model quality",
        "",
        "The bundled MovieLens data under the fixed protocol (per-user 75/25 split, seed 42,",
        "k = 10; [models.md](models.md#the-evaluation-protocol)), the default search.",
        "",
        *table(["metric", *(label for label, _, _ in columns)], rows),
        "",
        f"- Chosen family: **{family.upper()}** ({params}).",
        f"- nDCG@10 against popularity: **{ratio(training['ndcg_ratio_vs_popularity'])}** "
        f"(target {training['quality_target']}: {'met' if training['quality_target_met'] else 'not met'}; "
        f"{training['ndcg_target']}: {'met' if training['ndcg_target_met'] else 'not met'}).",
        f"- Load and sync: {seconds(training['load_and_sync_seconds'])}; "
        f"the training job: {seconds(training['training_wall_seconds'])} wall.",
        "",
        *table(["training step", "time"], step_rows),
        "",
        source_line(source, "training"),
    ]


def peers_section(source: Source) -> list[str]:
    peers = source.data["extra"].get("peers")
    if skipped(peers):
        return ["## Against peers", "", f"Not measured in `{source.name}` ({skipped(peers)})."]
    splits = peers["splits"]
    models: list[str] = list(splits[0]["models"])
    rows = [[name, *(metric(split["models"][name]["ndcg_at_10"]) for split in splits)] for name in models]
    rows.append(
        [
            "filmrec − best peer, per-user mean [95 % paired bootstrap interval]",
            *(
                f"{d['mean']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]: {d['verdict']}"
                for d in (split["filmrec_minus_best_peer"] for split in splits)
            ),
        ]
    )
    lenskit = splits[0].get("lenskit", NOT_RECORDED)
    return [
        "## Against peers",
        "",
        f"nDCG@10, {peers['protocol']}. LensKit {lenskit} tunes each peer on a validation split",
        "of the same train part; one metric function scores all. The verdict reads the",
        "interval: beats (above 0), behind (below 0), matches (holds 0).",
        "",
        *table(["nDCG@10", *(f"split {split['seed']}" for split in splits)], rows),
        "",
        source_line(source, "extra.peers"),
    ]


# What each API row is measured against, by the name its results row has.
YARDSTICK_NAMES = {"raw_bare": "the raw ASGI app", "bare": "the FastAPI route"}


def yardstick_ratio(run: dict[str, Any], path: str) -> tuple[float | None, str, float | None, bool | None]:
    """(ratio, yardstick, target, met) of one path in one worker count's results.

    Files since the raw ASGI yardstick record `targets` (bench/api_sections.py ratios);
    older ones have the ratio to the FastAPI route only, and no target that fits it.
    """
    target = run.get("targets", {}).get(path)
    if target is not None:
        return target["ratio"], target["yardstick"], target["target"], target["target_met"]
    return run.get("ratio_vs_bare", {}).get(path), "bare", None, None


def path_cell(run: dict[str, Any], path: str) -> str:
    if path not in run:
        return NOT_RECORDED
    value, yardstick, target, met = yardstick_ratio(run, path)
    cell = f"{rate(run[path]['requests_per_second'])}, **{ratio(value)}** {YARDSTICK_NAMES[yardstick]}"
    if target is not None:
        cell += f" (target ≥ {target:g}×: {'met' if met else 'not met'})"
    return cell


def paced_cell(paced: dict[str, Any]) -> str:
    """The hit path at half of its peak: offered, achieved, and p99 only at a held rate.

    Older files measured it closed loop (wrk) and recorded no verdict on the rate; the
    rule (bench/open_loop.py rate_held) is applied to what they recorded.
    """
    from bench.open_loop import ACHIEVED_FRACTION, rate_held

    if skipped(paced):
        return f"not measured ({skipped(paced)})"
    hit = paced["cache_hit"]
    offered = paced["offered_requests_per_second"]
    achieved = paced.get("achieved_requests_per_second", hit.get("requests_per_second"))
    held = paced.get("rate_held", rate_held(offered, achieved))
    generator = paced.get("generator", f"{hit.get('tool', 'wrk')}, closed loop")
    met = paced.get("p99_target_met", False) and held
    yardstick, name = ("raw_bare", "raw ASGI") if "raw_bare" in paced else ("bare", "FastAPI route")
    return (
        f"p99 {ms(hit['p99_ms'])}: {rate(achieved)} of {rate(offered)} offered ({generator}); "
        f"rate {'held' if held else 'not held'} (≥ {ACHIEVED_FRACTION:.0%}); "
        f"target < {paced.get('p99_target_ms', 10.0):g} ms: {'met' if met else 'not met'}; "
        f"{name} at that rate: p99 {ms(paced[yardstick]['p99_ms'])}"
    )


def api_section(source: Source) -> list[str]:
    api = source.data.get("api")
    if skipped(api) or not api:
        return ["## API throughput", "", f"Not measured in `{source.name}` ({skipped(api) or 'absent'})."]
    rows = []
    runs = sorted(api["by_workers"].items(), key=lambda item: int(item[0]))
    for workers, run in runs:
        if skipped(run):
            rows.append([str(workers), f"not measured ({skipped(run)})", "", "", "", ""])
            continue
        rows.append(
            [
                str(workers),
                *(
                    f"{rate(run[key]['requests_per_second'])} (p99 {ms(run[key]['p99_ms'])})"
                    if key in run
                    else NOT_RECORDED
                    for key in ("raw_bare", "bare")
                ),
                path_cell(run, "cache_hit"),
                path_cell(run, "model"),
                paced_cell(run["cache_hit_at_half_peak"]),
            ]
        )
    raw_recorded = any("raw_bare" in run for _, run in runs)
    yardsticks = (
        [
            "Each path against its like, serving the same bytes under the same uvicorn command",
            "line: the cache hit (answered in raw ASGI, before FastAPI) against a raw ASGI app,",
            "the model path against a plain async FastAPI route. Targets: cache hit ≥ 0.8× the",
            "raw ASGI app, model path (cache off) ≥ 0.5× the FastAPI route, hit p99 < 10 ms at",
            "half of its peak, offered open loop and held (achieved ≥ 99 % of offered).",
        ]
        if raw_recorded
        else [
            "This file predates the raw ASGI yardstick: every path is shown against a plain",
            "async FastAPI route serving the same bytes, and the cache hit (answered in raw ASGI,",
            "before FastAPI) has no target against it. The paced p99 counts only at a held rate",
            "(achieved ≥ 99 % of offered).",
        ]
    )
    return [
        "## API throughput",
        "",
        f"wrk, {api['connections']} connections, {api['rounds']} alternating rounds of",
        f"{api['seconds_per_run']} s, medians; cache: {api['cache']}.",
        *yardsticks,
        "",
        *table(
            [
                "workers",
                "raw ASGI app req/s",
                "FastAPI route req/s",
                "cache hit req/s, × its yardstick",
                "model req/s, × its yardstick",
                "hit at half of its peak",
            ],
            rows,
        ),
        "",
        f"![Requests per second by API workers: yardsticks, cache hit, model path ({source.name})]"
        f"(images/{API_PLOT.name})",
        "",
        source_line(source, "api"),
    ]


def realtime_section(source: Source) -> list[str]:
    quality, visibility = source.data["fold_in_quality"], source.data["event_to_visibility"]
    rows = [
        [
            f"event published → the user's list changed ({visibility['probes']} probes, "
            f"{rate(visibility['background_events_per_second'])} events/s beside)",
            f"p50 {ms(visibility['p50_seconds'] * 1000)}, p99 **{ms(visibility['p99_seconds'] * 1000)}**, "
            f"max {ms(visibility['max_seconds'] * 1000)}, {visibility['timeouts']} timeouts",
            f"{visibility['target']}: {'met' if visibility['target_met'] else 'not met'}",
        ],
        [
            f"nDCG@10 of {quality['held_out_users']} users held out of training, folded in",
            f"**{metric(quality['ndcg_at_10_fold_in_users'], 3)}**",
            "",
        ],
        [
            f"nDCG@10 of the {quality['in_model_users']} users in the model",
            metric(quality["ndcg_at_10_in_model_users"], 3),
            f"fold-in {ratio(quality['fold_in_vs_in_model'])} of it",
        ],
        [
            "nDCG@10 of popularity on the held-out users",
            metric(quality["ndcg_at_10_popularity_on_held_out"], 3),
            f"fold-in {ratio(quality['fold_in_vs_popularity'])} of it; "
            f"{quality['target']}: {'met' if quality['target_met'] else 'not met'}",
        ],
    ]
    return [
        "## Real-time loop",
        "",
        "A rating published to the topic changes that user's next list without retraining",
        "([models.md](models.md#fold-in)). A real broker and API process.",
        "",
        *table(["what", "result", "target"], rows),
        "",
        source_line(source),
    ]


def reliability_section(sources: Sequence[Source]) -> list[str]:
    lines = ["## Reliability under load", ""]
    soak_rows = []
    unmeasured = []
    for source in sources:
        soak = source.data["extra"].get("soak")
        if skipped(soak):
            reason = str(skipped(soak))
            if reason.startswith(("crashed", "failed")):
                unmeasured.append(f"Soak in `{source.name}`: {reason}.")
            continue
        growth = soak["rss_second_half_growth_pct"]
        soak_rows.append(
            [
                f"`{source.name}`",
                f"{soak['minutes']:.0f} min",
                f"{rate(soak['offered_requests_per_second'])} / {rate(soak['achieved_requests_per_second'])}",
                count(soak["requests"]),
                f"**{soak['errors']}**",
                f"{ms(soak['p99_ms_first_window'])} → {ms(soak['p99_ms_last_window'])}",
                f"{soak['rss_mb_start']:.0f} → {soak['rss_mb_end']:.0f} MB, second half "
                f"{NOT_RECORDED if growth is None else f'{growth:+.1f} %'}"
                f" (bound {soak['rss_flat_bound_pct']:.0f} %)",
            ]
        )
    if soak_rows:
        plotted = ", ".join(f"`{s.name}`" for s in sources if not skipped(s.data["extra"].get("soak")))
        lines += [
            f"![p99 latency per soak window ({plotted})](images/{SOAK_PLOT.name})",
            "",
            "**Soak**: the mix "
            + next(
                s.data["extra"]["soak"]["mix"] for s in sources if not skipped(s.data["extra"].get("soak"))
            )
            + " at half of its unpaced peak; errors target 0.",
            "",
            *table(
                [
                    "file",
                    "length",
                    "req/s offered / achieved",
                    "requests",
                    "errors",
                    "p99 first → last window",
                    "server RSS",
                ],
                soak_rows,
            ),
            "",
        ]
    if unmeasured:
        lines += [*unmeasured, ""]
    main = sources[0]
    swap_rows = []
    for key in sorted(k for k in main.data["extra"] if k.startswith("swap_")):
        swap = main.data["extra"][key]
        if skipped(swap):
            continue
        swap_rows.append(
            [
                str(swap["workers"]),
                count(swap["requests"]),
                f"**{swap['failed_requests']}**",
                f"{seconds(swap['seconds_from_promotion_to_served'])}",
            ]
        )
    if swap_rows:
        lines += [
            "**Model swap**: another champion promoted during the load; failed requests target 0",
            "(connection errors count).",
            "",
            *table(["workers", "requests", "failed", "new version served after"], swap_rows),
            "",
        ]
    outages = main.data["extra"].get("outages")
    if not skipped(outages):
        lines += outages_lines(outages)
    lines.append(f"Source: `{main.name}`, `extra` ({main.provenance()['date']}).")
    return lines


def outage_row(kind: str, name: str, row: dict[str, Any]) -> list[str]:
    """One fault under load. Older files (stops only, wrk) recorded 5xx and failures in
    total; newer ones (open loop) reads and writes apart, with the p99 bound and a verdict."""
    if "down_seconds" in row:
        return [
            f"{kind} {name}", seconds(row["down_seconds"]), count(row["requests"]),
            f"**{row['server_errors_5xx']}**", str(row["failed_requests"]), str(row["degraded_answers"]),
            ms(row["p99_ms"]) if "p99_ms" in row else NOT_RECORDED,
            f"{row['seconds_from_restart_to_ready']:.2f} s", NOT_RECORDED,
        ]  # fmt: skip
    ready = row["seconds_from_end_of_fault_to_ready"]
    return [
        f"{kind} {name}", seconds(row["fault_seconds"]), count(row["run"]["sent"]),
        f"**{row['reads_5xx']}** / {row['writes_5xx']}", str(row["unanswered"]), str(row["degraded_answers"]),
        f"{ms(row['p99_ms'])} (bound {ms(row['p99_bound_ms'])})",
        "not ready in 120 s" if ready is None else f"{ready:.2f} s",
        "met" if row["target_met"] else "not met",
    ]  # fmt: skip


def outages_lines(outages: dict[str, Any]) -> list[str]:
    rows = [
        outage_row("stop", name, outages[name])
        for name in ("redis", "postgresql", "mlflow")
        if isinstance(outages.get(name), dict)
    ]
    hangs = outages.get("hangs")
    if isinstance(hangs, dict) and not skipped(hangs):
        rows += [
            outage_row("hang", name, hangs[name])
            for name in ("redis", "postgresql", "mlflow", "kafka")
            if isinstance(hangs.get(name), dict)
        ]
    lines = [
        "**Outages**: each dependency stopped (and restarted), or hung behind a proxy that stops "
        f"forwarding, under {rate(outages['offered_requests_per_second'])} req/s; 5xx target 0.",
        "",
        *table(
            [
                "fault",
                "for",
                "requests",
                "5xx (reads / writes)",
                "failed",
                "degraded answers",
                "p99",
                "to /ready",
                "target",
            ],
            rows,
        ),
        "",
    ]
    if isinstance(hangs, dict) and skipped(hangs):
        lines += [f"Hangs not measured ({skipped(hangs)}).", ""]
    return lines


def blas_section(source: Source) -> list[str]:
    variants = [
        ("java", "Java (`VectorBLAS`, no native library)"),
        ("native", "OpenBLAS, its default threads"),
        ("native-1-thread", "OpenBLAS, 1 thread per task (the platform's setting)"),
    ]
    ranks = sorted({int(rank) for key, _ in variants for rank in source.data[key]["fit_seconds_by_rank"]})
    rows = [
        [label, *(seconds(source.data[key]["fit_seconds_by_rank"][str(rank)]) for rank in ranks)]
        for key, label in variants
    ]
    return [
        "## Native BLAS for Spark's ALS",
        "",
        f"One ALS fit ({source.data['als']}) on {source.data['ratings']},",
        "each variant in a fresh driver JVM.",
        "",
        *table(["ALS fit", *(f"rank {rank}" for rank in ranks)], rows),
        "",
        source_line(source),
    ]


def scale_section(source: Source, plot: Path) -> list[str]:
    rows = []
    for size in source.data["sizes"]:
        steps = size["training_steps"]
        rows.append(
            [
                count(size["ratings"]),
                count(size["users"]),
                seconds(size["load_seconds"]),
                f"**{seconds(size['delta_to_registered_seconds'])}**",
                " / ".join(
                    f"{steps[k]:.0f}" for k in ("split", "search_als", "search_ease", "evaluate", "refit")
                )
                + " s",
                f"{size['peak_rss_bytes'] / 2**30:.1f} GiB",
                f"{size['family'].upper()} {metric(size['ndcg_at_10'], 3)} "
                f"({metric(size['popularity_ndcg_at_10'], 3)})",
            ]
        )
    growth = "; ".join(
        f"ratings^{g['exponent']} from {count(g['from'])} to {count(g['to'])}"
        for g in source.data["growth_exponent_delta_to_registered"]
    )
    lines = [
        "## Scale",
        "",
        "Synthetic MovieLens-shaped data, each size in a fresh process from an empty lakehouse,",
        "the training job with a fixed budget (one ALS and one EASE trial, one validation fold).",
        f"Target: {source.data['target']}.",
        "",
        *table(
            [
                "ratings",
                "users",
                "load CSV into Delta",
                "Delta → registered model",
                "split / ALS search / EASE search / evaluation / refit",
                "peak memory",
                "winner nDCG@10 (popularity)",
            ],
            rows,
        ),
        "",
        f"Growth of Delta → registered model: {growth} (linear is 1.0).",
        "",
    ]
    if plot.exists():
        lines += [
            f"![Scale curve: wall time and peak memory against ratings](../{plot.relative_to(ROOT).as_posix()})",  # noqa: E501
            "",
        ]
    lines.append(source_line(source))
    return lines


def not_measured_section(source: Source) -> list[str]:
    # Native BLAS has a file of its own (blas.json, above).
    names = {"streaming": "Streaming (replay and Kafka → Delta)", "airflow": "Airflow DAGs"}
    rows = [[label, str(skipped(source.data["extra"].get(key)))] for key, label in names.items()
            if skipped(source.data["extra"].get(key))]  # fmt: skip
    if not rows:
        return []
    return [
        "## Sections without a result",
        "",
        f"`{source.name}` has no result for these (skipped, or crashed: the run failed).",
        "",
        *table(["section", "reason recorded"], rows),
    ]


# -- documents ----------------------------------------------------------------------


def render_benchmarks(results: Path = RESULTS) -> str:
    sources = load_sources(results)
    latest = sources["latest.json"]
    soak_sources = [latest, *(s for name, s in sources.items() if name.endswith("/latest.json"))]
    used = [latest, sources["realtime.json"], sources["blas.json"], sources["scale.json"], *soak_sources[1:]]
    parts = [
        [
            "# Benchmarks",
            "",
            "<!-- Generated by `make docs` (python -m bench.render_docs) from bench/results; do not edit -->",
            "",
            "Every figure below is read from a results file of `make bench` (`python -m bench`;",
            "how to run each section: [development.md](development.md#benchmarks)). Each table names",
            "its file; the sources table says when, where and how each file was made.",
        ],
        provenance_section(used),
        training_section(latest),
        peers_section(latest),
        api_section(latest),
        realtime_section(sources["realtime.json"]),
        reliability_section(soak_sources),
        blas_section(sources["blas.json"]),
        scale_section(sources["scale.json"], results / "scale.png"),
        not_measured_section(latest),
    ]
    return "\n\n".join("\n".join(part) for part in parts if part) + "\n"


def headline_throughput(run: dict[str, Any], path: str) -> str:
    """A path's requests/s and its ratio to its yardstick (the raw ASGI app for the hit
    path, a plain FastAPI route for the model path; a FastAPI route in older files)."""
    if skipped(run):
        return f"not measured ({skipped(run)})"
    value, yardstick, _target, _met = yardstick_ratio(run, path)
    like = {"raw_bare": "a raw ASGI app", "bare": "a bare FastAPI route"}[yardstick]
    return f"{rate(run[path]['requests_per_second'])} req/s, {ratio(value)} {like}"


def headline_rows(results: Path = RESULTS) -> list[str]:
    sources = load_sources(results)
    latest, realtime, scale = sources["latest.json"], sources["realtime.json"], sources["scale.json"]
    training = latest.data["training"]
    api = latest.data["api"]
    one_worker = api["by_workers"]["1"]
    visibility = realtime.data["event_to_visibility"]
    largest = max(scale.data["sizes"], key=lambda size: size["ratings"])
    soak = latest.data["extra"]["soak"]
    peer = latest.data["extra"]["peers"]["splits"]
    rows = [
        [
            f"nDCG@10 of the champion ({training['chosen_family'].upper()}), bundled MovieLens",
            f"{metric(training['champion']['ndcg_at_10'])}, "
            f"{ratio(training['ndcg_ratio_vs_popularity'])} popularity",
            f"`{latest.name}`",
        ],
        [
            "against LensKit's best peer, per split",
            ", ".join(split["filmrec_minus_best_peer"]["verdict"] for split in peer),
            f"`{latest.name}`",
        ],
        [
            "cache hit, 1 API worker",
            headline_throughput(one_worker, "cache_hit"),
            f"`{latest.name}`",
        ],
        [
            "model path (cache off), 1 API worker",
            headline_throughput(one_worker, "model"),
            f"`{latest.name}`",
        ],
        [
            "a rating → the user's next list (p99)",
            ms(visibility["p99_seconds"] * 1000),
            f"`{realtime.name}`",
        ],
        [
            f"soak, {soak['minutes']:.0f} min of mixed traffic",
            f"{count(soak['requests'])} requests, {soak['errors']} errors",
            f"`{latest.name}`",
        ],
        [
            f"{count(largest['ratings'])} ratings, Delta → registered model",
            f"{largest['delta_to_registered_seconds'] / 60:.1f} min",
            f"`{scale.name}`",
        ],
    ]
    return table(["figure", "value", "source"], rows)


def render_readme(readme: str, results: Path = RESULTS) -> str:
    """`readme` with the block between the markers replaced by the headline table."""
    head, start, rest = readme.partition(README_START)
    _, end, tail = rest.partition(README_END)
    if not start or not end:
        raise ValueError(f"README.md lacks the markers {README_START!r} … {README_END!r}")
    return head + start + "\n" + "\n".join(headline_rows(results)) + "\n" + end + tail


def rendered(results: Path = RESULTS) -> dict[Path, str]:
    """Each generated file and what it must contain."""
    return {
        BENCHMARKS_MD: render_benchmarks(results),
        README: render_readme(README.read_text(encoding="utf-8"), results),
    }


def write_plots(results: Path = RESULTS) -> list[Path]:
    """The PNG figures docs/benchmarks.md shows, drawn from the same results (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = load_sources(results)
    latest = sources["latest.json"]
    IMAGES.mkdir(parents=True, exist_ok=True)

    by_workers = sorted(
        ((workers, run) for workers, run in latest.data["api"]["by_workers"].items() if not skipped(run)),
        key=lambda item: int(item[0]),
    )
    bars = [
        ("raw_bare", "raw ASGI app"),
        ("bare", "FastAPI route"),
        ("cache_hit", "cache hit"),
        ("model", "model path (cache off)"),
    ]
    # Older files have no raw ASGI row; a withheld rate (failed requests) is no bar.
    bars = [(path, label) for path, label in bars if any(path in run for _, run in by_workers)]
    figure, axes = plt.subplots(figsize=(7, 3.8))
    width = 0.8 / len(bars)
    for offset, (path, label) in enumerate(bars):
        xs = [index + (offset - (len(bars) - 1) / 2) * width for index in range(len(by_workers))]
        heights = [(run.get(path) or {}).get("requests_per_second") or 0.0 for _, run in by_workers]
        axes.bar(xs, heights, width, label=label)
    axes.set_xticks(range(len(by_workers)), [f"{workers} worker(s)" for workers, _ in by_workers])
    axes.set_ylabel("requests/s (median of rounds)")
    axes.set_title(f"GET /recommendations against its yardsticks ({latest.name})", fontsize=9)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(API_PLOT, dpi=110)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(7, 3.8))
    for source in [latest, *(s for name, s in sources.items() if name.endswith("/latest.json"))]:
        soak = source.data["extra"].get("soak")
        if skipped(soak):
            continue
        windows = soak["windows"]
        minutes = [(index + 1) * window["seconds"] / 60 for index, window in enumerate(windows)]
        axes.plot(minutes, [window["p99_ms"] for window in windows], marker=".", label=source.name)
    axes.set_xlabel("minutes into the soak")
    axes.set_ylabel("p99 per window (ms)")
    axes.set_title("Soak: p99 latency per measurement window", fontsize=9)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(SOAK_PLOT, dpi=110)
    plt.close(figure)
    return [API_PLOT, SOAK_PLOT]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.render_docs", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="compare instead of writing; exit 1 on a difference"
    )
    args = parser.parse_args(argv)
    stale = []
    for path, text in rendered().items():
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path.relative_to(ROOT).as_posix())
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if not args.check:
        for plot in write_plots():
            print(f"wrote {plot.relative_to(ROOT)}")
    if stale:
        print(f"out of date with bench/results (run make docs): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
