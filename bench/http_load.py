"""HTTP load generation for benchmarks: wrk when installed, else an asyncio client.

wrk (C, Debian package `wrk`) barely competes with the server for the 2 cores; the
Python fallback does, so its numbers are lower bounds. The report says which ran.
Every run is bounded in time and sends traffic to loopback only.

A run with any failed request (a 4xx/5xx status, a socket connect, read or write
error, a timeout) is reported as failed: its requests/s is not a result (None), so a
server that answers errors fast can never look fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx


@dataclass(frozen=True)
class LoadResult:
    name: str
    url: str
    tool: str
    seconds: float
    requests: int
    errors: int
    # None when any request failed: see `failed`.
    requests_per_second: float | None
    p50_ms: float
    p99_ms: float
    # What failed, by kind (wrk: status, connect, read, write, timeout).
    error_kinds: dict[str, int] = field(default_factory=dict)
    connections: int = 0

    @property
    def failed(self) -> bool:
        return self.errors > 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {"failed": self.failed}


def _result(
    name: str, url: str, tool: str, *, seconds: float, requests: int, error_kinds: dict[str, int],
    p50_ms: float, p99_ms: float, connections: int,
) -> LoadResult:  # fmt: skip
    errors = sum(error_kinds.values())
    rate = None if errors else round(requests / seconds, 1)
    return LoadResult(
        name, url, tool, seconds, requests, errors, rate, p50_ms, p99_ms, error_kinds, connections
    )


def wait_until_up(url: str, *, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


# The API as a serving process starts it (JVM side refused), for uvicorn --factory.
SERVED_APP = "filmrec.serving.app:create_served_app"
# The read rate limit stays on, so the bench pays for its check as production does,
# but high above any load the bench offers from its one address: a 429 would be a
# failed request, not a measurement.
READ_LOAD_LIMIT = "1000000000/minute"


class ServerProcess:
    """A uvicorn server in its own process, so the load generator does not share its GIL."""

    def __init__(
        self,
        target: str,
        *,
        port: int,
        env: dict[str, str] | None = None,
        factory: bool = False,
        workers: int = 1,
    ):
        # The same command line for the API and the bare yardstick: same server, same
        # settings, same number of worker processes; only the app differs.
        command = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port)]
        command += ["--log-level", "warning", "--no-access-log", "--workers", str(workers)]
        command += ["--factory"] if factory else []
        self.process = subprocess.Popen(command, env={**os.environ, **(env or {})})
        self.base_url = f"http://127.0.0.1:{port}"
        self.workers = workers

    def rss_bytes(self) -> int:
        """Resident memory of the server: the process and its worker processes."""
        import psutil

        try:
            parent = psutil.Process(self.process.pid)
            processes = [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
        return total

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def expand(path_template: str, ids: list[int]) -> list[str]:
    """The concrete paths of a template: one per id, or the template itself without `{id}`."""
    if "{id}" not in path_template:
        return [path_template]
    return [path_template.replace("{id}", str(i)) for i in ids]


# Appended to every wrk script: one line with the counts parse_wrk reads.
WRK_DONE_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("FILMREC %d %d %d %d %d %d %f %f\\n", summary.requests,
    e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""

_WRK_GET_LUA = """
local paths = {%s}
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
"""


def paced_delay_lua(*, rate: float, connections: int) -> str:
    """A wrk delay() that makes `connections` offer about `rate` requests/s in all.

    wrk reads delay()'s milliseconds as a whole number (script_delay truncates), so a
    2.7 ms pause would be 2 ms, a third more load than asked: each pause is the whole
    millisecond below or above, drawn so that the mean pause is exact. The answer's
    own latency adds to each connection's cycle, so what is achieved is at most this.
    """
    pause_ms = max(0.0, 1000.0 * connections / rate)
    return f"""
local pause_ms = {pause_ms:f}
local whole_ms = math.floor(pause_ms)
delay = function()
  if math.random() < pause_ms - whole_ms then
    return whole_ms + 1
  end
  return whole_ms
end
"""


def wrk_output(base_url: str, script: str, *, seconds: float, connections: int) -> str:
    """wrk's printed output for one run of `script` as given (one thread)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        return subprocess.run(
            ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "-s", handle.name, base_url],
            capture_output=True, text=True, check=True, timeout=seconds + 30,
        ).stdout  # fmt: skip
    finally:
        Path(handle.name).unlink()


def run_wrk_script(
    name: str, base_url: str, script: str, *, seconds: float, connections: int, label: str = ""
) -> LoadResult:
    """wrk (one thread) with a request() script of the caller's, `seconds` long."""
    output = wrk_output(base_url, script + WRK_DONE_LUA, seconds=seconds, connections=connections)
    return parse_wrk(name, base_url + label, output, seconds=seconds, connections=connections)


def _run_wrk(
    name: str, base_url: str, path_template: str, ids: list[int], *, seconds: int, connections: int,
    rate: float | None,
) -> LoadResult:  # fmt: skip
    script = _WRK_GET_LUA % ",".join(f'"{path}"' for path in expand(path_template, ids))
    if rate:
        script += paced_delay_lua(rate=rate, connections=connections)
    return run_wrk_script(
        name, base_url, script, seconds=seconds, connections=connections, label=path_template
    )


def parse_wrk(name: str, url: str, output: str, *, seconds: float, connections: int) -> LoadResult:
    """The FILMREC line our done() hook prints. wrk counts a status >= 400 as a status error."""
    match = re.search(r"FILMREC (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+)", output)
    if match is None:
        raise RuntimeError(f"could not read wrk output:\n{output}")
    kinds = dict(
        zip(("status", "connect", "read", "write", "timeout"), map(int, match.groups()[1:6]), strict=True)
    )
    return _result(
        name, url, "wrk", seconds=seconds, requests=int(match[1]),
        error_kinds={kind: count for kind, count in kinds.items() if count},
        p50_ms=round(float(match[7]), 3), p99_ms=round(float(match[8]), 3), connections=connections,
    )  # fmt: skip


async def _python_load(
    base_url: str, paths: list[str], *, seconds: int, connections: int, rate: float | None
) -> tuple[int, dict[str, int], list[float]]:
    latencies: list[float] = []
    errors = {"status": 0, "socket": 0}
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                start = time.perf_counter()
                try:
                    response = await client.get(random.choice(paths))
                    if not 200 <= response.status_code < 300:
                        errors["status"] += 1
                except httpx.HTTPError:
                    errors["socket"] += 1
                latencies.append((time.perf_counter() - start) * 1000)
                if rate:
                    await asyncio.sleep(connections / rate)

        await asyncio.gather(*(worker() for _ in range(connections)))
    return len(latencies), {kind: n for kind, n in errors.items() if n}, latencies


def measure(
    name: str, base_url: str, path_template: str, ids: list[int] | None = None, *,
    seconds: int = 15, connections: int = 16, rate: float | None = None,
) -> LoadResult:  # fmt: skip
    """Load `base_url + path_template` (with `{id}` drawn from `ids`) for `seconds`: as
    fast as answers come, or paced to offer about `rate` requests/s."""
    ids = ids or [0]
    if shutil.which("wrk"):
        return _run_wrk(
            name, base_url, path_template, ids, seconds=seconds, connections=connections, rate=rate
        )
    paths = expand(path_template, ids)
    requests, errors, latencies = asyncio.run(
        _python_load(base_url, paths, seconds=seconds, connections=connections, rate=rate)
    )
    ordered = sorted(latencies) or [0.0]
    return _result(
        name, base_url + path_template, "python-asyncio", seconds=seconds, requests=requests,
        error_kinds=errors,
        p50_ms=round(ordered[len(ordered) // 2], 3),
        p99_ms=round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3), connections=connections,
    )  # fmt: skip
