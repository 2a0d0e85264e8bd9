"""Camera health: is the camera delivering, keeping up, and still seeing its scene?

A camera that quietly stops working is a city problem like any other, so
health is part of the product:

- ``online``: frames arrive and the worker keeps up;
- ``degraded``: frames arrive, but many are skipped or analysis runs late;
- ``offline``: no frames (the source is unreachable, silent or sends garbage);
- view problems, judged on the frames themselves: a covered lens (near-black
  or uniform frames), a view moved away from its calibrated scene (low
  similarity to the camera's reference view, or to the scene of its first
  minutes), a frozen image (identical frames for seconds).

A camera that stays offline, or whose view stays lost, files one
``camera_fault`` event per episode through the normal ticket sink, so
somebody goes and fixes it. The episode ends when the condition clears.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np

from vision.ingest.images import read_image
from vision.types import Category, Event, Frame

logger = logging.getLogger(__name__)

_THUMB_WH = (64, 48)


class HealthState(StrEnum):
    STARTING = "starting"
    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"


class ViewProblem(StrEnum):
    COVERED = "covered"  # lens covered or blinded: near-black or uniform frames
    MOVED = "moved"  # camera turned away from its calibrated scene
    FROZEN = "frozen"  # the same image over and over


@dataclass(frozen=True)
class HealthSettings:
    """Thresholds of camera health; times in seconds, stream or wall as named."""

    offline_fault_s: float = 60.0  # wall seconds offline before a fault is filed
    view_fault_s: float = 10.0  # stream seconds a view problem lasts before filing
    view_clear_s: float = 5.0  # stream seconds without the problem to end it
    check_every_s: float = 1.0  # stream seconds between view checks
    dark_mean_max: float = 18.0  # mean grey level of a covered lens
    uniform_std_max: float = 6.0  # grey level spread of a blank view
    similarity_min: float = 0.5  # edge similarity to the reference view
    reference_warmup_s: float = 60.0  # stream seconds that make the reference
    frozen_s: float = 10.0  # stream seconds of identical frames
    lag_degraded_s: float = 2.0  # analysis lag that makes a camera degraded
    skipped_degraded_ratio: float = 0.9  # share of frames skipped, over a window


@dataclass
class _Episode:
    started_monotonic: float
    started_ts_s: float
    started_at: datetime
    reason: str
    filed: bool = False
    clear_since_ts_s: float | None = None


@dataclass
class HealthSummary:
    camera_id: str
    state: HealthState
    reason: str | None
    view_problems: list[ViewProblem] = field(default_factory=list)
    view_similarity: float | None = None
    last_frame_at: datetime | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "camera_id": self.camera_id,
            "state": self.state.value,
            "reason": self.reason,
            "view_problems": [p.value for p in self.view_problems],
            "view_similarity": self.view_similarity,
            "last_frame_at": self.last_frame_at.isoformat()
            if self.last_frame_at
            else None,
        }


class CameraHealth:
    """Tracks one camera's health and yields its fault events.

    The worker reports connection changes (``source_online``/``source_offline``),
    analysed frames (``observe_frame``) and its lag (``observe_lag``), and calls
    ``faults()`` regularly to collect the events to file.
    """

    def __init__(
        self,
        camera_id: str,
        settings: HealthSettings | None = None,
        *,
        reference_view: str | Path | None = None,
        clock=time.monotonic,
    ) -> None:
        self.camera_id = camera_id
        self.settings = settings or HealthSettings()
        self._clock = clock
        self.state = HealthState.STARTING
        self.reason: str | None = None
        self._reference_path = reference_view
        self._reference: np.ndarray | None = None
        self._warmup: list[np.ndarray] = []
        self._warmup_start_ts_s: float | None = None
        self._last_check_ts_s: float | None = None
        self._last_thumb: np.ndarray | None = None
        self._frozen_since_ts_s: float | None = None
        self._last_ts_s = 0.0
        self._last_frame_at: datetime | None = None
        self.similarity: float | None = None
        self._lag_s = 0.0
        self._skipped_ratio = 0.0
        self._offline: _Episode | None = None
        self._views: dict[ViewProblem, _Episode] = {}
        self._due: list[Event] = []

    # -- what the worker reports ------------------------------------------------

    def source_online(self) -> None:
        if self.state is not HealthState.ONLINE:
            logger.info("camera %s: online", self.camera_id)
        self.state, self.reason = HealthState.ONLINE, None
        self._offline = None

    def source_offline(self, reason: str) -> None:
        if self.state is not HealthState.OFFLINE:
            logger.warning("camera %s: offline: %s", self.camera_id, reason)
        self.state, self.reason = HealthState.OFFLINE, reason
        if self._offline is None:
            self._offline = _Episode(
                self._clock(), self._last_ts_s, datetime.now(UTC), reason
            )
        self._offline.reason = reason

    def observe_lag(self, lag_s: float, skipped_ratio: float) -> None:
        self._lag_s, self._skipped_ratio = lag_s, skipped_ratio
        if self.state in (HealthState.ONLINE, HealthState.DEGRADED):
            self._judge_throughput()

    def observe_frame(self, frame: Frame) -> None:
        """Check the view on frames spaced ``check_every_s`` apart."""
        self._last_ts_s = frame.ts_s
        self._last_frame_at = frame.captured_at
        if self.state in (HealthState.STARTING, HealthState.OFFLINE):
            self.source_online()
        last = self._last_check_ts_s
        if last is not None and frame.ts_s - last < self.settings.check_every_s:
            return
        self._last_check_ts_s = frame.ts_s
        thumb = _thumbnail(frame.image)
        problems = self._view_problems(thumb, frame.ts_s)
        self._update_views(problems, frame.ts_s, frame.captured_at)

    def faults(self) -> list[Event]:
        """Fault events that became due since the last call, once per episode."""
        episode = self._offline
        if (
            episode is not None
            and not episode.filed
            and self._clock() - episode.started_monotonic
            >= self.settings.offline_fault_s
        ):
            episode.filed = True
            self._due.append(self._event("camera_offline", episode))
        due, self._due = self._due, []
        return due

    def summary(self) -> HealthSummary:
        return HealthSummary(
            camera_id=self.camera_id,
            state=self.state,
            reason=self.reason,
            view_problems=sorted(self._views),
            view_similarity=self.similarity,
            last_frame_at=self._last_frame_at,
        )

    # -- judging ---------------------------------------------------------------

    def _judge_throughput(self) -> None:
        settings = self.settings
        if self._lag_s > settings.lag_degraded_s:
            self.state = HealthState.DEGRADED
            self.reason = f"analysis runs {self._lag_s:.1f} s behind the stream"
        elif self._skipped_ratio > settings.skipped_degraded_ratio:
            self.state = HealthState.DEGRADED
            self.reason = f"{self._skipped_ratio:.0%} of frames skipped"
        else:
            self.state, self.reason = HealthState.ONLINE, None

    def _view_problems(self, thumb: np.ndarray, ts_s: float) -> set[ViewProblem]:
        settings = self.settings
        problems: set[ViewProblem] = set()
        if thumb.mean() < settings.dark_mean_max or thumb.std() < (
            settings.uniform_std_max
        ):
            problems.add(ViewProblem.COVERED)
        elif self._moved(thumb, ts_s):
            problems.add(ViewProblem.MOVED)

        if self._last_thumb is not None and np.array_equal(thumb, self._last_thumb):
            self._frozen_since_ts_s = self._frozen_since_ts_s or ts_s
            if ts_s - self._frozen_since_ts_s >= settings.frozen_s:
                problems.add(ViewProblem.FROZEN)
        else:
            self._frozen_since_ts_s = None
        self._last_thumb = thumb
        return problems

    def _moved(self, thumb: np.ndarray, ts_s: float) -> bool:
        reference = self._reference_thumb(thumb, ts_s)
        if reference is None:
            return False
        self.similarity = _edge_similarity(reference, thumb)
        return self.similarity < self.settings.similarity_min

    def _reference_thumb(self, thumb: np.ndarray, ts_s: float) -> np.ndarray | None:
        if self._reference is not None:
            return self._reference
        if self._reference_path is not None:
            self._reference = _thumbnail(read_image(self._reference_path))
            return self._reference
        # No calibrated view: the scene of the first minutes is the reference.
        if self._warmup_start_ts_s is None:
            self._warmup_start_ts_s = ts_s
        self._warmup.append(thumb)
        if ts_s - self._warmup_start_ts_s >= self.settings.reference_warmup_s:
            self._reference = np.median(np.stack(self._warmup), axis=0)
            self._warmup = []
        return None

    def _update_views(
        self, problems: set[ViewProblem], ts_s: float, captured_at: datetime
    ) -> None:
        for problem in problems:
            episode = self._views.get(problem)
            if episode is None:
                logger.warning("camera %s: view %s", self.camera_id, problem.value)
                episode = _Episode(self._clock(), ts_s, captured_at, problem.value)
                self._views[problem] = episode
            episode.clear_since_ts_s = None
            lasted_s = ts_s - episode.started_ts_s
            if not episode.filed and lasted_s >= self.settings.view_fault_s:
                episode.filed = True
                self._due.append(self._event(f"view_{problem.value}", episode, ts_s))
        for problem in set(self._views) - problems:
            episode = self._views[problem]
            episode.clear_since_ts_s = episode.clear_since_ts_s or ts_s
            if ts_s - episode.clear_since_ts_s >= self.settings.view_clear_s:
                logger.info("camera %s: view %s cleared", self.camera_id, problem)
                del self._views[problem]

    def _event(
        self, rule: str, episode: _Episode, ended_ts_s: float | None = None
    ) -> Event:
        ended_ts_s = episode.started_ts_s if ended_ts_s is None else ended_ts_s
        details: dict[str, float | int | str | None] = {"reason": episode.reason}
        if self.similarity is not None:
            details["view_similarity"] = round(self.similarity, 3)
        return Event(
            camera_id=self.camera_id,
            category=Category.CAMERA_FAULT,
            rule=rule,
            started_ts_s=episode.started_ts_s,
            ended_ts_s=ended_ts_s,
            detected_ts_s=ended_ts_s,
            started_at=episode.started_at,
            details=details,
            event_id=f"{rule}@{episode.started_ts_s:.3f}",
        )


def _thumbnail(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return cv2.resize(grey, _THUMB_WH, interpolation=cv2.INTER_AREA).astype(np.float32)


def _edge_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of edge strength: the scene's layout, not its lighting."""
    ea, eb = _edges(a), _edges(b)
    ea, eb = ea - ea.mean(), eb - eb.mean()
    denominator = float(np.sqrt((ea * ea).sum() * (eb * eb).sum()))
    return float((ea * eb).sum() / denominator) if denominator > 1e-6 else 0.0


def _edges(thumb: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(thumb, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(thumb, cv2.CV_32F, 0, 1)
    return np.hypot(gx, gy)
