"""HTTP load generation for benchmarks: wrk when installed, else an asyncio client.

wrk (C, Debian package `wrk`) barely competes with the server for the 2 cores; the
Python fallback does, so its numbers are lower bounds. The report says which ran.
Every run is bounded in time and sends traffic to loopback only.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
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
    requests_per_second: float
    p50_ms: float
    p99_ms: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


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


class ServerProcess:
    """A uvicorn server in its own process, so the load generator does not share its GIL."""

    def __init__(self, target: str, *, port: int, env: dict[str, str] | None = None, factory: bool = False):
        command = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port)]
        command += ["--log-level", "warning", "--no-access-log"] + (["--factory"] if factory else [])
        self.process = subprocess.Popen(command, env={**os.environ, **(env or {})})
        self.base_url = f"http://127.0.0.1:{port}"

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


_WRK_LUA = """
local paths = {%s}
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
done = function(summary, latency, requests)
  io.write(string.format("FILMREC %%d %%d %%f %%f\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def _run_wrk(
    name: str, base_url: str, path_template: str, ids: list[int], *, seconds: int, connections: int
) -> LoadResult:
    script = _WRK_LUA % ",".join(f'"{path}"' for path in expand(path_template, ids))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        output = subprocess.run(
            ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "-s", handle.name, base_url],
            capture_output=True, text=True, check=True, timeout=seconds + 30,
        ).stdout  # fmt: skip
    finally:
        Path(handle.name).unlink()
    match = re.search(r"FILMREC (\d+) (\d+) ([\d.]+) ([\d.]+)", output)
    if match is None:
        raise RuntimeError(f"could not read wrk output:\n{output}")
    requests, errors = int(match[1]), int(match[2])
    p50_ms, p99_ms = round(float(match[3]), 3), round(float(match[4]), 3)
    rate = round(requests / seconds, 1)
    return LoadResult(name, base_url + path_template, "wrk", seconds, requests, errors, rate, p50_ms, p99_ms)


async def _python_load(
    base_url: str, paths: list[str], *, seconds: int, connections: int
) -> tuple[int, int, list[float]]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                start = time.perf_counter()
                try:
                    response = await client.get(random.choice(paths))
                    if response.status_code >= 400:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append((time.perf_counter() - start) * 1000)

        await asyncio.gather(*(worker() for _ in range(connections)))
    return len(latencies), errors, latencies


def measure(
    name: str, base_url: str, path_template: str, ids: list[int] | None = None, *,
    seconds: int = 15, connections: int = 16,
) -> LoadResult:  # fmt: skip
    """Load `base_url + path_template` (with `{id}` drawn from `ids`) for `seconds`."""
    ids = ids or [0]
    if shutil.which("wrk"):
        return _run_wrk(name, base_url, path_template, ids, seconds=seconds, connections=connections)
    paths = expand(path_template, ids)
    requests, errors, latencies = asyncio.run(
        _python_load(base_url, paths, seconds=seconds, connections=connections)
    )
    ordered = sorted(latencies) or [0.0]
    return LoadResult(
        name, base_url + path_template, "python-asyncio", seconds, requests, errors,
        round(requests / seconds, 1), round(ordered[len(ordered) // 2], 3),
        round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
    )  # fmt: skip
