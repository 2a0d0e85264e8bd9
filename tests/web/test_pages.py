"""The pages' router: the pages and their files, and nothing else."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from api.web import pages

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx.*starlette.testclient")
    from fastapi.testclient import TestClient


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(pages.router)
    with TestClient(app, follow_redirects=False) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "page"),
    [
        ("/ui/signin", "Sign in"),
        ("/ui/queue", "Review queue"),
        ("/ui/tickets/17", "Ticket"),
        ("/ui/overview", "Area overview"),
    ],
)
def test_each_page_is_served_as_html(client: TestClient, path: str, page: str) -> None:
    response = client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert f"<title>{page}" in response.text


def test_the_pages_start_at_the_queue(client: TestClient) -> None:
    for path in ("/ui", "/ui/"):
        response = client.get(path)
        assert response.status_code == 307
        assert response.headers["location"] == "/ui/queue"


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("queue.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
    ],
)
def test_static_files_have_their_types(
    client: TestClient, name: str, content_type: str
) -> None:
    response = client.get(f"/ui/static/{name}")

    assert response.status_code == 200
    assert response.headers["content-type"] == content_type


@pytest.mark.parametrize(
    "path",
    [
        "/ui/static/absent.js",
        "/ui/static/__init__.py",
        "/ui/static/..%2Fpages.py",
        "/ui/static/%2e%2e%2f%2e%2e%2fmain.py",
        "/ui/static/.hidden.js",
        "/ui/static/Queue.JS",
    ],
)
def test_nothing_outside_the_static_files_is_served(
    client: TestClient, path: str
) -> None:
    assert client.get(path).status_code == 404


def test_every_page_names_only_files_that_exist() -> None:
    for page in pages.STATIC_DIR.glob("*.html"):
        for name in re.findall(r'/ui/static/([^"]+)"', page.read_text()):
            assert (pages.STATIC_DIR / name).is_file(), f"{page.name}: {name}"
    for script in pages.STATIC_DIR.glob("*.js"):
        for name in re.findall(r'from "\./([^"]+)"', script.read_text()):
            assert (pages.STATIC_DIR / name).is_file(), f"{script.name}: {name}"
