"""The input rules under every default schemathesis check, without a service.

The operations whose rules the document states (title search, recommendation filters,
a rating's body) run in process on fakes: a request the document calls valid must be
answered (positive data acceptance), one it calls invalid refused (negative data
rejection), with the auth, status, schema and header checks. CI's run against the
real API (tests/integration/test_api_contract_fuzz.py) covers every operation.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from filmrec.config import Settings
from filmrec.metadata.store import MovieStore
from filmrec.serving import deps
from filmrec.serving.api_keys import hash_key, new_key
from filmrec.serving.app import create_app
from filmrec.serving.cache import InProcessCache
from filmrec.serving.hit_cache import HitCache
from filmrec.serving.movie_lookup import MovieLookup
from filmrec.serving.online_state import InProcessOnlineState, VisibilityTracker
from filmrec.serving.recommendations import RecommendationService
from tests.api_contract_checks import RATINGS_OPERATION, register, run
from tests.fake_intake import AcceptAll
from tests.reference_als import tiny_served_model
from tests.unit.test_movie_search import CATALOGUE

OPERATIONS = ("/movies", "/recommendations/{user_id}", "/ratings")


class WithoutLifespan:
    """The app without its lifespan (MLflow, the database, Kafka): the fakes stand in."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})


@pytest.fixture
def app_and_key(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    key = new_key()
    app = create_app(
        Settings(
            _env_file=None,
            FILMREC_VAR_DIR=tmp_path / "var",
            FILMREC_API_KEYS=f"fuzzer:{hash_key(key)}",
            FILMREC_RATE_LIMIT="100000/minute",
            FILMREC_READ_RATE_LIMIT="100000/minute",  # on (its 429 documented), never reached
        )
    )
    store = MovieStore.from_url(f"sqlite:///{tmp_path / 'movies.db'}")
    store.create_schema()
    store.upsert(CATALOGUE)
    movies = MovieLookup(store)
    model = tiny_served_model()
    online = InProcessOnlineState(ttl_seconds=3600)
    service = RecommendationService(
        cache=InProcessCache(),
        movies=movies,
        online=online,
        visibility=VisibilityTracker(lambda _seconds: None),
        cache_ttl_seconds=60,
        hit_cache=HitCache(max_entries=100, ttl_seconds=60),
    )
    intake = AcceptAll()
    app.dependency_overrides = {
        deps.get_model: lambda: model,
        deps.get_recommendations: lambda: service,
        deps.get_movies: lambda: movies,
        deps.get_rating_intake: lambda: intake,
    }
    yield app, key
    store.engine.dispose()


def test_the_stated_rules_pass_every_default_check(app_and_key: tuple[Any, str]) -> None:
    import schemathesis

    app, key = app_and_key
    document = app.openapi()
    document["paths"] = {path: document["paths"][path] for path in OPERATIONS}
    register()
    config = schemathesis.Config.from_dict(
        {
            "seed": 25,
            "headers": {"X-API-Key": key},
            "generation": {"max-examples": 25, "database": "none"},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
            "operations": [RATINGS_OPERATION],
        }
    )
    schema = schemathesis.openapi.from_dict(document, config=config)
    schema.app = WithoutLifespan(app)
    schema.location = "/openapi.json"

    found = run(schema)
    assert not found.errors, found.errors
    assert not found.failures, "\n".join(sorted(set(found.failures)))
    assert {"GET /movies", "GET /recommendations/{user_id}", "POST /ratings"} <= found.tested
    assert {200, 202, 422} <= found.statuses
