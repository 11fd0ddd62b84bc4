"""FastAPI dependencies: narrow, typed, one per thing a route needs (Annotated aliases).

Each is built once in the lifespan (serving/app.py) and read from the app here; a
test replaces any of them with `app.dependency_overrides[get_x] = ...`.

All are `async def` although they never await: FastAPI runs a plain `def`
dependency in its thread pool, and a thread hop per dependency (with the GIL
contended by every other request's hops) costs more than the work they guard.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from filmrec.serving import metrics
from filmrec.serving.api_keys import HEADER, ApiKeyring
from filmrec.serving.health_checks import ReadinessProbe
from filmrec.serving.loaded_model import LoadedModel
from filmrec.serving.movie_lookup import MovieLookup
from filmrec.serving.rate_limit import READ_COUNTED, KeyRateLimiter, LimitDecision, scope_read_client
from filmrec.serving.rating_intake import RatingIntake
from filmrec.serving.recommendations import RecommendationService
from filmrec.serving.state import AppState


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.filmrec
    return state


async def get_model(request: Request) -> LoadedModel:
    model = _state(request).holder.current
    if model is None:
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="no model is loaded yet: train one (make train) and the API will pick it up",
        )
    return model


async def get_recommendations(request: Request) -> RecommendationService:
    return _state(request).recommendations


async def get_movies(request: Request) -> MovieLookup:
    return _state(request).movies


async def get_rating_intake(request: Request) -> RatingIntake:
    return _state(request).intake


async def get_readiness(request: Request) -> ReadinessProbe:
    return _state(request).readiness


ModelDep = Annotated[LoadedModel, Depends(get_model)]
RecommendationsDep = Annotated[RecommendationService, Depends(get_recommendations)]
MoviesDep = Annotated[MovieLookup, Depends(get_movies)]
RatingIntakeDep = Annotated[RatingIntake, Depends(get_rating_intake)]
ReadinessDep = Annotated[ReadinessProbe, Depends(get_readiness)]


# Security. The keyring and the limiter are built with the app (create_app), not in
# the lifespan: they need no service to exist, so the route tests exercise them as is.
API_KEY_HEADER = APIKeyHeader(
    name=HEADER,
    scheme_name="ApiKey",
    auto_error=False,  # a missing key is our 401 with its message and metric, not FastAPI's 403
    description="An API key (FILMREC_API_KEYS; with none configured, the demo key `demo`)",
)


async def get_keyring(request: Request) -> ApiKeyring:
    keyring: ApiKeyring = request.app.state.keyring
    return keyring


async def get_write_limiter(request: Request) -> KeyRateLimiter:
    limiter: KeyRateLimiter = request.app.state.write_limiter
    return limiter


KeyringDep = Annotated[ApiKeyring, Depends(get_keyring)]
WriteLimiterDep = Annotated[KeyRateLimiter, Depends(get_write_limiter)]
PresentedKey = Annotated[str | None, Security(API_KEY_HEADER)]


def _caller(keyring: ApiKeyring, presented: str | None) -> str:
    """The name of the presented key; 401 without one, 403 for one that is not configured."""
    if not presented:
        metrics.AUTH_FAILURES.labels(reason="missing").inc()
        hint = f" (this server accepts the demo key `{keyring.DEMO_NAME}`)" if keyring.demo else ""
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"an API key is required: send it in the {HEADER} header{hint}",
            headers={"WWW-Authenticate": f'ApiKey header="{HEADER}"'},
        )
    name = keyring.identify(presented)
    if name is None:
        metrics.AUTH_FAILURES.labels(reason="invalid").inc()
        reason = "it is not one of the configured keys" if keyring.keys else "this server accepts no key"
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"invalid API key: {reason}")
    return name


async def require_read_key(presented: PresentedKey, keyring: KeyringDep) -> str:
    """Reads with FILMREC_API_KEYS_FOR_READS=true (create_app adds it to the read routers)."""
    return _caller(keyring, presented)


def too_many_requests(decision: LimitDecision, what: str) -> HTTPException:
    """The 429 of a refused limit check (responses.RATE_LIMITED, READ_RATE_LIMITED)."""
    seconds = decision.retry_after_seconds
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        detail=f"rate limit exceeded: at most {decision.limit} {what}; retry in {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


WRITES_PER_KEY = "writes per API key"
READS_PER_CLIENT = "reads per client (the API key's name when one is sent, else the address)"


async def require_write_key(presented: PresentedKey, keyring: KeyringDep, limiter: WriteLimiterDep) -> str:
    """Writes and admin operations: a configured key, within its rate limit."""
    name = _caller(keyring, presented)
    decision = await limiter.acheck(name)
    if not decision.allowed:
        raise too_many_requests(decision, WRITES_PER_KEY)
    return name


async def limit_reads(request: Request, keyring: KeyringDep) -> None:
    """Reads within FILMREC_READ_RATE_LIMIT (create_app adds it to the read routers while
    the limit is on). The key comes from the header itself, not from API_KEY_HEADER: a
    Security dependency would mark open reads as needing a key in the OpenAPI document."""
    limiter: KeyRateLimiter | None = request.app.state.read_limiter
    if limiter is None or request.scope.get(READ_COUNTED):
        return  # off, or counted already by the hit fast path (one count per request)
    decision = await limiter.acheck(scope_read_client(request.scope, keyring))
    if not decision.allowed:
        raise too_many_requests(decision, READS_PER_CLIENT)


# The caller's key name: a route that declares it is refused without a valid key.
ReadKeyDep = Annotated[str, Depends(require_read_key)]
WriteKeyDep = Annotated[str, Depends(require_write_key)]
