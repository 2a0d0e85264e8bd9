"""Frame-to-frame tracking of detections, ByteTrack style, timed in seconds.

The tracker gives each detection a ``tracker_id`` that stays the same while
the same object is seen again. It follows ByteTrack's two-stage association:
confident detections are matched first against every live or recently lost
track; the remaining weak detections may only continue tracks seen in the
previous update, so a half-occluded object keeps its id without weak noise
starting new tracks.

Unlike the frame-count tolerances of the usual implementations, every
tolerance here is in stream seconds. The street analyzer samples frames at a
configured rate of stream time, and a live source may drop frames, so "lost
for 15 frames" would mean a different time on every camera.

Why not a library tracker: supervision no longer ships ByteTrack, and its
successor package (``trackers``) depends on the desktop OpenCV build, which
would overwrite the headless one the service runs with. Its tolerances also
differ where our rules need them: it activates a track one update late (the
dwell would start late) and lets a bus passing in front of a parked car take
over the car's track.

Association is class-agnostic on purpose: a parked car briefly scored as a
person under a headlight sweep keeps its track, and deciding the class over
time is left to the rule layer. A different class must overlap more closely
than the same class, so a bus passing in front of a car does not take over the
car's track.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import supervision as sv
from scipy.optimize import linear_sum_assignment

logger = logging.getLogger(__name__)

# How fast the velocity estimate follows new observations (0..1 per update).
_VELOCITY_SMOOTHING = 0.5


@dataclass(slots=True)
class _Track:
    track_id: int
    bbox_xyxy: np.ndarray
    class_name: str
    last_ts_s: float
    velocity_xy: np.ndarray = field(default_factory=lambda: np.zeros(2))
    hits: int = 1

    def predicted_xyxy(self, ts_s: float) -> np.ndarray:
        """Where the box should be now if it kept its recent motion."""
        shift = self.velocity_xy * (ts_s - self.last_ts_s)
        predicted: np.ndarray = self.bbox_xyxy + np.concatenate([shift, shift])
        return predicted

    def observe(self, bbox_xyxy: np.ndarray, class_name: str, ts_s: float) -> None:
        dt_s = ts_s - self.last_ts_s
        if dt_s > 0:
            moved_xy = _centre(bbox_xyxy) - _centre(self.bbox_xyxy)
            self.velocity_xy = (
                1 - _VELOCITY_SMOOTHING
            ) * self.velocity_xy + _VELOCITY_SMOOTHING * (moved_xy / dt_s)
        self.bbox_xyxy = bbox_xyxy.astype(float)
        self.class_name = class_name
        self.last_ts_s = ts_s
        self.hits += 1


class ByteTracker:
    """Assigns track ids to each update's detections.

    Args:
        lost_tolerance_s: How long a track that is no longer seen may still be
            continued by a detection at its predicted place.
        high_score: Detections at or above this score start tracks and are
            matched first; weaker ones only continue tracks.
        match_iou: Least IoU between a track's predicted box and a detection of
            the same class to continue the track.
        class_change_iou: Least IoU when the detection's class differs from
            the track's last one.
        weak_match_iou: Least IoU for a weak detection to continue a track.
    """

    def __init__(
        self,
        *,
        lost_tolerance_s: float = 1.0,
        high_score: float = 0.5,
        match_iou: float = 0.2,
        class_change_iou: float = 0.5,
        weak_match_iou: float = 0.5,
    ) -> None:
        if lost_tolerance_s < 0:
            raise ValueError(f"lost_tolerance_s must be >= 0, got {lost_tolerance_s!r}")
        self.lost_tolerance_s = lost_tolerance_s
        self.high_score = high_score
        self.match_iou = match_iou
        self.class_change_iou = class_change_iou
        self.weak_match_iou = weak_match_iou
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._last_ts_s: float | None = None

    def reset(self) -> None:
        self._tracks.clear()
        self._next_id = 1
        self._last_ts_s = None

    def update(self, detections: sv.Detections, ts_s: float) -> sv.Detections:
        """Match this update's detections to tracks; return the tracked ones.

        The result holds the detections that belong to a track, each with its
        ``tracker_id``; weak detections that continue no track are left out.
        """
        self._drop_expired(ts_s)
        class_names = detection_class_names(detections)
        scores = detection_scores(detections)
        assigned = np.full(len(detections), -1, dtype=int)

        strong = np.flatnonzero(scores >= self.high_score)
        weak = np.flatnonzero(scores < self.high_score)
        free_tracks = list(range(len(self._tracks)))
        free_tracks = self._associate(
            detections, class_names, strong, free_tracks, assigned, ts_s, weak=False
        )
        recent = [i for i in free_tracks if self._was_seen_last_update(i)]
        self._associate(
            detections, class_names, weak, recent, assigned, ts_s, weak=True
        )

        for det_index in strong:
            if assigned[det_index] < 0:
                assigned[det_index] = self._start_track(
                    detections.xyxy[det_index], class_names[det_index], ts_s
                )

        self._last_ts_s = ts_s
        keep = assigned >= 0
        tracked = cast(sv.Detections, detections[keep])
        tracked.tracker_id = assigned[keep]
        return tracked

    def _associate(
        self,
        detections: sv.Detections,
        class_names: list[str],
        det_indices: np.ndarray,
        track_indices: list[int],
        assigned: np.ndarray,
        ts_s: float,
        *,
        weak: bool,
    ) -> list[int]:
        """Match detections to tracks one-to-one; return the unmatched tracks."""
        if len(det_indices) == 0 or not track_indices:
            return track_indices

        predicted = np.stack(
            [self._tracks[i].predicted_xyxy(ts_s) for i in track_indices]
        )
        iou = sv.box_iou_batch(predicted, detections.xyxy[det_indices])
        required = np.empty_like(iou)
        for row, track_index in enumerate(track_indices):
            track_class = self._tracks[track_index].class_name
            for col, det_index in enumerate(det_indices):
                required[row, col] = self._required_iou(
                    track_class == class_names[det_index], weak
                )
        allowed = iou >= required
        cost = np.where(allowed, 1.0 - iou, 2.0)
        rows, cols = linear_sum_assignment(cost)

        matched_tracks = set()
        for row, col in zip(rows, cols, strict=True):
            if not allowed[row, col]:
                continue
            track = self._tracks[track_indices[row]]
            det_index = det_indices[col]
            track.observe(detections.xyxy[det_index], class_names[det_index], ts_s)
            assigned[det_index] = track.track_id
            matched_tracks.add(track_indices[row])
        return [i for i in track_indices if i not in matched_tracks]

    def _required_iou(self, same_class: bool, weak: bool) -> float:
        required = self.weak_match_iou if weak else self.match_iou
        if not same_class:
            required = max(required, self.class_change_iou)
        return required

    def _was_seen_last_update(self, track_index: int) -> bool:
        return self._tracks[track_index].last_ts_s == self._last_ts_s

    def _start_track(self, bbox_xyxy: np.ndarray, class_name: str, ts_s: float) -> int:
        track = _Track(
            track_id=self._next_id,
            bbox_xyxy=bbox_xyxy.astype(float),
            class_name=class_name,
            last_ts_s=ts_s,
        )
        self._next_id += 1
        self._tracks.append(track)
        logger.debug("track %d started at %.2f s", track.track_id, ts_s)
        return track.track_id

    def _drop_expired(self, ts_s: float) -> None:
        kept = []
        for track in self._tracks:
            if ts_s - track.last_ts_s > self.lost_tolerance_s:
                logger.debug("track %d lost at %.2f s", track.track_id, ts_s)
            else:
                kept.append(track)
        self._tracks = kept


def _centre(bbox_xyxy: np.ndarray) -> np.ndarray:
    return np.array(
        [(bbox_xyxy[0] + bbox_xyxy[2]) / 2.0, (bbox_xyxy[1] + bbox_xyxy[3]) / 2.0]
    )


def detection_scores(detections: sv.Detections) -> np.ndarray:
    if detections.confidence is None:
        return np.ones(len(detections))
    return np.asarray(detections.confidence, dtype=float)


def detection_class_names(detections: sv.Detections) -> list[str]:
    """Each detection's class name, falling back to its class id."""
    names = detections.data.get("class_name")
    if names is not None:
        return [str(name) for name in names]
    if detections.class_id is not None:
        return [str(class_id) for class_id in detections.class_id]
    return [""] * len(detections)
