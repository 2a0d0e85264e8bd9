"""The ticket service: filing events, the review workflow, and queries.

Every state change goes through ``transition``, which checks the one table of
allowed moves (``ALLOWED_TRANSITIONS``) and writes an audit record (who, when,
from which state, why). Illegal moves raise ``IllegalTransition``; the API
answers them with 409.

Filing is idempotent on ``event.event_id``: filing the same event again, from
a retry or from two processes at once, returns the ticket already there.

The functions here commit their own unit of work: a filing or a transition is
either wholly stored or not at all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.tables import Evidence, Ticket, Transition, utc_now
from vision.errors import CitywatchError
from vision.types import Category, Event, EvidenceKind

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


# --- filing -----------------------------------------------------------------


def file_event(session: Session, event: Event) -> tuple[Ticket, bool]:
    """File a ticket for the event; ``created`` is False if it was filed before.

    Two concurrent filings of one event both end with the same ticket: the
    unique event id makes the second insert fail, and it then reads the first.
    """
    event_dump = _check_event(event)
    existing = _ticket_by_event_id(session, event.event_id)
    if existing is not None:
        return existing, False

    ticket = _new_ticket(event, event_dump)
    session.add(ticket)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = _ticket_by_event_id(session, event.event_id)
        if existing is None:  # the conflict was not the event id
            raise
        return existing, False

    logger.info(
        "filed ticket %s for %s event %s from camera %s",
        ticket.id,
        event.category,
        event.event_id,
        event.camera_id,
        extra={"ticket_id": ticket.id, "camera_id": event.camera_id},
    )
    return ticket, True


def _check_event(event: Event) -> dict[str, object]:
    """The event as JSON data, refusing what the database cannot keep."""
    if not event.event_id or len(event.event_id) > MAX_EVENT_ID_CHARS:
        raise InvalidEvent(
            f"event_id must be 1 to {MAX_EVENT_ID_CHARS} characters, "
            f"got {len(event.event_id)}"
        )
    dump = event.model_dump(mode="json")
    try:
        json.dumps(dump, allow_nan=False)
    except ValueError as exc:
        raise InvalidEvent(
            f"event {event.event_id} holds a number that is not finite"
        ) from exc
    return dump


def _new_ticket(event: Event, event_dump: dict[str, object]) -> Ticket:
    now = utc_now()
    ticket = Ticket(
        event_id=event.event_id,
        camera_id=event.camera_id,
        area_path=event.area_path,
        category=str(event.category),
        state=TicketState.PENDING_REVIEW,
        rule=event.rule,
        zone=event.zone,
        class_name=event.class_name,
        track_id=event.track_id,
        score=event.score,
        started_at=event.started_at,
        detected_at=event.detected_at,
        started_ts_s=event.started_ts_s,
        ended_ts_s=event.ended_ts_s,
        bbox=list(event.bbox_xyxy) if event.bbox_xyxy is not None else None,
        event=event_dump,
        evidence_state=str(event.evidence_state),
        created_at=now,
        updated_at=now,
    )
    ticket.evidence = _evidence_rows(event)
    ticket.transitions = [
        Transition(
            from_state=None,
            to_state=TicketState.PENDING_REVIEW,
            actor=f"camera:{event.camera_id}",
            at=now,
        )
    ]
    return ticket


def _evidence_rows(event: Event) -> list[Evidence]:
    rows: dict[str, Evidence] = {}
    for item in event.evidence:
        if item.kind in rows:
            # The API serves one object per kind; keep the first.
            logger.warning(
                "event %s has more than one %s evidence item; keeping the first",
                event.event_id,
                item.kind,
            )
            continue
        rows[item.kind] = Evidence(
            kind=str(item.kind),
            key=item.key,
            content_type=item.content_type,
            sha256=item.sha256,
            size_bytes=item.size_bytes,
            state=str(item.state),
            reason=item.reason,
        )
    return list(rows.values())


def _ticket_by_event_id(session: Session, event_id: str) -> Ticket | None:
    return session.scalars(select(Ticket).where(Ticket.event_id == event_id)).first()


# --- workflow ---------------------------------------------------------------


def transition(
    session: Session,
    ticket_id: int,
    to_state: TicketState,
    *,
    actor: str,
    reason: str | None = None,
    note: str | None = None,
) -> Ticket:
    """Move a ticket to ``to_state`` and record who did it and why.

    The update only applies if the ticket is still in the state it was read
    in, so two reviewers acting at once cannot both succeed.
    """
    ticket = get_ticket(session, ticket_id)
    from_state = ticket.state
    check_transition(ticket_id, from_state, to_state)

    now = utc_now()
    result = session.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id, Ticket.state == from_state)
        .values(state=to_state, updated_at=now)
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
    return get_ticket(session, ticket_id)


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
    limit: int = 50,
    offset: int = 0,
) -> tuple[Sequence[Ticket], int]:
    """One page of tickets, newest first, and how many match in all."""
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

    total = session.scalar(select(func.count(Ticket.id)).where(*conditions)) or 0
    page = session.scalars(
        select(Ticket)
        .where(*conditions)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return page, total


def get_evidence(session: Session, ticket_id: int, kind: EvidenceKind) -> Evidence:
    """The ticket's evidence of this kind, if it reached the store."""
    ticket = get_ticket(session, ticket_id)
    for item in ticket.evidence:
        if item.kind == kind:
            if item.state != "stored":
                raise EvidenceNotFound(ticket_id, kind, f"it is {item.state}")
            return item
    raise EvidenceNotFound(ticket_id, kind, "none was filed")
