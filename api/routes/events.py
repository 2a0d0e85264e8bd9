"""Events posted by camera workers that run on other machines, the ticket
an event went into, word that their spooled evidence reached the store, and
the verification requests those workers answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from api import workflow
from api.access import Action, can_see, require
from api.auth import Forbidden, Principal
from api.deps import (
    NotifierDep,
    PrincipalDep,
    ReachableStoreDep,
    SessionDep,
    SettingsDep,
)
from api.filing import (
    check_evidence_in_store,
    file_event,
    mark_evidence_stored,
    ticket_of_event,
)
from api.routes.tickets import TicketId
from api.schemas import (
    EventFiled,
    EventTicket,
    EvidenceStored,
    TicketDetail,
    VerificationReport,
    VerificationRequestPublic,
)
from api.tickets import MAX_EVENT_ID_CHARS, EventNotFiled
from vision.sink import VerificationResult
from vision.types import Event

router = APIRouter(tags=["cameras"])

CameraId = Annotated[str, Path(min_length=1, max_length=255)]
EventId = Annotated[str, Path(min_length=1, max_length=MAX_EVENT_ID_CHARS)]


def _require_camera(principal: Principal, camera_id: str) -> None:
    if principal.camera_id != camera_id:
        raise Forbidden(f"{principal.name} may not act for camera {camera_id}")


@router.post(
    "/api/events",
    response_model=EventFiled,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": EventFiled, "description": "Already filed."}},
)
def post_event(
    event: Event,
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    notifier: NotifierDep,
    store: ReachableStoreDep,
    response: Response,
) -> EventFiled:
    """File a ticket for the event (the camera's API key, or an engineer):
    201 when new; 200 when this event id was filed before (a retry) or the
    event repeats an open ticket's place and was attached to it. Evidence
    said to be stored that this service's store does not hold is filed
    missing."""
    if principal.is_camera:
        _require_camera(principal, event.camera_id)
    else:
        require(principal, Action.FILE_EVENT, event.area_path)
    if store is not None:
        event = check_evidence_in_store(event, store)
    ticket, created = file_event(
        session,
        event,
        duplicate_window_s=settings.duplicate_window_s,
        duplicate_iou=settings.duplicate_iou,
        notifier=notifier,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return EventFiled(
        ticket_id=ticket.id,
        created=created,
        attached=not created and ticket.event_id != event.event_id,
        evidence_state=ticket.evidence_state,
    )


@router.get("/api/events/{event_id}", response_model=EventTicket)
def get_event_ticket(
    event_id: EventId, session: SessionDep, principal: PrincipalDep
) -> EventTicket:
    """The ticket an event went into (the camera's API key, or a user who may
    see the ticket). A camera that analyses a recording again asks before it
    writes evidence, so that what was filed and reviewed stays as it was.
    404 when no ticket the caller may see holds the event."""
    ticket = ticket_of_event(session, event_id)
    if ticket is None:
        raise EventNotFiled(event_id)
    if principal.is_camera:
        visible = ticket.camera_id == principal.camera_id
    else:
        visible = can_see(principal, ticket.area_path)
    if not visible:
        raise EventNotFiled(event_id)
    return EventTicket(ticket_id=ticket.id, state=ticket.state)


@router.post(
    "/api/events/{event_id}/evidence-stored",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
def post_evidence_stored(
    event_id: EventId,
    body: EvidenceStored,
    session: SessionDep,
    principal: PrincipalDep,
) -> None:
    """Evidence of one of the camera's events, spooled while the store was
    down, has reached the store (the camera's API key): the ticket shows it
    stored. 404 when none of the camera's tickets holds that object."""
    if principal.camera_id is None:
        raise Forbidden(f"{principal.name} is not a camera")
    mark_evidence_stored(session, event_id, body.key, camera_id=principal.camera_id)


@router.get(
    "/api/cameras/{camera_id}/verifications",
    response_model=list[VerificationRequestPublic],
)
def list_verifications(
    camera_id: CameraId, session: SessionDep, principal: PrincipalDep
) -> list[VerificationRequestPublic]:
    """Resolved tickets this camera is asked to re-check (its API key)."""
    _require_camera(principal, camera_id)
    return [
        VerificationRequestPublic(
            ticket_id=int(request.ticket_id),
            event=request.event,
            clear_s=request.clear_s,
        )
        for request in workflow.pending_verifications(session, camera_id)
    ]


@router.post("/api/verifications/{ticket_id}/result", response_model=TicketDetail)
def report_verification(
    ticket_id: TicketId,
    body: VerificationReport,
    session: SessionDep,
    principal: PrincipalDep,
    notifier: NotifierDep,
) -> TicketDetail:
    """The camera's answer (its API key): ``gone`` verifies the ticket,
    ``still_there`` reopens it; the evidence is kept beside the original."""
    if principal.camera_id is None:
        raise Forbidden(f"{principal.name} is not a camera")
    ticket = workflow.report_verification(
        session,
        VerificationResult(
            ticket_id=str(ticket_id),
            outcome=body.outcome,
            evidence_event=body.evidence_event,
        ),
        camera_id=principal.camera_id,
        notifier=notifier,
    )
    return TicketDetail.from_row(ticket)
