"""What people do to a ticket: review, dispatch, reassign, resolve, close,
reopen. Each is allowed to some roles on the ticket's area (``api.access``);
the actor recorded is the signed-in user."""

from __future__ import annotations

from fastapi import APIRouter

from api import tickets, workflow
from api.access import Action, visible_ticket
from api.deps import DispatchDep, NotifierDep, PrincipalDep, SessionDep, SettingsDep
from api.routes.tickets import TicketId
from api.schemas import (
    AssignRequest,
    DispatchRequest,
    NoteRequest,
    ReviewRequest,
    TicketDetail,
)
from api.tickets import ReviewDecision

router = APIRouter(prefix="/api/tickets", tags=["workflow"])


@router.post("/{ticket_id}/review", response_model=TicketDetail)
def review_ticket(
    ticket_id: TicketId,
    body: ReviewRequest,
    session: SessionDep,
    principal: PrincipalDep,
    config: DispatchDep,
    notifier: NotifierDep,
) -> TicketDetail:
    """Confirm or reject a ticket waiting for review (reviewers). A rejection
    needs a reason from the fixed list. A confirmed ticket is dispatched at
    once when a dispatch rule covers its category and area."""
    visible_ticket(session, principal, ticket_id, Action.REVIEW)
    ticket = tickets.review(
        session,
        ticket_id,
        body.decision,
        actor=principal.name,
        reason=body.reason,
        note=body.note,
    )
    if body.decision is ReviewDecision.CONFIRM:
        ticket = workflow.dispatch_by_rules(session, ticket, config, notifier=notifier)
    return TicketDetail.from_row(ticket)


@router.post("/{ticket_id}/dispatch", response_model=TicketDetail)
def dispatch_ticket(
    ticket_id: TicketId,
    body: DispatchRequest,
    session: SessionDep,
    principal: PrincipalDep,
    config: DispatchDep,
    notifier: NotifierDep,
) -> TicketDetail:
    """Send a confirmed or reopened ticket to a team (dispatchers); without an
    assignee, to the team the dispatch rules name."""
    visible_ticket(session, principal, ticket_id, Action.DISPATCH)
    ticket = workflow.dispatch(
        session,
        ticket_id,
        config,
        actor=principal.name,
        assignee=body.assignee,
        note=body.note,
        notifier=notifier,
    )
    return TicketDetail.from_row(ticket)


@router.post("/{ticket_id}/assign", response_model=TicketDetail)
def reassign_ticket(
    ticket_id: TicketId,
    body: AssignRequest,
    session: SessionDep,
    principal: PrincipalDep,
    notifier: NotifierDep,
) -> TicketDetail:
    """Give a dispatched ticket to another team (dispatchers)."""
    visible_ticket(session, principal, ticket_id, Action.DISPATCH)
    ticket = workflow.reassign(
        session,
        ticket_id,
        body.assignee,
        actor=principal.name,
        note=body.note,
        notifier=notifier,
    )
    return TicketDetail.from_row(ticket)


@router.post("/{ticket_id}/resolve", response_model=TicketDetail)
def resolve_ticket(
    ticket_id: TicketId,
    body: NoteRequest,
    session: SessionDep,
    principal: PrincipalDep,
    config: DispatchDep,
    settings: SettingsDep,
) -> TicketDetail:
    """Mark the problem fixed (grid workers); the camera that filed the ticket
    is asked to check the place."""
    ticket = visible_ticket(session, principal, ticket_id, Action.RESOLVE)
    clear_s = config.clear_s_for(ticket.category, settings.verification_clear_s)
    ticket = workflow.resolve(
        session, ticket_id, actor=principal.name, clear_s=clear_s, note=body.note
    )
    return TicketDetail.from_row(ticket)


@router.post("/{ticket_id}/close", response_model=TicketDetail)
def close_ticket(
    ticket_id: TicketId, body: NoteRequest, session: SessionDep, principal: PrincipalDep
) -> TicketDetail:
    """Close a verified (or rejected) ticket (dispatchers)."""
    visible_ticket(session, principal, ticket_id, Action.CLOSE)
    ticket = workflow.close(session, ticket_id, actor=principal.name, note=body.note)
    return TicketDetail.from_row(ticket)


@router.post("/{ticket_id}/reopen", response_model=TicketDetail)
def reopen_ticket(
    ticket_id: TicketId,
    body: NoteRequest,
    session: SessionDep,
    principal: PrincipalDep,
    notifier: NotifierDep,
) -> TicketDetail:
    """Reopen a closed or rejected ticket (dispatchers, reviewers)."""
    visible_ticket(session, principal, ticket_id, Action.REOPEN)
    ticket = workflow.reopen(
        session, ticket_id, actor=principal.name, note=body.note, notifier=notifier
    )
    return TicketDetail.from_row(ticket)
