"""The API on real services: PostgreSQL metadata, the Redis cache, the MLflow tracking server.

End to end: train -> register -> the API loads the model -> a list is cached in Redis ->
a new version is promoted -> the next request serves it, under new cache keys. Then
each dependency fails in turn (on throwaway instances the test owns) and the API keeps
answering from the model, reports it in /ready and /metrics, and recovers by itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from filmrec.model.registry import TAG_ARTIFACTS_SHA256
from filmrec.serving.app import create_app
from filmrec.serving.cache import model_key_prefix, recommendation_key
from tests.integration.service_helpers import metric_value, promote_copy, wait_for

UNKNOWN_USER = 999_999


def _ready(client: TestClient) -> dict[str, Any]:
    body = client.get("/ready").json()
    body["by_name"] = {dep["name"]: dep for dep in body["dependencies"]}
    return body


def _recommend(client: TestClient, user_id: int, k: int = 10) -> dict[str, Any]:
    response = client.get(f"/recommendations/{user_id}", params={"k": k})
    assert response.status_code == 200, response.text
    return response.json()


def test_end_to_end_postgres_redis_mlflow(spark, trained_on_server, fresh_pg_database, redis_url) -> None:  # type: ignore[no-untyped-def]
    import redis

    from filmrec.metadata.store import MovieStore
    from filmrec.pipeline import sync_metadata

    settings = trained_on_server.settings(DATABASE_URL=fresh_pg_database, REDIS_URL=redis_url)
    sync_metadata(spark, settings)
    cache = redis.Redis.from_url(redis_url)
    v1 = trained_on_server.version
    user = 7

    with TestClient(create_app(settings)) as client:
        ready = _ready(client)
        assert ready["status"] == "ready", ready
        assert ready["model_version"] == v1
        assert {name: dep["kind"] for name, dep in ready["by_name"].items()} == {
            "database": "postgresql",
            "cache": "redis",
            "model_registry": "mlflow-server",
            "online_state": "redis",
        }
        first = _recommend(client, user)
        assert first["model_version"] == v1 and first["strategy"] == "model"
        assert all(item["title"] for item in first["items"]), "titles come from PostgreSQL"
        name = settings.model_name
        key_v1 = recommendation_key(model_name=name, model_version=v1, user_id=user, k=10)
        assert cache.exists(key_v1), "the list is cached in Redis under a key with the model version"
        assert cache.ttl(key_v1) > 0
        again = _recommend(client, user)
        assert again["source"] == "cache" and again["items"] == first["items"]

        # The API warms the cache for every known user after loading a champion.
        n_users = client.get("/model").json()["n_users"]
        pattern = f"{model_key_prefix(model_name=name, model_version=v1)}:u*:k10"
        wait_for(lambda: len(cache.keys(pattern)) >= n_users, what="the v1 warm-up")

        v2 = promote_copy(settings, v1)
        wait_for(lambda: client.get("/model").json()["version"] == v2, what=f"the API to serve v{v2}")
        after = _recommend(client, user)
        assert after["model_version"] == v2
        assert cache.exists(recommendation_key(model_name=name, model_version=v2, user_id=user, k=10))
        pattern = f"{model_key_prefix(model_name=name, model_version=v2)}:u*:k10"
        wait_for(lambda: len(cache.keys(pattern)) >= n_users, what="the v2 warm-up")
        # A brand-new k is a brand-new key: computed by the model, then cached.
        fresh = _recommend(client, user, k=7)
        assert fresh["source"] == "model" and fresh["model_version"] == v2

    store = MovieStore.from_url(fresh_pg_database)
    history = store.deployments(model_name=settings.model_name)
    store.engine.dispose()
    assert [d.model_version for d in history] == [v1, v2]
    assert history[0].served_until is not None and history[0].served_until <= history[1].served_from
    assert history[1].served_until is not None, "closed when the API stopped"


def test_redis_stopped_and_restarted(trained_on_server, throwaway_redis, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The in-process LRU off: it would answer the repeated users from memory through the
    # outage (test_an_lru_hit_outlives_a_redis_outage), and this test is about Redis.
    # The breaker's window outlasts the test, so what reaches the dead Redis is counted
    # exactly, whatever the machine's speed; the readiness probe's good ping closes it
    # when Redis is back (serving/health_checks.py). The half-open probe at the end of a
    # window is test_breaker.py's.
    settings = trained_on_server.settings(
        REDIS_URL=throwaway_redis.url, CACHE_RETRY_SECONDS=600, CACHE_WARM_ON_SWAP=False, HIT_CACHE_ENTRIES=0
    )
    with TestClient(create_app(settings)) as client:
        _recommend(client, 3)
        assert _recommend(client, 3)["source"] == "cache"
        cache = client.app.state.filmrec.cache  # type: ignore[attr-defined]
        # Every command the cache sends to Redis (get and set both go through it).
        reached: list[object] = []
        send = cache.client.execute_command

        def counted(*args: Any, **options: Any) -> Any:
            reached.append(args[0])
            return send(*args, **options)

        monkeypatch.setattr(cache.client, "execute_command", counted)

        throwaway_redis.stop()
        errors_before = metric_value(client, "filmrec_cache_requests_total", result="error")
        for user in (3, 4, 5, 6, 3, 4, 5, 6):
            body = _recommend(client, user)
            assert body["source"] == "model" and body["items"]
        # Bounded by the breaker: the first lookup met the dead Redis and opened it; the
        # seven requests after it, and every write-back, never reached Redis (no timeout each).
        assert reached == ["GET"], reached
        assert cache.breaker.is_open and cache.breaker.last_error
        assert metric_value(client, "filmrec_cache_requests_total", result="error") >= errors_before + 8
        ready = _ready(client)
        assert ready["status"] == "degraded" and ready["by_name"]["cache"]["status"] == "down"
        assert metric_value(client, "filmrec_dependency_up", dependency="cache") == 0

        throwaway_redis.start()

        def cache_used_again() -> bool:
            _ready(client)  # what a deployment's readiness probe does every few seconds
            _recommend(client, 8)
            return _recommend(client, 8)["source"] == "cache"

        wait_for(cache_used_again, timeout=15, what="the API to use Redis again")
        assert not cache.breaker.is_open
        assert _ready(client)["by_name"]["cache"]["status"] == "up"
        assert metric_value(client, "filmrec_dependency_up", dependency="cache") == 1


def test_an_lru_hit_outlives_a_redis_outage(trained_on_server, throwaway_redis) -> None:  # type: ignore[no-untyped-def]
    settings = trained_on_server.settings(
        REDIS_URL=throwaway_redis.url,
        CACHE_RETRY_SECONDS=0.5,
        CACHE_WARM_ON_SWAP=False,
        HIT_CACHE_TTL_SECONDS=600,
    )
    with TestClient(create_app(settings)) as client:
        first = _recommend(client, 3)
        throwaway_redis.stop()
        # The body this process holds is still the right one: same model version, and the
        # online state unreadable degrades to the model alone (state version 0) either way.
        during = _recommend(client, 3)
        assert during["source"] == "cache" and during["items"] == first["items"]
        assert _recommend(client, 4)["source"] == "model"  # never seen: computed, not failed


def test_postgres_stopped(spark, trained_on_server, throwaway_postgres, redis_url) -> None:  # type: ignore[no-untyped-def]
    from filmrec.pipeline import sync_metadata

    database_url = throwaway_postgres.url(user="filmrec", password="filmrec", database="filmrec")
    settings = trained_on_server.settings(DATABASE_URL=database_url, REDIS_URL=redis_url)
    sync_metadata(spark, settings)
    with TestClient(create_app(settings)) as client:
        assert _ready(client)["by_name"]["database"]["status"] == "up"
        assert all(item["title"] for item in _recommend(client, 10, k=5)["items"])

        throwaway_postgres.stop(mode="immediate")
        ready = _ready(client)
        assert ready["status"] == "degraded"
        assert ready["by_name"]["database"]["status"] == "down" and ready["by_name"]["database"]["detail"]
        assert ready["by_name"]["cache"]["status"] == "up"
        # Cached lists are still served whole; new ones come from the model without titles.
        assert _recommend(client, 10, k=5)["source"] == "cache"
        body = _recommend(client, 11, k=5)
        assert body["source"] == "model" and len(body["items"]) == 5
        assert _recommend(client, UNKNOWN_USER)["strategy"] == "popular"
        assert client.get("/movies/1").status_code == 503
        assert metric_value(client, "filmrec_dependency_up", dependency="database") == 0


def _champion_on(server_uri: str, source: Any, name: str) -> str:
    """Copy the shared server's champion into another MLflow server; its version there."""
    import mlflow
    from mlflow import MlflowClient

    local = mlflow.artifacts.download_artifacts(
        f"models:/{name}@champion", tracking_uri=source.mlflow_tracking_uri
    )
    client = MlflowClient(server_uri, registry_uri=server_uri)  # not the process-wide registry URI
    experiment = client.create_experiment("outage")
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, local, artifact_path="model")
    client.set_terminated(run.info.run_id)
    client.create_registered_model(name)
    # The same artifacts, so the same hash: the API checks it before serving.
    shared = MlflowClient(source.mlflow_tracking_uri, registry_uri=source.mlflow_tracking_uri)
    digest = shared.get_model_version_by_alias(name, "champion").tags[TAG_ARTIFACTS_SHA256]
    version = client.create_model_version(
        name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id, tags={TAG_ARTIFACTS_SHA256: digest}
    ).version
    client.set_registered_model_alias(name, "champion", version)
    return str(version)


def test_a_stopped_mlflow_server_keeps_the_model_serving(trained_on_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A real outage: the API's registry (an MLflow server of this test's own) is stopped,
    the served model goes on answering, and when the server is back the poller sees it."""
    from devstack.processes import free_port
    from devstack.services import MlflowServer

    server = MlflowServer(tmp_path / "mlflow", free_port(), f"sqlite:///{tmp_path / 'mlflow.db'}")
    server.start()
    try:
        base = trained_on_server.settings()
        version = _champion_on(server.url, base, base.model_name)
        settings = base.model_copy(update={"mlflow_tracking_uri": server.url})
        with TestClient(create_app(settings)) as client:
            assert client.get("/model").json()["version"] == version
            loader = client.app.state.filmrec.loader  # type: ignore[attr-defined]
            failures_before = metric_value(client, "filmrec_model_reload_failures_total")
            server.stop()
            wait_for(lambda: loader.last_error, timeout=30, what="a failed registry poll")
            assert _recommend(client, 3)["model_version"] == version
            ready = _ready(client)
            assert ready["status"] == "degraded" and ready["by_name"]["model_registry"]["status"] == "down"
            assert metric_value(client, "filmrec_model_reload_failures_total") > failures_before
            server.start()  # back: the next poll clears the error by itself
            wait_for(lambda: loader.last_error is None, timeout=60, what="the registry to be seen again")
            assert _ready(client)["by_name"]["model_registry"]["status"] == "up"
    finally:
        server.stop()


def test_ready_reports_kafka_when_configured(trained_on_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from confluent_kafka import admin

    from devstack.processes import free_port

    # Every metadata request the probe makes, with the bound it passes to librdkafka.
    # (The method is wrapped, not the class: AdminClient's methods name their class.)
    bounds: list[float] = []
    list_topics = admin.AdminClient.list_topics

    def recorded(self: Any, *args: Any, **kwargs: Any) -> Any:
        bounds.append(kwargs["timeout"])
        return list_topics(self, *args, **kwargs)

    monkeypatch.setattr(admin.AdminClient, "list_topics", recorded)
    settings = trained_on_server.settings(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    with TestClient(create_app(settings)) as client:
        kafka = _ready(client)["by_name"]["kafka"]
        # Bounded: one metadata request, with the dependency timeout as its limit.
        assert bounds == [settings.dependency_timeout_seconds]
        assert kafka["status"] == "down" and kafka["latency_ms"] is not None and kafka["detail"]
        assert metric_value(client, "filmrec_dependency_up", dependency="kafka") == 0


def test_the_dag_warm_task_fills_redis(spark, trained_on_server, fresh_pg_database, redis_url) -> None:  # type: ignore[no-untyped-def]
    """als_training's warm_cache task on the platform: the champion's lists land in Redis."""
    import redis

    from filmrec.orchestration.tasks import warm_serving_cache
    from filmrec.pipeline import sync_metadata

    # No warm-up by the API itself: whatever is cached below came from the task.
    settings = trained_on_server.settings(
        DATABASE_URL=fresh_pg_database, REDIS_URL=redis_url, CACHE_WARM_ON_SWAP=False
    )
    sync_metadata(spark, settings)  # the DAG's sync_movie_metadata runs before warm_cache
    cache = redis.Redis.from_url(redis_url)
    # Lists earlier tests cached for this model (the shared trained model and Redis) go
    # first: what is counted below is the task's alone.
    for key in cache.scan_iter(f"{model_key_prefix(model_name=settings.model_name, model_version='*')}:*"):
        cache.delete(key)
    outcome = warm_serving_cache(settings)
    assert outcome["warmed"], outcome
    report = outcome["outcome"]
    assert report["entries"] == report["users"] > 0 and report["k"] == settings.cache_warm_k

    prefix = model_key_prefix(model_name=settings.model_name, model_version=report["model_version"])
    assert len(list(cache.scan_iter(f"{prefix}:u*:k{report['k']}"))) == report["entries"]
    with TestClient(create_app(settings)) as client:
        assert client.get("/model").json()["version"] == report["model_version"]
        assert _recommend(client, 1, k=report["k"])["source"] == "cache"
