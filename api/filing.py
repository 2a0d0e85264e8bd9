"""Filing events as tickets: idempotent on the event id, and a later event
of the same place attaches to the open ticket instead of filing another.

Filing the same event again, from a retry or from two processes at once,
returns the ticket already there. An event of the same camera and category
whose box overlaps an open ticket's (or whose track is the same) within the
duplicate window is recorded as an attachment of that ticket; two cars side
by side are two tickets.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.duplicates import find_duplicate
from api.notify import Notice, NoticeKind, Notifier
from api.tables import (
    Attachment,
    Evidence,
    Ticket,
    Transition,
    Verification,
    utc_now,
)
from api.tickets import (
    MAX_EVENT_ID_CHARS,
    OPEN_STATES,
    EvidenceNotFound,
    InvalidEvent,
    TicketState,
    get_ticket,
)
from vision.errors import StoreError
from vision.evidence.objects import ObjectStore
from vision.types import Event, EvidenceState

logger = logging.getLogger(__name__)


def file_event(
    session: Session,
    event: Event,
    *,
    duplicate_window_s: float = 3600.0,
    duplicate_iou: float = 0.3,
    notifier: Notifier | None = None,
) -> tuple[Ticket, bool]:
    """File a ticket for the event; ``created`` is False if it was filed before
    or attached to an open ticket of the same place (``ticket.event_id`` then
    differs from the event's).

    Two concurrent filings of one event both end with the same ticket: the
    unique event id makes the second insert fail, and it then reads the first.
    """
    event_dump = _check_event(event)
    existing = ticket_of_event(session, event.event_id)
    if existing is not None:
        return existing, False

    open_ticket = find_duplicate(
        session,
        event,
        open_states=[str(state) for state in OPEN_STATES],
        window_s=duplicate_window_s,
        min_iou=duplicate_iou,
    )
    if open_ticket is not None:
        return _attach(session, open_ticket, event, event_dump), False

    ticket = _new_ticket(event, event_dump)
    session.add(ticket)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = ticket_of_event(session, event.event_id)
        if existing is None:  # the conflict was not the event id
            raise
        return existing, False

    if notifier is not None:
        notifier.notify(Notice.for_ticket(NoticeKind.FILED, ticket))

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


def _attach(
    session: Session, ticket: Ticket, event: Event, event_dump: dict[str, object]
) -> Ticket:
    """Record a later event of the ticket's place on the ticket."""
    if ticket.event_id == event.event_id:  # filed by a concurrent retry
        return ticket
    attachment = Attachment(
        ticket_id=ticket.id,
        event_id=event.event_id,
        track_id=event.track_id,
        bbox=list(event.bbox_xyxy) if event.bbox_xyxy is not None else None,
        detected_at=event.detected_at,
        event=event_dump,
    )
    try:
        session.add(attachment)
        session.execute(
            update(Ticket)
            .where(Ticket.id == ticket.id)
            .values(
                duplicate_count=Ticket.duplicate_count + 1,
                last_seen_at=max(ticket.last_seen_at, event.detected_at),
            )
            .execution_options(synchronize_session=False)
        )
        session.commit()
    except IntegrityError:  # the same event attached at the same moment
        session.rollback()
        existing = ticket_of_event(session, event.event_id)
        if existing is None:
            raise
        return existing
    session.expire(ticket)
    logger.info(
        "event %s attached to ticket %s (same place)",
        event.event_id,
        ticket.id,
        extra={"ticket_id": ticket.id, "camera_id": event.camera_id},
    )
    return get_ticket(session, ticket.id)


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
        last_seen_at=event.detected_at,
        duplicate_count=0,
    )
    ticket.evidence = evidence_rows(event)
    ticket.transitions = [
        Transition(
            from_state=None,
            to_state=TicketState.PENDING_REVIEW,
            actor=f"camera:{event.camera_id}",
            at=now,
        )
    ]
    return ticket


def evidence_rows(event: Event, round_: int = 0) -> list[Evidence]:
    """Evidence rows for the event's items: the filing's (round 0) or a
    camera's verification (round n, role ``verification``)."""
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
            role="original" if round_ == 0 else "verification",
            round=round_,
        )
    return list(rows.values())


def ticket_of_event(session: Session, event_id: str) -> Ticket | None:
    """The ticket filed from this event, or the one it was attached to."""
    ticket = session.scalars(select(Ticket).where(Ticket.event_id == event_id)).first()
    if ticket is not None:
        return ticket
    ticket_id = session.scalar(
        select(Attachment.ticket_id).where(Attachment.event_id == event_id)
    )
    return None if ticket_id is None else session.get(Ticket, ticket_id)


# --- evidence a camera on another machine says it stored ---------------------


def check_evidence_in_store(event: Event, store: ObjectStore) -> Event:
    """Evidence a remote camera reports stored must be in the store this
    service reads: a camera writing to another bucket, or to its own disk,
    would leave reviewers a ticket with nothing to see. Such items are filed
    ``missing``, saying why, and the camera's operator is told in the log.
    When the store cannot be asked, the camera's word is kept."""
    for item in event.evidence:
        if item.state != EvidenceState.STORED:
            continue
        try:
            present = store.exists(item.key)
        except (StoreError, ValueError):
            continue
        if present:
            continue
        item.state = EvidenceState.MISSING
        item.reason = "not in the service's evidence store"
        logger.warning(
            "camera %s: evidence %s of event %s is not in the service's store; "
            "is the camera writing to another store (CITYWATCH_STORE_KIND, "
            "CITYWATCH_S3_BUCKET)?",
            event.camera_id,
            item.key,
            event.event_id,
        )
    return event


# --- evidence that reached the store after the filing ------------------------


class StoredEvidenceNotFound(EvidenceNotFound):
    """No ticket holds this object as evidence of this event (or none of the
    asking camera's tickets does)."""

    def __init__(self, event_id: str, key: str) -> None:
        # The ticket may be unknown, so the parent's ticket id is not set.
        LookupError.__init__(self, f"no ticket holds {key!r} as evidence of {event_id}")
        self.event_id = event_id
        self.key = key


def mark_evidence_stored(
    session: Session, event_id: str, key: str, *, camera_id: str | None = None
) -> Ticket:
    """Record that the evidence object ``key`` of the event reached the store:
    its row becomes ``stored`` and the ticket's evidence state is worked out
    again from its original evidence. The event is the ticket's own, a
    verification's, or one attached to the ticket (whose evidence the ticket
    does not keep, so nothing changes). ``camera_id`` limits the search to
    that camera's tickets. Calling it again changes nothing.
    """
    found = session.execute(
        select(Evidence.id, Evidence.ticket_id)
        .join(Ticket, Ticket.id == Evidence.ticket_id)
        .where(Evidence.key == key, _event_of_ticket(event_id), *_camera(camera_id))
    ).first()
    if found is None:
        return _attached_ticket(session, event_id, key, camera_id)

    evidence_id, ticket_id = found
    # Locked first, so two objects of one ticket arriving at once cannot
    # both read the other as pending and leave the ticket pending.
    ticket = session.scalars(
        select(Ticket)
        .where(Ticket.id == ticket_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    row = next(row for row in ticket.evidence if row.id == evidence_id)
    if row.state != EvidenceState.STORED:
        row.state = str(EvidenceState.STORED)
        row.reason = None
        logger.info(
            "evidence %s of ticket %s is now stored",
            key,
            ticket.id,
            extra={"ticket_id": ticket.id},
        )
    ticket.evidence_state = str(
        worst_evidence_state(r.state for r in ticket.evidence if r.role == "original")
    )
    session.commit()
    return ticket


def evidence_purgeable(
    session: Session, event_id: str, *, retention_s: float, now: datetime
) -> bool:
    """May the spool delete the event's evidence to make room?

    Only when the ticket filed from the event was rejected longer ago than
    the retention period: a false alarm nobody needs to see again. Evidence
    of an open, confirmed or recently rejected ticket, or of an event no
    ticket knows yet (it may be filed in a moment), is kept.
    """
    ticket = session.scalars(select(Ticket).where(Ticket.event_id == event_id)).first()
    if ticket is None or ticket.state != TicketState.REJECTED:
        return False
    return ticket.updated_at <= now - timedelta(seconds=retention_s)


def worst_evidence_state(states: Iterable[str]) -> EvidenceState:
    """What a ticket shows for these evidence states: missing over pending
    over stored (stored when there is none)."""
    present = set(states)
    for state in (EvidenceState.MISSING, EvidenceState.PENDING):
        if state in present:
            return state
    return EvidenceState.STORED


def _event_of_ticket(event_id: str) -> ColumnElement[bool]:
    """The ticket was filed from the event, or a camera verified it with it."""
    verified_with = (
        select(Verification.id)
        .where(
            Verification.ticket_id == Ticket.id,
            Verification.evidence_event_id == event_id,
        )
        .exists()
    )
    return or_(Ticket.event_id == event_id, verified_with)


def _camera(camera_id: str | None) -> list[ColumnElement[bool]]:
    return [] if camera_id is None else [Ticket.camera_id == camera_id]


def _attached_ticket(
    session: Session, event_id: str, key: str, camera_id: str | None
) -> Ticket:
    ticket = session.scalars(
        select(Ticket)
        .join(Attachment, Attachment.ticket_id == Ticket.id)
        .where(Attachment.event_id == event_id, *_camera(camera_id))
    ).first()
    if ticket is None:
        raise StoredEvidenceNotFound(event_id, key)
    logger.debug(
        "evidence %s belongs to event %s, attached to ticket %s; nothing to update",
        key,
        event_id,
        ticket.id,
        extra={"ticket_id": ticket.id},
    )
    return ticket
