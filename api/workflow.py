"""A ticket's life after review: dispatch, resolution, verification by the
camera, closing and reopening.

Each step is one ``tickets.transition`` (checked against the workflow table,
audited, notified). A confirmed ticket is dispatched at once when a dispatch
rule covers it; a resolved one gets a verification request for the camera
that filed it, and the camera's answer verifies or reopens it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.dispatch import DispatchConfig
from api.filing import evidence_rows
from api.notify import Notice, NoticeKind, Notifier
from api.tables import Ticket, Transition, Verification, utc_now
from api.tickets import (
    IllegalTransition,
    TicketError,
    TicketState,
    get_ticket,
    overdue_condition,
    transition,
)
from vision.sink import VerificationOutcome, VerificationRequest, VerificationResult
from vision.types import Event

logger = logging.getLogger(__name__)

DISPATCH_ACTOR = "system:dispatch-rules"
REASSIGNED = "reassigned"

_S = TicketState


class NoAssignee(TicketError, ValueError):
    """Dispatch without an assignee where no dispatch rule covers the ticket."""


class VerificationNotFound(TicketError, LookupError):
    def __init__(self, ticket_id: int, camera_id: str) -> None:
        super().__init__(
            f"ticket {ticket_id} has no open verification for camera {camera_id}"
        )
        self.ticket_id = ticket_id


def dispatch(
    session: Session,
    ticket_id: int,
    config: DispatchConfig,
    *,
    actor: str,
    assignee: str | None = None,
    note: str | None = None,
    notifier: Notifier | None = None,
) -> Ticket:
    """Send a confirmed (or reopened) ticket to ``assignee``, or to whom the
    dispatch rules name; the category's deadline starts now."""
    ticket = get_ticket(session, ticket_id)
    chosen = assignee or config.assignee_for(ticket.category, ticket.area_path)
    if chosen is None:
        raise NoAssignee(
            f"no dispatch rule covers {ticket.category} in "
            f"'{ticket.area_path}'; name an assignee"
        )
    deadline = config.deadline_for(ticket.category)
    now = utc_now()
    return transition(
        session,
        ticket_id,
        _S.DISPATCHED,
        actor=actor,
        note=note or f"to {chosen}",
        values={
            "assignee": chosen,
            "due_at": now + deadline if deadline else None,
            "overdue_notified_at": None,
        },
        notifier=notifier,
    )


def dispatch_by_rules(
    session: Session,
    ticket: Ticket,
    config: DispatchConfig,
    *,
    notifier: Notifier | None = None,
) -> Ticket:
    """Dispatch a just-confirmed ticket if a rule covers it; else leave it
    confirmed for a dispatcher."""
    if ticket.state != _S.CONFIRMED:
        return ticket
    if config.assignee_for(ticket.category, ticket.area_path) is None:
        logger.info(
            "ticket %s: no dispatch rule for %s in '%s'; waiting for a dispatcher",
            ticket.id,
            ticket.category,
            ticket.area_path,
            extra={"ticket_id": ticket.id},
        )
        return ticket
    return dispatch(session, ticket.id, config, actor=DISPATCH_ACTOR, notifier=notifier)


def reassign(
    session: Session,
    ticket_id: int,
    assignee: str,
    *,
    actor: str,
    note: str | None = None,
    notifier: Notifier | None = None,
) -> Ticket:
    """Give a dispatched ticket to another team; audited like a transition
    (from ``dispatched`` to ``dispatched``, reason ``reassigned``)."""
    ticket = get_ticket(session, ticket_id)
    if ticket.state != _S.DISPATCHED:
        raise IllegalTransition(ticket_id, ticket.state, _S.DISPATCHED)
    previous = ticket.assignee
    result = session.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id, Ticket.state == _S.DISPATCHED)
        .values(assignee=assignee, updated_at=utc_now())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise IllegalTransition(
            ticket_id, get_ticket(session, ticket_id).state, _S.DISPATCHED
        )
    detail = f"from {previous} to {assignee}"
    session.add(
        Transition(
            ticket_id=ticket_id,
            from_state=_S.DISPATCHED,
            to_state=_S.DISPATCHED,
            actor=actor,
            at=utc_now(),
            reason=REASSIGNED,
            note=f"{detail}; {note}" if note else detail,
        )
    )
    session.commit()
    session.expire(ticket)
    ticket = get_ticket(session, ticket_id)
    if notifier is not None:
        notifier.notify(Notice.for_ticket(NoticeKind.DISPATCHED, ticket))
    return ticket


def resolve(
    session: Session,
    ticket_id: int,
    *,
    actor: str,
    clear_s: float,
    note: str | None = None,
) -> Ticket:
    """Mark the work done and ask the filing camera to check the place."""
    ticket = get_ticket(session, ticket_id)
    request = Verification(
        ticket_id=ticket_id,
        camera_id=ticket.camera_id,
        round=len(ticket.verifications) + 1,
        state="open",
        clear_s=clear_s,
        requested_at=utc_now(),
    )
    return transition(
        session,
        ticket_id,
        _S.RESOLVED,
        actor=actor,
        note=note,
        extra_rows=[request],
    )


def close(
    session: Session, ticket_id: int, *, actor: str, note: str | None = None
) -> Ticket:
    return transition(session, ticket_id, _S.CLOSED, actor=actor, note=note)


def reopen(
    session: Session,
    ticket_id: int,
    *,
    actor: str,
    note: str | None = None,
    notifier: Notifier | None = None,
) -> Ticket:
    return transition(
        session, ticket_id, _S.REOPENED, actor=actor, note=note, notifier=notifier
    )


# --- verification by the camera ----------------------------------------------


def pending_verifications(
    session: Session, camera_id: str
) -> list[VerificationRequest]:
    """The camera's open verification requests, oldest first."""
    rows = session.scalars(
        select(Verification)
        .where(Verification.camera_id == camera_id, Verification.state == "open")
        .order_by(Verification.id)
    ).all()
    return [
        VerificationRequest(
            ticket_id=str(row.ticket_id),
            event=Event.model_validate(row.ticket.event),
            clear_s=row.clear_s,
        )
        for row in rows
    ]


def report_verification(
    session: Session,
    result: VerificationResult,
    *,
    camera_id: str | None,
    notifier: Notifier | None = None,
) -> Ticket:
    """Record the camera's answer: ``gone`` verifies the ticket,
    ``still_there`` reopens it; the answer's evidence is kept beside the
    original as verification evidence of this round. ``camera_id`` is the
    camera answering (None: whichever camera was asked, for in-process use).
    """
    ticket_id = _ticket_id(result.ticket_id)
    conditions = [Verification.ticket_id == ticket_id, Verification.state == "open"]
    if camera_id is not None:
        conditions.append(Verification.camera_id == camera_id)
    request = session.scalars(select(Verification).where(*conditions)).first()
    if request is None:
        raise VerificationNotFound(ticket_id, camera_id or "any camera")

    outcome = VerificationOutcome(result.outcome)
    to_state = _S.VERIFIED if outcome is VerificationOutcome.GONE else _S.REOPENED
    evidence = evidence_rows(result.evidence_event, round_=request.round)
    for row in evidence:
        row.ticket_id = ticket_id
    request.state = "done"
    request.outcome = str(outcome)
    request.reported_at = utc_now()
    request.evidence_event_id = result.evidence_event.event_id
    return transition(
        session,
        ticket_id,
        to_state,
        actor=f"camera:{request.camera_id}",
        reason=f"verification_{outcome}",
        note=f"verification {request.round}: {outcome}",
        extra_rows=[request, *evidence],
        notifier=notifier,
    )


def _ticket_id(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"ticket_id must be a ticket number, got {value!r}") from None


# --- deadlines ------------------------------------------------------------------


def notify_overdue(
    session: Session, notifier: Notifier, now: datetime | None = None
) -> Sequence[int]:
    """Tell once about each ticket whose deadline has passed; their ids."""
    now = now or utc_now()
    late = session.scalars(
        select(Ticket).where(
            overdue_condition(now), Ticket.overdue_notified_at.is_(None)
        )
    ).all()
    for ticket in late:
        ticket.overdue_notified_at = now
        notifier.notify(Notice.for_ticket(NoticeKind.OVERDUE, ticket))
    session.commit()
    return [ticket.id for ticket in late]
