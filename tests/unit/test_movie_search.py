"""GET /movies: title search ranked in SQL (a real SQLite file), through the route.

The store is real (the embedded SQLite default, migrated like the API does it); the
route gets it through dependency_overrides, so no lifespan and no model are needed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from filmrec.config import Settings
from filmrec.metadata.store import MovieInfo, MovieStore
from filmrec.metadata.title_search import normalise_title
from filmrec.serving import deps
from filmrec.serving.app import create_app
from filmrec.serving.movie_lookup import MetadataUnavailableError, MovieLookup
from filmrec.serving.parameters import is_search_text

CATALOGUE = [
    MovieInfo(1, "Stargate", 1994, ["Action", "Sci-Fi"]),
    MovieInfo(2, "Star Wars: Episode IV - A New Hope", 1977, ["Action", "Sci-Fi"]),
    MovieInfo(3, "Lone Star", 1996, ["Drama"]),
    MovieInfo(4, "Superstar", 1999, ["Comedy"]),
    MovieInfo(5, "Star!", 1968, ["Musical"]),
    MovieInfo(6, "Dark Star", 1974, ["Comedy", "Sci-Fi"]),
    MovieInfo(7, "Amélie (Fabuleux destin d'Amélie Poulain, Le)", 2001, ["Comedy", "Romance"]),
    MovieInfo(8, "American Beauty", 1999, ["Drama", "Romance"]),
    MovieInfo(9, "Star Trek: First Contact", 1996, ["Sci-Fi"]),
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MovieStore]:
    movie_store = MovieStore.from_url(f"sqlite:///{tmp_path / 'movies.db'}")
    movie_store.create_schema()
    movie_store.upsert(CATALOGUE)
    yield movie_store
    movie_store.engine.dispose()


@pytest.fixture
def client(store: MovieStore, tmp_path: Path) -> TestClient:
    app = create_app(Settings(_env_file=None, FILMREC_VAR_DIR=tmp_path / "var"))
    lookup = MovieLookup(store)
    app.dependency_overrides = {deps.get_movies: lambda: lookup}
    return TestClient(app)  # no `with`: the lifespan never starts


def titles(body: dict) -> list[str]:  # type: ignore[type-arg]
    return [item["title"] for item in body["items"]]


@pytest.mark.parametrize(
    ("title", "normalised"),
    [
        ("Amélie", "amelie"),
        ("AMÉLIE", "amelie"),
        ("Monsters, Inc.", "monsters inc"),
        ("Straße", "strasse"),
        ("  Star!  Wars_100%  ", "star wars 100"),
        ("Ночной дозор", "ночнои дозор"),  # letters without an ASCII form stay letters
    ],
)
def test_titles_and_queries_normalise_alike(title: str, normalised: str) -> None:
    assert normalise_title(title) == normalised


def test_exact_then_prefix_then_word_then_substring(client: TestClient) -> None:
    body = client.get("/movies", params={"q": "star"}).json()
    assert titles(body) == [
        "Star!",  # the exact title
        "Star Trek: First Contact",  # titles starting with it, alphabetically
        "Star Wars: Episode IV - A New Hope",
        "Stargate",
        "Dark Star",  # a word starting with it
        "Lone Star",
        "Superstar",  # anywhere
    ]
    assert body["total"] == 7 and body["q"] == "star"


@pytest.mark.parametrize("query", ["amelie", "AMÉLIE", "Amélie", "  amél"])
def test_case_and_accents_do_not_matter(client: TestClient, query: str) -> None:
    body = client.get("/movies", params={"q": query}).json()
    assert [item["movie_id"] for item in body["items"]] == [7]


def test_word_prefix_inside_a_title(client: TestClient) -> None:
    assert titles(client.get("/movies", params={"q": "new ho"}).json()) == [
        "Star Wars: Episode IV - A New Hope"
    ]
    assert titles(client.get("/movies", params={"q": "beaut"}).json()) == ["American Beauty"]


def test_genre_filter_and_pages(client: TestClient) -> None:
    scifi = client.get("/movies", params={"q": "star", "genre": "sci-fi"}).json()
    assert titles(scifi) == [
        "Star Trek: First Contact",
        "Star Wars: Episode IV - A New Hope",
        "Stargate",
        "Dark Star",
    ]
    first = client.get("/movies", params={"q": "star", "limit": 3}).json()
    second = client.get("/movies", params={"q": "star", "limit": 3, "offset": 3}).json()
    assert first["total"] == second["total"] == 7
    assert titles(first) + titles(second) == titles(client.get("/movies", params={"q": "star"}).json())[:6]
    browse = client.get("/movies", params={"genre": "Comedy"}).json()
    assert browse["total"] == 3 and browse["q"] is None


def test_genres_are_listed(client: TestClient) -> None:
    genres = client.get("/movies/genres").json()["genres"]
    assert genres == sorted(genres) and {"Sci-Fi", "Drama", "Musical"} <= set(genres)


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"q": "!!!"}, "q: needs a letter or a digit"),
        ({"q": "star\x00"}, "q: needs a letter or a digit, and no control characters"),
        ({"q": "star", "genre": "Sci-Fi\x00"}, "genre: String should match pattern"),
        ({"q": ""}, "q: String should have at least 1 character"),
        ({"q": "x", "limit": 0}, "limit: Input should be greater than or equal to 1"),
        ({"q": "x", "offset": -1}, "offset: Input should be greater than or equal to 0"),
    ],
)
def test_bad_searches_answer_422(client: TestClient, params: dict, needle: str) -> None:  # type: ignore[type-arg]
    response = client.get("/movies", params=params)
    assert response.status_code == 422 and needle in response.json()["detail"]
    assert response.json()["errors"], "the documented 422 body (ValidationErrorOut) lists each problem"


@pytest.mark.parametrize("q", ["🎬", "—", "\U0001dd5c"])
def test_a_query_with_nothing_to_search_for_matches_nothing(client: TestClient, q: str) -> None:
    # The pattern admits any character beyond ASCII; normalising keeps none of these.
    body = client.get("/movies", params={"q": q}).json()
    assert body["total"] == 0 and body["items"] == [] and body["q"] == q


def test_the_search_pattern_is_the_servers_rule() -> None:
    assert is_search_text("Amélie") and is_search_text("Москва") and is_search_text("x")
    assert not is_search_text("!!! ?") and not is_search_text("star\n") and not is_search_text("")


def test_a_database_that_is_down_answers_503(client: TestClient, store: MovieStore) -> None:
    store.engine.dispose()
    Path(store.engine.url.database or "").unlink()
    Path(store.engine.url.database or "").mkdir()  # a directory: every connect now fails
    response = client.get("/movies", params={"q": "star"})
    assert response.status_code == 503 and "unavailable" in response.json()["detail"]


def test_existing_movie_routes_still_answer(client: TestClient) -> None:
    assert client.get("/movies/7").json()["title"].startswith("Amélie")
    assert client.get("/movies/999").status_code == 404


def test_movie_ids_matching_a_genre_and_years_in_one_query(store: MovieStore) -> None:
    assert sorted(store.movie_ids_matching(genre="sci-fi")) == [1, 2, 6, 9]
    assert sorted(store.movie_ids_matching(genre="Sci-Fi", year_min=1990, year_max=1996)) == [1, 9]
    assert sorted(store.movie_ids_matching(year_max=1974)) == [5, 6]
    assert store.movie_ids_matching(genre="Western") == []


class CountingStore(MovieStore):
    """The real store, counting the filter queries and able to fail like a dead database."""

    def __init__(self, store: MovieStore) -> None:
        super().__init__(store.engine)
        self.queries = 0
        self.down = False

    def movie_ids_matching(
        self, *, genre: str | None = None, year_min: int | None = None, year_max: int | None = None
    ) -> list[int]:
        self.queries += 1
        if self.down:
            raise ConnectionError("database down")
        return super().movie_ids_matching(genre=genre, year_min=year_min, year_max=year_max)


def test_the_lookup_caches_each_filter_set_and_fails_without_the_database(store: MovieStore) -> None:
    counting = CountingStore(store)
    lookup = MovieLookup(counting)
    first = lookup.movie_ids_matching(genre="Comedy", year_min=None, year_max=None)
    assert first.tolist() == [4, 6, 7]
    # Any case of the genre is the same set: one query for both.
    assert lookup.movie_ids_matching(genre="comedy", year_min=None, year_max=None).tolist() == [4, 6, 7]
    assert counting.queries == 1
    counting.down = True
    # A cached set still answers; an uncached one cannot be guessed.
    assert lookup.movie_ids_matching(genre="COMEDY", year_min=None, year_max=None).tolist() == [4, 6, 7]
    with pytest.raises(MetadataUnavailableError, match="unavailable"):
        lookup.movie_ids_matching(genre="Drama", year_min=1990, year_max=None)


def test_the_titles_of_a_list_are_the_movies_as_stored(store: MovieStore) -> None:
    # get_many reads four columns on a plain connection (the model path's lookup): the
    # same MovieInfo as the one-movie ORM read, unknown ids left out.
    found = store.get_many([7, 1, 404, 3])
    assert found == {movie_id: store.get(movie_id) for movie_id in (7, 1, 3)}
    assert found[7] == CATALOGUE[6] and found[1].genres == ["Action", "Sci-Fi"]
    assert store.get_many([]) == {}


class ListingStore(MovieStore):
    """The real store, counting its title reads; `down` fails them like a dead database."""

    def __init__(self, store: MovieStore) -> None:
        super().__init__(store.engine)
        self.listings = 0
        self.per_list = 0
        self.down = False

    def listing(self, *, limit: int) -> dict[int, MovieInfo] | None:
        self.listings += 1
        if self.down:
            raise ConnectionError("database down")
        return super().listing(limit=limit)

    def get_many(self, movie_ids: Sequence[int]) -> dict[int, MovieInfo]:
        self.per_list += 1
        if self.down:
            raise ConnectionError("database down")
        return super().get_many(movie_ids)


def test_the_titles_of_lists_come_from_the_listing_without_a_query(store: MovieStore) -> None:
    counting = ListingStore(store)
    lookup = MovieLookup(counting)
    assert not lookup.listing_is_fresh and lookup.held_titles([1]) is None
    lookup.refresh_listing()
    assert lookup.listing_is_fresh
    assert lookup.get_many([7, 1, 404]) == store.get_many([7, 1, 404])
    assert lookup.held_titles([3]) == {3: store.get(3)}
    lookup.refresh_listing()  # fresh: not read again
    assert (counting.listings, counting.per_list) == (1, 0)


def test_a_stale_listing_is_read_again_and_kept_while_the_database_is_down(
    store: MovieStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from filmrec.serving import movie_lookup

    counting = ListingStore(store)
    lookup = MovieLookup(counting)
    lookup.refresh_listing()
    monkeypatch.setattr(movie_lookup, "LISTING_SECONDS", 0.0)
    lookup._listing_until = 0.0  # aged out
    assert not lookup.listing_is_fresh
    assert lookup.get_many([1]) == {1: store.get(1)}  # read again on the way
    assert counting.listings == 2
    counting.down = True
    lookup._listing_until = 0.0
    # Down: the older listing's titles, not none (the per-list query failed as well).
    assert lookup.get_many([1, 7]) == {1: store.get(1), 7: store.get(7)}
    assert not lookup.listing_is_fresh


def test_a_catalogue_above_the_bound_is_not_held(store: MovieStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from filmrec.serving import movie_lookup

    monkeypatch.setattr(movie_lookup, "LISTING_MAX_MOVIES", len(CATALOGUE) - 1)
    counting = ListingStore(store)
    lookup = MovieLookup(counting)
    lookup.refresh_listing()
    assert not lookup.listing_is_fresh
    assert lookup.get_many([1]) == {1: store.get(1)}
    assert (counting.listings, counting.per_list) == (1, 1)  # not read again until it ages out
