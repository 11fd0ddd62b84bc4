"""The web page: GET / and its assets, from the package's data (no build step, no CDN)."""

from __future__ import annotations

import importlib.resources

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

router = APIRouter(tags=["web"])

ASSETS_PATH = "/web"
_WEB = importlib.resources.files("filmrec.serving") / "web"
ICON = "icon.svg"  # the page declares it (index.html); /favicon.ico answers it too


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index() -> HTMLResponse:
    """The page: search, rate, recommendations, similar movies, the model card."""
    return HTMLResponse(_WEB.joinpath("index.html").read_text(encoding="utf-8"))


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> Response:
    """The page's icon where browsers and tools look without asking the page (no 404 in a console)."""
    return Response(_WEB.joinpath(ICON).read_bytes(), media_type="image/svg+xml")


def mount_assets(app: FastAPI) -> None:
    """The page's CSS and JavaScript under /web, read from the installed package."""
    app.mount(ASSETS_PATH, StaticFiles(packages=[("filmrec.serving", "web")]), name="web")
