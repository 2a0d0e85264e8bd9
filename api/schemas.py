"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.tables import Evidence, Ticket, Transition
from api.tickets import RejectionReason, ReviewDecision, TicketState
from vision.types import EvidenceKind, EvidenceState


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvidencePublic(_Body):
    kind: EvidenceKind
    content_type: str
    sha256: str | None
    size_bytes: int | None
    state: EvidenceState
    reason: str | None
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
            url=evidence_path(row.ticket_id, row.kind) if stored else None,
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

    @classmethod
    def from_row(cls, row: Ticket) -> TicketPublic:
        return cls(**_ticket_fields(row))


class TicketDetail(TicketPublic):
    """A ticket with everything a reviewer needs: evidence, history, event."""

    evidence: list[EvidencePublic]
    transitions: list[TransitionPublic]
    event: dict[str, Any] = Field(
        description="The event as the camera filed it (boxes, trajectory, ...)."
    )

    @classmethod
    def from_row(cls, row: Ticket) -> TicketDetail:
        return cls(
            **_ticket_fields(row),
            evidence=[EvidencePublic.from_row(item) for item in row.evidence],
            transitions=[TransitionPublic.from_row(item) for item in row.transitions],
            event=row.event,
        )


class TicketsPage(_Body):
    items: list[TicketPublic]
    total: int
    limit: int
    offset: int


class ReviewRequest(_Body):
    decision: ReviewDecision
    reason: RejectionReason | None = Field(
        default=None, description="Why the alarm is rejected; required to reject."
    )
    note: str | None = Field(default=None, max_length=4000)
    actor: str = Field(min_length=1, max_length=255, pattern=r"\S")

    @model_validator(mode="after")
    def _reason_matches_decision(self) -> ReviewRequest:
        if self.decision is ReviewDecision.REJECT and self.reason is None:
            raise ValueError("a rejection needs a reason")
        if self.decision is ReviewDecision.CONFIRM and self.reason is not None:
            raise ValueError("a confirmation takes no rejection reason")
        return self


class EventFiled(_Body):
    ticket_id: int
    created: bool = Field(description="False when the event was filed before.")


class Health(_Body):
    status: str
    database: str


def evidence_path(ticket_id: int, kind: str) -> str:
    return f"/api/tickets/{ticket_id}/evidence/{kind}"


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
    }
