"""Running the API: API_WORKERS uvicorn worker processes on API_HOST:API_PORT.

One launcher for `filmrec serve`, the image (api/main.py) and the native stack, so
they agree on the server settings. Each worker is a whole API process: it builds its
own app from the environment, loads and polls the champion itself, and runs its own
ratings-topic consumer. That is only coherent when the processes share their state:

* online state: in-process state lives in one worker; a POST /ratings answered by
  worker A would be invisible to worker B until (with Kafka) B's own consumer reads
  it, and without Kafka never. With REDIS_URL the state is in Redis, the workers'
  consumers form one consumer group and split the partitions, and every worker sees
  every rating. So more than one worker requires REDIS_URL (or the online state off);
* rate limits (writes per key, reads per client): per process without Redis, N times
  the limit with N workers; shared in Redis (serving/rate_limit.py);
* client addresses: behind a proxy, the address a read is counted against is the one
  the proxy forwards (X-Forwarded-For), believed only from FILMREC_FORWARDED_ALLOW_IPS;
* model swaps: each worker polls the alias (MODEL_POLL_SECONDS); for up to one poll
  interval workers may serve different versions, each list under its own version's
  cache key, so no answer mixes the two.
"""

from __future__ import annotations

from typing import TypedDict

from filmrec.config import Settings, get_settings
from filmrec.serving.api_keys import ApiKeyring, refuse_exposed_demo_key

# Each worker imports this factory itself (uvicorn needs an import string for workers).
APP_FACTORY = "filmrec.serving.app:create_served_app"


class WorkerConfigError(SystemExit):
    """A worker count the rest of the settings cannot serve coherently: refused at start."""


def check_workers(settings: Settings) -> None:
    if settings.api_workers > 1 and settings.online_state_enabled and not settings.effective_redis_state_url:
        raise WorkerConfigError(
            f"API_WORKERS={settings.api_workers} needs REDIS_URL (or REDIS_STATE_URL): without "
            "Redis each worker process keeps its own online state (ratings the model has not "
            "seen), so a rating answered by one worker would not change the lists the others "
            "serve. Set REDIS_URL, or ONLINE_STATE_ENABLED=false, or API_WORKERS=1."
        )


def serve(settings: Settings | None = None, *, port: int | None = None) -> None:
    import uvicorn

    from filmrec.serving.jvm_guard import refuse_jvm_side

    settings = settings or get_settings()
    check_workers(settings)
    # Before any worker starts: one clear message, not one failed worker after another.
    refuse_exposed_demo_key(settings, ApiKeyring.from_settings(settings))
    refuse_jvm_side()  # a serving process: no JVM side (see serving/jvm_guard.py)
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=settings.api_host,
        port=port or settings.api_port,
        workers=settings.api_workers,
        **proxy_options(settings),
    )


class ProxyOptions(TypedDict):
    proxy_headers: bool
    forwarded_allow_ips: str


def proxy_options(settings: Settings) -> ProxyOptions:
    """X-Forwarded-* from the trusted proxy only (nginx in Compose): the read rate limit
    counts per address, so a header believed from anyone would give each request a
    budget of its own. Passed explicitly: uvicorn would otherwise read its own
    FORWARDED_ALLOW_IPS variable, and Settings is the one reader of the environment."""
    return {"proxy_headers": True, "forwarded_allow_ips": settings.forwarded_allow_ips}


def main() -> int:
    serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
