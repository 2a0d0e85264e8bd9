"""Tickets: list, read, and their evidence, within the caller's areas."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from api import tickets
from api.access import areas_for, visible_ticket
from api.areas import MAX_AREA_CHARS
from api.deps import PrincipalDep, SessionDep, StoreDep
from api.schemas import TicketDetail, TicketPublic, TicketsPage
from api.tables import Evidence
from api.tickets import TicketState
from vision.evidence.objects import ObjectInfo, ObjectStore
from vision.types import Category, EvidenceKind

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/tickets", tags=["tickets"])

# Ticket ids are 32-bit integers in both databases; a larger number is a
# malformed request (422), not a database error.
TicketId = Annotated[int, Path(ge=1, le=2**31 - 1)]

_EXTENSIONS = {
    "video/mp4": "mp4",
    "image/jpeg": "jpg",
    "image/png": "png",
    "application/json": "json",
}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@router.get("", response_model=TicketsPage)
def list_tickets(
    session: SessionDep,
    principal: PrincipalDep,
    state: TicketState | None = None,
    category: Category | None = None,
    camera_id: Annotated[str | None, Query(max_length=255)] = None,
    area: Annotated[
        str | None,
        Query(max_length=MAX_AREA_CHARS, description="This area and below."),
    ] = None,
    assignee: Annotated[str | None, Query(max_length=255)] = None,
    overdue: Annotated[
        bool | None, Query(description="Only tickets past (or within) deadline.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=tickets.MAX_PAGE_SIZE)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> TicketsPage:
    """Tickets in the caller's areas, newest first, filtered by state,
    category, camera, area, assignee and deadline."""
    page, total = tickets.list_tickets(
        session,
        state=state,
        category=category,
        camera_id=camera_id,
        areas=areas_for(principal),
        area=area,
        assignee=assignee,
        overdue=overdue,
        limit=limit,
        offset=offset,
    )
    return TicketsPage(
        items=[TicketPublic.from_row(row) for row in page],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{ticket_id}", response_model=TicketDetail)
def get_ticket(
    ticket_id: TicketId, session: SessionDep, principal: PrincipalDep
) -> TicketDetail:
    """One ticket with its evidence links, its history and the event."""
    return TicketDetail.from_row(visible_ticket(session, principal, ticket_id))


@router.get(
    "/{ticket_id}/evidence/{kind}",
    response_class=StreamingResponse,
    responses={
        200: {"description": "The whole object."},
        206: {"description": "The requested byte range (seeking in a clip)."},
        404: {"description": "The ticket has no stored evidence of this kind."},
        416: {"description": "The range lies outside the object."},
    },
)
def get_evidence(
    ticket_id: TicketId,
    kind: EvidenceKind,
    session: SessionDep,
    principal: PrincipalDep,
    store: StoreDep,
    round_: Annotated[
        int,
        Query(
            alias="round",
            ge=0,
            le=10_000,
            description="0: filed with the ticket; n: the n-th verification.",
        ),
    ] = 0,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    """The evidence object itself, streamed from the store. Byte ranges are
    served (206) so a browser can seek in a clip."""
    visible_ticket(session, principal, ticket_id)
    item = tickets.get_evidence(session, ticket_id, kind, round_)
    session.close()  # nothing more to read; free the connection while streaming
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Disposition": _disposition(ticket_id, item),
    }
    requested = _parse_range(range_header)
    if requested is not None and item.size_bytes is not None:
        return _range_response(store, item, requested, headers)

    chunks, info = _open(store, item)
    size_bytes = info.size_bytes
    content_type = item.content_type or info.content_type
    if requested is not None:
        span = _resolve_range(requested, size_bytes)
        if span is None:
            _close(chunks)
            return _unsatisfiable(size_bytes, headers)
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{size_bytes}"
        headers["Content-Length"] = str(end - start + 1)
        return StreamingResponse(
            _slice(chunks, start, end),
            status_code=206,
            media_type=content_type,
            headers=headers,
            background=_release(chunks),
        )
    headers["Content-Length"] = str(size_bytes)
    return StreamingResponse(
        _closing(chunks),
        media_type=content_type,
        headers=headers,
        background=_release(chunks),
    )


def _range_response(
    store: ObjectStore,
    item: Evidence,
    requested: tuple[int | None, int | None],
    headers: dict[str, str],
) -> Response:
    """A 206 read straight from the store's byte range (no full download)."""
    assert item.size_bytes is not None
    size_bytes = item.size_bytes
    span = _resolve_range(requested, size_bytes)
    if span is None:
        return _unsatisfiable(size_bytes, headers)
    start, end = span
    try:
        chunks = store.open_range(item.key, start, end)
    except KeyError:
        raise tickets.EvidenceNotFound(
            item.ticket_id, item.kind, "it is not in the store"
        ) from None
    headers["Content-Range"] = f"bytes {start}-{end}/{size_bytes}"
    headers["Content-Length"] = str(end - start + 1)
    return StreamingResponse(
        _closing(chunks),
        status_code=206,
        media_type=item.content_type,
        headers=headers,
        background=_release(chunks),
    )


def _open(store: ObjectStore, item: Evidence) -> tuple[Iterator[bytes], ObjectInfo]:
    try:
        return store.open(item.key)
    except KeyError:
        raise tickets.EvidenceNotFound(
            item.ticket_id, item.kind, "it is not in the store"
        ) from None


def _parse_range(header: str | None) -> tuple[int | None, int | None] | None:
    """(first, last) of a single ``bytes=`` range; None to send everything.

    Several ranges, other units and malformed values are ignored, as HTTP
    allows: the client then gets the whole object with 200.
    """
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first = int(match.group(1)) if match.group(1) else None
    last = int(match.group(2)) if match.group(2) else None
    if first is not None and last is not None and last < first:
        return None
    return first, last


def _resolve_range(
    requested: tuple[int | None, int | None], size_bytes: int
) -> tuple[int, int] | None:
    """Inclusive byte span within the object; None if it cannot be served."""
    first, last = requested
    if first is None:  # a suffix: the last N bytes
        assert last is not None
        if last == 0 or size_bytes == 0:
            return None
        return max(0, size_bytes - last), size_bytes - 1
    if first >= size_bytes:
        return None
    end = size_bytes - 1 if last is None else min(last, size_bytes - 1)
    return first, end


def _unsatisfiable(size_bytes: int, headers: dict[str, str]) -> Response:
    headers["Content-Range"] = f"bytes */{size_bytes}"
    return Response(status_code=416, headers=headers)


def _disposition(ticket_id: int, item: Evidence) -> str:
    extension = _EXTENSIONS.get(item.content_type, "bin")
    suffix = f"-v{item.round}" if item.round else ""
    return f'inline; filename="ticket-{ticket_id}-{item.kind}{suffix}.{extension}"'


def _slice(chunks: Iterator[bytes], start: int, end: int) -> Iterator[bytes]:
    """Bytes ``start``..``end`` of a stream that begins at byte 0."""
    position = 0
    try:
        for chunk in chunks:
            chunk_end = position + len(chunk)
            if chunk_end > start:
                yield chunk[max(0, start - position) : end + 1 - position]
            position = chunk_end
            if position > end:
                return
    finally:
        _close(chunks)


def _closing(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Pass chunks through; release the store's stream however it ends."""
    try:
        yield from chunks
    finally:
        _close(chunks)


def _release(chunks: Iterator[bytes]) -> BackgroundTask:
    """Close the store's stream after the response, even one the client
    abandoned before the first byte (the generator's own ``finally`` never
    runs then)."""
    return BackgroundTask(_close, chunks)


def _close(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()
