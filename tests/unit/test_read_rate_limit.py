"""The per-client read rate limit: who a read counts against, the 429, and the proxy's word.

The app runs without its lifespan: reads find no model and answer 503 once past the
limit, so the status says whether the limit let the request through.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from filmrec.config import Settings
from filmrec.serving import jvm_guard
from filmrec.serving.api_keys import ApiKeyring, hash_key, parse_keys
from filmrec.serving.app import create_app
from filmrec.serving.rate_limit import KeyRateLimiter, read_client
from filmrec.serving.server import proxy_options, serve

KEYS = f"web:{hash_key('key-web')},shop:{hash_key('key-shop')}"
PROXY, CLIENT, OTHER = "127.0.0.1", "203.0.113.7", "198.51.100.9"


def make_app(tmp_path: Path, **settings: Any) -> FastAPI:
    app = create_app(Settings(_env_file=None, FILMREC_VAR_DIR=tmp_path / "var", **settings))
    # No model: 503 (the service is never reached).
    app.state.filmrec = SimpleNamespace(holder=SimpleNamespace(current=None), recommendations=None)
    return app


# --- whom a read counts against ----------------------------------------------------------


def test_a_read_counts_against_the_key_name_when_the_key_is_valid_else_the_address() -> None:
    keyring = ApiKeyring(parse_keys(KEYS))
    assert read_client("key-web", CLIENT, keyring) == "key:web"
    assert read_client("key-shop", OTHER, keyring) == "key:shop"
    # A made-up key buys no budget of its own: the address pays.
    assert read_client("guess", CLIENT, keyring) == f"address:{CLIENT}"
    assert read_client(None, CLIENT, keyring) == read_client("", CLIENT, keyring) == f"address:{CLIENT}"
    assert read_client(None, None, keyring) == "address:unknown"


def test_a_key_named_like_an_address_does_not_share_that_address_budget() -> None:
    keyring = ApiKeyring(parse_keys(f"10.0.0.1:{hash_key('k')}"))
    assert read_client("k", "10.0.0.1", keyring) != read_client(None, "10.0.0.1", keyring)


def test_reads_use_a_fixed_window_whatever_the_write_strategy() -> None:
    settings = Settings(_env_file=None, FILMREC_READ_RATE_LIMIT="5/second")
    limiter = KeyRateLimiter.from_settings(settings, scope="read")
    assert (limiter.scope, limiter.limit, type(limiter.strategy).__name__) == (
        "read",
        "5/second",
        "FixedWindowRateLimiter",
    )
    assert KeyRateLimiter.from_settings(settings).scope == "write"  # the writes' limiter is apart
    with pytest.raises(ValueError, match="read rate limit"):
        KeyRateLimiter.from_settings(Settings(_env_file=None, FILMREC_READ_RATE_LIMIT="lots"), scope="read")


def test_an_empty_read_limit_turns_it_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FILMREC_READ_RATE_LIMIT", "")
    settings = Settings(_env_file=None, FILMREC_VAR_DIR=tmp_path / "var")
    assert settings.read_rate_limit == ""
    app = make_app(tmp_path, FILMREC_READ_RATE_LIMIT="")
    assert app.state.read_limiter is None
    client = TestClient(app)
    assert {client.get("/model").status_code for _ in range(5)} == {503}
    assert "429" not in client.get("/openapi.json").json()["paths"]["/model"]["get"]["responses"]


# --- the 429 -----------------------------------------------------------------------------


def test_over_the_read_limit_a_read_answers_429_with_retry_after(tmp_path: Path) -> None:
    client = TestClient(make_app(tmp_path, FILMREC_API_KEYS=KEYS, FILMREC_READ_RATE_LIMIT="2/minute"))
    assert [client.get("/model").status_code for _ in range(2)] == [503, 503]
    refused = client.get("/movies/1")
    assert refused.status_code == 429
    assert "2/minute" in refused.json()["detail"] and "reads per client" in refused.json()["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # A valid key has a budget of its own; an invalid one is the address's.
    assert client.get("/model", headers={"X-API-Key": "key-web"}).status_code == 503
    assert client.get("/model", headers={"X-API-Key": "guess"}).status_code == 429
    # Writes, health and metrics are not reads.
    assert client.get("/health").status_code == 200


def test_the_hit_fast_path_counts_each_request_once_and_refuses_as_the_route_does(tmp_path: Path) -> None:
    client = TestClient(make_app(tmp_path, FILMREC_READ_RATE_LIMIT="2/minute"))
    # The common shape: counted by the fast path, handed on to FastAPI (no model), not
    # counted again there, or the second request would already be refused.
    assert [client.get("/recommendations/1").status_code for _ in range(2)] == [503, 503]
    fast = client.get("/recommendations/1?k=5")  # refused by the fast path
    routed = client.get("/recommendations/1?genre=Drama")  # refused by the route's dependency
    assert fast.status_code == routed.status_code == 429
    assert fast.json() == routed.json()
    assert fast.headers["Retry-After"] and routed.headers["Retry-After"]
    assert "/recommendations/{user_id}" in client.get("/metrics").text


def test_the_read_operations_document_the_429_and_its_retry_after(tmp_path: Path) -> None:
    spec = TestClient(make_app(tmp_path)).get("/openapi.json").json()
    for path in ("/recommendations/{user_id}", "/movies/{movie_id}", "/movies", "/model"):
        operation = spec["paths"][path]["get"]
        assert "Retry-After" in operation["responses"]["429"]["headers"], path
        assert "FILMREC_READ_RATE_LIMIT" in operation["responses"]["429"]["description"]
        assert "security" not in operation  # reads stay open: the limit is not a key check
    assert "429" not in spec["paths"]["/health"]["get"]["responses"]
    assert "FILMREC_RATE_LIMIT)" in spec["paths"]["/ratings"]["post"]["responses"]["429"]["description"]
    explain = next(
        parameter
        for parameter in spec["paths"]["/recommendations/{user_id}"]["get"]["parameters"]
        if parameter["name"] == "explain"
    )
    assert "FILMREC_API_KEYS_FOR_READS" in explain["description"]


def test_with_keyed_reads_a_missing_key_is_401_before_any_budget_is_spent(tmp_path: Path) -> None:
    client = TestClient(
        make_app(
            tmp_path,
            FILMREC_API_KEYS=KEYS,
            FILMREC_API_KEYS_FOR_READS=True,
            FILMREC_READ_RATE_LIMIT="1/minute",
        )
    )
    assert {client.get("/model").status_code for _ in range(3)} == {401}
    web = {"X-API-Key": "key-web"}
    assert [client.get("/model", headers=web).status_code for _ in range(2)] == [503, 429]
    operation = client.get("/openapi.json").json()["paths"]["/model"]["get"]
    assert {"401", "403", "429"} <= set(operation["responses"])


# --- the forwarded address ---------------------------------------------------------------


def behind_uvicorn(app: FastAPI, settings: Settings, peer: str) -> TestClient:
    """The app as uvicorn serves it with proxy_options, reached from `peer`."""
    options = proxy_options(settings)
    assert options["proxy_headers"] is True
    proxied = ProxyHeadersMiddleware(app, trusted_hosts=options["forwarded_allow_ips"])  # type: ignore[arg-type]
    return TestClient(proxied, client=(peer, 40000))  # type: ignore[arg-type]


def test_the_forwarded_address_is_believed_from_the_allowed_proxy_only(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, FILMREC_READ_RATE_LIMIT="1/minute")
    assert settings.forwarded_allow_ips == "127.0.0.1"  # loopback only by default
    app = make_app(tmp_path, FILMREC_READ_RATE_LIMIT="1/minute")

    proxy = behind_uvicorn(app, settings, PROXY)
    assert proxy.get("/model", headers={"X-Forwarded-For": CLIENT}).status_code == 503
    assert proxy.get("/model", headers={"X-Forwarded-For": CLIENT}).status_code == 429
    # Another client behind the same proxy has a budget of its own.
    assert proxy.get("/model", headers={"X-Forwarded-For": OTHER}).status_code == 503
    # A client that writes its own X-Forwarded-For before the proxy appends the real
    # address: the rightmost address the proxy did not add is the one counted.
    spoofed = {"X-Forwarded-For": f"192.0.2.1, {CLIENT}"}
    assert proxy.get("/model", headers=spoofed).status_code == 429

    # From anyone but the proxy the header is ignored: a new made-up address per request
    # does not buy a new budget.
    direct = behind_uvicorn(app, settings, "192.0.2.50")
    assert direct.get("/model", headers={"X-Forwarded-For": "192.0.2.101"}).status_code == 503
    assert direct.get("/model", headers={"X-Forwarded-For": "192.0.2.102"}).status_code == 429


def test_a_proxy_network_can_be_allowed(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, FILMREC_FORWARDED_ALLOW_IPS="172.28.0.0/16, 127.0.0.1")
    app = make_app(tmp_path, FILMREC_READ_RATE_LIMIT="1/minute")
    proxy = behind_uvicorn(app, settings, "172.28.0.5")
    assert proxy.get("/model", headers={"X-Forwarded-For": CLIENT}).status_code == 503
    assert proxy.get("/model", headers={"X-Forwarded-For": OTHER}).status_code == 503


def test_serve_hands_uvicorn_the_allowed_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    started: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *_args, **kwargs: started.update(kwargs))
    monkeypatch.setattr(jvm_guard, "refuse_jvm_side", lambda: None)  # not in the test process
    serve(Settings(_env_file=None, FILMREC_FORWARDED_ALLOW_IPS="10.9.0.2"))
    assert started["proxy_headers"] is True and started["forwarded_allow_ips"] == "10.9.0.2"
