"""The cache-hit path: pre-serialised bodies, the in-process LRU, and the OpenAPI contract."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from filmrec.config import Settings
from filmrec.ingestion.contract import RatingEvent
from filmrec.serving import deps
from filmrec.serving.app import create_app
from filmrec.serving.cache import InProcessCache, NullCache, RecommendationCache
from filmrec.serving.hit_cache import HitCache
from filmrec.serving.loaded_model import LoadedModel
from filmrec.serving.online_state import InProcessOnlineState, OnlineRating, VisibilityTracker
from filmrec.serving.recommendations import RecommendationService
from filmrec.serving.schemas import RecommendationsOut
from filmrec.serving.server import WorkerConfigError, check_workers
from tests.recommender_contract import tiny_matrix
from tests.reference_als import reference_model
from tests.unit.test_api_routes import FakeMovies


class CountingCache(InProcessCache):
    """The shared cache, counting lookups: an LRU hit must not reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    def get(self, key: str) -> bytes | None:
        self.gets += 1
        return super().get(key)

    def set_many(self, values: Mapping[str, bytes], *, ttl_seconds: int) -> None:
        assert all(isinstance(value, bytes) for value in values.values())
        super().set_many(values, ttl_seconds=ttl_seconds)


def tiny_client(
    tmp_path: Path,
    cache: RecommendationCache,
    *,
    hit_cache: HitCache | None,
    online: Any = None,
    model_name: str = "tiny",
    model_version: str = "7",
) -> TestClient:
    """The app serving the tiny reference model through this service (the integration
    test of the Redis hit path uses it too)."""
    model = LoadedModel(
        recommender=reference_model(tiny_matrix()[0]), name=model_name, version=model_version, run_id=None,
        metrics={}, created_at=None,
    )  # fmt: skip
    service = RecommendationService(
        cache=cache,
        movies=FakeMovies(),
        online=online,
        visibility=VisibilityTracker(lambda _seconds: None),
        cache_ttl_seconds=60,
        hit_cache=hit_cache,
    )
    app = create_app(Settings(_env_file=None, FILMREC_VAR_DIR=tmp_path / "var"))
    app.dependency_overrides = {deps.get_model: lambda: model, deps.get_recommendations: lambda: service}
    return TestClient(app)


@pytest.mark.parametrize("lru", [True, False], ids=["lru", "shared-cache-only"])
def test_a_hit_returns_the_model_paths_bytes_but_for_source(tmp_path: Path, lru: bool) -> None:
    client = tiny_client(
        tmp_path, InProcessCache(), hit_cache=HitCache(max_entries=10, ttl_seconds=60) if lru else None
    )
    computed = client.get("/recommendations/1", params={"k": 3})
    hit = client.get("/recommendations/1", params={"k": 3})
    assert computed.status_code == hit.status_code == 200
    assert computed.headers["content-type"] == hit.headers["content-type"] == "application/json"
    assert b'"source":"model"' in computed.content
    assert hit.content == computed.content.replace(b'"source":"model"', b'"source":"cache"')
    # What is returned without re-validation is still exactly the documented body.
    assert RecommendationsOut.model_validate_json(hit.content).source == "cache"
    # And it is the JSON FastAPI's own serialisation of the model would give.
    model = RecommendationsOut.model_validate_json(computed.content)
    assert json.loads(computed.content) == model.model_dump(mode="json")


def test_an_lru_hit_skips_the_shared_cache_and_the_thread_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = CountingCache()
    client = tiny_client(tmp_path, cache, hit_cache=HitCache(max_entries=10, ttl_seconds=60))
    client.get("/recommendations/1", params={"k": 3})
    assert cache.gets == 1

    def no_thread_step(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a hit in the LRU must be answered on the event loop")

    # Everything recommend() runs on a thread goes through these two steps.
    monkeypatch.setattr(RecommendationService, "_cached_or_scored", no_thread_step)
    monkeypatch.setattr(RecommendationService, "_titled", no_thread_step)
    assert client.get("/recommendations/1", params={"k": 3}).json()["source"] == "cache"
    assert cache.gets == 1


def test_a_new_rating_gives_a_new_key_in_the_lru_too(tmp_path: Path) -> None:
    online = InProcessOnlineState(ttl_seconds=3600)
    client = tiny_client(
        tmp_path, InProcessCache(), hit_cache=HitCache(max_entries=10, ttl_seconds=60), online=online
    )
    first = client.get("/recommendations/1", params={"k": 3}).json()
    assert client.get("/recommendations/1", params={"k": 3}).json()["source"] == "cache"
    event = RatingEvent(event_id=uuid.uuid4(), user_id=1, movie_id=first["items"][0]["movie_id"], rating=5.0,
                        source="api")  # fmt: skip
    online.apply(OnlineRating.from_event(event, published_ms=event_time_ms()))
    after = client.get("/recommendations/1", params={"k": 3}).json()
    assert after["source"] == "model" and after["strategy"] == "fold-in"
    assert first["items"][0]["movie_id"] not in [item["movie_id"] for item in after["items"]]


def event_time_ms() -> int:
    import time

    return int(time.time() * 1000)


def test_the_openapi_document_still_describes_the_body(tmp_path: Path) -> None:
    client = tiny_client(tmp_path, InProcessCache(), hit_cache=None)
    operation = client.get("/openapi.json").json()["paths"]["/recommendations/{user_id}"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/RecommendationsOut"}
    assert {"422", "503"} <= set(operation["responses"])


def test_the_cache_off_means_no_lru(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, FILMREC_VAR_DIR=tmp_path / "var", CACHE_ENABLED="false")
    from filmrec.serving.app import build_state

    assert build_state(settings).recommendations.hit_cache is None


def test_the_cache_off_serialises_no_body_for_a_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from filmrec.serving import recommendations

    def no_cached_body(_payload: dict[str, object]) -> bytes:
        raise AssertionError("with CACHE_ENABLED=false nothing stores a list: no body is built for one")

    monkeypatch.setattr(recommendations, "cached_body", no_cached_body)
    client = tiny_client(tmp_path, NullCache(), hit_cache=None)
    answers = [client.get("/recommendations/1", params={"k": 3}).json() for _ in range(2)]
    assert [answer["source"] for answer in answers] == ["model", "model"]
    assert answers[0] == answers[1]


def test_several_workers_need_the_shared_online_state() -> None:
    with pytest.raises(WorkerConfigError, match="API_WORKERS=2 needs REDIS_URL"):
        check_workers(Settings(_env_file=None, API_WORKERS=2, REDIS_URL=None))
    check_workers(Settings(_env_file=None, API_WORKERS=1, REDIS_URL=None))
    check_workers(Settings(_env_file=None, API_WORKERS=2, REDIS_URL="redis://127.0.0.1:1/0"))
    check_workers(Settings(_env_file=None, API_WORKERS=2, REDIS_URL=None, ONLINE_STATE_ENABLED="false"))


def test_an_lru_hit_is_the_answer_to_the_same_filters_and_explain_only(tmp_path: Path) -> None:
    client = tiny_client(tmp_path, InProcessCache(), hit_cache=HitCache(max_entries=10, ttl_seconds=60))
    plain = client.get("/recommendations/1", params={"k": 3}).json()
    top = plain["items"][0]["movie_id"]
    excluded = client.get("/recommendations/1", params={"k": 3, "exclude": top}).json()
    assert excluded["source"] == "model" and top not in [item["movie_id"] for item in excluded["items"]]
    explained = client.get("/recommendations/1", params={"k": 3, "explain": True}).json()
    assert explained["source"] == "model"
    # Each variant is then a hit of its own.
    again = client.get("/recommendations/1", params={"k": 3, "exclude": top}).json()
    assert again["source"] == "cache" and again["items"] == excluded["items"]
    assert client.get("/recommendations/1", params={"k": 3, "explain": True}).json()["source"] == "cache"


class Clock:
    """A monotonic clock the test moves: the LRU's entries age without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RemoteCache(CountingCache):
    """Stands in for Redis: a shared cache the service must not read on the event loop."""

    name = "redis"


def no_thread_step(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("answered from memory: no thread step")


def counted(name: str, result: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, {"result": result}) or 0.0


def test_an_aged_out_lru_entry_is_refilled_from_the_in_process_cache_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    cache = CountingCache()
    client = tiny_client(tmp_path, cache, hit_cache=HitCache(max_entries=10, ttl_seconds=5, clock=clock))
    computed = client.get("/recommendations/1", params={"k": 3})
    clock.now += 6  # the LRU entry has aged out; the shared cache (60 s) still holds the list
    series = [("filmrec_hit_cache_requests_total", "miss"), ("filmrec_cache_requests_total", "hit"),
              ("filmrec_cache_requests_total", "miss")]  # fmt: skip
    before = [counted(*one) for one in series]
    monkeypatch.setattr(RecommendationService, "_cached_or_scored", no_thread_step)
    monkeypatch.setattr(RecommendationService, "_titled", no_thread_step)
    refilled = client.get("/recommendations/1", params={"k": 3})
    assert refilled.content == computed.content.replace(b'"source":"model"', b'"source":"cache"')
    # Counted as the thread's refill was: an LRU miss, then a hit of the shared cache.
    assert [counted(*one) - value for one, value in zip(series, before, strict=True)] == [1, 1, 0]
    gets = cache.gets
    assert client.get("/recommendations/1", params={"k": 3}).content == refilled.content
    assert cache.gets == gets  # the LRU holds it again


def test_a_shared_cache_elsewhere_is_read_on_a_thread_only_once(tmp_path: Path) -> None:
    clock = Clock()
    cache = RemoteCache()
    client = tiny_client(tmp_path, cache, hit_cache=HitCache(max_entries=10, ttl_seconds=5, clock=clock))
    client.get("/recommendations/1", params={"k": 3})
    assert cache.gets == 1  # the miss: looked up once, on the thread, then computed
    clock.now += 6
    assert client.get("/recommendations/1", params={"k": 3}).json()["source"] == "cache"
    assert cache.gets == 2


@pytest.mark.parametrize("explain", [False, True])
@pytest.mark.parametrize("titles", ["all", "some", "database down"])
def test_a_computed_body_is_the_documented_schema_exactly(explain: bool, titles: str) -> None:
    # The body is built from plain values (recommendations_payload), not the pydantic
    # model: validated by the documented schema, it dumps to the very same JSON.
    import numpy as np
    import orjson

    from filmrec.metadata.store import MovieInfo
    from filmrec.model.recommender import Explanation, Recommendations
    from filmrec.serving.loaded_model import LoadedModel
    from filmrec.serving.recommendations import cached_body, recommendations_payload, response_body

    recs = Recommendations(
        np.array([11, 12, 13], dtype=np.int64),
        np.array([0.91234567, 0.5, -0.25], dtype=np.float32),
        "fold-in",
    )
    info = None if titles == "database down" else {
        11: MovieInfo(11, "Heat", 1995, ["Action", "Crime"]),
        12: MovieInfo(12, "No year", None, []),
        21: MovieInfo(21, "Alien", 1979, ["Horror"]),
    }  # fmt: skip
    if titles == "some" and info is not None:
        info.pop(12)
    reasons = {11: Explanation(21, 0.5), 13: Explanation(22, 0.125)} if explain else None
    model = LoadedModel(recommender=None, name="m", version="3", run_id=None, metrics={}, created_at=None)  # type: ignore[arg-type]
    payload = recommendations_payload(model, recs, info, user_id=5, k=3, reasons=reasons)
    for body, source in ((response_body(payload), "model"), (cached_body(payload), "cache")):
        documented = RecommendationsOut.model_validate_json(body)
        assert documented.source == source
        assert orjson.dumps(documented.model_dump(mode="json")) == body


def test_pre_serialised_items_are_the_items_orjson_writes() -> None:
    # scored_items_json builds a list's bytes from each movie's fields serialised once;
    # they must be what orjson writes for the same items, scores in every form included.
    import orjson

    from filmrec.metadata.store import MovieInfo
    from filmrec.model.recommender import Explanation
    from filmrec.serving.recommendations import scored_items_json

    def items_as_values(held, movie_ids, scores, why):  # type: ignore[no-untyped-def]
        # The reference: each item built as plain values and serialised whole.
        held, why = held or {}, why or {}
        items = []
        for movie_id, score in zip(movie_ids, scores, strict=True):
            movie = held.get(movie_id)
            item = (
                movie.shown_fields
                if movie
                else {"movie_id": movie_id, "title": None, "year": None, "genres": []}
            ) | {"score": round(score, 6)}
            if movie_id in why:  # absent, not null, without a reason
                because = held.get(why[movie_id].because_movie_id)
                item["because"] = {
                    "movie_id": why[movie_id].because_movie_id,
                    "title": because.title if because else None,
                    "weight": round(why[movie_id].weight, 6),
                }
            items.append(item)
        return items

    info = {
        1: MovieInfo(1, 'Quote "and" back\\slash, comma', 1995, ["Action", "Crime"]),
        2: MovieInfo(2, "Amélie", None, []),
        9: MovieInfo(9, "Because", 1979, ["Horror"]),
    }
    movie_ids = [1, 2, 3, 4, 5, 6]
    scores = [0.91234567, -0.25, 1.2e-07, 329.0, 1e-05, 0.0]
    reasons = {2: Explanation(9, 0.5), 4: Explanation(8, -1.0 / 3)}
    for held, why in ((info, reasons), (info, None), (None, None), ({}, reasons)):
        expected = orjson.dumps(items_as_values(held, movie_ids, scores, why))
        assert orjson.dumps(scored_items_json(held, movie_ids, scores, why)) == expected
    assert orjson.dumps(scored_items_json(info, [], [])) == b"[]"
