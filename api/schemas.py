"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    field_validator,
    model_validator,
)

from api.access import Role
from api.areas import check_area_path
from api.overview import Overview
from api.review_queue import cursor_of
from api.tables import Attachment, Evidence, Ticket, Transition, User, Verification
from api.tickets import RejectionReason, ReviewDecision, TicketState, is_overdue
from vision.sink import VerificationOutcome
from vision.types import Event, EvidenceKind, EvidenceState


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvidencePublic(_Body):
    kind: EvidenceKind
    content_type: str
    sha256: str | None
    size_bytes: int | None
    state: EvidenceState
    reason: str | None
    role: Literal["original", "verification"] = Field(
        description="original: filed with the ticket; verification: what the "
        "camera saw when it re-checked the place."
    )
    round: int = Field(description="0 for original, n for the n-th verification.")
    url: str | None = Field(
        description="Where the API serves the object; None until it is stored."
    )

    @classmethod
    def from_row(cls, row: Evidence) -> EvidencePublic:
        stored = row.state == EvidenceState.STORED
        return cls(
            kind=EvidenceKind(row.kind),
            content_type=row.content_type,
            sha256=row.sha256,
            size_bytes=row.size_bytes,
            state=EvidenceState(row.state),
            reason=row.reason,
            role="verification" if row.role == "verification" else "original",
            round=row.round,
            url=evidence_path(row.ticket_id, row.kind, row.round) if stored else None,
        )


class TransitionPublic(_Body):
    from_state: TicketState | None
    to_state: TicketState
    actor: str
    at: datetime
    reason: str | None
    note: str | None

    @classmethod
    def from_row(cls, row: Transition) -> TransitionPublic:
        return cls(
            from_state=TicketState(row.from_state) if row.from_state else None,
            to_state=TicketState(row.to_state),
            actor=row.actor,
            at=row.at,
            reason=row.reason,
            note=row.note,
        )


class TicketPublic(_Body):
    id: int
    event_id: str
    camera_id: str
    area_path: str
    category: str
    state: TicketState
    rule: str
    zone: str | None
    class_name: str | None
    track_id: int | None
    score: float
    started_at: datetime
    detected_at: datetime
    started_ts_s: float
    ended_ts_s: float
    bbox_xyxy: tuple[float, float, float, float] | None
    evidence_state: EvidenceState
    created_at: datetime
    updated_at: datetime
    assignee: str | None = Field(description="Department or grid team.")
    due_at: datetime | None = Field(description="Deadline set at dispatch.")
    overdue: bool = Field(description="Deadline passed while work is owed.")
    last_seen_at: datetime = Field(description="Latest event of this place.")
    duplicate_count: int = Field(description="Later events attached to it.")

    @classmethod
    def from_row(cls, row: Ticket) -> TicketPublic:
        return cls(**_ticket_fields(row))


class AttachmentPublic(_Body):
    event_id: str
    track_id: int | None
    bbox_xyxy: tuple[float, float, float, float] | None
    detected_at: datetime

    @classmethod
    def from_row(cls, row: Attachment) -> AttachmentPublic:
        return cls(
            event_id=row.event_id,
            track_id=row.track_id,
            bbox_xyxy=tuple(row.bbox) if row.bbox is not None else None,
            detected_at=row.detected_at,
        )


class VerificationPublic(_Body):
    round: int
    camera_id: str
    state: Literal["open", "done"]
    clear_s: float
    requested_at: datetime
    outcome: VerificationOutcome | None
    reported_at: datetime | None

    @classmethod
    def from_row(cls, row: Verification) -> VerificationPublic:
        return cls(
            round=row.round,
            camera_id=row.camera_id,
            state="done" if row.state == "done" else "open",
            clear_s=row.clear_s,
            requested_at=row.requested_at,
            outcome=VerificationOutcome(row.outcome) if row.outcome else None,
            reported_at=row.reported_at,
        )


class TicketDetail(TicketPublic):
    """A ticket with everything a reviewer needs: evidence, history, event."""

    evidence: list[EvidencePublic]
    transitions: list[TransitionPublic]
    attachments: list[AttachmentPublic]
    verifications: list[VerificationPublic]
    event: dict[str, Any] = Field(
        description="The event as the camera filed it (boxes, trajectory, ...)."
    )

    @classmethod
    def from_row(cls, row: Ticket) -> TicketDetail:
        return cls(
            **_ticket_fields(row),
            evidence=[EvidencePublic.from_row(item) for item in row.evidence],
            transitions=[TransitionPublic.from_row(item) for item in row.transitions],
            attachments=[AttachmentPublic.from_row(item) for item in row.attachments],
            verifications=[
                VerificationPublic.from_row(item) for item in row.verifications
            ],
            event=row.event,
        )


class TicketsPage(_Body):
    items: list[TicketPublic]
    total: int
    limit: int
    offset: int


class QueuedTicket(TicketPublic):
    cursor: str = Field(
        description="Its place in the review queue; pass it as `after` to read "
        "the tickets behind it. Cursors sort as text in queue order."
    )

    @classmethod
    def from_row(cls, row: Ticket) -> QueuedTicket:
        return cls(**_ticket_fields(row), cursor=cursor_of(row))


class QueuePage(_Body):
    items: list[QueuedTicket] = Field(description="Oldest first.")
    total: int = Field(description="Tickets waiting for you in all.")
    next: str | None = Field(
        description="`after` for the page behind this one; null at the queue's end."
    )


class CategoryCountsPublic(_Body):
    category: str
    by_state: dict[TicketState, int] = Field(description="Open states only.")
    overdue: int
    open: int


class CameraCountsPublic(_Body):
    camera_id: str
    area_path: str
    waiting_for_review: int
    open: int
    overdue: int
    tickets: int = Field(description="In every state, closed ones included.")
    last_detected_at: datetime


class OverviewPublic(_Body):
    """Counts of the tickets in your areas (or the one area asked for)."""

    area: str | None = Field(description="The area asked for; null: all yours.")
    overdue: int = Field(description="Deadline passed while work is owed.")
    waiting_for_review: int
    open: int
    tickets: int = Field(description="In every state, closed ones included.")
    categories: list[CategoryCountsPublic] = Field(description="Open tickets.")
    cameras: list[CameraCountsPublic] = Field(
        description="Every camera with a ticket here; most overdue first."
    )
    attention: list[TicketPublic] = Field(
        description="The first open tickets to look at: overdue ones first."
    )

    @classmethod
    def from_overview(cls, overview: Overview, area: str | None) -> OverviewPublic:
        return cls(
            area=area,
            overdue=overview.overdue,
            waiting_for_review=overview.waiting_for_review,
            open=overview.open,
            tickets=overview.tickets,
            categories=[
                CategoryCountsPublic(
                    category=c.category,
                    by_state={TicketState(s): n for s, n in c.by_state.items()},
                    overdue=c.overdue,
                    open=c.open,
                )
                for c in overview.categories
            ],
            cameras=[CameraCountsPublic(**vars(c)) for c in overview.cameras],
            attention=[TicketPublic.from_row(row) for row in overview.attention],
        )


class ReviewRequest(_Body):
    decision: ReviewDecision
    reason: RejectionReason | None = Field(
        default=None, description="Why the alarm is rejected; required to reject."
    )
    note: str | None = Field(default=None, max_length=4000)

    @model_validator(mode="after")
    def _reason_matches_decision(self) -> ReviewRequest:
        if self.decision is ReviewDecision.REJECT and self.reason is None:
            raise ValueError("a rejection needs a reason")
        if self.decision is ReviewDecision.CONFIRM and self.reason is not None:
            raise ValueError("a confirmation takes no rejection reason")
        return self


class NoteRequest(_Body):
    note: str | None = Field(default=None, max_length=4000)


class DispatchRequest(NoteRequest):
    assignee: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Department or grid team; default: the dispatch rules'.",
    )


class AssignRequest(NoteRequest):
    assignee: str = Field(min_length=1, max_length=255)


class EventTicket(_Body):
    """The ticket an event was filed into, or attached to."""

    ticket_id: int
    state: TicketState


class EventFiled(_Body):
    ticket_id: int
    created: bool = Field(description="False when the event was filed before.")
    attached: bool = Field(
        default=False,
        description="True when the event repeats an open ticket's place and "
        "was attached to it.",
    )
    evidence_state: EvidenceState | None = Field(
        default=None,
        description="The ticket's evidence as filed: 'missing' where objects "
        "said to be stored are not in the service's store.",
    )


class VerificationRequestPublic(_Body):
    ticket_id: int
    event: Event = Field(description="The event the ticket was filed from.")
    clear_s: float = Field(description="Stream seconds the place must stay clear.")


class VerificationReport(_Body):
    outcome: VerificationOutcome
    evidence_event: Event = Field(description="What the camera saw, with evidence.")


class EvidenceStored(_Body):
    key: str = Field(
        min_length=1,
        max_length=1024,
        description="Object key of the evidence that reached the store.",
    )


class Token(_Body):
    access_token: str
    token_type: Literal["bearer"] = "bearer"


class GrantBody(_Body):
    role: Role
    area_path: str = Field(max_length=512, description="'' is the whole city.")

    @field_validator("area_path")
    @classmethod
    def _area(cls, value: str) -> str:
        return check_area_path(value)


class UserCreate(_Body):
    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")
    password: str | None = Field(default=None, min_length=8, max_length=256)
    grants: list[GrantBody] = Field(min_length=1, max_length=100)


class UserPublic(_Body):
    username: str
    active: bool
    grants: list[GrantBody]

    @classmethod
    def from_row(cls, row: User) -> UserPublic:
        return cls(
            username=row.username,
            active=row.active,
            grants=[
                GrantBody(role=Role(g.role), area_path=g.area_path) for g in row.grants
            ],
        )


class ErrorBody(_Body):
    """A refusal of the service: a stable code and a readable message."""

    detail: str = Field(description="Stable code, like ticket_not_found.")
    message: str


class FieldErrors(BaseModel):
    """Request fields that failed validation (FastAPI's own answer)."""

    detail: list[dict[str, Any]]


class Unprocessable(RootModel[FieldErrors | ErrorBody]):
    """422: malformed fields, or a well-formed request the service refuses
    (a review without a reason, an event it cannot keep)."""


# Answers any endpoint may give, documented once for all of them.
ERROR_DOCS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No valid token or API key."},
    403: {"model": ErrorBody, "description": "The caller's roles forbid it."},
    404: {"model": ErrorBody, "description": "Unknown, or outside your areas."},
    409: {"model": ErrorBody, "description": "Not allowed in the current state."},
    422: {"model": Unprocessable, "description": "Refused request."},
    503: {"model": ErrorBody, "description": "Database or store unreachable."},
}


class Health(_Body):
    status: str
    database: str


def evidence_path(ticket_id: int, kind: str, round_: int = 0) -> str:
    path = f"/api/tickets/{ticket_id}/evidence/{kind}"
    return f"{path}?round={round_}" if round_ else path


def _ticket_fields(row: Ticket) -> dict[str, Any]:
    return {
        "id": row.id,
        "event_id": row.event_id,
        "camera_id": row.camera_id,
        "area_path": row.area_path,
        "category": row.category,
        "state": TicketState(row.state),
        "rule": row.rule,
        "zone": row.zone,
        "class_name": row.class_name,
        "track_id": row.track_id,
        "score": row.score,
        "started_at": row.started_at,
        "detected_at": row.detected_at,
        "started_ts_s": row.started_ts_s,
        "ended_ts_s": row.ended_ts_s,
        "bbox_xyxy": tuple(row.bbox) if row.bbox is not None else None,
        "evidence_state": EvidenceState(row.evidence_state),
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "assignee": row.assignee,
        "due_at": row.due_at,
        "overdue": is_overdue(row),
        "last_seen_at": row.last_seen_at,
        "duplicate_count": row.duplicate_count,
    }
