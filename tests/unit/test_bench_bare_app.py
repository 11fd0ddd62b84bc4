"""The API throughput yardsticks serve the same answer: bytes, status and headers."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi.testclient import TestClient

from bench.bare_app import BODY, app, raw_app


def _raw_get(path: str) -> tuple[int, dict[str, str], bytes]:
    """One GET through the raw ASGI callable, as uvicorn would call it."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}
    asyncio.run(raw_app(scope, receive, send))  # type: ignore[arg-type]
    start, body = sent
    headers = {name.decode(): value.decode() for name, value in start["headers"]}
    return start["status"], headers, body["body"]


def test_the_raw_asgi_app_and_the_fastapi_route_send_the_same_answer() -> None:
    with TestClient(app) as client:
        routed = client.get("/constant")
    status, headers, body = _raw_get("/constant")
    assert status == routed.status_code == 200
    assert body == routed.content == BODY
    # The headers the API's own answers carry (content-type and content-length), no more.
    assert headers == {
        "content-type": routed.headers["content-type"],
        "content-length": routed.headers["content-length"],
    }


def test_the_raw_app_acknowledges_the_lifespan() -> None:
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive() -> dict[str, str]:
        return next(messages)

    async def send(message: dict[str, str]) -> None:
        sent.append(message["type"])

    asyncio.run(raw_app({"type": "lifespan"}, receive, send))  # type: ignore[arg-type]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
