"""The review queue: tickets waiting for a reviewer's decision, oldest first.

A reviewer reads the queue a page at a time. Pages are keyset pages: each
ticket carries a cursor (its place in the queue, ``created_at`` then id) and
the next page starts after the last cursor read. Deciding tickets removes
them from the queue without moving the tickets behind them, so a page never
skips or repeats a ticket while the reviewer works through the one before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, func, select, tuple_
from sqlalchemy.orm import Session, defer, lazyload

from api.areas import within
from api.tables import Ticket
from api.tickets import TicketError, TicketState, state_in

REVIEW_STATES = frozenset({TicketState.PENDING_REVIEW, TicketState.REOPENED})
MAX_QUEUE_PAGE_SIZE = 200

# Fixed width, so that cursors sort as text in queue order (the pages
# compare them to place tickets that come back in a later read).
_CURSOR_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"
CURSOR_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z_\d{10}$"
_CURSOR = re.compile(CURSOR_PATTERN)


class InvalidCursor(TicketError, ValueError):
    """A cursor this service did not hand out."""


def cursor_of(ticket: Ticket) -> str:
    """Where the ticket lies in the queue, as text that sorts in its order."""
    created_at = ticket.created_at.astimezone(UTC)
    return f"{created_at.strftime(_CURSOR_TIME)}_{ticket.id:010d}"


def parse_cursor(cursor: str) -> tuple[datetime, int]:
    """``(created_at, ticket_id)`` of a cursor from ``cursor_of``."""
    if not _CURSOR.match(cursor):
        raise InvalidCursor(f"not a queue cursor: {cursor!r}")
    moment, ticket_id = cursor.rsplit("_", 1)
    try:
        created_at = datetime.strptime(moment, _CURSOR_TIME).replace(tzinfo=UTC)
    except ValueError:  # the right shape, but no such time
        raise InvalidCursor(f"not a queue cursor: {cursor!r}") from None
    return created_at, int(ticket_id)


def waiting_for_review() -> ColumnElement[bool]:
    """SQL: the ticket waits for a reviewer (the queue's partial index)."""
    return state_in(REVIEW_STATES)


def read_queue(
    session: Session,
    *,
    areas: Sequence[str] | None,
    after: str | None = None,
    limit: int = 50,
) -> tuple[Sequence[Ticket], bool]:
    """Up to ``limit`` tickets of the queue after the cursor ``after`` (from
    the start without one), and whether more follow them.

    ``areas`` are the prefixes where the caller may review (None: no limit).
    """
    if not 1 <= limit <= MAX_QUEUE_PAGE_SIZE:
        raise ValueError(f"limit must be 1 to {MAX_QUEUE_PAGE_SIZE}, got {limit}")

    query = (
        select(Ticket)
        .options(defer(Ticket.event), lazyload("*"))
        .where(*_in_queue(areas))
        .order_by(Ticket.created_at, Ticket.id)
        .limit(limit + 1)
    )
    if after is not None:
        created_at, ticket_id = parse_cursor(after)
        query = query.where(
            tuple_(Ticket.created_at, Ticket.id) > (created_at, ticket_id)
        )
    rows = session.scalars(query).all()
    return rows[:limit], len(rows) > limit


def count_queue(session: Session, *, areas: Sequence[str] | None) -> int:
    """How many tickets wait for review in these areas."""
    return session.scalar(select(func.count(Ticket.id)).where(*_in_queue(areas))) or 0


def _in_queue(areas: Sequence[str] | None) -> list[ColumnElement[bool]]:
    conditions = [waiting_for_review()]
    if areas is not None:
        conditions.append(within(Ticket.area_path, areas))
    return conditions
