"""The web page: GET / and its assets, from the package's data (no build step, no CDN)."""

from __future__ import annotations

import importlib.resources

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

router = APIRouter(tags=["web"])

ASSETS_PATH = "/web"
_WEB = importlib.resources.files("filmrec.serving") / "web"


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index() -> HTMLResponse:
    """The page: search, rate, recommendations, similar movies, the model card."""
    return HTMLResponse(_WEB.joinpath("index.html").read_text(encoding="utf-8"))


def mount_assets(app: FastAPI) -> None:
    """The page's CSS and JavaScript under /web, read from the installed package."""
    app.mount(ASSETS_PATH, StaticFiles(packages=[("filmrec.serving", "web")]), name="web")
