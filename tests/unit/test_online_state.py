"""The online state's rules, on the in-process store (Redis: tests/integration/test_realtime_loop.py)."""

from __future__ import annotations

import time
import uuid

from filmrec.serving.cache import recommendation_key
from filmrec.serving.online_state import InProcessOnlineState, OnlineRating, VisibilityTracker


def rating(user: int, movie: int, stars: float, *, rated_at_ms: int = 1_000, event_id: str | None = None,
           published_ms: int | None = None) -> OnlineRating:  # fmt: skip
    return OnlineRating(
        user_id=user,
        movie_id=movie,
        rating=stars,
        rated_at_ms=rated_at_ms,
        event_id=event_id or str(uuid.uuid4()),
        published_ms=published_ms if published_ms is not None else int(time.time() * 1000),
    )


def test_a_redelivered_event_changes_nothing() -> None:
    store = InProcessOnlineState(ttl_seconds=3600)
    event = rating(1, 10, 4.0)
    version = store.apply(event)
    assert version > 0
    assert store.apply(event) == 0
    assert store.get(1).version == version
    assert store.get(1).as_online() == {10: 4.0}


def test_the_later_rating_of_a_movie_wins_whatever_the_arrival_order() -> None:
    store = InProcessOnlineState(ttl_seconds=3600)
    store.apply(rating(1, 10, 2.0, rated_at_ms=2_000))
    assert store.apply(rating(1, 10, 5.0, rated_at_ms=1_000)) == 0  # older: ignored
    assert store.get(1).as_online() == {10: 2.0}
    assert store.apply(rating(1, 10, 3.5, rated_at_ms=3_000)) > 0
    assert store.get(1).as_online() == {10: 3.5}


def test_versions_only_grow_so_cache_keys_never_repeat() -> None:
    store = InProcessOnlineState(ttl_seconds=3600)
    first = store.apply(rating(1, 10, 4.0))
    store.prune(lambda r: True)  # the model now has everything: the user's state is empty
    assert store.get(1).version == 0
    second = store.apply(rating(1, 11, 4.0))
    assert second > first
    keys = {
        recommendation_key(model_version="3", user_id=1, k=10, state_version=v) for v in (0, first, second)
    }
    assert len(keys) == 3


def test_prune_drops_only_what_the_model_contains() -> None:
    store = InProcessOnlineState(ttl_seconds=3600)
    store.apply(rating(1, 10, 4.0))
    store.apply(rating(1, 11, 3.0))
    store.apply(rating(2, 10, 5.0))
    assert store.prune(lambda r: r.movie_id == 10) == 2
    assert store.get(1).as_online() == {11: 3.0}
    assert store.get(2).version == 0
    assert store.size() == (1, 1)


def test_a_user_expires_ttl_after_their_latest_rating() -> None:
    store = InProcessOnlineState(ttl_seconds=60)
    old = int(time.time() * 1000) - 120_000
    store.apply(rating(1, 10, 4.0, published_ms=old))
    assert store.get(1).version == 0
    store.apply(rating(2, 10, 4.0, published_ms=old))
    store.apply(rating(2, 11, 4.0))  # a fresh rating keeps the older one of the same user
    assert store.get(2).as_online() == {10: 4.0, 11: 4.0}


def test_visibility_is_observed_once_when_the_user_is_next_served() -> None:
    observed: list[float] = []
    tracker = VisibilityTracker(observed.append)
    published = int(time.time() * 1000) - 250
    tracker.applied(7, published)
    tracker.served(8)
    assert observed == []
    tracker.served(7)
    tracker.served(7)
    assert len(observed) == 1 and 0.2 <= observed[0] < 5


def test_a_new_model_prunes_exactly_the_ratings_it_was_trained_on() -> None:
    import pandas as pd

    from filmrec.serving.online_state import prune_contained
    from filmrec.training.factor_models import popularity_model

    trained_at = pd.Timestamp("2024-01-01", tz="UTC")
    trained_ms = int(trained_at.timestamp() * 1000)
    train = pd.DataFrame(
        {
            "user_id": [1, 1, 2],
            "movie_id": [10, 11, 10],
            "rating": [4.0, 3.0, 5.0],
            "rated_at": [trained_at] * 3,
        }
    )
    model = popularity_model(train)
    store = InProcessOnlineState(ttl_seconds=3600)
    store.apply(rating(1, 10, 4.0, rated_at_ms=trained_ms))  # the very rating the model has
    store.apply(rating(1, 11, 5.0, rated_at_ms=trained_ms + 60_000))  # re-rated after training
    store.apply(rating(2, 12, 2.0, rated_at_ms=trained_ms - 60_000))  # a movie the model lacks
    assert prune_contained(store, model) == 1
    assert store.get(1).as_online() == {11: 5.0}
    assert store.get(2).as_online() == {12: 2.0}
