"""Is a new event the same place as an open ticket?

Same camera, same category, an open ticket last seen within the window, and
the same object position: boxes that overlap by at least ``min_iou``
(intersection over union of ``bbox_xyxy``) or the same track id. Merely the
same zone is not enough: two cars side by side are two tickets.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.tables import Ticket
from vision.types import Event

# Open tickets of one camera and category within a window are few; this
# bounds the work when something goes wrong upstream.
_MAX_CANDIDATES = 200

BBox = tuple[float, float, float, float] | Sequence[float]


def iou(a: BBox, b: BBox) -> float:
    """Intersection over union of two ``x1, y1, x2, y2`` boxes (0 when apart)."""
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    inter_w = min(ax2, bx2) - max(ax1, bx1)
    inter_h = min(ay2, by2) - max(ay1, by1)
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


def same_place(
    track_id: int | None, bbox: Sequence[float] | None, event: Event, min_iou: float
) -> bool:
    """Is the event at the place of a ticket with this track and box?"""
    if event.track_id is not None and track_id == event.track_id:
        return True
    if event.bbox_xyxy is None or bbox is None:
        return False
    return iou(bbox, event.bbox_xyxy) >= min_iou


def find_duplicate(
    session: Session,
    event: Event,
    *,
    open_states: Sequence[str],
    window_s: float,
    min_iou: float,
) -> Ticket | None:
    """The open ticket this event repeats, most recently seen first; None if
    it is a new place (or duplicate detection is off: ``window_s`` 0)."""
    if window_s <= 0:
        return None
    since = event.detected_at - timedelta(seconds=window_s)
    # Only the columns the comparison needs: loading whole tickets (their
    # event documents and relations) made filing many times slower.
    candidates = session.execute(
        select(Ticket.id, Ticket.track_id, Ticket.bbox)
        .where(
            Ticket.camera_id == event.camera_id,
            Ticket.category == str(event.category),
            Ticket.state.in_(open_states),
            Ticket.last_seen_at >= since,
        )
        .order_by(Ticket.last_seen_at.desc())
        .limit(_MAX_CANDIDATES)
    ).all()
    for ticket_id, track_id, bbox in candidates:
        if same_place(track_id, bbox, event, min_iou):
            return session.get(Ticket, ticket_id)
    return None
