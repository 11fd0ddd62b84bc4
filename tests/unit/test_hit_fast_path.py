"""The hit fast path (serving/hit_fast_path.py): the routed answer's bytes, or no answer at all.

Each test serves one app two ways: as it runs in production (the fast path on), and
with the route's own dependencies as overrides, which the fast path leaves to
FastAPI: the routed reference, with the same model, service and caches.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from prometheus_client import REGISTRY
from starlette.routing import Match

from filmrec.config import Settings
from filmrec.ingestion.contract import RatingEvent
from filmrec.serving import deps
from filmrec.serving.app import build_state, create_app
from filmrec.serving.cache import InProcessCache, NullCache
from filmrec.serving.hit_cache import HitCache
from filmrec.serving.hit_fast_path import HitFastPath
from filmrec.serving.loaded_model import LoadedModel
from filmrec.serving.online_state import EMPTY_STATE, InProcessOnlineState, OnlineRating, VisibilityTracker
from filmrec.serving.recommendations import NO_FILTERS, RecommendationFilters, RecommendationService
from tests.recommender_contract import tiny_matrix
from tests.reference_als import reference_model
from tests.unit.test_api_routes import FakeMovies

TEMPLATE = "/recommendations/{user_id}"


class CountingService(RecommendationService):
    """The service, counting the requests that reached the route (recommend())."""

    routed = 0

    async def recommend(
        self,
        model: LoadedModel,
        *,
        user_id: int,
        k: int,
        filters: RecommendationFilters = NO_FILTERS,
        explain: bool = False,
    ) -> bytes:
        self.routed += 1
        return await super().recommend(model, user_id=user_id, k=k, filters=filters, explain=explain)


class RecordingVisibility(VisibilityTracker):
    """The visibility tracker, recording whose answers it was told about."""

    def __init__(self, observe: Callable[[float], None]) -> None:
        super().__init__(observe)
        self.served_users: list[int] = []

    def served(self, user_id: int) -> None:
        self.served_users.append(user_id)
        super().served(user_id)


@dataclass
class Served:
    app: FastAPI
    client: TestClient
    service: CountingService
    online: InProcessOnlineState
    model: LoadedModel
    served_users: list[int]

    def routed(self, url: str, **kwargs: object) -> Response:
        """The same request through FastAPI's routing: the fast path leaves overridden apps alone."""
        self.app.dependency_overrides = {
            deps.get_model: lambda: self.model,
            deps.get_recommendations: lambda: self.service,
        }
        try:
            return self.client.get(url, follow_redirects=False, **kwargs)
        finally:
            self.app.dependency_overrides = {}

    def get(self, url: str, **kwargs: object) -> Response:
        """The request as production serves it: the fast path on."""
        return self.client.get(url, follow_redirects=False, **kwargs)


def serve(tmp_path: Path, *, with_model: bool = True, **settings: object) -> Served:
    """An app whose state is what the lifespan builds, with the tiny model and titles."""
    app_settings = Settings(_env_file=None, FILMREC_VAR_DIR=tmp_path / "var", **settings)  # type: ignore[arg-type]
    app = create_app(app_settings)
    state = build_state(app_settings)
    model = LoadedModel(
        recommender=reference_model(tiny_matrix()[0]), name="tiny", version="7", run_id=None, metrics={},
        created_at=None,
    )  # fmt: skip
    if with_model:
        state.holder.swap(model)
    online = InProcessOnlineState(ttl_seconds=3600)
    visibility = RecordingVisibility(lambda _seconds: None)
    service = CountingService(
        cache=InProcessCache(),
        movies=FakeMovies(),
        online=online,
        visibility=visibility,
        cache_ttl_seconds=60,
        hit_cache=HitCache(max_entries=100, ttl_seconds=60),
    )
    state.recommendations = service
    app.state.filmrec = state
    return Served(app, TestClient(app), service, online, model, visibility.served_users)


@pytest.fixture
def served(tmp_path: Path) -> Served:
    return serve(tmp_path)


def sample(name: str, result: str | None = None, **labels: str) -> float:
    if result is not None:
        labels["result"] = result
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("query", ["", "?k=10", "?k=3", "?k=1", "?k=100"])
def test_a_fast_hit_is_the_routed_hits_bytes_and_headers(served: Served, query: str) -> None:
    url = f"/recommendations/1{query}"
    computed = served.get(url)  # a miss: computed on the loop, before the route; fills the LRU
    assert computed.status_code == 200 and computed.json()["source"] == "model"
    assert served.service.routed == 0
    fast = served.get(url)
    assert served.service.routed == 0  # answered before the route
    routed = served.routed(url)
    assert served.service.routed == 1
    assert fast.status_code == routed.status_code == 200
    assert fast.content == routed.content
    assert fast.json()["source"] == "cache"
    assert fast.headers.multi_items() == routed.headers.multi_items()


def test_no_query_and_the_default_k_share_one_key(served: Served) -> None:
    served.get("/recommendations/2")
    assert served.get("/recommendations/2?k=10").json()["source"] == "cache"
    assert served.service.routed == 0


@pytest.mark.parametrize(
    "url",
    [
        "/recommendations/1?k=0",  # out of bounds: 422
        "/recommendations/1?k=101",
        "/recommendations/1?k=1000",
        "/recommendations/1?k=abc",
        "/recommendations/1?k=",
        "/recommendations/1?k=03",  # not canonical: FastAPI reads it
        "/recommendations/1?k=+3",
        "/recommendations/1?k=%33",
        "/recommendations/1?k=3&k=3",  # repeated
        "/recommendations/1?k=3&",
        "/recommendations/1?K=3",
        "/recommendations/1?k=3&genre=Drama",  # other parameters
        "/recommendations/1?k=3&exclude=201",
        "/recommendations/1?explain=true",
        "/recommendations/1?k=3&explain=false",
        "/recommendations/1?year_min=2010&year_max=2000",  # the route's own 422
        "/recommendations/0",
        "/recommendations/01",
        "/recommendations/-1",
        "/recommendations/2147483648",  # 2**31: out of bounds
        "/recommendations/99999999999",
        "/recommendations/1.0",
        "/recommendations/1/",  # the router's redirect
        "/recommendations/",
    ],
)
def test_every_other_request_is_answered_by_fastapi_as_before(served: Served, url: str) -> None:
    # The plain lists of user 1 are in the LRU: a fast path that misread the request
    # would answer with one of them.
    for k in (3, 10):
        served.get(f"/recommendations/1?k={k}")
    served.routed(url)  # the request's own list, if any, is cached now: both below are alike
    before = served.service.routed
    fast = served.get(url)
    fast_routed = served.service.routed - before
    routed = served.routed(url)
    assert (fast.status_code, fast.content) == (routed.status_code, routed.content)
    assert fast.headers.multi_items() == routed.headers.multi_items()
    assert fast_routed == served.service.routed - before - fast_routed  # the route ran as often
    if fast.status_code == 200:
        assert fast_routed == 1


@pytest.mark.parametrize(
    ("url", "user_id", "k"),
    [
        ("/recommendations/1?k=0", 1, 0),
        ("/recommendations/1?k=101", 1, 101),
        ("/recommendations/0", 0, 10),
        ("/recommendations/2147483648", 2**31, 10),
    ],
)
def test_out_of_bounds_is_never_served_even_from_a_planted_entry(
    served: Served, url: str, user_id: int, k: int
) -> None:
    # No routed request can fill these keys; planted, they show the bounds are checked.
    key = served.service._key(
        served.model, EMPTY_STATE.version, user_id=user_id, k=k, filters=NO_FILTERS, explain=False
    )
    assert served.service.hit_cache is not None
    served.service.hit_cache.put(key, b'{"planted": true}')
    assert served.get(url).status_code == 422


def test_k_zero_is_the_routes_422(served: Served) -> None:
    answer = served.get("/recommendations/1?k=0")
    assert answer.status_code == 422
    assert answer.json()["detail"] == "k: Input should be greater than or equal to 1"


def test_no_model_loaded_is_the_routes_503(tmp_path: Path) -> None:
    served = serve(tmp_path, with_model=False)
    answer = served.get("/recommendations/1")
    assert answer.status_code == 503
    assert answer.json()["detail"].startswith("no model is loaded yet")
    assert served.service.routed == 0


def test_reads_with_keys_never_take_the_fast_path(tmp_path: Path) -> None:
    served = serve(tmp_path, FILMREC_API_KEYS_FOR_READS=True)
    assert not any(middleware.cls is HitFastPath for middleware in served.app.user_middleware)
    key = {"X-API-Key": "demo"}
    assert served.get("/recommendations/1", headers=key).json()["source"] == "model"
    refused = served.get("/recommendations/1")  # the list is in the LRU: still no key, no list
    assert refused.status_code == 401
    assert refused.json()["detail"].startswith("an API key is required")
    assert served.get("/recommendations/1", headers=key).json()["source"] == "cache"
    assert served.service.routed == 2  # both keyed answers went through the route


def _hit_counters(labels: dict[str, str]) -> dict[str, float]:
    return {
        "requests": sample("filmrec_http_requests_total", **labels),
        "latency": sample("filmrec_http_request_duration_seconds_count", route=TEMPLATE, method="GET"),
        "served": sample("filmrec_recommendations_served_total", strategy="cache"),
        "cache_hits": sample("filmrec_cache_requests_total", result="hit"),
        "lru_hits": sample("filmrec_hit_cache_requests_total", result="hit"),
        "lru_misses": sample("filmrec_hit_cache_requests_total", result="miss"),
    }


def test_a_fast_hit_counts_as_a_routed_hit(served: Served) -> None:
    labels = {"route": TEMPLATE, "method": "GET", "status": "200"}
    served.get("/recommendations/3")  # the miss: computed and counted on the fast path
    assert served.service.routed == 0
    before = _hit_counters(labels)
    served.served_users.clear()
    served.get("/recommendations/3")
    assert served.service.routed == 0
    after = _hit_counters(labels)
    assert {name: after[name] - before[name] for name in before} == {
        "requests": 1, "latency": 1, "served": 1, "cache_hits": 1, "lru_hits": 1, "lru_misses": 0,
    }  # fmt: skip
    assert served.served_users == [3]  # the visibility tracker sees the hit, as on the route


def test_a_miss_of_the_fast_path_is_counted_once(served: Served) -> None:
    misses = sample("filmrec_hit_cache_requests_total", result="miss")
    served.get("/recommendations/4")
    assert sample("filmrec_hit_cache_requests_total", result="miss") - misses == 1


def test_an_lru_entry_gone_is_answered_from_the_in_process_cache_like_the_route(served: Served) -> None:
    served.get("/recommendations/6")
    series = [("filmrec_hit_cache_requests_total", "miss"), ("filmrec_cache_requests_total", "hit")]
    answers, counts = [], []
    for answer in (served.get, served.routed):
        assert served.service.hit_cache is not None
        served.service.hit_cache.clear()  # as when its entries age out (HIT_CACHE_TTL_SECONDS)
        before = [sample(*one) for one in series]
        answers.append(answer("/recommendations/6"))
        counts.append([sample(*one) - value for one, value in zip(series, before, strict=True)])
    fast, routed = answers
    assert served.service.routed == 1  # the routed reference only
    assert fast.content == routed.content and fast.json()["source"] == "cache"
    assert fast.headers.multi_items() == routed.headers.multi_items()
    assert counts == [[1, 1], [1, 1]]


def test_a_new_rating_gives_a_new_key_on_the_fast_path_too(served: Served) -> None:
    first = served.get("/recommendations/1?k=3").json()
    assert served.get("/recommendations/1?k=3").json()["source"] == "cache"
    top = first["items"][0]["movie_id"]
    event = RatingEvent(event_id=uuid.uuid4(), user_id=1, movie_id=top, rating=5.0, source="api")
    served.online.apply(OnlineRating.from_event(event, published_ms=int(time.time() * 1000)))
    after = served.get("/recommendations/1?k=3").json()
    assert after["source"] == "model" and after["strategy"] == "fold-in"  # a new key: computed
    assert top not in [item["movie_id"] for item in after["items"]]
    assert served.get("/recommendations/1?k=3").json() == after | {"source": "cache"}
    assert served.service.routed == 0  # all of it on the fast path


def test_the_fast_paths_route_is_the_one_the_router_matches(served: Served) -> None:
    served.get("/recommendations/5")
    served.get("/recommendations/5")  # a fast hit: the route is looked up
    scope = {"type": "http", "method": "GET", "path": "/recommendations/5", "root_path": ""}
    matched = next(route for route in served.app.router.routes if route.matches(scope)[0] is Match.FULL)
    fast_path = served.app.middleware_stack
    while not isinstance(fast_path, HitFastPath):
        fast_path = fast_path.app  # type: ignore[union-attr]
    assert fast_path._route is matched and getattr(matched, "path", None) == TEMPLATE


def _forget_lists(served: Served) -> None:
    assert served.service.hit_cache is not None and isinstance(served.service.cache, InProcessCache)
    served.service.hit_cache.clear()
    served.service.cache.clear()


@pytest.mark.parametrize("query", ["", "?k=1", "?k=100"])
def test_a_list_computed_on_the_fast_path_is_the_routed_computation(served: Served, query: str) -> None:
    url = f"/recommendations/2{query}"
    fast = served.get(url)
    _forget_lists(served)
    routed = served.routed(url)
    assert served.service.routed == 1
    assert fast.json()["source"] == routed.json()["source"] == "model"
    assert fast.content == routed.content
    assert fast.headers.multi_items() == routed.headers.multi_items()


def test_without_the_listing_a_miss_waits_for_titles_off_the_loop(served: Served) -> None:
    movies = served.service.movies
    assert isinstance(movies, FakeMovies)
    movies.held = False  # titles only from the database: I/O, so not on the loop
    assert not served.service.computes_on_loop()
    first = served.get("/recommendations/3")
    assert first.json()["source"] == "model" and served.service.routed == 1
    assert first.json()["items"][0]["title"] is not None
    assert served.get("/recommendations/3").json()["source"] == "cache"
    assert served.service.routed == 1  # the hit is still the fast path's


def test_with_the_cache_off_every_list_is_computed_on_the_fast_path(tmp_path: Path) -> None:
    served = serve(tmp_path)
    served.service = CountingService(
        cache=NullCache(), movies=FakeMovies(), online=served.online,
        visibility=VisibilityTracker(lambda _seconds: None), cache_ttl_seconds=60, hit_cache=None,
    )  # fmt: skip
    state = served.app.state.filmrec
    state.recommendations = served.service
    answers = [served.get("/recommendations/4?k=5").json() for _ in range(2)]
    assert [answer["source"] for answer in answers] == ["model", "model"]
    assert answers[0] == answers[1]
    assert served.service.routed == 0
    assert served.routed("/recommendations/4?k=5").json() == answers[0]
