"""The online state and the rate-limit windows in a Redis of their own (REDIS_STATE_URL).

Two databases of the real Redis stand for the two servers: the cache on REDIS_URL,
the state and the windows on REDIS_STATE_URL, so the cache's eviction (or a flush of
it) never touches them. A password in the URL is used to log in.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from filmrec.serving.cache import build_cache
from filmrec.serving.online_state import OnlineRating, build_online_state
from filmrec.serving.rate_limit import KeyRateLimiter
from tests.integration.service_helpers import make_settings


def with_database(url: str, database: int, *, credentials: str = "") -> str:
    parts = urlsplit(url)
    netloc = f"{credentials}@{parts.hostname}:{parts.port or 6379}" if credentials else parts.netloc
    return urlunsplit((parts.scheme, netloc, f"/{database}", "", ""))


def other_database(url: str) -> int:
    # The state's database: any other than the cache's (the shared Redis has 16).
    current = int(urlsplit(url).path.strip("/") or 0)
    return 15 if current != 15 else 14


def rating(user: int, movie: int) -> OnlineRating:
    now = int(time.time() * 1000)
    return OnlineRating(user, movie, 4.0, rated_at_ms=now, event_id=str(uuid.uuid4()), published_ms=now)


def keys(client: redis.Redis, pattern: str) -> list[bytes]:
    return list(client.scan_iter(match=pattern, count=1000))


def test_state_and_limits_live_apart_from_the_cache(redis_url: str, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:12]
    state_url = with_database(redis_url, other_database(redis_url))
    settings = make_settings(
        tmp_path,
        REDIS_URL=redis_url,
        REDIS_STATE_URL=state_url,
        KAFKA_RATINGS_TOPIC=f"it-{run}",  # the state's namespace: this run's keys only
        FILMREC_RATE_LIMIT="3/minute",
    )
    cache_side, state_side = redis.Redis.from_url(redis_url), redis.Redis.from_url(state_url)
    cache, online = build_cache(settings), build_online_state(settings)
    limiter = KeyRateLimiter.from_settings(settings)
    try:
        assert online.name == "redis" and limiter.shared
        online.apply(rating(7, 42))
        assert limiter.check(f"it-{run}").allowed
        cache.set(f"it-{run}:list", b"[]", ttl_seconds=60)

        assert keys(state_side, f"*it-{run}*") and keys(state_side, f"*filmrec-limits*it-{run}*")
        assert keys(cache_side, f"*it-{run}*") == [f"it-{run}:list".encode()]
        assert not state_side.exists(f"it-{run}:list")

        # Whatever the cache loses (evicted, flushed), the state and the windows keep.
        cache_side.delete(*keys(cache_side, f"*it-{run}*"))
        assert set(online.get(7).ratings) == {42}
        assert [limiter.check(f"it-{run}").allowed for _ in range(3)] == [True, True, False]
    finally:
        for side in (cache_side, state_side):
            found = keys(side, f"*it-{run}*")
            if found:
                side.delete(*found)
            side.close()
        online.close()
        cache.close()  # type: ignore[attr-defined]


@pytest.fixture
def password_user(redis_url: str) -> Iterator[tuple[str, str]]:
    """A Redis user of this test only, with a password (the shared Redis's default user has none)."""
    admin = redis.Redis.from_url(redis_url)
    name, password = f"filmrec-it-{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    admin.acl_setuser(
        name, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"], commands=["+@all"]
    )
    try:
        yield name, password
    finally:
        admin.acl_deluser(name)
        admin.close()


def test_a_state_redis_with_a_password(
    redis_url: str, password_user: tuple[str, str], tmp_path: Path
) -> None:
    name, password = password_user
    run = uuid.uuid4().hex[:12]
    state_url = with_database(redis_url, other_database(redis_url), credentials=f"{name}:{password}")
    settings = make_settings(
        tmp_path, REDIS_STATE_URL=state_url, KAFKA_RATINGS_TOPIC=f"it-{run}", FILMREC_RATE_LIMIT="3/minute"
    )
    online, limiter = build_online_state(settings), KeyRateLimiter.from_settings(settings)
    try:
        online.ping()
        online.apply(rating(8, 43))
        assert set(online.get(8).ratings) == {43}
        assert limiter.check(f"it-{run}").allowed and limiter.shared
        # A wrong password is refused, not ignored.
        wrong = build_online_state(
            make_settings(
                tmp_path,
                REDIS_STATE_URL=with_database(redis_url, 0, credentials=f"{name}:not-{password}"),
            )
        )
        with pytest.raises(redis.AuthenticationError):
            wrong.ping()
        wrong.close()
    finally:
        side = redis.Redis.from_url(with_database(redis_url, other_database(redis_url)))
        found = keys(side, f"*it-{run}*")
        if found:
            side.delete(*found)
        side.close()
        online.close()
