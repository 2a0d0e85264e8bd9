"""The area overview: how many tickets are open where, counted by the
database.

Queries over the caller's areas, never a list of every ticket: open tickets
counted by category and state, every ticket counted by camera (the totals
are their sums), and the few open tickets that need attention first
(overdue ones, then by deadline or age).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice

from sqlalchemy import ColumnElement, Integer, case, func, select
from sqlalchemy.orm import Session, defer, lazyload

from api.areas import within
from api.tables import Ticket, utc_now
from api.tickets import OPEN_STATES, TicketState, overdue_condition, state_in

ATTENTION_LIMIT = 20


@dataclass
class CategoryCounts:
    """Open tickets of one category: per state, overdue, all open."""

    category: str
    by_state: dict[str, int] = field(default_factory=dict)
    overdue: int = 0
    open: int = 0


@dataclass
class CameraCounts:
    """The tickets one camera filed, in all states."""

    camera_id: str
    area_path: str
    waiting_for_review: int
    open: int
    overdue: int
    tickets: int
    last_detected_at: datetime


@dataclass
class Overview:
    overdue: int
    waiting_for_review: int
    open: int
    tickets: int
    categories: list[CategoryCounts]
    cameras: list[CameraCounts]
    attention: Sequence[Ticket]  # open tickets, overdue first


def area_overview(
    session: Session,
    *,
    areas: Sequence[str] | None,
    area: str | None = None,
    now: datetime | None = None,
) -> Overview:
    """Counts of the tickets in ``areas`` (None: no limit), narrowed to
    ``area`` and below when given."""
    now = now or utc_now()
    scope = _scope(areas, area)
    cameras = _by_camera(session, scope, now)
    return Overview(
        overdue=sum(c.overdue for c in cameras),
        waiting_for_review=sum(c.waiting_for_review for c in cameras),
        open=sum(c.open for c in cameras),
        tickets=sum(c.tickets for c in cameras),
        categories=_by_category(session, scope, now),
        cameras=cameras,
        attention=_attention(session, scope, now),
    )


def _scope(areas: Sequence[str] | None, area: str | None) -> list[ColumnElement[bool]]:
    conditions = []
    if areas is not None:
        conditions.append(within(Ticket.area_path, areas))
    if area is not None:
        conditions.append(within(Ticket.area_path, [area]))
    return conditions


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """SQL: how many rows of the group meet the condition (0, never NULL)."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0).cast(Integer)


def _by_category(
    session: Session, scope: list[ColumnElement[bool]], now: datetime
) -> list[CategoryCounts]:
    rows = session.execute(
        select(
            Ticket.category,
            Ticket.state,
            func.count(),
            _count(overdue_condition(now)),
        )
        .where(state_in(OPEN_STATES), *scope)
        .group_by(Ticket.category, Ticket.state)
    ).all()
    categories: dict[str, CategoryCounts] = {}
    for category, state, count, overdue in rows:
        counts = categories.setdefault(category, CategoryCounts(category))
        counts.by_state[state] = count
        counts.overdue += overdue
        counts.open += count
    return [categories[name] for name in sorted(categories)]


def _by_camera(
    session: Session, scope: list[ColumnElement[bool]], now: datetime
) -> list[CameraCounts]:
    """Every camera with a ticket in scope; most overdue, then most open,
    first."""
    rows = session.execute(
        select(
            Ticket.camera_id,
            Ticket.area_path,
            _count(Ticket.state == str(TicketState.PENDING_REVIEW)),
            _count(state_in(OPEN_STATES)),
            _count(overdue_condition(now)),
            func.count(),
            func.max(Ticket.detected_at),
        )
        .where(*scope)
        .group_by(Ticket.area_path, Ticket.camera_id)
    ).all()
    cameras = [CameraCounts(*row) for row in rows]
    return sorted(cameras, key=lambda c: (-c.overdue, -c.open, c.camera_id))


def _attention(
    session: Session, scope: list[ColumnElement[bool]], now: datetime
) -> list[Ticket]:
    """The first open tickets to look at: overdue ones by deadline, then the
    others by deadline or, without one, by age.

    Each part is read in the order of ``ix_tickets_open_by_deadline`` and
    stops at the limit; no query sorts every open ticket.
    """
    overdue = overdue_condition(now)
    first = _open_tickets(session, [overdue, *scope], ATTENTION_LIMIT)
    rest = ATTENTION_LIMIT - len(first)
    if rest == 0:
        return first
    with_deadline = _open_tickets(
        session, [Ticket.due_at.is_not(None), ~overdue, *scope], rest
    )
    without_deadline = _open_tickets(session, [Ticket.due_at.is_(None), *scope], rest)
    others = heapq.merge(
        with_deadline,
        without_deadline,
        key=lambda t: (t.due_at or t.created_at, t.created_at, t.id),
    )
    return [*first, *islice(others, rest)]


def _open_tickets(
    session: Session, conditions: list[ColumnElement[bool]], limit: int
) -> list[Ticket]:
    """Open tickets meeting the conditions, by deadline then age."""
    return list(
        session.scalars(
            select(Ticket)
            .options(defer(Ticket.event), lazyload("*"))
            .where(state_in(OPEN_STATES), *conditions)
            .order_by(Ticket.due_at, Ticket.created_at, Ticket.id)
            .limit(limit)
        ).all()
    )
