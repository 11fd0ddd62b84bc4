"""The FastAPI application factory.

Start-up loads the champion once and then polls the registry for the alias to move;
a registry, database or cache that is down degrades the service, never stops it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from filmrec import __version__
from filmrec.config import Settings, get_settings
from filmrec.metadata.store import MovieStore
from filmrec.serving import metrics, responses
from filmrec.serving.api_docs import add_redoc
from filmrec.serving.api_keys import HEADER, ApiKeyring, refuse_exposed_demo_key
from filmrec.serving.cache import build_cache
from filmrec.serving.deps import limit_reads, require_read_key
from filmrec.serving.health_checks import ReadinessProbe
from filmrec.serving.hit_cache import HitCache
from filmrec.serving.hit_fast_path import HitFastPath
from filmrec.serving.loaded_model import LoadedModel
from filmrec.serving.model_holder import ChampionLoader, ModelHolder, fail_fast_mlflow_http
from filmrec.serving.movie_lookup import MovieLookup
from filmrec.serving.online_state import VisibilityTracker, build_online_state, prune_contained
from filmrec.serving.rate_limit import KeyRateLimiter
from filmrec.serving.rating_intake import RatingIntake
from filmrec.serving.rating_stream import RatingStreamConsumer
from filmrec.serving.recommendations import RecommendationService
from filmrec.serving.request_limits import BodySizeLimitMiddleware
from filmrec.serving.routers import health, model, movies, ratings, recommendations, web
from filmrec.serving.state import AppState

log = logging.getLogger(__name__)


class RequestMetricsMiddleware:
    """Counts and times requests by route template (a plain ASGI middleware: cheap)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status_code = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            # Unmatched paths share one label so random URLs cannot blow up cardinality.
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            metrics.labelled(metrics.HTTP_REQUESTS, template, method, str(status_code)).inc()
            metrics.labelled(metrics.HTTP_LATENCY, template, method).observe(time.perf_counter() - start)


__all__ = ["build_cache", "build_state", "create_app", "create_served_app"]


def _prune_online_state(state: AppState, model: LoadedModel) -> None:
    """Drop the online ratings the new champion was trained on: it knows them now."""
    if state.online is None:
        return
    try:
        dropped = prune_contained(state.online, model.recommender)
    except Exception as error:  # kept ratings only cost a fold-in; retried at the next swap
        log.warning("could not prune the online state for v%s: %s", model.version, error)
        return
    metrics.ONLINE_STATE_PRUNED.inc(dropped)
    log.info("online state: %d ratings now in model v%s dropped", dropped, model.version)


def _after_swap(state: AppState, model: LoadedModel) -> None:
    """Background work after a new champion is served: history row, online state, warm-up."""
    _prune_online_state(state, model)
    try:
        state.movies.store.record_deployment(
            model_name=model.name,
            model_version=model.version,
            run_id=model.run_id,
            served_from=model.loaded_at,
        )
    except Exception as error:  # the history is bookkeeping; serving goes on without it
        log.warning("could not record the deployment of v%s: %s", model.version, error)
    if not (state.settings.cache_enabled and state.settings.cache_warm_on_swap):
        return  # with the cache off a warm-up would score every user for nothing
    from filmrec.serving.warmup import warm_cache

    try:
        warm_cache(state.settings, model=model, cache=state.cache, movies=state.movies.store)
    except Exception as error:
        log.warning(
            "cache warm-up for v%s failed (requests fill the cache instead): %s", model.version, error
        )


def build_state(settings: Settings) -> AppState:
    """Every long-lived piece of one API process; called in the lifespan (inside the loop)."""
    from filmrec.lakehouse.tables import LakehouseTables

    metrics.register_ingestion_status(LakehouseTables(settings.lakehouse_path).ingestion_status)
    holder = ModelHolder()
    loader = ChampionLoader(settings, holder)
    store = MovieStore.from_settings(settings, timeout_seconds=settings.dependency_timeout_seconds * 4)
    movies = MovieLookup(store, retry_after_seconds=settings.cache_retry_seconds)
    cache = build_cache(settings)
    online = build_online_state(settings) if settings.online_state_enabled else None
    visibility = VisibilityTracker(metrics.EVENT_VISIBILITY.observe)
    rating_stream = (
        RatingStreamConsumer(settings, online, holder, on_applied=visibility.applied)
        if online is not None and settings.kafka_bootstrap_servers
        else None
    )
    state = AppState(
        settings=settings,
        holder=holder,
        loader=loader,
        movies=movies,
        cache=cache,
        online=online,
        visibility=visibility,
        rating_stream=rating_stream,
        recommendations=RecommendationService(
            cache=cache,
            movies=movies,
            online=online,
            visibility=visibility,
            cache_ttl_seconds=settings.cache_ttl_seconds,
            limiter=anyio.CapacityLimiter(settings.scoring_threads),
            # With the cache off, nothing is cached: not in the LRU either.
            hit_cache=HitCache(
                max_entries=settings.hit_cache_entries, ttl_seconds=settings.hit_cache_ttl_seconds
            )
            if settings.cache_enabled
            else None,
        ),
        intake=RatingIntake(settings, online, visibility),
        readiness=ReadinessProbe(
            settings=settings,
            holder=holder,
            loader=loader,
            movies=movies,
            cache=cache,
            online=online,
            rating_stream=rating_stream,
        ),
    )

    # The loader thread must not wait for the warm-up: it runs on the background worker.
    def on_swap(model: LoadedModel, _previous: LoadedModel | None) -> None:
        state.background.submit(_after_swap, state, model)

    loader.on_swap = on_swap
    return state


def _prepare_database(state: AppState) -> None:
    """Run the migrations (the API's prestart step); a database that is down is not fatal."""
    try:
        state.movies.store.create_schema(lock_timeout_seconds=state.settings.migration_lock_timeout_seconds)
    except Exception as error:
        metrics.DEPENDENCY_UP.labels(dependency="database").set(0)
        log.warning("database unavailable at start-up (migrations not run): %s", error)


def _shutdown(state: AppState) -> None:
    if state.rating_stream is not None:
        state.rating_stream.stop()
    state.loader.stop()
    # Queued work is dropped, but a running deployment record or warm-up finishes
    # first: closing the deployment record under it would race it.
    state.background.shutdown(wait=True, cancel_futures=True)
    state.intake.close()
    try:
        state.movies.store.close_deployment()
    except Exception as error:
        log.warning("could not close the deployment record: %s", error)
    # The Redis online state's close also stops its versions listener (its thread and
    # pubsub connection).
    for closeable in (state.cache, state.online):
        close = getattr(closeable, "close", None)
        if close is not None:
            close()
    state.movies.store.engine.dispose()


def _field_name(location: tuple[object, ...]) -> str:
    """`('query', 'k')` -> `k`: where the bad value was, as the client wrote it."""
    return ".".join(str(part) for part in location if part not in ("path", "query", "body")) or "request"


def _json_safe(value: object) -> object:
    """A pydantic error's `input`/`ctx` value as JSON: the raw body may be bytes that are
    not UTF-8, and a validator's ctx holds the exception it raised."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return str(value)


def validation_error_body(errors: Sequence[Any]) -> dict[str, object]:
    """The 422 body, as schemas.ValidationErrorOut documents it."""
    problems = [f"{_field_name(tuple(item['loc']))}: {item['msg']}" for item in errors]
    items = []
    for item in errors:
        entry = {
            "loc": [part if isinstance(part, int) else str(part) for part in item["loc"]],
            "msg": str(item["msg"]),
            "type": str(item["type"]),
            "input": _json_safe(item.get("input")),
        }
        if item.get("ctx") is not None:
            entry["ctx"] = _json_safe(item["ctx"])
        items.append(entry)
    return {"detail": "; ".join(problems) or "invalid request", "errors": items}


def create_served_app() -> FastAPI:
    """The app of a serving process (the image, `filmrec serve`, the native stack, the bench):
    the JVM side is refused first, then the app is built from the environment."""
    from filmrec.serving.jvm_guard import refuse_jvm_side

    refuse_jvm_side()
    return create_app()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        mlflow_env = fail_fast_mlflow_http(settings)
        state = build_state(settings)
        app.state.filmrec = state
        _prepare_database(state)
        # The titles of computed lists, in memory (a database that is down: read later).
        state.movies.refresh_listing()
        state.loader.refresh()
        state.loader.start_polling()
        # After the first load: the consumer skips events the served model contains.
        if state.rating_stream is not None:
            state.rating_stream.start()
        yield
        _shutdown(state)
        for name in mlflow_env:
            os.environ.pop(name, None)

    # FastAPIOffline: FastAPI with /docs served from assets in its wheel, not a CDN, so
    # the docs work on a machine without internet; /redoc is api_docs.add_redoc's.
    app = FastAPIOffline(
        redoc_url=None,
        title="filmrec",
        version=__version__,
        description="Movie recommendations from the platform's model (EASE or ALS, chosen by search), "
        "trained on the Delta lakehouse.",
        lifespan=lifespan,
    )
    # Built here, not in the lifespan: neither needs a running service (the Redis
    # client connects on first use), and a malformed key list or limit fails at once.
    app.state.keyring = ApiKeyring.from_settings(settings)
    refuse_exposed_demo_key(settings, app.state.keyring)
    app.state.write_limiter = KeyRateLimiter.from_settings(settings)
    app.state.read_limiter = (
        KeyRateLimiter.from_settings(settings, scope="read") if settings.read_rate_limit else None
    )
    if app.state.keyring.demo:
        log.warning("no FILMREC_API_KEYS configured: writes accept the demo key only (%s: demo)", HEADER)

    # Reads are open unless FILMREC_API_KEYS_FOR_READS: then the read routers need a key
    # (without the rate limit of writes), and the OpenAPI document says so.
    keyed_reads = settings.api_keys_for_reads
    # Outermost last: CORS headers go on every answer (413s included), the metrics see
    # the 413s and the fast path's hits, and the size check runs before anything reads
    # the body. The hit fast path is innermost: what it answers is a routed request to
    # every layer above it. A keyed read must go through the key check: no fast path.
    if not keyed_reads:
        app.add_middleware(HitFastPath)
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetricsMiddleware)
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", HEADER],
            expose_headers=["Retry-After"],
            max_age=600,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content=validation_error_body(error.errors()))

    # The key check first: with keyed reads, a request without a valid key is a 401/403
    # and counts against no budget. The hit fast path counts the reads it answers itself.
    read_dependencies = [Depends(require_read_key)] if keyed_reads else []
    read_responses: responses.Responses = {**responses.AUTH} if keyed_reads else {}
    if app.state.read_limiter is not None:
        read_dependencies.append(Depends(limit_reads))
        read_responses |= responses.READ_RATE_LIMITED
    for router in (recommendations.router, movies.router, model.router):
        app.include_router(router, dependencies=read_dependencies, responses=read_responses)
    # The page itself is static and public: it calls the API with the visitor's key.
    for router in (ratings.router, health.router, web.router):
        app.include_router(router)
    web.mount_assets(app)
    add_redoc(app)
    return app
