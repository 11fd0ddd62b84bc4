"""Serving benchmark: /recommendations from Redis cache hits, from the model, and a bare endpoint.

All three run in one call, each against a real uvicorn process (so the load generator
in this process does not share a GIL with the server), with the same client load:

    from filmrec.serving.bench_cache import bench_serving
    results = bench_serving(settings, requests=3000, concurrency=16)

- `constant`: a bare FastAPI app returning a constant JSON (the framework's ceiling);
- `cache_hit`: the API with its cache (Redis when REDIS_URL is set), every key warm;
- `model`: the API with CACHE_ENABLED=false, so every request runs the model.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from filmrec.config import Settings, get_settings

constant_app = FastAPI(title="constant")


@constant_app.get("/recommendations/{user_id}")
def _constant(user_id: int) -> dict[str, Any]:
    return {"user_id": user_id, "items": [{"movie_id": 1, "score": 1.0}]}


def settings_env(settings: Settings) -> dict[str, str]:
    """`settings` as the environment variables that recreate it in a child process."""
    env: dict[str, str] = {}
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if value is None or field.alias is None:
            continue
        env[field.alias] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _server(target: str, *, env: dict[str, str], factory: bool, ready_path: str) -> Iterator[str]:
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--log-level", "warning", "--no-access-log"] + (["--factory"] if factory else [])
    process = subprocess.Popen(
        command, env=os.environ | env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{target} exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(base + ready_path, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{target} was not ready within 120s")
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


async def _load(base: str, paths: Sequence[str], *, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    sources: dict[str, int] = {}
    errors = 0
    queue = iter(paths)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            for path in queue:
                start = time.perf_counter()
                response = await client.get(path)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200:
                    errors += 1
                    continue
                source = response.json().get("source", "constant")
                sources[source] = sources.get(source, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(paths),
        "errors": errors,
        "seconds": round(elapsed, 3),
        "requests_per_second": round(len(paths) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 3),
        "sources": sources,
    }


def _measure(base: str, paths: Sequence[str], *, concurrency: int, warmup: int) -> dict[str, Any]:
    # Unmeasured warm-up: connections, imports, and (for cache hits) the keys themselves.
    asyncio.run(_load(base, paths[:warmup], concurrency=concurrency))
    return asyncio.run(_load(base, paths, concurrency=concurrency))


def bench_serving(
    settings: Settings | None = None,
    *,
    requests: int = 3000,
    concurrency: int = 16,
    k: int = 10,
    users: int = 500,
) -> dict[str, Any]:
    """Throughput and p50/p99 of /recommendations (cache hits, model) and of a constant endpoint.

    Needs a champion in the configured registry. Returns a JSON-ready dict with one
    entry per scenario and the throughput ratios to the constant endpoint.
    """
    from filmrec.serving.model_holder import load_champion

    settings = settings or get_settings()
    user_ids = load_champion(settings).recommender.user_ids[:users].tolist()
    paths = [f"/recommendations/{user_ids[i % len(user_ids)]}?k={k}" for i in range(requests)]
    env = settings_env(settings) | {"CACHE_WARM_ON_SWAP": "false"}
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    results: dict[str, Any] = {"cache": "redis" if settings.redis_url else "in-process", "k": k}

    with _server(
        "filmrec.serving.bench_cache:constant_app", env=env, factory=False, ready_path="/docs"
    ) as base:
        results["constant"] = _measure(base, paths, concurrency=concurrency, warmup=len(user_ids))
    app = "filmrec.serving.app:create_app"
    with _server(app, env=env | {"CACHE_ENABLED": "true"}, factory=True, ready_path="/ready") as base:
        # The warm-up pass visits every user once, so the measured pass is all hits.
        results["cache_hit"] = _measure(base, paths, concurrency=concurrency, warmup=len(user_ids))
    with _server(app, env=env | {"CACHE_ENABLED": "false"}, factory=True, ready_path="/ready") as base:
        results["model"] = _measure(base, paths, concurrency=concurrency, warmup=len(user_ids))

    constant_rps = results["constant"]["requests_per_second"]
    results["ratios"] = {
        f"{name}_vs_constant_rps": round(results[name]["requests_per_second"] / constant_rps, 3)
        for name in ("cache_hit", "model")
    }
    return results


def main() -> int:
    import json

    print(json.dumps(bench_serving(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
