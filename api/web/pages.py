"""The review pages: sign-in, review queue, ticket page and area overview.

Plain HTML, JavaScript modules and CSS shipped with the package
(``api/web/static``); the browser talks to the same HTTP API that
integrations use, with the signed-in user's bearer token. The pages
themselves are public: they hold no data until the user signs in.

Mount with ``app.include_router(pages.router)``; the static files are served
by this router too (``/ui/static/...``), so nothing else needs mounting.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, RedirectResponse

STATIC_DIR = Path(__file__).resolve().parent / "static"
UI_PREFIX = "/ui"

_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}
# The pages are small and change with each release; the browser revalidates
# them (a cheap 304) instead of running an old script against a new API.
_NO_STALE = {"Cache-Control": "no-cache"}
_STATIC_NAME = re.compile(r"^[a-z0-9_-]+\.[a-z]+$")

router = APIRouter(prefix=UI_PREFIX, tags=["pages"], include_in_schema=False)


def _page(name: str) -> FileResponse:
    return FileResponse(
        STATIC_DIR / name, media_type=_MEDIA_TYPES[".html"], headers=_NO_STALE
    )


@router.get("")
@router.get("/")
def home() -> RedirectResponse:
    """The review queue is where a reviewer starts."""
    return RedirectResponse(f"{UI_PREFIX}/queue", status_code=307)


@router.get("/signin")
def signin_page() -> FileResponse:
    return _page("signin.html")


@router.get("/queue")
def queue_page() -> FileResponse:
    return _page("queue.html")


@router.get("/tickets/{ticket_id}")
def ticket_page(ticket_id: Annotated[int, PathParam(ge=1)]) -> FileResponse:
    # The script reads the id from the address and asks the API for it.
    del ticket_id
    return _page("ticket.html")


@router.get("/overview")
def overview_page() -> FileResponse:
    return _page("overview.html")


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    """One file of the flat static folder; the name pattern keeps requests
    inside it (no separators, no dot segments)."""
    path = STATIC_DIR / name
    media_type = _MEDIA_TYPES.get(path.suffix)
    if not _STATIC_NAME.match(name) or media_type is None or not path.is_file():
        raise HTTPException(status_code=404, detail="not_found")
    return FileResponse(path, media_type=media_type, headers=_NO_STALE)
