"""A real Prometheus (the Debian package) scrapes the API, and every Grafana panel query has data.

The API runs as a real uvicorn server; Prometheus gets a generated config with the
same job name as prometheus/prometheus.native.yml and a 1 s scrape interval.
"""

from __future__ import annotations

import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from filmrec.ingestion.ingest_status import RunState, RunStatus
from filmrec.ingestion.topics import ensure_topic
from filmrec.serving.app import create_app
from tests.conftest import require
from tests.integration.service_helpers import DEMO_KEY, ServerThread, wait_for
from tests.static.grafana_queries import API_METRICS, HISTOGRAMS, panel_queries

REPO = Path(__file__).resolve().parents[2]

# Every panel must have data; the ingestion panels get theirs from the status file a
# Kafka -> Delta run leaves (written below by the job's own bookkeeping).
# A ratio over 5xx responses has no series until the API has answered a 5xx, which
# this test does not provoke (other tests in the same process may have: the metrics
# registry is per process). So it may be empty, or not.
MAY_BE_EMPTY = {"5xx ratio"}

# Every series dashboards and alerts may query (API_METRICS, histograms by their
# buckets): the same list the static checks hold the dashboards and alerts to.
SERIES = sorted(
    {name for name in API_METRICS if name not in HISTOGRAMS} | {f"{name}_bucket" for name in HISTOGRAMS}
)


def _prometheus_config(directory: Path, api_port: int, prometheus_port: int) -> Path:
    """prometheus.native.yml with our ports and a fast scrape; the alert rules load as well."""
    config = yaml.safe_load((REPO / "prometheus" / "prometheus.native.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    for job in config["scrape_configs"]:
        port = api_port if job["job_name"] == "filmrec-api" else prometheus_port
        for static in job["static_configs"]:
            static["targets"] = [f"127.0.0.1:{port}"]
    shutil.copy(REPO / "prometheus" / "alerts.yml", directory / "alerts.yml")
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    return body["data"]["result"]


def _traffic(api: str, users: list[int]) -> None:
    with httpx.Client(base_url=api, timeout=10) as client:
        # A rating, then that user's list: the real-time loop's series get data.
        rating = {"user_id": users[0], "movie_id": 1 + users[0], "rating": 4.0}
        assert client.post("/ratings", headers=DEMO_KEY, json=rating).status_code == 202
        for user in users:
            assert client.get(f"/recommendations/{user}").status_code == 200  # model, then cache
            assert client.get(f"/recommendations/{user}").status_code == 200
        assert client.get("/recommendations/999999").json()["strategy"] == "popular"
        assert client.get("/movies/1").status_code == 200
        assert client.get("/movies/1/similar", params={"k": 3}).status_code == 200
        assert client.get("/movies/999999999").status_code == 404
        assert client.get("/recommendations/1", params={"k": 0}).status_code == 422
        assert client.get("/model").status_code == 200
        assert client.get("/ready").status_code == 200


def test_prometheus_scrapes_the_api_and_grafana_panels_have_data(
    spark,  # type: ignore[no-untyped-def]
    trained_on_server,
    fresh_pg_database,
    redis_url,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    from devstack.processes import free_port
    from devstack.services import PrometheusServer
    from filmrec.lakehouse.tables import LakehouseTables
    from filmrec.pipeline import sync_metadata

    require(shutil.which("prometheus") is not None, "`prometheus` (apt-get install -y prometheus)")
    settings = trained_on_server.settings(
        DATABASE_URL=fresh_pg_database,
        REDIS_URL=redis_url,
        CACHE_WARM_ON_SWAP=False,
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        KAFKA_RATINGS_TOPIC=f"ratings-prometheus-{uuid.uuid4().hex[:10]}",
    )
    ensure_topic(settings)
    sync_metadata(spark, settings)
    # A continuous ingestion run just after a micro-batch, written by the job's own
    # bookkeeping so that the format cannot drift from what the job writes.
    RunStatus(LakehouseTables(settings.lakehouse_path).ingestion_status, mode="continuous").publish(
        state=RunState.RUNNING,
        counts={"read": 120, "written": 110, "duplicates": 8, "quarantined": 2, "batches": 4, "lag": 3},
        success=True,
        last_batch_seconds=1.5,
        last_batch_at=datetime.now(UTC).isoformat(),
    )
    api_port, prometheus_port = free_port(), free_port()
    config = _prometheus_config(tmp_path, api_port, prometheus_port)
    prometheus = PrometheusServer(tmp_path, prometheus_port, config)
    with ServerThread(create_app(settings), api_port) as api:
        prometheus.start()
        try:
            wait_for(
                lambda: _query(prometheus.url, 'up{job="filmrec-api"} == 1'),
                timeout=30,
                what="Prometheus to scrape the API",
            )
            # Traffic spread over several scrapes, so rate() and histogram_quantile() have data.
            deadline = time.monotonic() + 6
            round_ = 0
            while time.monotonic() < deadline:
                _traffic(api.url, [1 + round_ * 3, 2 + round_ * 3, 3 + round_ * 3])
                round_ += 1
                time.sleep(0.5)
            time.sleep(2.5)  # two more scrapes after the last request

            for name in SERIES:
                assert _query(prometheus.url, name), f"{name} is not in Prometheus"
            strategies = {
                r["metric"]["strategy"]
                for r in _query(prometheus.url, "filmrec_recommendations_served_total")
            }
            assert {"model", "fold-in", "cache", "popular"} <= strategies
            routes = {r["metric"]["route"] for r in _query(prometheus.url, "filmrec_http_requests_total")}
            assert "/recommendations/{user_id}" in routes, "route templates, not raw paths"
            assert not any(route.startswith("/recommendations/1") for route in routes)

            empty = {}
            for panel in panel_queries():
                if panel.panel not in MAY_BE_EMPTY and not _query(prometheus.url, panel.expr):
                    empty[panel.panel] = panel.expr
            assert not empty, f"panels without data: {empty}"
        finally:
            prometheus.stop()
