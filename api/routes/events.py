"""Events posted by camera workers that run on other machines."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from api import tickets
from api.deps import SessionDep
from api.schemas import EventFiled
from vision.types import Event

router = APIRouter(prefix="/api/events", tags=["events"])


@router.post(
    "",
    response_model=EventFiled,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": EventFiled, "description": "Already filed."}},
)
def post_event(event: Event, session: SessionDep, response: Response) -> EventFiled:
    """File a ticket for the event: 201 when new, 200 when this event id was
    filed before (a retry), with the same ticket id either way."""
    ticket, created = tickets.file_event(session, event)
    if not created:
        response.status_code = status.HTTP_200_OK
    return EventFiled(ticket_id=ticket.id, created=created)
