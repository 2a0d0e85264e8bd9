"""Camera verification: look again at a resolved ticket's place.

When a worker marks a ticket resolved, the camera that filed it re-checks the
same rule in the same zone with a fresh copy of the rule, counting from the
moment the check starts:

- the rule fires again (a car still parked there ``dwell_s`` later) → the
  problem is still there, and the ticket is reopened with this new evidence;
- the rule stays quiet for ``clear_s`` of stream time → the problem is gone,
  and the ticket is verified.

A finding that stood still (a parked car) is re-checked at its own place:
only objects overlapping its box count, so a second car parked beside it,
which has its own ticket, does not reopen this one. A finding that moved
about (people loitering) is re-checked over the whole zone.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import numpy as np
import supervision as sv

from vision.analyze.rules import DwellEvaluator, FrameInfo, Observation
from vision.analyze.zones import ZoneArea
from vision.config import DwellRule
from vision.sink import VerificationOutcome, VerificationRequest
from vision.types import Event

BoxXyxy = tuple[float, float, float, float]

logger = logging.getLogger(__name__)

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "citywatch:verification")

# A box overlapping the ticket's box this much is "at the same place".
PLACE_IOU = 0.3

# A finding whose box centre moved less than this fraction of its size over
# the event stood still, and is re-checked at its own place.
STATIONARY_FRACTION = 0.5


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    request: VerificationRequest
    outcome: VerificationOutcome
    event: Event  # what the camera saw, for the verification evidence


class PlaceCheck:
    """One running re-check of a resolved ticket's place."""

    def __init__(
        self,
        request: VerificationRequest,
        rule: DwellRule,
        zone: ZoneArea,
        *,
        started: FrameInfo,
    ) -> None:
        self.request = request
        self.started = started
        original = request.event
        self._evaluator = DwellEvaluator(
            rule, zone, camera_id=original.camera_id, area_path=original.area_path
        )
        self._place = original.bbox_xyxy if stood_still(original) else None

    def update(
        self, observations: list[Observation], frame: FrameInfo
    ) -> CheckOutcome | None:
        """Advance by one sampled frame; an outcome once there is one."""
        if self._place is not None:
            observations = [
                o for o in observations if _iou(o.bbox_xyxy, self._place) >= PLACE_IOU
            ]
        fired = self._evaluator.update(observations, frame)
        if fired:
            return self._outcome(VerificationOutcome.STILL_THERE, fired[0], frame)

        if frame.ts_s - self.started.ts_s >= self.request.clear_s:
            return self._outcome(VerificationOutcome.GONE, None, frame)
        return None

    def _outcome(
        self, outcome: VerificationOutcome, fired: Event | None, frame: FrameInfo
    ) -> CheckOutcome:
        original = self.request.event
        base = fired or original.model_copy(
            update={"class_name": None, "track_id": None, "boxes": []}
        )
        event = base.model_copy(
            update={
                "event_id": uuid.uuid5(
                    _NAMESPACE, f"{self.request.ticket_id}|{self.started.ts_s:.3f}"
                ).hex,
                "started_ts_s": self.started.ts_s,
                "ended_ts_s": frame.ts_s,
                "detected_ts_s": frame.ts_s,
                "started_at": self.started.captured_at,
                "evidence": [],
                "details": {**base.details, "verification": outcome.value},
            }
        )
        logger.info(
            "verification of ticket %s: %s after %.1f s",
            self.request.ticket_id,
            outcome.value,
            frame.ts_s - self.started.ts_s,
            extra={"camera_id": original.camera_id},
        )
        return CheckOutcome(self.request, outcome, event)


def stood_still(event: Event) -> bool:
    """Whether the finding kept its place over the event's boxes."""
    if event.bbox_xyxy is None or not event.boxes:
        return False
    x1, y1, x2, y2 = event.bbox_xyxy
    size = max(x2 - x1, y2 - y1, 1.0)
    centres = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in _boxes(event)]
    xs, ys = zip(*centres, strict=True)
    spread = max(max(xs) - min(xs), max(ys) - min(ys))
    return spread < STATIONARY_FRACTION * size


def _boxes(event: Event) -> list[BoxXyxy]:
    return [box.bbox_xyxy for box in event.boxes]


def _iou(a: BoxXyxy, b: BoxXyxy) -> float:
    return float(sv.box_iou_batch(np.array([a]), np.array([b]))[0, 0])
