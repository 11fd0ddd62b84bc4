"""The request body size limit: a plain ASGI middleware, before any parsing.

A declared Content-Length above the limit is refused at once, without reading the
body; a chunked body is read up to the limit and refused as soon as it passes it, so
no request makes the API buffer or parse more than FILMREC_MAX_BODY_BYTES.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from filmrec.serving import metrics


def _detail(limit: int) -> bytes:
    return json.dumps({"detail": f"request body too large: at most {limit} bytes are accepted"}).encode()


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = self._content_length(scope)
        if declared is not None:
            if declared > self.max_body_bytes:
                await self._refuse(send)
                return
            # The server enforces a declared length (h11, httptools): nothing more to count.
            await self.app(scope, receive, send)
            return
        # No Content-Length (chunked, or no body): read what comes, up to the limit, and
        # hand the app the same messages.
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # a disconnect: the app sees it in order
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    def _content_length(scope: Scope) -> int | None:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None  # the server rejects a malformed length before us
        return None

    async def _refuse(self, send: Send) -> None:
        metrics.BODY_TOO_LARGE.inc()
        body = _detail(self.max_body_bytes)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    # The unread body is left on the connection: close it.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
