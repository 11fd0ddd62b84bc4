"""REDIS_STATE_URL: the online state and the rate-limit windows apart from the cache.

No Redis is contacted here: clients connect lazily, so these check where each piece
points and that a password in the URL reaches the client.
"""

from __future__ import annotations

from typing import Any

import pytest

from filmrec.config import Settings
from filmrec.serving.cache import RedisCache, build_cache
from filmrec.serving.online_state import InProcessOnlineState, RedisOnlineState, build_online_state
from filmrec.serving.rate_limit import KeyRateLimiter
from filmrec.serving.server import WorkerConfigError, check_workers

CACHE = "redis://cache.internal:6379/0"
STATE = "redis://:s3cret@state.internal:6380/2"


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **{"REDIS_URL": None, "REDIS_STATE_URL": None, **values})


def connection(client: Any) -> dict[str, Any]:
    return dict(client.connection_pool.connection_kwargs)


def test_the_state_url_defaults_to_redis_url() -> None:
    assert settings().effective_redis_state_url is None
    assert settings(REDIS_URL=CACHE).effective_redis_state_url == CACHE
    assert settings(REDIS_URL=CACHE, REDIS_STATE_URL=STATE).effective_redis_state_url == STATE
    assert settings(REDIS_STATE_URL=STATE).effective_redis_state_url == STATE


def test_state_and_limits_go_to_the_state_url_and_the_cache_stays_on_redis_url() -> None:
    chosen = settings(REDIS_URL=CACHE, REDIS_STATE_URL=STATE)
    cache = build_cache(chosen)
    online = build_online_state(chosen)
    limiter = KeyRateLimiter.from_settings(chosen)
    try:
        assert isinstance(cache, RedisCache) and connection(cache.client)["host"] == "cache.internal"
        assert isinstance(online, RedisOnlineState)
        state = connection(online.client)
        assert (state["host"], state["port"], state["db"]) == ("state.internal", 6380, 2)
        assert limiter.shared
        windows = connection(limiter.storage.storage)  # type: ignore[attr-defined]
        assert (windows["host"], windows["db"]) == ("state.internal", 2)
    finally:
        online.close()
        cache.close()


@pytest.mark.parametrize("url", [STATE, "redis://filmrec:s3cret@state.internal:6380/2"])
def test_a_password_in_the_url_reaches_both_clients(url: str) -> None:
    chosen = settings(REDIS_STATE_URL=url)
    online = build_online_state(chosen)
    limiter = KeyRateLimiter.from_settings(chosen)
    try:
        assert isinstance(online, RedisOnlineState)
        assert connection(online.client)["password"] == "s3cret"
        assert connection(limiter.storage.storage)["password"] == "s3cret"  # type: ignore[attr-defined]
    finally:
        online.close()


def test_the_state_url_alone_keeps_the_cache_in_process() -> None:
    chosen = settings(REDIS_STATE_URL=STATE)
    online = build_online_state(chosen)
    try:
        assert not isinstance(build_cache(chosen), RedisCache)
        assert isinstance(online, RedisOnlineState)
    finally:
        online.close()
    assert isinstance(build_online_state(settings()), InProcessOnlineState)


def test_workers_share_the_state_through_either_url() -> None:
    check_workers(settings(API_WORKERS=2, REDIS_STATE_URL=STATE))
    check_workers(settings(API_WORKERS=2, REDIS_URL=CACHE))
    with pytest.raises(WorkerConfigError, match="REDIS_STATE_URL"):
        check_workers(settings(API_WORKERS=2))
