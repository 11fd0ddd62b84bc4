"""ReDoc at /redoc with nothing fetched from the internet.

FastAPIOffline serves Swagger UI (/docs) and the ReDoc bundle from its wheel, but the
bundle itself loads the "API docs by Redocly" logo from Redocly's CDN. Offline that
image only fails (ReDoc hides it), yet the page must not reach out at all, so /redoc
is served here with the bundle's one absolute URL pointed at the local favicon.
"""

from __future__ import annotations

import importlib.resources
from functools import cache

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse, Response

# Where FastAPIOffline mounts its assets (its default static_url).
OFFLINE_ASSETS = "/static-offline-docs"
REDOC_JS = "/redoc-assets/redoc.standalone.js"
_REDOCLY_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


@cache
def _redoc_bundle() -> bytes:
    bundle = (importlib.resources.files("fastapi_offline") / "static" / "redoc.standalone.js").read_bytes()
    return bundle.replace(_REDOCLY_LOGO, f"{OFFLINE_ASSETS}/favicon.png".encode())


def add_redoc(app: FastAPI, *, path: str = "/redoc") -> None:
    """GET `path`: ReDoc over the app's OpenAPI schema, every asset from this API."""

    @app.get(path, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - ReDoc",
            redoc_js_url=REDOC_JS,
            redoc_favicon_url=f"{OFFLINE_ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    @app.get(REDOC_JS, include_in_schema=False)
    async def redoc_bundle() -> Response:
        return Response(_redoc_bundle(), media_type="text/javascript")
