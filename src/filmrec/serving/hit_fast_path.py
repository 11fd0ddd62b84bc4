"""The common /recommendations request, answered before FastAPI's routing.

An LRU hit is a dict lookup and stored bytes (serving/hit_cache.py), but through
FastAPI it also pays the routing, the validation of the route's eight parameters
and its dependencies: several times the hit itself (README, Benchmarks). This plain
ASGI layer sits inside the metrics and body-size middlewares (serving/app.py) and
answers the request shape almost every client sends, `GET
/recommendations/<user id>` with no query or only `k=<n>`, with the bytes and
headers the route would send: when this process holds its body (the LRU, or the
shared cache when it is the in-process one), and, on a miss, when it can compute
the list with no I/O (RecommendationService.computes_on_loop: the state and the
titles in memory, the shared cache in this process or off), through the same
service calls the route makes.

Equivalent or nothing: anything else goes to FastAPI unchanged, and FastAPI's
answer is the one it always gave. That is every other parameter, a repeated one, a
value out of the route's bounds or not written the canonical way (`k=010`,
`k=+3`, a leading zero in the id: pydantic would read them, so FastAPI does), no
model loaded (its 503), the online state in Redis while this process's mirror of
its versions is not in sync (the key would need a round trip:
RecommendationService.loop_answer, serving/online_versions.py), dependency
overrides (a test's stand-ins are what the route would use), and a miss that needs
I/O (with the state in Redis: a user with online ratings, whose fold-in needs them).
With FILMREC_API_KEYS_FOR_READS the reads need a key, so create_app does not install
the layer at all.

The read rate limit (FILMREC_READ_RATE_LIMIT) applies here too, or the cheapest
request would be the one that escapes it: a request of the common shape is counted
once, before its body is looked up, and the scope marks it counted so that FastAPI's
dependency does not count it again when the layer hands it on. With the in-process
limiter the count is a dict update on the loop; with the limiter in Redis it is the
same round trip, in a worker thread, that FastAPI's dependency would make.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from filmrec.serving import responses
from filmrec.serving.deps import READS_PER_CLIENT, too_many_requests
from filmrec.serving.rate_limit import READ_COUNTED, KeyRateLimiter, scope_read_client
from filmrec.serving.routers.recommendations import (
    K_DEFAULT,
    K_GE,
    K_LE,
    USER_ID_GT,
    USER_ID_LT,
    get_recommendations,
    router,
)
from filmrec.serving.state import AppState

# Canonical decimals only (no sign, no leading zero), at most as many digits as the
# bounds allow: these are the strings whose value is plainly int(text).
_PATH = re.compile(re.escape(router.prefix) + r"/([1-9][0-9]{0,9})")
_K_ONLY_QUERY = re.compile(rb"k=([1-9][0-9]{0,2})")


class HitFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The route FastAPI would have matched, found at the first hit: the metrics
        # middleware labels the request by its template, as for a routed request.
        self._route: APIRoute | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        common = self._common_request(scope) if scope["type"] == "http" else None
        if common is None:
            await self.app(scope, receive, send)
            return
        app: FastAPI = scope["app"]
        limiter: KeyRateLimiter | None = getattr(app.state, "read_limiter", None)
        if limiter is not None:
            decision = await limiter.acheck(scope_read_client(scope, app.state.keyring))
            scope[READ_COUNTED] = True
            if not decision.allowed:
                # FastAPI's answer to the dependency's HTTPException, byte for byte.
                refusal = too_many_requests(decision, READS_PER_CLIENT)
                self._route = self._route or _recommendations_route(app)
                scope["route"] = self._route
                response = JSONResponse({"detail": refusal.detail}, refusal.status_code, refusal.headers)
                await response(scope, receive, send)
                return
        body = self._held_body(scope, *common)
        if body is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = self._route
        await responses.json_response(body)(scope, receive, send)

    @staticmethod
    def _common_request(scope: Scope) -> tuple[int, int] | None:
        """(user id, k) when the request is the common shape, within the route's bounds."""
        if scope["method"] != "GET" or scope.get("root_path"):
            return None
        path = _PATH.fullmatch(scope["path"])
        if path is None:
            return None
        user_id = int(path[1])
        query: bytes = scope["query_string"]
        if query:
            k_only = _K_ONLY_QUERY.fullmatch(query)
            if k_only is None:
                return None
            k = int(k_only[1])
        else:
            k = K_DEFAULT
        if not (USER_ID_GT < user_id < USER_ID_LT and K_GE <= k <= K_LE):
            return None
        return user_id, k

    def _held_body(self, scope: Scope, user_id: int, k: int) -> bytes | None:
        """The stored body when this process holds it (or computes it without I/O)."""
        app: FastAPI = scope["app"]
        state: AppState | None = getattr(app.state, "filmrec", None)  # set in the lifespan
        if app.dependency_overrides or state is None:
            return None
        model = state.holder.current
        if model is None:
            return None
        _, body = state.recommendations.loop_answer(model, user_id=user_id, k=k, count_miss=False)
        if body is not None and self._route is None:
            self._route = _recommendations_route(app)
        return body


def _recommendations_route(app: FastAPI) -> APIRoute:
    for route in app.router.routes:
        if isinstance(route, APIRoute) and route.endpoint is get_recommendations:
            return route
    raise LookupError("the app has no /recommendations/{user_id} route")
