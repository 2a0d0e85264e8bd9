"""Tracking of small, fast, accelerating blobs between frames.

Objects of a few pixels that cover tens of pixels per frame near the bottom
of the view defeat trackers made for people and cars. Here each track predicts
its next position from its last steps (with acceleration once it has three),
and the search radius grows with the step it expects. A new track looks for
its second sighting in a wide cone below it, since a falling object may first
be seen already moving fast.

Misses are counted in informative frames only: near-repeated frames and
vetoed frames say nothing about where the object went, so they neither extend
nor end a track. Times always come from frame timestamps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from vision.analyze.motion import Blob


@dataclass(frozen=True, slots=True)
class Sighting:
    ts_s: float
    captured_at: datetime
    x: float
    y: float
    size_px: float
    contrast: float
    bbox_xyxy: tuple[float, float, float, float]
    clutter: float = 0.0


@dataclass(slots=True)
class Track:
    track_id: int
    sightings: list[Sighting] = field(default_factory=list)
    misses: int = 0
    _motion: tuple[float, np.ndarray] | None = None

    def add(self, sighting: Sighting, max_sightings: int) -> None:
        self.sightings.append(sighting)
        del self.sightings[:-max_sightings]
        self._motion = None

    @property
    def last(self) -> Sighting:
        return self.sightings[-1]

    def predict(self, ts_s: float, max_speed_px_s: float) -> tuple[float, float, float]:
        """Expected position at ``ts_s`` and the radius to search in."""
        last = self.last
        if len(self.sightings) == 1:
            slack = 3.0 + 1.5 * last.size_px
            # Anywhere in a cone below, up to the fastest plausible fall.
            dt = max(ts_s - last.ts_s, 1e-3)
            reach = max_speed_px_s * dt
            return last.x, last.y + reach / 2.0, reach / 2.0 + slack
        # Once moving, a faller does not jump sideways: the radius is the
        # blob's own jitter plus a share of the expected step.
        x, y = self._extrapolate(ts_s)
        step = math.hypot(x - last.x, y - last.y)
        return x, y, 2.0 + 0.6 * min(last.size_px, 12.0) + 0.5 * step

    def is_still(self, span_s: float, tolerance_px: float) -> bool:
        """True when the track has not moved during the last ``span_s``."""
        last = self.last
        if last.ts_s - self.sightings[0].ts_s < span_s:
            return False
        for sighting in reversed(self.sightings):
            if math.hypot(sighting.x - last.x, sighting.y - last.y) > tolerance_px:
                return False
            if last.ts_s - sighting.ts_s >= span_s:
                return True
        return False

    def _extrapolate(self, ts_s: float) -> tuple[float, float]:
        if self._motion is None:
            self._motion = self._fit_motion()
        t_ref, coef = self._motion
        t = ts_s - t_ref
        return float(np.polyval(coef[:, 0], t)), float(np.polyval(coef[:, 1], t))

    def _fit_motion(self) -> tuple[float, np.ndarray]:
        """Least squares over the last few sightings: robust to one bad one."""
        recent = self.sightings[-6:]
        t_ref = recent[-1].ts_s
        t = np.array([s.ts_s for s in recent]) - t_ref
        xy = np.array([(s.x, s.y) for s in recent])
        degree = 2 if len(recent) >= 4 else 1
        coef, *_ = np.linalg.lstsq(np.vander(t, degree + 1), xy, rcond=None)
        if degree == 2 and coef[0, 1] < 0:
            # A faller never decelerates downwards: drop that curvature.
            coef[0, 1] = 0.0
            line, *_ = np.linalg.lstsq(np.vander(t, 2), xy[:, 1], rcond=None)
            coef[1:, 1] = line
        return t_ref, coef


class FallTracker:
    """Links blobs of consecutive informative frames into tracks."""

    def __init__(
        self,
        frame_height_px: int,
        *,
        max_misses: int = 2,
        max_gap_s: float = 0.5,
        max_sightings: int = 400,
    ) -> None:
        # A falling object near the bottom of a view looking up crosses a few
        # frame heights per second at most; one passing a few metres from a
        # camera that looks steeply up along the facade, up to about eight.
        self.max_speed_px_s = 8.0 * frame_height_px
        self.max_misses = max_misses
        self.max_gap_s = max_gap_s
        self.max_sightings = max_sightings
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(
        self, ts_s: float, captured_at: datetime, blobs: list[Blob]
    ) -> list[Track]:
        """Add one informative frame; returns the tracks that ended."""
        matched = self._associate(ts_s, blobs)
        for track in self.tracks:
            blob_index = matched.get(track.track_id)
            if blob_index is None:
                track.misses += 1
            else:
                track.misses = 0
                sighting = _sighting(ts_s, captured_at, blobs[blob_index])
                track.add(sighting, self.max_sightings)
        claimed = set(matched.values())
        for index, blob in enumerate(blobs):
            if index not in claimed:
                track = Track(self._next_id, [_sighting(ts_s, captured_at, blob)])
                self._next_id += 1
                self.tracks.append(track)
        ended = [t for t in self.tracks if self._has_ended(t, ts_s)]
        self.tracks = [t for t in self.tracks if t not in ended]
        return ended

    def expire(self, ts_s: float) -> list[Track]:
        """End tracks whose last sighting is too old (vetoed stretches)."""
        ended = [t for t in self.tracks if ts_s - t.last.ts_s > self.max_gap_s]
        self.tracks = [t for t in self.tracks if t not in ended]
        return ended

    def close_all(self) -> list[Track]:
        ended, self.tracks = self.tracks, []
        return ended

    def _has_ended(self, track: Track, ts_s: float) -> bool:
        return track.misses > self.max_misses or ts_s - track.last.ts_s > (
            self.max_gap_s
        )

    def _associate(self, ts_s: float, blobs: list[Blob]) -> dict[int, int]:
        """Each track takes its nearest blob within its search radius."""
        if not blobs or not self.tracks:
            return {}
        blob_xy = np.array([(b.x, b.y) for b in blobs], float)
        best: dict[int, tuple[float, int]] = {}
        for track in self.tracks:
            x, y, radius = track.predict(ts_s, self.max_speed_px_s)
            distance = np.hypot(blob_xy[:, 0] - x, blob_xy[:, 1] - y) / radius
            if len(track.sightings) == 1:
                # No speed known yet: the nearest blob in the cone, not the
                # one nearest the middle of the cone.
                last = track.last
                near = np.hypot(blob_xy[:, 0] - last.x, blob_xy[:, 1] - last.y)
                order = np.argsort(near)
            else:
                order = np.argsort(distance)
            for index in order:
                if distance[index] > 1.0 or not self._fits_cone(track, blobs[index]):
                    continue
                if not _similar_size(track, blobs[index]):
                    continue
                if _is_trail(track, blobs[index], x, y):
                    continue
                best[track.track_id] = (float(distance[index]), int(index))
                break
        # A blob wanted by several tracks goes to the most established one,
        # then to the one that predicted it best; the others miss a frame.
        owner: dict[int, tuple[int, float, int]] = {}
        for track in self.tracks:
            if track.track_id not in best:
                continue
            cost, index = best[track.track_id]
            key = (-min(len(track.sightings), 4), cost, track.track_id)
            if index not in owner or key < owner[index]:
                owner[index] = key
        return {
            track_id: index
            for track_id, (_, index) in best.items()
            if owner[index][2] == track_id
        }

    @staticmethod
    def _fits_cone(track: Track, blob: Blob) -> bool:
        """A second sighting must lie below, or beside while still slow."""
        if len(track.sightings) > 1:
            return True
        last = track.last
        dx, dy = blob.x - last.x, blob.y - last.y
        slack = 3.0 + 1.5 * min(last.size_px, 8.0)
        return dy >= -slack and abs(dx) <= abs(dy) + slack


def _similar_size(track: Track, blob: Blob) -> bool:
    """Not threefold larger or smaller than the track's recent sightings.

    An object grows as it nears the camera and smears with speed, but only
    gradually; a much larger or smaller blob is something else it passed.
    """
    recent = sorted(s.size_px for s in track.sightings[-3:])
    size = recent[len(recent) // 2]
    return blob.size_px <= 3.0 * size + 6.0 and size <= 3.0 * blob.size_px + 6.0


def _is_trail(track: Track, blob: Blob, x: float, y: float) -> bool:
    """A blob where a moving object just was: the trail the codec left."""
    last = track.last
    if len(track.sightings) < 2:
        return False
    tolerance = 2.0 + 0.3 * last.size_px
    expected_step = math.hypot(x - last.x, y - last.y)
    if expected_step < 3.0 * tolerance:
        return False
    return math.hypot(blob.x - last.x, blob.y - last.y) <= tolerance


def _sighting(ts_s: float, captured_at: datetime, blob: Blob) -> Sighting:
    return Sighting(
        ts_s=ts_s,
        captured_at=captured_at,
        x=blob.x,
        y=blob.y,
        size_px=blob.size_px,
        contrast=blob.contrast,
        bbox_xyxy=blob.bbox_xyxy,
        clutter=blob.clutter,
    )
