"""Zone rules over tracked objects: what turns detections into events.

Two layers sit between the tracker and an event:

* ``ObjectRegistry`` turns tracker ids into objects. A tracker issues a new id
  when an object comes back after an occlusion longer than its own tolerance;
  the registry gives the new id back to the object that was lost at the same
  place (overlapping box of a similar size) shortly before, so one parked car
  stays one object however often its track breaks. It also decides each
  object's class from its whole history, weighted by score, so a moment of
  mis-classification (a headlight sweep scoring a parked car as a person)
  does not change what the object is.
* ``DwellEvaluator`` runs one dwell rule: an object of the rule's classes
  whose anchor stays inside the zone for ``dwell_s`` gives one event, counted
  from zone entry whether it moves or not. Gaps in detection shorter than
  ``gap_tolerance_s`` neither reset the count nor start a second event.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import supervision as sv

from vision.analyze.zones import ZoneArea
from vision.config import DwellRule
from vision.detect.tracker import detection_class_names, detection_scores
from vision.types import Event, TimedBox

logger = logging.getLogger(__name__)

BoxXyxy = tuple[float, float, float, float]

# Event ids are uuid5 names under this namespace, so re-analysing the same
# recording files the same ids and the ticket sink ignores the repeats.
EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "citywatch:street-event")

# Most box samples an event carries for drawing over its clip.
MAX_EVENT_BOXES = 100

# An anchor point seen outside the zone for less than this is treated as
# jitter across the zone's edge, not as the object leaving.
_EXIT_CONFIRM_S = 1.0

# A new track continues a lost object when their boxes overlap this much, or
# when the new box's centre lies within this fraction of the old box's size
# and their areas are within the given ratio.
_REJOIN_IOU = 0.3
_REJOIN_CENTRE_FRACTION = 0.5
_REJOIN_AREA_RATIO = 2.5


@dataclass(slots=True)
class TrackedObject:
    """One physical object, across the tracker ids it was given."""

    ordinal: int
    track_id: int
    first_ts_s: float
    last_ts_s: float
    bbox_xyxy: BoxXyxy
    track_ids: list[int] = field(default_factory=list)
    _score_by_class: dict[str, float] = field(default_factory=dict)

    def observe(
        self, bbox_xyxy: BoxXyxy, class_name: str, score: float, ts_s: float
    ) -> None:
        self.bbox_xyxy = bbox_xyxy
        self.last_ts_s = ts_s
        self._score_by_class[class_name] = (
            self._score_by_class.get(class_name, 0.0) + score
        )

    def decided_class(self, class_window_s: float) -> str | None:
        """The score-weighted majority class, once seen for the window."""
        if self.last_ts_s - self.first_ts_s < class_window_s:
            return None
        if not self._score_by_class:
            return None
        return max(self._score_by_class, key=self._score_by_class.__getitem__)


@dataclass(frozen=True, slots=True)
class Observation:
    """One object seen in one sampled frame."""

    obj: TrackedObject
    bbox_xyxy: BoxXyxy
    class_name: str
    score: float


@dataclass(frozen=True, slots=True)
class FrameInfo:
    ts_s: float
    captured_at: datetime


class ObjectRegistry:
    """Maps tracker ids to objects, rejoining broken tracks.

    Args:
        rejoin_s: How long a lost object may be continued by a new track id.
    """

    def __init__(self, *, rejoin_s: float) -> None:
        self.rejoin_s = rejoin_s
        self._by_track_id: dict[int, TrackedObject] = {}
        self._objects: list[TrackedObject] = []
        self._next_ordinal = 0

    @property
    def objects(self) -> list[TrackedObject]:
        return list(self._objects)

    def update(self, tracked: sv.Detections, ts_s: float) -> list[Observation]:
        """Attach this frame's tracked detections to objects."""
        self._forget_older_than(ts_s - self.rejoin_s)
        boxes = [_as_box(row) for row in tracked.xyxy]
        class_names = detection_class_names(tracked)
        scores = [float(score) for score in detection_scores(tracked)]
        raw_ids: Iterable[int] = (
            tracked.tracker_id if tracked.tracker_id is not None else []
        )
        track_ids = [int(track_id) for track_id in raw_ids]

        seen: dict[int, TrackedObject] = {}
        objects: list[TrackedObject | None] = [None] * len(track_ids)
        # Known ids first, so the objects they continue are not offered to the
        # new ids as lost ones.
        for index, track_id in enumerate(track_ids):
            obj = self._by_track_id.get(track_id)
            if obj is not None and obj.ordinal not in seen:
                seen[obj.ordinal] = objects[index] = obj
        for index, track_id in enumerate(track_ids):
            if objects[index] is None:
                obj = self._claim_or_create(track_id, boxes[index], seen, ts_s)
                seen[obj.ordinal] = objects[index] = obj

        observations = []
        for index, obj in enumerate(objects):
            if obj is None:  # every index was given an object above
                continue
            obj.observe(boxes[index], class_names[index], scores[index], ts_s)
            observations.append(
                Observation(obj, boxes[index], class_names[index], scores[index])
            )
        return observations

    def _claim_or_create(
        self,
        track_id: int,
        bbox_xyxy: BoxXyxy,
        seen: dict[int, TrackedObject],
        ts_s: float,
    ) -> TrackedObject:
        lost = [obj for obj in self._objects if obj.ordinal not in seen]
        obj = _best_rejoin(lost, bbox_xyxy)
        if obj is not None:
            logger.debug(
                "track %d continues object %d (track %d, lost %.2f s)",
                track_id,
                obj.ordinal,
                obj.track_id,
                ts_s - obj.last_ts_s,
            )
            self._by_track_id.pop(obj.track_id, None)
        else:
            obj = TrackedObject(
                ordinal=self._next_ordinal,
                track_id=track_id,
                first_ts_s=ts_s,
                last_ts_s=ts_s,
                bbox_xyxy=bbox_xyxy,
            )
            self._next_ordinal += 1
            self._objects.append(obj)
        obj.track_id = track_id
        obj.track_ids.append(track_id)
        self._by_track_id[track_id] = obj
        return obj

    def _forget_older_than(self, oldest_ts_s: float) -> None:
        kept = []
        for obj in self._objects:
            if obj.last_ts_s < oldest_ts_s:
                for track_id in obj.track_ids:
                    if self._by_track_id.get(track_id) is obj:
                        del self._by_track_id[track_id]
            else:
                kept.append(obj)
        self._objects = kept


@dataclass(slots=True)
class _Stay:
    """One object's time inside a rule's zone."""

    entry: FrameInfo
    last_in_ts_s: float
    outside_since_ts_s: float | None = None
    score_sum: float = 0.0
    score_count: int = 0
    boxes: list[TimedBox] = field(default_factory=list)

    def add(self, observation: Observation, ts_s: float) -> None:
        self.last_in_ts_s = ts_s
        self.outside_since_ts_s = None
        self.score_sum += observation.score
        self.score_count += 1
        self.boxes.append(TimedBox(ts_s=ts_s, bbox_xyxy=observation.bbox_xyxy))
        if len(self.boxes) > 2 * MAX_EVENT_BOXES:
            # Halve rather than grow: an object may stand there for hours.
            self.boxes = self.boxes[::2]


class DwellEvaluator:
    """Runs one dwell rule over the objects of one camera."""

    def __init__(
        self, rule: DwellRule, zone: ZoneArea, *, camera_id: str, area_path: str = ""
    ) -> None:
        self.rule = rule
        self.zone = zone
        self.camera_id = camera_id
        self.area_path = area_path
        self._classes = set(rule.classes)
        self._stays: dict[int, _Stay] = {}
        self._fired: set[int] = set()

    def update(self, observations: list[Observation], frame: FrameInfo) -> list[Event]:
        """Advance the rule by one sampled frame; return events that fired."""
        events = []
        for observation in observations:
            if observation.score < self.rule.min_score:
                continue  # too unsure to count as presence or as absence
            if observation.obj.ordinal in self._fired:
                continue
            if self.zone.contains_box(observation.bbox_xyxy):
                event = self._inside(observation, frame)
                if event is not None:
                    events.append(event)
            else:
                self._outside(observation, frame.ts_s)
        self._drop_ended_stays(frame.ts_s)
        return events

    def _inside(self, observation: Observation, frame: FrameInfo) -> Event | None:
        ordinal = observation.obj.ordinal
        stay = self._stays.get(ordinal)
        if stay is None:
            stay = _Stay(entry=frame, last_in_ts_s=frame.ts_s)
            self._stays[ordinal] = stay
        stay.add(observation, frame.ts_s)

        if frame.ts_s - stay.entry.ts_s < self.rule.dwell_s:
            return None
        class_name = observation.obj.decided_class(self.rule.class_window_s)
        if class_name not in self._classes:
            return None
        self._fired.add(ordinal)
        del self._stays[ordinal]
        return self._event(observation, stay, class_name, frame)

    def _outside(self, observation: Observation, ts_s: float) -> None:
        stay = self._stays.get(observation.obj.ordinal)
        if stay is None:
            return
        if stay.outside_since_ts_s is None:
            stay.outside_since_ts_s = ts_s
        elif ts_s - stay.outside_since_ts_s >= _EXIT_CONFIRM_S:
            del self._stays[observation.obj.ordinal]

    def _drop_ended_stays(self, ts_s: float) -> None:
        """End the stays of objects missing from the zone for too long.

        The gap is measured at frames that lack the object, so a tolerance of
        zero still lets an object seen at every sampled frame dwell, and a
        source that delivered no frames at all is no evidence of absence.
        """
        tolerance_s = self.rule.gap_tolerance_s
        for ordinal, stay in list(self._stays.items()):
            if ts_s - stay.last_in_ts_s > tolerance_s:
                del self._stays[ordinal]

    def _event(
        self,
        observation: Observation,
        stay: _Stay,
        class_name: str,
        frame: FrameInfo,
    ) -> Event:
        obj = observation.obj
        entry_ts_s = stay.entry.ts_s
        event = Event(
            event_id=event_id_for(
                self.camera_id, self.rule.name, entry_ts_s, obj.ordinal
            ),
            camera_id=self.camera_id,
            area_path=self.area_path,
            category=self.rule.category,
            rule=self.rule.name,
            zone=self.zone.name,
            score=min(1.0, stay.score_sum / max(stay.score_count, 1)),
            class_name=class_name,
            track_id=obj.track_id,
            started_ts_s=entry_ts_s,
            ended_ts_s=frame.ts_s,
            detected_ts_s=frame.ts_s,
            started_at=stay.entry.captured_at,
            bbox_xyxy=observation.bbox_xyxy,
            boxes=thin_boxes(stay.boxes, MAX_EVENT_BOXES),
            details={
                "dwell_s": round(frame.ts_s - entry_ts_s, 3),
                "object": obj.ordinal,
                "track_ids": ",".join(str(t) for t in obj.track_ids),
            },
        )
        logger.info(
            "rule %s fired: %s in zone %s for %.1f s",
            self.rule.name,
            class_name,
            self.zone.name,
            frame.ts_s - entry_ts_s,
            extra={"camera_id": self.camera_id, "track_id": obj.track_id},
        )
        return event


def event_id_for(
    camera_id: str, rule_name: str, entry_ts_s: float, ordinal: int
) -> str:
    """A stable id: the same recording analysed again gives the same ids."""
    name = f"{camera_id}|{rule_name}|{entry_ts_s:.3f}|{ordinal}"
    return uuid.uuid5(EVENT_ID_NAMESPACE, name).hex


def thin_boxes(boxes: list[TimedBox], limit: int) -> list[TimedBox]:
    """At most ``limit`` samples spread evenly, keeping the first and last."""
    if len(boxes) <= limit:
        return list(boxes)
    picks = np.unique(np.linspace(0, len(boxes) - 1, limit).round().astype(int))
    return [boxes[i] for i in picks]


def _best_rejoin(
    candidates: list[TrackedObject], bbox_xyxy: BoxXyxy
) -> TrackedObject | None:
    """The lost object most likely to be this box, if any is close enough."""
    best, best_key = None, None
    for obj in candidates:
        iou, centre_fraction, area_ratio = _box_likeness(obj.bbox_xyxy, bbox_xyxy)
        if area_ratio > _REJOIN_AREA_RATIO:
            continue
        if iou < _REJOIN_IOU and centre_fraction > _REJOIN_CENTRE_FRACTION:
            continue
        # Prefer overlap, then closeness, then the object seen most recently.
        key = (iou, -centre_fraction, obj.last_ts_s)
        if best_key is None or key > best_key:
            best, best_key = obj, key
    return best


def _box_likeness(a: BoxXyxy, b: BoxXyxy) -> tuple[float, float, float]:
    """IoU, centre distance over the first box's size, and area ratio (>= 1)."""
    iou = float(sv.box_iou_batch(np.array([a]), np.array([b]))[0, 0])
    area_a = max((a[2] - a[0]) * (a[3] - a[1]), 1e-6)
    area_b = max((b[2] - b[0]) * (b[3] - b[1]), 1e-6)
    centre_a = np.array([(a[0] + a[2]) / 2, (a[1] + a[3]) / 2])
    centre_b = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
    distance = float(np.linalg.norm(centre_a - centre_b))
    return iou, distance / np.sqrt(area_a), max(area_a, area_b) / min(area_a, area_b)


def _as_box(row: np.ndarray) -> BoxXyxy:
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
