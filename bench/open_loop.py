"""Latency at a given rate, measured open loop: vegeta sends on schedule, answered or not.

wrk's paced runs are a closed loop: a connection waits for its answer before its
next pause, so a slow answer delays the requests behind it and they are never
measured as late (coordinated omission), and the rate actually offered falls below
the rate asked for. vegeta (bench/go_tools.py builds it) sends each request at its
scheduled time on a new worker when the others are busy, so a stall shows up as the
latency of every request scheduled during it.

A rate is reported as offered (asked for) and achieved (answers with a 2xx per
second, from the first request sent to the last answer received). A latency target
holds only when the run kept its rate: achieved >= ACHIEVED_FRACTION x offered, and
no request failed (rate_held). Every request's answer is read: 5xx, transport errors
(timeouts, refused connections) and degraded answers are counted.
"""

from __future__ import annotations

import base64
import json
import random
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

# The fraction of the offered rate a run must achieve for its latency to count (issue 25).
ACHIEVED_FRACTION = 0.99

# A list answered while PostgreSQL is out: movies without titles (serving degrades).
DEGRADED_MARKER = b'"title":null'


@dataclass(frozen=True)
class OpenLoopResult:
    name: str
    url: str
    tool: str
    seconds: float
    offered_requests_per_second: float
    sent: int
    ok: int  # 2xx answers
    # None when any request failed: a run with errors has no rate (as in http_load).
    achieved_requests_per_second: float | None
    p50_ms: float
    p99_ms: float
    max_ms: float
    server_errors_5xx: int = 0
    degraded: int = 0
    # Per HTTP method: requests, 2xx answers, 5xx answers (reads and writes degrade apart).
    by_method: dict[str, dict[str, int]] = field(default_factory=dict)
    # What failed, by kind: status_<code>, timeout, connect, transport.
    error_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(self.error_kinds.values())

    @property
    def failed(self) -> bool:
        return self.errors > 0

    @property
    def rate_held(self) -> bool:
        return rate_held(self.offered_requests_per_second, self.achieved_requests_per_second)

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {
            "errors": self.errors,
            "failed": self.failed,
            "achieved_fraction": (
                round(self.achieved_requests_per_second / self.offered_requests_per_second, 4)
                if self.achieved_requests_per_second is not None and self.offered_requests_per_second
                else None
            ),
            "rate_held": self.rate_held,
        }


def rate_held(offered: float, achieved: float | None) -> bool:
    """The rule every paced target obeys: the run achieved at least 99 % of what it offered."""
    return achieved is not None and offered > 0 and achieved >= ACHIEVED_FRACTION * offered


def _error_kind(code: int, error: str) -> str | None:
    if 200 <= code < 300:
        return None
    if code:
        return f"status_{code}"
    lowered = error.lower()
    if "timeout" in lowered or "deadline exceeded" in lowered:
        return "timeout"
    if "refused" in lowered or "connect" in lowered:
        return "connect"
    return "transport"


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest rank, as http_load's Python client reports it."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def read_results(
    lines: Iterable[str], *, name: str, url: str, tool: str, seconds: float, offered: float
) -> OpenLoopResult:
    """An OpenLoopResult from `vegeta encode --to json` lines (one JSON object per request)."""
    latencies: list[float] = []
    kinds: Counter[str] = Counter()
    ok = server_errors = degraded = 0
    by_method: dict[str, Counter[str]] = {}
    first_sent: float | None = None
    last_answer: float | None = None
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        code, latency_ns = int(record["code"]), int(record["latency"])
        latencies.append(latency_ns / 1e6)
        sent_at = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp()
        first_sent = sent_at if first_sent is None else min(first_sent, sent_at)
        answered_at = sent_at + latency_ns / 1e9
        last_answer = answered_at if last_answer is None else max(last_answer, answered_at)
        kind = _error_kind(code, record.get("error") or "")
        method = by_method.setdefault(record.get("method") or "GET", Counter())
        method["requests"] += 1
        if kind:
            kinds[kind] += 1
        else:
            ok += 1
            method["ok"] += 1
        if code >= 500:
            server_errors += 1
            method["5xx"] += 1
        if code == 200 and record.get("body") and DEGRADED_MARKER in base64.b64decode(record["body"]):
            degraded += 1
    span = last_answer - first_sent if first_sent is not None and last_answer is not None else 0.0
    achieved = round(ok / span, 1) if span > 0 and not kinds else None
    ordered = sorted(latencies)
    return OpenLoopResult(
        name=name, url=url, tool=tool, seconds=seconds, offered_requests_per_second=offered,
        sent=len(latencies), ok=ok, achieved_requests_per_second=achieved,
        p50_ms=round(_percentile(ordered, 0.50), 3), p99_ms=round(_percentile(ordered, 0.99), 3),
        max_ms=round(ordered[-1] if ordered else 0.0, 3), server_errors_5xx=server_errors,
        degraded=degraded, error_kinds=dict(sorted(kinds.items())),
        by_method={
            name: {key: counts[key] for key in ("requests", "ok", "5xx")}
            for name, counts in sorted(by_method.items())
        },
    )  # fmt: skip


@dataclass(frozen=True)
class Write:
    """A POST sent among the GETs: `body` to `path` with `headers`, every `every`-th request."""

    path: str
    body: bytes
    headers: dict[str, str]
    every: int = 20


def targets_text(
    base_url: str,
    paths: list[str],
    *,
    seed: int = 0,
    write: Write | None = None,
    body_file: Path | None = None,
) -> str:
    """vegeta's http target format, in a seeded random order (it sends them round robin);
    with `write`, one POST (body read from `body_file`) after every `write.every - 1` GETs."""
    shuffled = list(paths)
    random.Random(seed).shuffle(shuffled)
    targets = [f"GET {base_url}{path}" for path in shuffled]
    if write is not None:
        header_lines = "".join(f"\n{name}: {value}" for name, value in write.headers.items())
        post = f"POST {base_url}{write.path}{header_lines}\n@{body_file}"
        step = max(1, write.every - 1)
        with_posts: list[str] = []
        for start in range(0, len(targets), step):
            with_posts += [*targets[start : start + step], post]
        targets = with_posts
    return "\n\n".join(targets) + "\n"


def attack(
    name: str, base_url: str, paths: list[str], *, rate: float, seconds: float,
    timeout_seconds: float = 30.0, read_bodies: bool = False, write: Write | None = None,
) -> OpenLoopResult:  # fmt: skip
    """`rate` requests/s to `base_url + path` (paths in turn, with `write` among them) for
    `seconds`, open loop.

    `read_bodies` keeps each answer's body to count degraded ones (costly at high rates).
    A request unanswered after `timeout_seconds` is a timeout error.
    """
    from bench.go_tools import TOOLS, tool

    vegeta = tool("vegeta")
    per_second = max(1, round(rate))
    with tempfile.TemporaryDirectory(prefix="filmrec-vegeta-") as scratch:
        targets, results = Path(scratch) / "targets.txt", Path(scratch) / "results.bin"
        body_file = Path(scratch) / "body.json"
        if write is not None:
            body_file.write_bytes(write.body)
        targets.write_text(targets_text(base_url, paths, write=write, body_file=body_file))
        with results.open("wb") as out:
            subprocess.run(
                [str(vegeta), "attack", f"-rate={per_second}/1s", f"-duration={seconds:g}s",
                 f"-timeout={timeout_seconds:g}s", f"-targets={targets}",
                 f"-max-body={-1 if read_bodies else 0}"],
                stdout=out, check=True, timeout=seconds + timeout_seconds + 60,
            )  # fmt: skip
        encoded = subprocess.run(
            [str(vegeta), "encode", "--to", "json", str(results)],
            capture_output=True, text=True, check=True, timeout=600,
        ).stdout  # fmt: skip
    label = paths[0] if len(paths) == 1 else f"{paths[0]} (and {len(paths) - 1} more paths, in turn)"
    return read_results(
        encoded.splitlines(), name=name, url=base_url + label,
        tool=f"vegeta {TOOLS['vegeta'].version} (open loop)", seconds=seconds, offered=per_second,
    )  # fmt: skip
