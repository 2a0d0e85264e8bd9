"""The ticket service: filing events, the review workflow, and queries.

Every state change goes through ``transition``, which checks the one table of
allowed moves (``ALLOWED_TRANSITIONS``) and writes an audit record (who, when,
from which state, why). Illegal moves raise ``IllegalTransition``; the API
answers them with 409.

Filing (``api.filing``) is idempotent on ``event.event_id``; the steps after
review (dispatch, resolution, verification, closing) are in ``api.workflow``.

The functions here commit their own unit of work: a filing or a transition is
either wholly stored or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, func, select, update
from sqlalchemy.orm import Session, defer, lazyload

from api.areas import within
from api.notify import Notice, NoticeKind, Notifier
from api.tables import Evidence, Ticket, Transition, utc_now
from vision.errors import CitywatchError
from vision.types import Category, EvidenceKind

logger = logging.getLogger(__name__)

MAX_EVENT_ID_CHARS = 128
MAX_PAGE_SIZE = 500


class TicketState(StrEnum):
    PENDING_REVIEW = "pending_review"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    DISPATCHED = "dispatched"
    RESOLVED = "resolved"
    VERIFIED = "verified"
    CLOSED = "closed"
    REOPENED = "reopened"


class RejectionReason(StrEnum):
    FALSE_DETECTION = "false_detection"
    DUPLICATE = "duplicate"
    NOT_A_VIOLATION = "not_a_violation"
    OUT_OF_SCOPE = "out_of_scope"
    POOR_EVIDENCE = "poor_evidence"
    OTHER = "other"


class ReviewDecision(StrEnum):
    CONFIRM = "confirm"
    REJECT = "reject"


_S = TicketState

# The workflow, in one place. ``None`` is "no ticket yet": filing.
# A reopened ticket goes back through review (or straight to dispatch when a
# verification found the problem still there).
ALLOWED_TRANSITIONS: dict[TicketState | None, frozenset[TicketState]] = {
    None: frozenset({_S.PENDING_REVIEW}),
    _S.PENDING_REVIEW: frozenset({_S.CONFIRMED, _S.REJECTED}),
    _S.CONFIRMED: frozenset({_S.DISPATCHED, _S.CLOSED}),
    _S.REJECTED: frozenset({_S.REOPENED, _S.CLOSED}),
    _S.DISPATCHED: frozenset({_S.RESOLVED}),
    _S.RESOLVED: frozenset({_S.VERIFIED, _S.REOPENED}),
    _S.VERIFIED: frozenset({_S.CLOSED}),
    _S.CLOSED: frozenset({_S.REOPENED}),
    _S.REOPENED: frozenset({_S.CONFIRMED, _S.REJECTED, _S.DISPATCHED}),
}

# States in which somebody still owes work; a deadline past in one of them
# makes the ticket overdue.
OPEN_WORK_STATES = frozenset({_S.CONFIRMED, _S.DISPATCHED, _S.REOPENED})
# States a later event of the same place can attach to.
OPEN_STATES = frozenset(
    {_S.PENDING_REVIEW, _S.CONFIRMED, _S.DISPATCHED, _S.RESOLVED, _S.REOPENED}
)
# Who is told when a ticket enters these states.
_NOTICE_ON_ENTRY = {
    _S.DISPATCHED: NoticeKind.DISPATCHED,
    _S.REOPENED: NoticeKind.REOPENED,
}

_DECISION_STATES = {
    ReviewDecision.CONFIRM: TicketState.CONFIRMED,
    ReviewDecision.REJECT: TicketState.REJECTED,
}


class TicketError(CitywatchError):
    """Base of the ticket service's refusals."""


class TicketNotFound(TicketError, LookupError):
    def __init__(self, ticket_id: int) -> None:
        super().__init__(f"ticket {ticket_id} does not exist")
        self.ticket_id = ticket_id


class EventNotFiled(TicketError, LookupError):
    def __init__(self, event_id: str) -> None:
        super().__init__(f"no ticket holds event {event_id}")
        self.event_id = event_id


class EvidenceNotFound(TicketError, LookupError):
    def __init__(self, ticket_id: int, kind: str, why: str) -> None:
        super().__init__(f"ticket {ticket_id} has no {kind} evidence: {why}")
        self.ticket_id = ticket_id
        self.kind = kind


class IllegalTransition(TicketError):
    def __init__(
        self, ticket_id: int, from_state: str | None, to_state: TicketState
    ) -> None:
        allowed = sorted(ALLOWED_TRANSITIONS.get(_state_or_none(from_state), ()))
        super().__init__(
            f"ticket {ticket_id} is {from_state}; it cannot become {to_state} "
            f"(allowed: {', '.join(allowed) or 'none'})"
        )
        self.ticket_id = ticket_id
        self.from_state = from_state
        self.to_state = to_state


class InvalidReview(TicketError, ValueError):
    """A review that is malformed whatever the ticket's state."""


class InvalidEvent(TicketError, ValueError):
    """An event that cannot be filed as it is."""


def _state_or_none(state: str | None) -> TicketState | None:
    return None if state is None else TicketState(state)


def check_transition(
    ticket_id: int, from_state: str | None, to_state: TicketState
) -> None:
    """Raise IllegalTransition unless the workflow allows this move."""
    if to_state not in ALLOWED_TRANSITIONS.get(_state_or_none(from_state), ()):
        raise IllegalTransition(ticket_id, from_state, to_state)


# --- workflow ---------------------------------------------------------------


def transition(
    session: Session,
    ticket_id: int,
    to_state: TicketState,
    *,
    actor: str,
    reason: str | None = None,
    note: str | None = None,
    values: dict[str, Any] | None = None,
    extra_rows: Sequence[object] = (),
    notifier: Notifier | None = None,
) -> Ticket:
    """Move a ticket to ``to_state`` and record who did it and why.

    ``values`` are further ticket columns set by the same update (assignee,
    deadline), ``extra_rows`` rows stored in the same commit (a verification
    request, evidence). The update only applies if the ticket is still in the
    state it was read in, so two people acting at once cannot both succeed.
    """
    ticket = get_ticket(session, ticket_id)
    from_state = ticket.state
    check_transition(ticket_id, from_state, to_state)

    now = utc_now()
    result = session.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id, Ticket.state == from_state)
        .values(state=to_state, updated_at=now, **(values or {}))
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        now_state = get_ticket(session, ticket_id).state
        raise IllegalTransition(ticket_id, now_state, to_state)
    session.add(
        Transition(
            ticket_id=ticket_id,
            from_state=from_state,
            to_state=to_state,
            actor=actor,
            at=now,
            reason=reason,
            note=note,
        )
    )
    session.add_all(extra_rows)
    session.commit()
    session.expire(ticket)
    logger.info(
        "ticket %s: %s -> %s by %s",
        ticket_id,
        from_state,
        to_state,
        actor,
        extra={"ticket_id": ticket_id},
    )
    ticket = get_ticket(session, ticket_id)
    if notifier is not None and to_state in _NOTICE_ON_ENTRY:
        notifier.notify(Notice.for_ticket(_NOTICE_ON_ENTRY[to_state], ticket))
    return ticket


def review(
    session: Session,
    ticket_id: int,
    decision: ReviewDecision,
    *,
    actor: str,
    reason: RejectionReason | None = None,
    note: str | None = None,
) -> Ticket:
    """Confirm or reject a ticket. A rejection needs a reason; a confirmation
    takes none (the reasons say why an alarm was false)."""
    if decision is ReviewDecision.REJECT and reason is None:
        raise InvalidReview("a rejection needs a reason")
    if decision is ReviewDecision.CONFIRM and reason is not None:
        raise InvalidReview("a confirmation takes no rejection reason")
    if not actor.strip():
        raise InvalidReview("a review needs an actor")
    return transition(
        session,
        ticket_id,
        _DECISION_STATES[decision],
        actor=actor,
        reason=str(reason) if reason is not None else None,
        note=note,
    )


# --- queries ----------------------------------------------------------------


def get_ticket(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise TicketNotFound(ticket_id)
    return ticket


def list_tickets(
    session: Session,
    *,
    state: TicketState | None = None,
    category: Category | None = None,
    camera_id: str | None = None,
    areas: Sequence[str] | None = None,
    area: str | None = None,
    assignee: str | None = None,
    overdue: bool | None = None,
    now: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[Sequence[Ticket], int]:
    """One page of tickets, newest first, and how many match in all.

    ``areas`` are the prefixes the caller may see (None: no limit), ``area``
    narrows to one area and below; ``overdue`` selects tickets whose deadline
    has passed while work is still owed (or, False, the others).
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be 1 to {MAX_PAGE_SIZE}, got {limit}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")

    conditions = []
    if state is not None:
        conditions.append(Ticket.state == str(state))
    if category is not None:
        conditions.append(Ticket.category == str(category))
    if camera_id is not None:
        conditions.append(Ticket.camera_id == camera_id)
    if areas is not None:
        conditions.append(within(Ticket.area_path, areas))
    if area is not None:
        conditions.append(within(Ticket.area_path, [area]))
    if assignee is not None:
        conditions.append(Ticket.assignee == assignee)
    if overdue is not None:
        late = overdue_condition(now or utc_now())
        conditions.append(late if overdue else ~late)

    total = session.scalar(select(func.count(Ticket.id)).where(*conditions)) or 0
    # A page shows tickets, not their event documents or related rows.
    page = session.scalars(
        select(Ticket)
        .options(defer(Ticket.event), lazyload("*"))
        .where(*conditions)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return page, total


def state_in(states: Iterable[TicketState]) -> ColumnElement[bool]:
    """SQL: the ticket is in one of these states.

    The states are written into the statement, sorted, rather than bound as
    parameters: only then can SQLite and PostgreSQL see that a query lies
    within a partial index on the same states (``api.tables``).
    """
    names = sorted(str(state) for state in states)
    return Ticket.state.in_(
        bindparam(None, names, expanding=True, literal_execute=True)
    )


def overdue_condition(now: datetime) -> ColumnElement[bool]:
    """SQL: the deadline has passed and somebody still owes work."""
    return and_(
        Ticket.due_at.is_not(None),
        Ticket.due_at < now,
        state_in(OPEN_WORK_STATES),
    )


def is_overdue(ticket: Ticket, now: datetime | None = None) -> bool:
    return (
        ticket.due_at is not None
        and ticket.due_at < (now or utc_now())
        and ticket.state in OPEN_WORK_STATES
    )


def get_evidence(
    session: Session, ticket_id: int, kind: EvidenceKind, round_: int = 0
) -> Evidence:
    """The ticket's evidence of this kind and round, if it reached the store."""
    ticket = get_ticket(session, ticket_id)
    for item in ticket.evidence:
        if item.kind == kind and item.round == round_:
            if item.state != "stored":
                raise EvidenceNotFound(ticket_id, kind, f"it is {item.state}")
            return item
    raise EvidenceNotFound(ticket_id, kind, "none was filed")
