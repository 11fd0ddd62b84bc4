"""The API's routes without a trained model or a service: dependency_overrides and the tiny matrix.

The lifespan never runs here (no `with TestClient`): each route gets exactly the
narrow dependency it declares, built from the contract suite's tiny matrix.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from filmrec.config import Settings
from filmrec.ingestion.contract import RatingEvent
from filmrec.metadata.store import MovieInfo
from filmrec.serving import deps
from filmrec.serving.app import create_app
from filmrec.serving.cache import InProcessCache
from filmrec.serving.hit_cache import HitCache
from filmrec.serving.movie_lookup import MetadataUnavailableError, MovieLookup
from filmrec.serving.online_state import InProcessOnlineState, VisibilityTracker
from filmrec.serving.rating_intake import RatingIntake, RatingsUnavailableError
from filmrec.serving.recommendations import RecommendationService
from filmrec.serving.schemas import RatingIn, SimilarMoviesOut
from tests.recommender_contract import GROUPS
from tests.reference_als import tiny_served_model

# The embedded default's key: these settings configure no FILMREC_API_KEYS.
DEMO_KEY = {"X-API-Key": "demo"}


class FakeMovies(MovieLookup):
    """Titles for the tiny matrix's items; `down` makes every lookup fail like a dead database."""

    def __init__(self) -> None:
        self.down = False
        self.movies = {
            movie: MovieInfo(
                movie_id=movie,
                title=f"Movie {movie}",
                year=2000 + movie % 20,
                genres=["Drama"] if movie in GROUPS["A"] else ["Comedy"],
            )
            for movie in GROUPS["A"] + GROUPS["B"]
        }
        self.filter_queries = 0

    def get(self, movie_id: int) -> MovieInfo | None:
        if self.down:
            raise MetadataUnavailableError("movie metadata is unavailable: OperationalError")
        return self.movies.get(movie_id)

    def get_many(self, movie_ids: Sequence[int]) -> Mapping[int, MovieInfo] | None:
        return None if self.down else {m: self.movies[m] for m in movie_ids if m in self.movies}

    # The listing in memory while the database is up (`held` False: never held, every
    # list's titles come from get_many on a thread).
    held = True

    @property
    def listing_is_fresh(self) -> bool:
        return self.held and not self.down

    def held_titles(self, movie_ids: Sequence[int]) -> Mapping[int, MovieInfo] | None:
        return self.get_many(movie_ids) if self.listing_is_fresh else None

    def refresh_listing(self) -> None:
        return None

    def movie_ids_matching(
        self, *, genre: str | None, year_min: int | None, year_max: int | None
    ) -> npt.NDArray[np.int64]:
        self.filter_queries += 1
        if self.down:
            raise MetadataUnavailableError("movie metadata is unavailable: OperationalError")
        return np.array(
            sorted(
                movie.movie_id
                for movie in self.movies.values()
                if (not genre or genre.lower() in {g.lower() for g in movie.genres})
                and (year_min is None or (movie.year is not None and movie.year >= year_min))
                and (year_max is None or (movie.year is not None and movie.year <= year_max))
            ),
            dtype=np.int64,
        )


class FakeIntake(RatingIntake):
    """Accepts ratings into the online state as if Kafka had acknowledged them."""

    def __init__(self, online: InProcessOnlineState, visibility: VisibilityTracker) -> None:
        super().__init__(Settings(_env_file=None, KAFKA_BOOTSTRAP_SERVERS="fake:9092"), online, visibility)
        self.kafka_down = False

    def accept(self, rating: RatingIn, *, written_by: str | None = None) -> RatingEvent:
        if self.kafka_down:
            raise RatingsUnavailableError("Kafka did not take the rating: timed out")
        event = RatingEvent(event_id=uuid.uuid4(), user_id=rating.user_id, movie_id=rating.movie_id,
                            rating=rating.rating, source="api", written_by=written_by)  # fmt: skip
        self._apply_online(event)
        return event


@pytest.fixture
def online() -> InProcessOnlineState:
    return InProcessOnlineState(ttl_seconds=3600)


@pytest.fixture
def movies() -> FakeMovies:
    return FakeMovies()


@pytest.fixture
def intake(online: InProcessOnlineState) -> FakeIntake:
    return FakeIntake(online, VisibilityTracker(lambda _seconds: None))


@pytest.fixture
def app(
    tmp_path: Path, online: InProcessOnlineState, movies: FakeMovies, intake: FakeIntake
) -> Iterator[FastAPI]:
    model = tiny_served_model()
    service = RecommendationService(
        cache=InProcessCache(),
        movies=movies,
        online=online,
        visibility=intake.visibility,
        cache_ttl_seconds=60,
        hit_cache=HitCache(max_entries=100, ttl_seconds=60),
    )
    application = create_app(Settings(_env_file=None, FILMREC_VAR_DIR=tmp_path / "var"))
    application.dependency_overrides = {
        deps.get_model: lambda: model,
        deps.get_recommendations: lambda: service,
        deps.get_movies: lambda: movies,
        deps.get_rating_intake: lambda: intake,
    }
    yield application


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app)  # no `with`: the lifespan (MLflow, database, Kafka) never starts


def ids(body: dict) -> list[int]:  # type: ignore[type-arg]
    return [item["movie_id"] for item in body["items"]]


def test_recommendations_are_titled_unseen_and_then_cached(client: TestClient) -> None:
    first = client.get("/recommendations/1", params={"k": 2})
    assert first.status_code == 200
    body = first.json()
    assert body["strategy"] == "model" and body["source"] == "model" and body["model_version"] == "7"
    assert set(ids(body)) == {GROUPS["A"][1], GROUPS["A"][4]}  # user 1's held-out group-A items
    assert all(item["title"].startswith("Movie ") for item in body["items"])
    again = client.get("/recommendations/1", params={"k": 2}).json()
    assert again["source"] == "cache" and ids(again) == ids(body)


def test_a_posted_rating_is_folded_in_and_never_recommended_back(client: TestClient) -> None:
    before = ids(client.get("/recommendations/1", params={"k": 2}).json())
    posted = client.post(
        "/ratings", headers=DEMO_KEY, json={"user_id": 1, "movie_id": before[0], "rating": 5}
    )
    assert posted.status_code == 202 and posted.json()["status"] == "accepted"
    after = client.get("/recommendations/1", params={"k": 2}).json()
    assert after["strategy"] == "fold-in" and after["source"] == "model"  # a new key: not the cached list
    assert before[0] not in ids(after)


def test_a_new_user_gets_popular_then_fold_in(client: TestClient) -> None:
    assert client.get("/recommendations/5000").json()["strategy"] == "popular"
    for movie in GROUPS["B"][:3]:
        assert (
            client.post(
                "/ratings", headers=DEMO_KEY, json={"user_id": 5000, "movie_id": movie, "rating": 5}
            ).status_code
            == 202
        )
    body = client.get("/recommendations/5000", params={"k": 3}).json()
    assert body["strategy"] == "fold-in" and set(ids(body)) == set(GROUPS["B"][3:])


def test_titles_missing_when_the_database_is_down(client: TestClient, movies: FakeMovies) -> None:
    movies.down = True
    body = client.get("/recommendations/2", params={"k": 2}).json()
    assert len(body["items"]) == 2 and all(item["title"] is None for item in body["items"])
    response = client.get(f"/movies/{GROUPS['A'][0]}")
    assert response.status_code == 503 and "unavailable" in response.json()["detail"]


def test_movies_and_similar(client: TestClient) -> None:
    assert client.get(f"/movies/{GROUPS['A'][0]}").json()["title"] == f"Movie {GROUPS['A'][0]}"
    assert client.get("/movies/999").status_code == 404
    answer = client.get(f"/movies/{GROUPS['B'][0]}/similar", params={"k": 3})
    similar = answer.json()
    assert GROUPS["B"][0] not in ids(similar) and len(similar["items"]) == 3
    # Pre-serialised, not re-validated: the body must be the documented model, field order too.
    documented = SimilarMoviesOut.model_validate_json(answer.content)
    assert orjson.dumps(documented.model_dump(mode="json", exclude_unset=True)) == answer.content
    assert answer.headers["content-type"] == "application/json"
    unknown = client.get("/movies/999/similar")
    assert unknown.status_code == 404 and "not in model v7" in unknown.json()["detail"]


def test_ratings_answer_503_with_the_reason_when_kafka_is_down(
    client: TestClient, intake: FakeIntake
) -> None:
    intake.kafka_down = True
    response = client.post("/ratings", headers=DEMO_KEY, json={"user_id": 1, "movie_id": 101, "rating": 4.5})
    assert response.status_code == 503 and "Kafka did not take the rating" in response.json()["detail"]


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"user_id": 1, "movie_id": 101, "rating": 4.3}, "rating"),
        ({"user_id": 1, "movie_id": 101, "rating": 6}, "rating"),
        ({"user_id": 0, "movie_id": 101, "rating": 4}, "user_id"),
        ({"user_id": 1, "movie_id": 101, "rating": 4, "extra": 1}, "extra"),
    ],
)
def test_bad_ratings_answer_422_naming_the_field(client: TestClient, payload: dict, needle: str) -> None:  # type: ignore[type-arg]
    response = client.post("/ratings", headers=DEMO_KEY, json=payload)
    assert response.status_code == 422 and needle in response.json()["detail"]


def test_no_model_answers_503(app: FastAPI, client: TestClient) -> None:
    del app.dependency_overrides[deps.get_model]
    app.state.filmrec = type("NoModel", (), {"holder": type("Holder", (), {"current": None})()})()
    response = client.get("/recommendations/1")
    assert response.status_code == 503 and "no model is loaded" in response.json()["detail"]


def test_model_info(client: TestClient) -> None:
    body = client.get("/model").json()
    assert body["name"] == "tiny" and body["version"] == "7" and body["n_items"] == 12
    assert body["family"] == "ease"


# -- filters and explanations ---------------------------------------------------------
# User 1 likes group A and rated all of it but 102 and 105, plus 202 (2 stars): the
# plain list starts with 102 and 105. Group A is Drama, B Comedy; movie m is from 2000 + m % 20.
RATED_BY_1 = set(GROUPS["A"]) - {102, 105} | {202}


def movies_of(client: TestClient, movies: FakeMovies, **params: object) -> list[MovieInfo]:
    response = client.get("/recommendations/1", params=params)
    assert response.status_code == 200, response.text
    return [movies.movies[movie_id] for movie_id in ids(response.json())]


def test_a_genre_filter_still_returns_k_of_that_genre(client: TestClient, movies: FakeMovies) -> None:
    assert {102, 105} <= set(ids(client.get("/recommendations/1", params={"k": 4}).json()))
    comedies = movies_of(client, movies, k=4, genre="comedy")
    assert len(comedies) == 4 and all(movie.genres == ["Comedy"] for movie in comedies)
    assert not {movie.movie_id for movie in comedies} & RATED_BY_1


def test_a_year_range_filter_still_returns_k_within_it(client: TestClient, movies: FakeMovies) -> None:
    recent = movies_of(client, movies, k=3, year_min=2004, year_max=2006)
    assert len(recent) == 3 and all(2004 <= (movie.year or 0) <= 2006 for movie in recent)
    assert movies_of(client, movies, k=10, year_max=2001) == [movies.movies[201]]  # all there is


def test_excluded_movies_never_come_back_and_need_no_database(client: TestClient, movies: FakeMovies) -> None:
    movies.down = True
    body = client.get("/recommendations/1", params=[("k", 3), ("exclude", 102), ("exclude", 105)]).json()
    assert len(body["items"]) == 3 and not {102, 105} & set(ids(body))
    assert movies.filter_queries == 0


def test_filters_have_their_own_cache_entries(client: TestClient) -> None:
    plain = client.get("/recommendations/1", params={"k": 2}).json()
    comedies = client.get("/recommendations/1", params={"k": 2, "genre": "Comedy"}).json()
    assert comedies["source"] == "model" and set(ids(comedies)).isdisjoint(ids(plain))
    again = client.get("/recommendations/1", params={"k": 2, "genre": "COMEDY"}).json()
    assert again["source"] == "cache" and ids(again) == ids(comedies)
    excluded = client.get(
        "/recommendations/1", params={"k": 2, "genre": "Comedy", "exclude": ids(comedies)[0]}
    )
    assert excluded.json()["source"] == "model" and ids(comedies)[0] not in ids(excluded.json())


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"year_min": 1000}, "year_min: Input should be greater than or equal to 1870"),
        ({"year_max": 3000}, "year_max: Input should be less than or equal to 2100"),
        ({"genre": ""}, "genre: String should have at least 1 character"),
        ({"genre": "Drama\x00"}, "genre: String should match pattern"),
        ({"exclude": 0}, "exclude.0: Input should be greater than 0"),
        ([("exclude", m) for m in range(1, 102)], "exclude: List should have at most 100 items"),
    ],
)
def test_bad_filters_answer_422_saying_why(client: TestClient, params: object, needle: str) -> None:
    response = client.get("/recommendations/1", params=params)  # type: ignore[arg-type]
    assert response.status_code == 422
    body = response.json()
    assert needle in body["detail"] and body["errors"], body


def test_an_empty_year_range_is_an_empty_list_not_an_error(client: TestClient) -> None:
    response = client.get("/recommendations/1", params={"year_min": 2099, "year_max": 1870})
    assert response.status_code == 200 and response.json()["items"] == []


def test_a_genre_filter_with_the_database_down_answers_503(client: TestClient, movies: FakeMovies) -> None:
    movies.down = True
    for params in ({"genre": "Comedy"}, {"year_min": 2003}):
        response = client.get("/recommendations/1", params=params)
        assert response.status_code == 503
        assert "filters need the metadata database" in response.json()["detail"]


def test_explain_names_a_rated_movie_per_item_and_is_absent_otherwise(client: TestClient) -> None:
    plain = client.get("/recommendations/1", params={"k": 3}).json()
    assert all("because" not in item for item in plain["items"])
    explained = client.get("/recommendations/1", params={"k": 3, "explain": True}).json()
    assert explained["source"] == "model" and ids(explained) == ids(plain)
    for item in explained["items"]:
        because = item["because"]
        assert because["movie_id"] in RATED_BY_1 and because["title"] == f"Movie {because['movie_id']}"
        assert isinstance(because["weight"], float)
    cached = client.get("/recommendations/1", params={"k": 3, "explain": True}).json()
    assert cached["source"] == "cache" and cached["items"] == explained["items"]
    again = client.get("/recommendations/1", params={"k": 3}).json()
    assert again["source"] == "cache" and again["items"] == plain["items"]


def test_explain_follows_the_ratings_folded_in(client: TestClient) -> None:
    popular = client.get("/recommendations/5001", params={"explain": True}).json()
    assert popular["strategy"] == "popular" and all("because" not in item for item in popular["items"])
    for movie in GROUPS["B"][:3]:
        client.post("/ratings", headers=DEMO_KEY, json={"user_id": 5001, "movie_id": movie, "rating": 5})
    body = client.get("/recommendations/5001", params={"k": 3, "explain": True}).json()
    assert body["strategy"] == "fold-in"
    assert {item["because"]["movie_id"] for item in body["items"]} <= set(GROUPS["B"][:3])


def test_the_document_states_every_filter_bound(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/recommendations/{user_id}"]["get"]
    schemas = {p["name"]: p["schema"] for p in operation["parameters"]}
    assert "because" in str(client.get("/openapi.json").json()["components"]["schemas"]["ScoredMovieOut"])

    def bounds(schema: dict) -> dict:  # type: ignore[type-arg]
        (variant,) = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
        return variant  # type: ignore[no-any-return]

    assert bounds(schemas["year_min"])["minimum"] == 1870 and bounds(schemas["year_max"])["maximum"] == 2100
    assert bounds(schemas["genre"])["maxLength"] == 64
    excluded = bounds(schemas["exclude"])
    assert excluded["maxItems"] == 100 and excluded["items"]["exclusiveMinimum"] == 0
    assert "503" in operation["responses"] and "metadata" in operation["responses"]["503"]["description"]


# -- input rules stated in the document ---------------------------------------------------
def string_parameters(document: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    """`METHOD path name` -> schema of every string query or path parameter."""
    found = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                for schema in parameter["schema"].get("anyOf", [parameter["schema"]]):
                    if schema.get("type") == "string" and parameter["in"] in ("query", "path"):
                        found[f"{method.upper()} {path} {parameter['name']}"] = schema
    return found


def test_every_string_parameter_refuses_control_characters_in_the_document(client: TestClient) -> None:
    parameters = string_parameters(client.get("/openapi.json").json())
    assert {"GET /movies q", "GET /movies genre", "GET /recommendations/{user_id} genre"} <= set(parameters)
    for name, schema in parameters.items():
        pattern = re.compile(schema["pattern"])
        assert pattern.fullmatch("Sci-Fi 2"), name
        for control in ("\x00", "\x1f", "\x7f", "\n"):
            assert not pattern.fullmatch(f"Drama{control}"), (name, control)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/recommendations/1", {"genre": "Drama\x00"}),
        ("/movies", {"genre": "Drama\x00"}),
        ("/movies", {"q": "heat\x00"}),
        ("/movies", {"q": "heat\x1b[2J"}),
    ],
)
def test_control_characters_answer_422_before_any_lookup(
    client: TestClient, movies: FakeMovies, path: str, params: dict[str, str]
) -> None:
    movies.down = True  # a lookup would answer 503: the 422 comes first
    response = client.get(path, params=params)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"][0] == "query"


def rate(client: TestClient, **fields: object) -> Response:
    return client.post(
        "/ratings", headers=DEMO_KEY, json={"user_id": 1, "movie_id": 101, "rating": 4.5} | fields
    )


@pytest.mark.parametrize(
    ("rated_at", "needle"),
    [
        (0, "RFC 3339"),  # a number was read as 1970-01-01
        (1714566600, "RFC 3339"),
        ("1714566600", "RFC 3339"),
        ("2024-05-01", "RFC 3339"),
        ("2024-05-01T12:30:00", "RFC 3339"),  # no offset
        ("9999-12-31T23:59:59Z", "rated_at_in_future"),
        ("1969-12-31T23:59:59Z", "rated_at_before_floor"),
    ],
)
def test_a_rating_time_outside_the_rule_answers_422(
    client: TestClient, rated_at: object, needle: str
) -> None:
    response = rate(client, rated_at=rated_at)
    assert response.status_code == 422 and needle in response.json()["detail"], response.text
    assert response.json()["errors"][0]["loc"] == ["body", "rated_at"]


def test_a_rating_time_within_the_rule_is_accepted(client: TestClient) -> None:
    for rated_at in ("2024-05-01T12:30:00Z", "2024-05-01T14:30:00+02:00", datetime.now(UTC).isoformat()):
        assert rate(client, rated_at=rated_at).status_code == 202, rated_at


def test_the_document_states_the_rating_time_rule_and_its_422(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    (rated_at,) = [s for s in document["components"]["schemas"]["RatingIn"]["properties"]["rated_at"]["anyOf"]
                   if s.get("type") == "string"]  # fmt: skip
    assert rated_at["format"] == "date-time"
    assert "1995-01-01T00:00:00Z" in rated_at["description"] and "5 minutes" in rated_at["description"]
    assert "UTC offset" in rated_at["description"] and "422" in rated_at["description"]
    assert "422" in document["paths"]["/ratings"]["post"]["responses"]
