"""The street analyzer: detector on sampled frames, tracker, zone rules.

Frames are sampled at the camera's ``detector.sample_fps`` of stream time
(each frame's ``ts_s``), not every Nth frame, so the rate holds for variable
frame rates and for live sources that drop frames. Corrupt frames (decoder
concealment after packet loss) are never given to the detector: their smeared
blocks would look like objects.
"""

from __future__ import annotations

import logging
import math
from typing import Protocol

import supervision as sv

from vision.analyze.rules import DwellEvaluator, FrameInfo, ObjectRegistry
from vision.analyze.verify import CheckOutcome, PlaceCheck
from vision.analyze.zones import ZoneArea
from vision.config import CameraConfig
from vision.detect.tracker import ByteTracker
from vision.errors import ConfigError
from vision.sink import VerificationRequest
from vision.types import Event, Frame

logger = logging.getLogger(__name__)

# The tracker itself only bridges short misses; longer occlusions are bridged
# by the rule layer, which rejoins a new track to the object lost at the same
# place within the rule's gap tolerance.
TRACK_LOST_TOLERANCE_S = 1.0

# Detections at or above this score start tracks (ByteTrack's "high" set),
# unless a rule accepts weaker ones.
TRACK_HIGH_SCORE = 0.5


class StreetDetector(Protocol):
    names: list[str]

    def detect(
        self, image_bgr: object, *, min_score: float, nms_iou: float
    ) -> sv.Detections: ...


class StreetAnalyzer:
    """Runs a camera's zone rules over the objects a detector finds."""

    name = "street"

    def __init__(self, camera: CameraConfig, detector: StreetDetector) -> None:
        self.camera = camera
        self.detector = detector
        self._log = logger.getChild(camera.camera_id)
        _check_rule_classes(camera, detector)

        rules = list(camera.rules)
        high_score = min([TRACK_HIGH_SCORE, *(rule.min_score for rule in rules)])
        self._tracker = ByteTracker(
            lost_tolerance_s=TRACK_LOST_TOLERANCE_S, high_score=high_score
        )
        rejoin_s = max(
            [TRACK_LOST_TOLERANCE_S, *(rule.gap_tolerance_s for rule in rules)]
        )
        self._registry = ObjectRegistry(rejoin_s=rejoin_s)
        self._evaluators = [
            DwellEvaluator(
                rule,
                ZoneArea(camera.zone(rule.zone)),
                camera_id=camera.camera_id,
                area_path=camera.area_path,
            )
            for rule in rules
        ]
        self._checks: list[PlaceCheck] = []
        self._check_outcomes: list[CheckOutcome] = []
        self._last_frame: FrameInfo | None = None
        self._last_slot: int | None = None
        self._checked_size = False
        self.frames_sampled = 0
        self.frames_corrupt = 0

    def process(self, frame: Frame) -> list[Event]:
        if frame.corrupt:
            self.frames_corrupt += 1
            self._log.debug("frame %d is corrupt; not analysed", frame.index)
            return []
        if not self._evaluators or not self._take_sample(frame.ts_s):
            return []
        if not self._checked_size:
            self.camera.check_frame_size(frame.resolution_wh)
            self._checked_size = True

        self.frames_sampled += 1
        detections = self.detector.detect(
            frame.image,
            min_score=self.camera.detector.min_score,
            nms_iou=self.camera.detector.nms_iou,
        )
        tracked = self._tracker.update(detections, frame.ts_s)
        observations = self._registry.update(tracked, frame.ts_s)
        info = FrameInfo(ts_s=frame.ts_s, captured_at=frame.captured_at)
        self._last_frame = info
        events = []
        for evaluator in self._evaluators:
            events.extend(evaluator.update(observations, info))
        self._update_checks(observations, info)
        return events

    def start_verification(self, request: VerificationRequest) -> bool:
        """Begin re-checking a resolved ticket's place; False if not ours."""
        evaluator = next(
            (e for e in self._evaluators if e.rule.name == request.event.rule), None
        )
        if evaluator is None or self._last_frame is None:
            return False
        if any(c.request.ticket_id == request.ticket_id for c in self._checks):
            return True  # asked again before answering: one check is enough
        self._checks.append(
            PlaceCheck(
                request, evaluator.rule, evaluator.zone, started=self._last_frame
            )
        )
        return True

    def take_verification_outcomes(self) -> list[CheckOutcome]:
        """Outcomes reached since the last call."""
        outcomes, self._check_outcomes = self._check_outcomes, []
        return outcomes

    def _update_checks(self, observations, info: FrameInfo) -> None:
        for check in list(self._checks):
            outcome = check.update(observations, info)
            if outcome is not None:
                self._checks.remove(check)
                self._check_outcomes.append(outcome)

    def finish(self) -> list[Event]:
        # Dwell events fire when the dwell is reached; an object still short
        # of it when the source ends has not broken the rule.
        self._log.info(
            "street analysis finished: %d frames sampled, %d corrupt skipped",
            self.frames_sampled,
            self.frames_corrupt,
        )
        return []

    def _take_sample(self, ts_s: float) -> bool:
        """True once per 1/sample_fps of stream time, on the first frame of it."""
        # The small offset keeps a frame at exactly k/sample_fps in slot k
        # despite float rounding of the timestamps.
        slot = math.floor(ts_s * self.camera.detector.sample_fps + 1e-6)
        if self._last_slot is not None and slot == self._last_slot:
            return False
        if self._last_slot is not None and slot < self._last_slot:
            self._log.warning(
                "stream time went back from slot %d to %d; sampling from here",
                self._last_slot,
                slot,
            )
        self._last_slot = slot
        return True


def _check_rule_classes(camera: CameraConfig, detector: StreetDetector) -> None:
    """Refuse a rule naming a class the model cannot detect (a typo, a wrong
    model): the rule would silently never fire."""
    known = set(detector.names)
    for rule in camera.rules:
        unknown = [name for name in rule.classes if name not in known]
        if unknown:
            raise ConfigError(
                f"camera {camera.camera_id}: rule {rule.name!r} names classes "
                f"{', '.join(unknown)} that the detector does not have "
                f"(model classes: {', '.join(detector.names[:10])}, ...)"
            )
