"""The API against a model trained by the real job and registered in MLflow."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pandas as pd
import pytest
import uvicorn
from fastapi.testclient import TestClient

from filmrec.config import Settings
from filmrec.model.registry import TAG_ARTIFACTS_SHA256, champion_version, configure_mlflow
from filmrec.orchestration.tasks import notify_api
from filmrec.serving.app import create_app
from tests.integration.service_helpers import DEMO_KEY, make_settings


@pytest.fixture(scope="module")
def client(trained_root: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(trained_root))) as test_client:
        yield test_client


def rated_by(trained_root: Path, user_id: int) -> set[int]:
    ratings = pd.read_csv(trained_root / "input" / "ratings.csv")
    return set(ratings.loc[ratings["userId"] == user_id, "movieId"].tolist())


def test_recommendations_are_titled_and_unseen(client: TestClient, trained_root: Path) -> None:
    response = client.get("/recommendations/1", params={"k": 10})
    assert response.status_code == 200
    body = response.json()
    assert body["strategy"] == "model" and body["k"] == 10 and len(body["items"]) == 10
    for item in body["items"]:
        assert item["title"] and isinstance(item["genres"], list) and isinstance(item["score"], float)
        assert "year" in item
    assert not {item["movie_id"] for item in body["items"]} & rated_by(trained_root, 1)


def test_a_repeated_request_comes_from_the_cache(client: TestClient) -> None:
    first = client.get("/recommendations/2", params={"k": 7}).json()
    second = client.get("/recommendations/2", params={"k": 7}).json()
    assert second["source"] == "cache"
    assert second["items"] == first["items"]


def test_an_unknown_user_gets_popular_movies(client: TestClient) -> None:
    body = client.get("/recommendations/99999", params={"k": 5}).json()
    assert body["strategy"] == "popular" and len(body["items"]) == 5


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("/recommendations/1?k=0", "k: Input should be greater than or equal to 1"),
        ("/recommendations/1?k=101", "k: Input should be less than or equal to 100"),
        ("/recommendations/1?k=ten", "k: Input should be a valid integer"),
        ("/recommendations/abc", "user_id: Input should be a valid integer"),
        ("/recommendations/0", "user_id: Input should be greater than 0"),
        ("/movies/abc", "movie_id: Input should be a valid integer"),
        ("/movies/1/similar?k=500", "k: Input should be less than or equal to 100"),
    ],
)
def test_bad_input_answers_422_saying_what_is_wrong(client: TestClient, path: str, needle: str) -> None:
    response = client.get(path)
    assert response.status_code == 422
    assert needle in response.json()["detail"]


def test_movies(client: TestClient) -> None:
    movie = client.get("/movies/1").json()
    assert movie == {"movie_id": 1, "title": "Toy Story", "year": 1995, "genres": movie["genres"]}
    assert "Animation" in movie["genres"]
    missing = client.get("/movies/987654321")
    assert missing.status_code == 404 and "987654321" in missing.json()["detail"]


def test_similar_movies(client: TestClient) -> None:
    body = client.get("/movies/1/similar", params={"k": 5}).json()
    assert len(body["items"]) == 5 and 1 not in {item["movie_id"] for item in body["items"]}
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)
    unknown = client.get("/movies/987654321/similar")
    assert unknown.status_code == 404 and "not in model" in unknown.json()["detail"]


def test_model_health_ready_and_metrics(client: TestClient) -> None:
    model = client.get("/model").json()
    assert model["name"] == "filmrec" and model["version"]
    assert model["run_id"] and model["loaded_at"] and "ndcg_at_10" in model["metrics"]
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["model_loaded"] is True
    assert {dep["name"] for dep in ready.json()["dependencies"]} >= {"database", "cache", "model_registry"}
    client.get("/recommendations/3")
    text = client.get("/metrics").text
    assert 'filmrec_http_requests_total{method="GET",route="/recommendations/{user_id}",status="200"}' in text
    assert "filmrec_model_info{" in text and "filmrec_model_age_seconds" in text


def test_without_a_model_the_api_says_so_instead_of_failing(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as empty:
        response = empty.get("/recommendations/1")
        assert response.status_code == 503 and "no model" in response.json()["detail"]
        assert empty.get("/ready").status_code == 503
        assert empty.get("/health").status_code == 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def served_over_http(settings: Settings) -> Iterator[str]:
    """The real API (create_app under uvicorn, in a thread) on a free port; its base URL once ready."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError("the API did not become ready")
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_new_champion_is_swapped_in_without_a_failed_request(trained_root: Path) -> None:
    settings = make_settings(trained_root, MODEL_POLL_SECONDS=0.2)
    registry = configure_mlflow(settings)
    old = champion_version(registry, name=settings.model_name, alias="champion")
    assert old is not None

    # Every request's outcome: its status, or the transport error that replaced one (a
    # refused or reset connection during the swap is a failed request too).
    outcomes: Counter[int | str] = Counter()
    versions: Counter[str] = Counter()
    counted = threading.Lock()
    stop = threading.Event()

    def hammer(base: str, user_id: int) -> None:
        with httpx.Client(base_url=base, timeout=10) as http:
            while not stop.is_set():
                version = None
                try:
                    response = http.get(f"/recommendations/{user_id}", params={"k": 10})
                    outcome: int | str = response.status_code
                    if response.status_code == 200:
                        version = response.json()["model_version"]
                except httpx.HTTPError as error:
                    outcome = type(error).__name__
                with counted:
                    outcomes[outcome] += 1
                    if version is not None:
                        versions[version] += 1

    with served_over_http(settings) as base:
        workers = [threading.Thread(target=hammer, args=(base, user)) for user in (1, 2, 3, 4)]
        try:
            for worker in workers:
                worker.start()
            time.sleep(1.0)
            new = mlflow.register_model(
                f"runs:/{old.run_id}/model",
                settings.model_name,
                tags={TAG_ARTIFACTS_SHA256: old.tags[TAG_ARTIFACTS_SHA256]},  # the same artifacts
            )
            registry.set_registered_model_alias(settings.model_name, "champion", new.version)
            deadline = time.monotonic() + 30
            while httpx.get(f"{base}/model").json()["version"] != str(new.version):
                assert time.monotonic() < deadline, "the API did not pick up the new champion"
                time.sleep(0.1)
            time.sleep(1.0)
        finally:
            stop.set()
            for worker in workers:
                worker.join()
            registry.set_registered_model_alias(settings.model_name, "champion", old.version)
    assert set(outcomes) == {200}, outcomes
    assert versions[str(old.version)] > 0 and versions[str(new.version)] > 0


def test_notify_api_returns_once_the_real_api_serves_the_new_champion(trained_root: Path) -> None:
    """als_training's notify_api against the API itself: it returns when GET /model
    serves the promoted version, after the API's own registry poll swapped it in."""
    settings = make_settings(trained_root, MODEL_POLL_SECONDS=0.2)
    registry = configure_mlflow(settings)
    old = champion_version(registry, name=settings.model_name, alias="champion")
    assert old is not None
    with served_over_http(settings) as base:
        try:
            new = mlflow.register_model(
                f"runs:/{old.run_id}/model",
                settings.model_name,
                tags={TAG_ARTIFACTS_SHA256: old.tags[TAG_ARTIFACTS_SHA256]},  # the same artifacts
            )
            registry.set_registered_model_alias(settings.model_name, "champion", new.version)
            outcome = notify_api(settings, model_version=str(new.version), api_url=base, timeout_seconds=60)
            assert outcome == {"notified": True, "api_url": base, "served_version": str(new.version)}
            assert httpx.get(f"{base}/model").json()["version"] == str(new.version)
        finally:
            registry.set_registered_model_alias(settings.model_name, "champion", old.version)


def test_notify_api_fails_when_the_real_api_never_serves_the_version(trained_root: Path) -> None:
    """A version the registry never promoted: the API keeps serving its champion, and
    notify_api fails the task naming both versions instead of reporting success."""
    settings = make_settings(trained_root, MODEL_POLL_SECONDS=0.2)
    served = champion_version(configure_mlflow(settings), name=settings.model_name, alias="champion")
    assert served is not None
    expected = f"still serves v{served.version} .*expected v987654"
    with served_over_http(settings) as base, pytest.raises(TimeoutError, match=expected):
        notify_api(settings, model_version="987654", api_url=base, timeout_seconds=2)


def test_a_bad_rating_answers_422(client: TestClient) -> None:
    response = client.post("/ratings", headers=DEMO_KEY, json={"user_id": 1, "movie_id": 1, "rating": 4.2})
    assert response.status_code == 422 and "multiple of 0.5" in response.json()["detail"]
    response = client.post("/ratings", headers=DEMO_KEY, json={"user_id": 1, "rating": 4.0})
    assert response.status_code == 422 and "movie_id: Field required" in response.json()["detail"]


def test_ratings_without_kafka_answer_503(client: TestClient) -> None:
    response = client.post("/ratings", headers=DEMO_KEY, json={"user_id": 1, "movie_id": 1, "rating": 4.0})
    assert response.status_code == 503 and "KAFKA_BOOTSTRAP_SERVERS" in response.json()["detail"]


def test_ratings_with_the_broker_down_answer_503_quickly(trained_root: Path) -> None:
    settings = make_settings(trained_root, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{_free_port()}")
    with TestClient(create_app(settings)) as down:
        # The publish timeout bounds the wait; a hang would trip the test timeout instead.
        response = down.post("/ratings", headers=DEMO_KEY, json={"user_id": 1, "movie_id": 1, "rating": 4.0})
        assert response.status_code == 503 and "Kafka did not take the rating" in response.json()["detail"]
        failures = re.search(r"^filmrec_kafka_publish_failures_total (\S+)$", down.get("/metrics").text, re.M)
        assert failures is not None and float(failures[1]) >= 1


def test_search_titles_of_the_synced_catalogue(client: TestClient) -> None:
    toy = client.get("/movies", params={"q": "toy story"}).json()
    assert [item["title"] for item in toy["items"][:3]] == ["Toy Story", "Toy Story 2", "Toy Story 3"]
    # Case and accents: "Amélie (Fabuleux destin d'Amélie Poulain, Le)" as typed on any keyboard.
    for query in ("amelie", "AMÉLIE", "amél"):
        body = client.get("/movies", params={"q": query}).json()
        assert body["items"] and body["items"][0]["movie_id"] == 4973, query
    comedies = client.get("/movies", params={"q": "love", "genre": "Comedy", "limit": 5}).json()
    assert comedies["total"] > 5 and len(comedies["items"]) == 5
    assert all("Comedy" in item["genres"] for item in comedies["items"])
    assert "Comedy" in client.get("/movies/genres").json()["genres"]


def test_filters_and_explanations_on_the_trained_model(client: TestClient, trained_root: Path) -> None:
    rated = rated_by(trained_root, 1)
    plain = client.get("/recommendations/1", params={"k": 10}).json()["items"]
    assert all("because" not in item for item in plain)

    comedies = client.get("/recommendations/1", params={"k": 10, "genre": "comedy"}).json()["items"]
    assert len(comedies) == 10 and all("Comedy" in item["genres"] for item in comedies)
    nineties = client.get("/recommendations/1", params={"k": 10, "year_min": 1990, "year_max": 1999}).json()
    assert len(nineties["items"]) == 10 and all(1990 <= item["year"] <= 1999 for item in nineties["items"])
    top3 = [item["movie_id"] for item in plain[:3]]
    rest = client.get("/recommendations/1", params=[("k", 10), *(("exclude", m) for m in top3)]).json()
    assert len(rest["items"]) == 10 and not {item["movie_id"] for item in rest["items"]} & set(top3)
    for items in (comedies, nineties["items"], rest["items"]):
        assert not {item["movie_id"] for item in items} & rated

    explained = client.get("/recommendations/1", params={"k": 10, "explain": True}).json()["items"]
    assert [item["movie_id"] for item in explained] == [item["movie_id"] for item in plain]
    for item in explained:
        because = item["because"]
        assert because["movie_id"] in rated and because["title"], item

    # An empty range is a defined answer, not an error (the OpenAPI document cannot state
    # the order of two parameters, so a 422 would break its contract).
    empty = client.get("/recommendations/1", params={"year_min": 2000, "year_max": 1990})
    assert empty.status_code == 200 and empty.json()["items"] == []
