"""The page at / and the offline API docs: served from package data, nothing from the internet."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from filmrec.config import Settings
from filmrec.serving.app import create_app

# Any absolute URL in a page or its assets would be a fetch from outside.
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import""")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    var = tmp_path_factory.mktemp("web") / "var"
    return TestClient(create_app(Settings(_env_file=None, FILMREC_VAR_DIR=var)))  # no lifespan


def test_the_page_and_its_assets_are_served_and_local(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="(/web/[^"]+)"', page.text)
    assert set(assets) == {"/web/app.js", "/web/style.css", "/web/icon.svg"}
    for body in [page.text, *(client.get(asset).text for asset in assets)]:
        assert not EXTERNAL.search(body)
    assert (
        client.get("/web/app.js")
        .headers["content-type"]
        .startswith(("text/javascript", "application/javascript"))
    )


def test_the_icon_is_served_where_browsers_look_for_it(client: TestClient) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert icon.content == client.get("/web/icon.svg").content


def test_every_control_has_a_label(client: TestClient) -> None:
    page = client.get("/").text
    for control in re.findall(r'<(?:input|select)[^>]*\bid="([^"]+)"', page):
        assert f'for="{control}"' in page, control
    assert '<html lang="en">' in page and 'name="viewport"' in page


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_docs_load_their_assets_from_the_api(client: TestClient, path: str) -> None:
    html = client.get(path).text
    scripts = re.findall(r'<script src="([^"]+)"', html)
    styles = re.findall(r'<link[^>]+href="([^"]+)"', html)
    assert scripts and all(url.startswith("/") for url in scripts + styles), (scripts, styles)
    assert "fonts.googleapis" not in html
    for url in scripts + styles:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert b"https://cdn." not in asset.content, url


def test_the_page_is_package_data() -> None:
    import filmrec.serving

    web = Path(filmrec.serving.__file__).parent / "web"
    assert {path.name for path in web.iterdir()} >= {"index.html", "app.js", "style.css", "icon.svg"}
