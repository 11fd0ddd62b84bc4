"""API keys, the per-key rate limit, the body size limit and CORS, on the real app (no lifespan).

POST /ratings is the write under test: its intake is replaced by one that accepts
everything, so only the security layers decide the answer.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from filmrec.config import Settings
from filmrec.serving import deps, metrics
from filmrec.serving.api_keys import (
    ApiKeyConfigError,
    ApiKeyring,
    ExposedDemoKeyError,
    hash_key,
    new_key,
    parse_keys,
)
from filmrec.serving.app import create_app
from filmrec.serving.rate_limit import KeyRateLimiter
from filmrec.serving.server import serve
from tests.fake_intake import AcceptAll

RATING = {"user_id": 1, "movie_id": 2, "rating": 4.5}


def make_app(tmp_path: Path, **settings: Any) -> FastAPI:
    app = create_app(Settings(_env_file=None, FILMREC_VAR_DIR=tmp_path / "var", **settings))
    app.dependency_overrides[deps.get_rating_intake] = lambda: AcceptAll()
    # No lifespan runs: reads find no model and answer 503, once past the key check.
    app.state.filmrec = SimpleNamespace(holder=SimpleNamespace(current=None))
    return app


def counter(client: TestClient, name: str, **labels: str) -> float:
    """A counter's value in /metrics (0 when the series does not exist yet)."""
    selector = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    pattern = rf"^{name}(?:\{{{re.escape(selector)}\}})? (\S+)$" if labels else rf"^{name} (\S+)$"
    found = re.search(pattern, client.get("/metrics").text, re.M)
    return float(found[1]) if found else 0.0


# --- keys -------------------------------------------------------------------------------


def test_hash_key_is_the_hex_sha256_and_new_keys_are_random() -> None:
    assert hash_key("demo") == "2a97516c354b68848cdbd8f54a226a0a55b21ed138e207ad6c5cbb9c00aa5aea"
    first, second = new_key(), new_key()
    assert first != second and len(first) >= 43


def test_parse_keys_reads_several_entries_and_refuses_malformed_ones() -> None:
    keys = parse_keys(f"web:{hash_key('a')}, batch:{hash_key('b').upper()}")
    assert [key.name for key in keys] == ["web", "batch"]
    for bad in (
        "web",
        f"web:{hash_key('a')[:-1]}",
        f":{hash_key('a')}",
        f"a:{hash_key('a')},a:{hash_key('b')}",
    ):
        with pytest.raises(ApiKeyConfigError):
            parse_keys(bad)
    with pytest.raises(ApiKeyConfigError):
        create_app(Settings(_env_file=None, FILMREC_API_KEYS="web:not-a-hash"))


def test_the_demo_key_works_only_while_no_key_is_configured() -> None:
    assert ApiKeyring((), demo_key="demo").identify("demo") == "demo"
    configured = ApiKeyring(parse_keys(f"web:{hash_key('s3cret')}"), demo_key="demo")
    assert configured.identify("demo") is None and not configured.demo
    assert configured.identify("s3cret") == "web"
    disabled = ApiKeyring((), demo_key="")
    assert disabled.identify("demo") is None and disabled.keys == ()


def test_a_write_without_a_key_is_401_a_wrong_key_403_and_both_are_counted(tmp_path: Path) -> None:
    client = TestClient(make_app(tmp_path))
    missing_before = counter(client, "filmrec_auth_failures_total", reason="missing")
    invalid_before = counter(client, "filmrec_auth_failures_total", reason="invalid")

    missing = client.post("/ratings", json=RATING)
    assert missing.status_code == 401 and "X-API-Key" in missing.json()["detail"]
    assert "demo" in missing.json()["detail"]  # the embedded default says which key it takes
    wrong = client.post("/ratings", json=RATING, headers={"X-API-Key": "guess"})
    assert wrong.status_code == 403 and "invalid API key" in wrong.json()["detail"]
    assert client.post("/ratings", json=RATING, headers={"X-API-Key": "demo"}).status_code == 202

    assert counter(client, "filmrec_auth_failures_total", reason="missing") == missing_before + 1
    assert counter(client, "filmrec_auth_failures_total", reason="invalid") == invalid_before + 1


def test_rotation_accepts_old_and_new_key_then_only_the_new_one(tmp_path: Path) -> None:
    old, new = new_key(), new_key()
    during = TestClient(make_app(tmp_path, FILMREC_API_KEYS=f"web:{hash_key(old)},web-2:{hash_key(new)}"))
    for key in (old, new):
        assert during.post("/ratings", json=RATING, headers={"X-API-Key": key}).status_code == 202
    assert during.post("/ratings", json=RATING, headers={"X-API-Key": "demo"}).status_code == 403
    after = TestClient(make_app(tmp_path, FILMREC_API_KEYS=f"web-2:{hash_key(new)}"))
    assert after.post("/ratings", json=RATING, headers={"X-API-Key": new}).status_code == 202
    assert after.post("/ratings", json=RATING, headers={"X-API-Key": old}).status_code == 403


def test_each_rating_records_the_name_of_the_key_that_wrote_it(tmp_path: Path) -> None:
    web, shop = new_key(), new_key()
    app = make_app(tmp_path, FILMREC_API_KEYS=f"web:{hash_key(web)},shop-backend:{hash_key(shop)}")
    intake = AcceptAll()
    app.dependency_overrides[deps.get_rating_intake] = lambda: intake
    client = TestClient(app)
    for key in (web, shop):
        assert client.post("/ratings", json=RATING, headers={"X-API-Key": key}).status_code == 202
    assert [event.written_by for event in intake.accepted] == ["web", "shop-backend"]
    assert all(key not in event.model_dump_json() for event in intake.accepted for key in (web, shop))
    # The writer is the key's, never the client's word.
    claimed = client.post("/ratings", json=RATING | {"written_by": "web"}, headers={"X-API-Key": shop})
    assert claimed.status_code == 422 and "written_by" in claimed.json()["detail"]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "api.example.org"])
def test_the_demo_key_on_a_reachable_address_stops_the_start(tmp_path: Path, host: str) -> None:
    with pytest.raises(ExposedDemoKeyError, match="FILMREC_ALLOW_DEMO_KEY_ON_NETWORK"):
        make_app(tmp_path, API_HOST=host)
    with pytest.raises(ExposedDemoKeyError):
        serve(Settings(_env_file=None, API_HOST=host))  # before uvicorn starts anything


@pytest.mark.parametrize(
    "settings",
    [
        {"API_HOST": "127.0.0.1"},
        {"API_HOST": "::1"},
        {"API_HOST": "localhost"},
        {"API_HOST": "0.0.0.0", "FILMREC_ALLOW_DEMO_KEY_ON_NETWORK": "true"},
        {"API_HOST": "0.0.0.0", "FILMREC_DEMO_API_KEY": ""},  # Compose: the demo key off
        {"API_HOST": "0.0.0.0", "FILMREC_API_KEYS": f"web:{hash_key('s3cret')}"},  # ignored then
    ],
)
def test_the_demo_key_starts_on_loopback_or_when_allowed(tmp_path: Path, settings: dict[str, str]) -> None:
    make_app(tmp_path, **settings)


def test_with_no_key_and_no_demo_key_every_write_is_refused(tmp_path: Path) -> None:
    client = TestClient(make_app(tmp_path, FILMREC_DEMO_API_KEY=""))
    response = client.post("/ratings", json=RATING, headers={"X-API-Key": "demo"})
    assert response.status_code == 403 and "accepts no key" in response.json()["detail"]


def test_reads_are_open_by_default_and_keyed_on_request(tmp_path: Path) -> None:
    open_reads = TestClient(make_app(tmp_path))
    assert open_reads.get("/model").status_code == 503  # no model: past the (absent) key check
    assert "security" not in open_reads.get("/openapi.json").json()["paths"]["/model"]["get"]

    keyed = TestClient(make_app(tmp_path, FILMREC_API_KEYS_FOR_READS=True))
    assert keyed.get("/recommendations/1").status_code == 401
    assert keyed.get("/movies/1", headers={"X-API-Key": "nope"}).status_code == 403
    assert keyed.get("/model", headers={"X-API-Key": "demo"}).status_code == 503  # keyed, no model
    assert keyed.get("/health").status_code == 200  # liveness and metrics stay open
    operation = keyed.get("/openapi.json").json()["paths"]["/model"]["get"]
    assert operation["security"] == [{"ApiKey": []}] and {"401", "403"} <= set(operation["responses"])


# --- rate limit -------------------------------------------------------------------------


def test_over_the_limit_answers_429_with_retry_after_per_key(tmp_path: Path) -> None:
    keys = f"a:{hash_key('key-a')},b:{hash_key('key-b')}"
    client = TestClient(make_app(tmp_path, FILMREC_API_KEYS=keys, FILMREC_RATE_LIMIT="2/minute"))
    limited_before = counter(client, "filmrec_rate_limited_total", scope="write")
    a = {"X-API-Key": "key-a"}
    assert [client.post("/ratings", json=RATING, headers=a).status_code for _ in range(2)] == [202, 202]
    refused = client.post("/ratings", json=RATING, headers=a)
    assert refused.status_code == 429 and "2/minute" in refused.json()["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Another key has a budget of its own.
    assert client.post("/ratings", json=RATING, headers={"X-API-Key": "key-b"}).status_code == 202
    assert counter(client, "filmrec_rate_limited_total", scope="write") == limited_before + 1


@pytest.mark.parametrize("strategy", ["moving-window", "fixed-window"])
def test_the_limiter_counts_per_key_in_memory(strategy: str) -> None:
    limiter = KeyRateLimiter("3/hour", strategy=strategy)
    assert [limiter.check("k").allowed for _ in range(4)] == [True, True, True, False]
    refused = limiter.check("k")
    assert not refused.allowed and 1 <= refused.retry_after_seconds <= 3600
    assert limiter.check("other").allowed


def test_a_storage_that_fails_lets_requests_through_and_counts_it() -> None:
    class BrokenStorage:
        def __getattr__(self, _name: str) -> Any:
            raise ConnectionError("redis is down")

    limiter = KeyRateLimiter("1/hour")
    limiter.strategy.storage = BrokenStorage()  # type: ignore[assignment]
    errors_before = metrics.RATE_LIMIT_ERRORS._value.get()
    assert all(limiter.check("k").allowed for _ in range(3))  # never a 429, never a 500
    assert metrics.RATE_LIMIT_ERRORS._value.get() == errors_before + 3
    assert limiter.breaker.is_open  # the next ones fail fast instead of waiting on Redis


def test_a_bad_limit_stops_the_app_at_build_time() -> None:
    with pytest.raises(ValueError, match="rate limit"):
        create_app(Settings(_env_file=None, FILMREC_RATE_LIMIT="lots"))


# --- body size and CORS -----------------------------------------------------------------


def test_a_body_over_the_limit_answers_413_before_parsing(tmp_path: Path) -> None:
    client = TestClient(make_app(tmp_path, FILMREC_MAX_BODY_BYTES=1024))
    big = b'{"user_id": 1, "movie_id": 2, "rating": 4.5, "pad": "' + b"x" * 2000 + b'"}'
    headers = {"X-API-Key": "demo", "Content-Type": "application/json"}
    response = client.post("/ratings", content=big, headers=headers)
    assert response.status_code == 413 and "at most 1024 bytes" in response.json()["detail"]

    def chunks() -> Any:  # no Content-Length: the middleware counts as it reads
        yield big[:600]
        yield big[600:]

    assert client.post("/ratings", content=chunks(), headers=headers).status_code == 413
    small = client.post("/ratings", json=RATING, headers={"X-API-Key": "demo"})
    assert small.status_code == 202


def test_a_small_chunked_body_reaches_the_route(tmp_path: Path) -> None:
    client = TestClient(make_app(tmp_path, FILMREC_MAX_BODY_BYTES=1024))

    def chunks() -> Any:
        yield b'{"user_id": 1, "movie_id": 2,'
        yield b' "rating": 4.5}'

    headers = {"X-API-Key": "demo", "Content-Type": "application/json"}
    assert client.post("/ratings", content=chunks(), headers=headers).status_code == 202


def test_cors_is_off_by_default(tmp_path: Path) -> None:
    client = TestClient(make_app(tmp_path))
    response = client.get("/health", headers={"Origin": "https://films.example"})
    assert "access-control-allow-origin" not in response.headers
    preflight = client.options(
        "/ratings", headers={"Origin": "https://films.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_allows_the_configured_origins_and_the_key_header(tmp_path: Path) -> None:
    client = TestClient(
        make_app(tmp_path, FILMREC_CORS_ORIGINS="https://films.example, http://localhost:5173")
    )
    preflight = client.options(
        "/ratings",
        headers={
            "Origin": "https://films.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://films.example"
    assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()
    simple = client.get("/health", headers={"Origin": "http://localhost:5173"})
    assert simple.headers["access-control-allow-origin"] == "http://localhost:5173"
    other = client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


# --- the documented contract --------------------------------------------------------------


def test_bad_bodies_get_the_documented_error_bodies(tmp_path: Path) -> None:
    from filmrec.serving.schemas import ErrorOut, ValidationErrorOut

    client = TestClient(make_app(tmp_path))
    demo = {"X-API-Key": "demo"}
    invalid = client.post("/ratings", json={**RATING, "rating": 4.2}, headers=demo)
    assert invalid.status_code == 422
    assert "multiple of 0.5" in ValidationErrorOut.model_validate(invalid.json()).detail
    not_json = client.post("/ratings", content=b"\xff\xfe", headers={**demo, "Content-Type": "text/plain"})
    assert not_json.status_code == 422 and ValidationErrorOut.model_validate(not_json.json()).errors
    # Not UTF-8 at all: FastAPI cannot even decode it; a documented 400.
    undecodable = client.post(
        "/ratings", content=b"\xff\xfe{", headers={**demo, "Content-Type": "application/json"}
    )
    assert undecodable.status_code == 400 and ErrorOut.model_validate(undecodable.json()).detail


def test_the_openapi_document_states_the_rating_rule_and_the_error_bodies(tmp_path: Path) -> None:
    spec = TestClient(make_app(tmp_path)).get("/openapi.json").json()
    rating = spec["components"]["schemas"]["RatingIn"]["properties"]["rating"]
    assert (rating["minimum"], rating["maximum"], rating["multipleOf"]) == (0.5, 5.0, 0.5)
    post = spec["paths"]["/ratings"]["post"]
    assert post["security"] == [{"ApiKey": []}]
    assert {"202", "400", "401", "403", "413", "422", "429", "503"} == set(post["responses"])
    assert "Retry-After" in post["responses"]["429"]["headers"]
    for path in spec["paths"].values():
        for operation in path.values():
            for status, response in operation["responses"].items():
                schema = response.get("content", {}).get("application/json", {}).get("schema", {})
                if status == "422":
                    assert schema == {"$ref": "#/components/schemas/ValidationErrorOut"}
                elif status in {"400", "401", "403", "404", "413", "429"}:
                    assert schema == {"$ref": "#/components/schemas/ErrorOut"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_the_cli_prints_a_new_key_and_the_entry_that_accepts_it(capsys: pytest.CaptureFixture[str]) -> None:
    from filmrec.cli import main

    assert main(["api-key", "new", "web"]) == 0
    out = capsys.readouterr().out
    key = re.search(r"key \(.*\): (\S+)", out)
    entry = re.search(r"FILMREC_API_KEYS entry: (\S+)", out)
    assert key and entry and entry[1].startswith("web:")
    assert ApiKeyring(parse_keys(entry[1])).identify(key[1]) == "web"
