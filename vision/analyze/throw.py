"""The throw analyzer: objects thrown or falling from a building.

A camera at the foot of a building looks up its facade. Every frame goes
through a cheap cascade: motion proposals against a background model on the
facade region at reduced resolution (``motion``), a tracker for small fast
blobs (``fall_track``), and, when a track ends, a physics test that asks
whether it fell like a dropped object seen from below (``fall_fit``). Only
tracks that pass become events, with the trajectory, the boxes and the point
the object came from, named by floor and window when the facade is
calibrated. An optional second stage (``throw_second_stage``) shows a
passing fall's object to a detector before it is filed, and vetoes the
look-alikes it recognises, such as birds.

Frames flagged corrupt by the decoder are counted and never analysed, so
their smears neither make events nor teach the background. The analyzer also
keeps a coarse map of where motion never stops: a corner that moves for many
minutes is more likely an insect web or dirt on the lens than a street scene,
and ``health_warnings()`` says so.
"""

from __future__ import annotations

import bisect
import logging
import math
import uuid
from dataclasses import dataclass, replace

import numpy as np

from vision.analyze.fall_chain import (
    CLUTTER,
    STITCH_GAP_S,
    backward_miss_px,
    continues_to,
    drops,
    in_clutter,
    moving_part,
    moving_steps,
    overlaps,
    points,
    worth_a_look,
)
from vision.analyze.fall_fit import FallCriteria, FallFit, fit_fall
from vision.analyze.fall_track import FallTracker, Sighting, Track
from vision.analyze.motion import MotionProposer, MotionResult, MotionSettings
from vision.analyze.motion_health import HealthWarning, MotionHealth
from vision.analyze.throw_second_stage import CropDetector, second_stage_for
from vision.config import CameraConfig, ThrowConfig
from vision.errors import FrameError
from vision.types import Category, Event, Frame, Origin, TimedBox, TrajectoryPoint

logger = logging.getLogger(__name__)

_EVENT_NAMESPACE = uuid.UUID("5b0f6a52-54a4-4c0e-9d0e-7d1f0c3a9e11")
# A track is over once it has not moved for this long (the object landed).
_LANDED_S = 0.3
# A second passing track this soon after an event, on the same path, is the
# same object seen again after a gap, not a second throw.
_SAME_OBJECT_S = 0.6
# A falling object is seen in most frames that could show it; a chain of
# flickers picked from foliage or passers-by is not.
_MIN_DENSITY = 0.55
_INFORMATIVE_KEPT = 3000
# How long ended tracks are kept for stitching, and how many at most.
_POOL_S = 4.0
_POOL_SIZE = 300
# A fall is filed this long after it ended unless a live track may continue
# it, and never later than the second bound.
_DEFER_S = 0.4
_DEFER_MAX_S = 3.0


@dataclass(slots=True)
class _Pending:
    """An ended track kept for stitching; ``verdict`` is a fall not yet filed."""

    track_id: int
    sightings: list[Sighting]
    end_ts_s: float
    verdict: tuple[list[Sighting], FallFit] | None


class ThrowAnalyzer:
    """Finds objects falling down a facade; one event per fall."""

    name = "throw"

    def __init__(
        self,
        camera: CameraConfig,
        *,
        motion: MotionSettings | None = None,
        criteria: FallCriteria | None = None,
        second_stage: CropDetector | None = None,
    ) -> None:
        """``second_stage`` is the detector of the camera file's
        ``throw.second_stage`` block; ``vision.pipeline`` loads it."""
        self.camera = camera
        self.config: ThrowConfig = camera.throw
        self._criteria = criteria
        self._motion_settings = motion or MotionSettings()
        self._log = logging.getLogger(f"{__name__}.{camera.camera_id}")
        self._proposer: MotionProposer | None = None
        self._tracker: FallTracker | None = None
        self._health: MotionHealth | None = None
        self._events: list[Event] = []
        # Falls the second stage vetoed: seen again, they are not judged again.
        self._vetoed: list[tuple[list[TrajectoryPoint], float]] = []
        self._pool: list[_Pending] = []
        self._informative_ts_s: list[float] = []
        self.criteria = criteria or FallCriteria(
            min_fall_s=self.config.min_fall_s,
            vertical_vanishing_point_xy=self.config.vertical_vanishing_point_xy,
        )
        self.frames_seen = 0
        self.frames_corrupt = 0
        self.frames_repeated = 0
        self.frames_vetoed = 0
        self.second_stage = second_stage_for(camera, second_stage)

    def process(self, frame: Frame) -> list[Event]:
        """Analyse one frame; returns the throws decided at this frame."""
        self.frames_seen += 1
        if not self.config.enabled:
            return []
        if frame.corrupt:
            self.frames_corrupt += 1
            return []
        self._start_if_needed(frame)
        assert self._proposer and self._tracker and self._health

        image, studio_range = _grey_or_colour(frame)
        result = self._proposer.propose(image, frame.ts_s, studio_range=studio_range)
        ended = self._track(frame, result)
        if self.second_stage is None:
            return self._decide(ended, frame.ts_s)
        tracks = [*self._tracker.tracks, *ended]
        self.second_stage.keep(frame.image, tracks, frame.ts_s)
        events = self._decide(ended, frame.ts_s)
        self._retain_crops()
        return events

    def finish(self) -> list[Event]:
        """End of the source: decide on the tracks still open."""
        if self._tracker is None:
            return []
        last_ts_s = max((t.last.ts_s for t in self._tracker.tracks), default=math.nan)
        events = self._decide(self._tracker.close_all(), last_ts_s)
        return events + self._file_expired(math.nan)

    @property
    def events(self) -> list[Event]:
        """Every event filed so far, in order."""
        return list(self._events)

    def health_warnings(self) -> list[HealthWarning]:
        """Camera health findings, such as constant motion near the lens."""
        return self._health.warnings() if self._health else []

    def constant_motion_regions(self) -> list[tuple[float, float, float, float]]:
        """Boxes (full-frame px) where motion has not stopped for long."""
        return self._health.constant_regions() if self._health else []

    def _start_if_needed(self, frame: Frame) -> None:
        if self._proposer is not None:
            return
        width, height = frame.resolution_wh
        self.camera.check_frame_size((width, height))
        self._proposer = MotionProposer(
            (width, height), self.config.facade_polygon_xy, self._motion_settings
        )
        self._tracker = FallTracker(height)
        if self._criteria is None:
            # The fastest plausible fall scales with the frame's height.
            self.criteria = replace(
                self.criteria, max_speed_px_s=self._tracker.max_speed_px_s
            )
        self._health = MotionHealth(self._proposer.region_xyxy)
        self._log.info(
            "throw analysis on %dx%d frames, working at 1/%d scale",
            width,
            height,
            self._proposer.factor,
            extra={"camera_id": self.camera.camera_id},
        )

    def _track(self, frame: Frame, result: MotionResult) -> list[Track]:
        assert self._tracker and self._health
        if result.repeat:
            self.frames_repeated += 1
            return []
        self._health.update(frame.ts_s, result)
        if result.veto is not None:
            if result.veto != "warmup":
                # The object could have been seen here, had the picture held.
                self.frames_vetoed += 1
                self._informative_ts_s.append(frame.ts_s)
            return self._tracker.expire(frame.ts_s)
        # Blobs in foliage and other busy places cannot be followed reliably;
        # leaving them out also keeps the tracker cheap.
        blobs = [b for b in result.blobs if b.clutter <= CLUTTER]
        ended = self._tracker.update(frame.ts_s, frame.captured_at, blobs)
        self._informative_ts_s.append(frame.ts_s)
        if len(self._informative_ts_s) > 2 * _INFORMATIVE_KEPT:
            del self._informative_ts_s[:-_INFORMATIVE_KEPT]
        landed = [t for t in self._tracker.tracks if _has_landed(t)]
        self._tracker.tracks = [t for t in self._tracker.tracks if t not in landed]
        return ended + landed

    def _decide(self, ended: list[Track], ts_s: float) -> list[Event]:
        """Test ended tracks; file falls unless a live track may continue them."""
        events = self._file_expired(ts_s)
        for track in ended:
            if not worth_a_look(track.sightings):
                continue
            chain = self._stitch(track.sightings)
            verdict = self._judge(track.track_id, chain)
            if verdict is None and len(chain) > len(track.sightings):
                verdict = self._judge(track.track_id, track.sightings)
            elif verdict is not None:
                self._drop_parts_of(chain)
            entry = _Pending(track.track_id, track.sightings, chain[-1].ts_s, verdict)
            if len(track.sightings) >= 3:
                self._pool.append(entry)
            if verdict is None or self._continues(chain):
                continue
            entry.verdict = None
            events += self._file(track.track_id, *verdict, ts_s)
        return events

    def _judge(
        self, track_id: int, chain: list[Sighting]
    ) -> tuple[list[Sighting], FallFit] | None:
        sightings = moving_part(chain)
        if (
            len(sightings) < self.criteria.min_points
            or not drops(sightings, self.criteria, self._region_height_px())
            or in_clutter(sightings)
        ):
            return None
        fit = fit_fall(
            np.array([s.ts_s for s in sightings]),
            np.array([(s.x, s.y) for s in sightings]),
            np.array([s.size_px for s in sightings]),
            self.criteria,
        )
        self._log.debug(
            "track %d: %d sightings, %s",
            track_id,
            len(sightings),
            fit.reason,
            extra={"camera_id": self.camera.camera_id},
        )
        if not fit.passed:
            return None
        kept = [sightings[i] for i in fit.inliers]
        if moving_steps(kept) < self.criteria.min_moving_steps:
            self._log.debug("track %d: seen moving too few times", track_id)
            return None
        if self._density(kept) < _MIN_DENSITY:
            self._log.debug("track %d: seen too rarely for a fall", track_id)
            return None
        return kept, fit

    def _region_height_px(self) -> float:
        assert self._proposer is not None
        _, y1, _, y2 = self._proposer.region_xyxy
        return float(y2 - y1)

    def _density(self, sightings: list[Sighting]) -> float:
        """Share of the frames during the track that saw it (repeats aside)."""
        first, last = sightings[0].ts_s, sightings[-1].ts_s
        start = bisect.bisect_left(self._informative_ts_s, first)
        end = bisect.bisect_right(self._informative_ts_s, last)
        return len(sightings) / max(end - start, len(sightings))

    def _stitch(self, sightings: list[Sighting]) -> list[Sighting]:
        """Prepend the earlier parts of a track this one plausibly continues.

        They may overlap in time (two tracks followed the same object for a
        while); an earlier part contributes what it saw before this began.
        """
        chain = sightings
        used: set[int] = set()
        for _ in range(4):
            found = self._predecessor(chain, used)
            if found is None:
                break
            entry, before = found
            used.add(entry.track_id)
            chain = before + chain
        return chain

    def _predecessor(
        self, chain: list[Sighting], used: set[int]
    ) -> tuple[_Pending, list[Sighting]] | None:
        """The ended track whose last sighting best meets this chain's start."""
        first = chain[0]
        best: tuple[float, _Pending, list[Sighting]] | None = None
        for entry in self._pool:
            if entry.track_id in used:
                continue
            before = [s for s in entry.sightings if s.ts_s < first.ts_s]
            if not before:
                continue
            # The head of a chain may be a codec ghost: try without it too.
            heads = [chain, chain[1:]] if len(chain) > 3 else [chain]
            misses = [
                backward_miss_px(head, before[-1])
                for head in heads
                if continues_to(before[-1], head)
            ]
            if not misses:
                continue
            miss = min(misses)
            if best is None or miss < best[0]:
                best = (miss, entry, before)
        return None if best is None else (best[1], best[2])

    def _drop_parts_of(self, chain: list[Sighting]) -> None:
        """Falls deferred earlier that this chain now includes are not filed."""
        times = {s.ts_s for s in chain}
        for entry in self._pool:
            if entry.verdict and any(s.ts_s in times for s in entry.verdict[0]):
                if overlaps(points(chain), entry.verdict[0]):
                    entry.verdict = None

    def _continues(self, chain: list[Sighting]) -> bool:
        """A live track, begun after this one, that may be the same object."""
        assert self._tracker is not None
        first, last = chain[0], chain[-1]
        for track in self._tracker.tracks:
            start, now = track.sightings[0], track.last
            if (
                len(track.sightings) >= 2
                and first.ts_s < now.ts_s
                and start.ts_s <= last.ts_s + STITCH_GAP_S
                and now.ts_s > last.ts_s
                and now.y >= last.y - 3.0 - last.size_px
                and abs(now.x - last.x) <= abs(now.y - last.y) + 30.0
            ):
                return True
        return False

    def _file_expired(self, ts_s: float) -> list[Event]:
        """File deferred falls whose continuation never came; forget old tracks."""
        events = []
        self._pool.sort(key=lambda entry: -len(entry.sightings))
        for entry in self._pool:
            if entry.verdict is None:
                continue
            waited_s = ts_s - entry.end_ts_s
            if (
                math.isnan(ts_s)
                or waited_s > _DEFER_MAX_S
                or (waited_s > _DEFER_S and not self._continues(entry.verdict[0]))
            ):
                events += self._file(entry.track_id, *entry.verdict, ts_s)
                entry.verdict = None
        self._pool = [
            entry
            for entry in self._pool
            if entry.verdict is not None or ts_s - entry.end_ts_s <= _POOL_S
        ][-_POOL_SIZE:]
        self._pool.sort(key=lambda entry: entry.end_ts_s)
        return events

    def _retain_crops(self) -> None:
        """Crops are needed while a track lives, may be stitched, or waits."""
        assert self.second_stage is not None and self._tracker is not None
        track_ids = {t.track_id for t in self._tracker.tracks}
        track_ids.update(entry.track_id for entry in self._pool)
        waiting = [s for e in self._pool if e.verdict for s in e.verdict[0]]
        self.second_stage.retain(track_ids, waiting)

    def _file(
        self, track_id: int, sightings: list[Sighting], fit: FallFit, ts_s: float
    ) -> list[Event]:
        if self._is_known(sightings):
            return []
        stage = self.second_stage.judge(sightings) if self.second_stage else None
        if stage is not None and stage.vetoed:
            self._log.info(
                "throw: track %d not filed: the second stage saw %s at the object "
                "in %d of %d crops (share %.2f)",
                track_id,
                stage.veto_class,
                stage.veto_crops,
                stage.crops,
                stage.veto_share,
                extra={"camera_id": self.camera.camera_id},
            )
            self._vetoed = [*self._vetoed[-4:], (points(sightings), sightings[-1].ts_s)]
            return []
        detected_ts_s = ts_s if not math.isnan(ts_s) else sightings[-1].ts_s
        event = self._event(track_id, sightings, fit, detected_ts_s)
        if stage is not None:
            event.details.update(stage.details())
        self._log.info(
            "throw: track %d fell %.2f s from (%.0f, %.0f)",
            track_id,
            fit.fall_s,
            event.origin.x if event.origin else math.nan,
            event.origin.y if event.origin else math.nan,
            extra={"camera_id": self.camera.camera_id},
        )
        self._events.append(event)
        return [event]

    def _is_known(self, sightings: list[Sighting]) -> bool:
        """The same object already filed (or vetoed), seen again or in part."""
        first = sightings[0]
        known = [(e.trajectory, e.ended_ts_s) for e in self._events[-5:]]
        for trajectory, ended_ts_s in known + self._vetoed[-5:]:
            if overlaps(trajectory, sightings):
                return True
            after_s = first.ts_s - ended_ts_s
            if 0 <= after_s <= _SAME_OBJECT_S and first.y >= (
                trajectory[-1].y - 2 * first.size_px
            ):
                return True
        return False

    def _event(
        self, track_id: int, sightings: list[Sighting], fit: FallFit, ts_s: float
    ) -> Event:
        first, last = sightings[0], sightings[-1]
        clearest = max(sightings, key=lambda s: s.contrast * max(s.size_px, 1.0))
        origin = self._origin(sightings, fit)
        started_ts_s = round(first.ts_s, 3)
        return Event(
            event_id=throw_event_id(self.camera.camera_id, started_ts_s),
            camera_id=self.camera.camera_id,
            area_path=self.camera.area_path,
            category=Category.THROW,
            rule=self.name,
            score=fit.score,
            class_name="falling_object",
            track_id=track_id,
            started_ts_s=first.ts_s,
            ended_ts_s=last.ts_s,
            detected_ts_s=max(ts_s, last.ts_s),
            started_at=first.captured_at,
            bbox_xyxy=clearest.bbox_xyxy,
            boxes=[TimedBox(ts_s=s.ts_s, bbox_xyxy=s.bbox_xyxy) for s in sightings],
            trajectory=[TrajectoryPoint(ts_s=s.ts_s, x=s.x, y=s.y) for s in sightings],
            origin=origin,
            details=_fit_details(fit, len(sightings)),
        )

    def _origin(self, sightings: list[Sighting], fit: FallFit) -> Origin:
        """Where the fall began: the first sighting, or traced back to release."""
        first = sightings[0]
        x, y = first.x, first.y
        spacing_s = (sightings[-1].ts_s - first.ts_s) / max(len(sightings) - 1, 1)
        traced_back = fit.t0_s < first.ts_s - 1.5 * spacing_s
        if traced_back:
            x, y = fit.position(fit.t0_s)
            assert self._proposer is not None
            width, height = self._proposer.resolution_wh
            x, y = min(max(x, 0.0), width - 1.0), min(max(y, 0.0), height - 1.0)
        return Origin(
            x=round(x, 1),
            y=round(y, 1),
            floor=floor_at(y, self.config.floor_lines_y, self.config.top_floor),
            window=window_at(x, self.config.window_columns_x),
            traced_back=traced_back,
        )


def throw_event_id(camera_id: str, started_ts_s: float) -> str:
    """Same camera and start time, same id: re-analysis files no duplicate."""
    return uuid.uuid5(_EVENT_NAMESPACE, f"{camera_id}/throw/{started_ts_s:.3f}").hex


def floor_at(y: float, floor_lines_y: list[float], top_floor: int | None) -> int | None:
    """Floor number at image row ``y``; rows are floor boundaries, top first.

    Above the first line is ``top_floor``; each line crossed going down is
    one floor lower. Unknown without lines or a top floor.
    """
    if not floor_lines_y or top_floor is None:
        return None
    return top_floor - bisect.bisect_right(sorted(floor_lines_y), y)


def window_at(x: float, window_columns_x: list[float]) -> int | None:
    """Window number (1 = leftmost) between column boundaries; None outside."""
    columns = sorted(window_columns_x)
    if len(columns) < 2 or not columns[0] <= x < columns[-1]:
        return None
    return bisect.bisect_right(columns, x)


def _grey_or_colour(frame: Frame) -> tuple[np.ndarray, bool]:
    """The decoder's luma when the frame has it, else the checked picture."""
    image = _checked_image(frame)
    luma = frame.luma
    if luma is not None and luma.shape == image.shape[:2]:
        return luma, frame.luma_studio_range
    return image, False


def _checked_image(frame: Frame) -> np.ndarray:
    image = frame.image
    if image.ndim not in (2, 3) or image.dtype != np.uint8:
        raise FrameError(
            f"frame {frame.index}: expected HxWx3 uint8 image, got shape "
            f"{image.shape} dtype {image.dtype}"
        )
    return image


def _has_landed(track: Track) -> bool:
    return len(track.sightings) > 2 and track.is_still(
        _LANDED_S, 2.0 + 0.5 * track.last.size_px
    )


def _fit_details(fit: FallFit, points: int) -> dict[str, float | int | str | None]:
    return {
        "fit_residual": round(fit.residual, 3),
        "steady_residual": round(fit.steady_residual, 3),
        "release_ts_s": round(fit.t0_s, 3),
        "projective_c": round(fit.y_coef[2], 6),
        "speed_start_px_s": round(fit.speed_start_px_s, 1),
        "speed_end_px_s": round(fit.speed_end_px_s, 1),
        "angle_from_down_deg": round(fit.angle_from_down_deg, 1),
        "fall_s": round(fit.fall_s, 3),
        "sightings": points,
    }
