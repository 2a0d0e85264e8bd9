"""Push sources: cameras that cannot stream post frames or recorded clips.

A pushed frame carries its capture time. Frames reach the camera's worker in
capture order: a frame with the same capture time as the last one is a
duplicate (a retried upload), one older than the last is late; both are
dropped and counted, because the analyzers' timers must never run backwards.
A pushed clip is analysed like any recording, in a background thread, and
its file is removed afterwards.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import numpy as np

from vision.types import Frame
from vision.worker import CameraWorker

logger = logging.getLogger(__name__)


class FrameOutcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"


@dataclass
class PushCounts:
    accepted: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    clips: int = 0


class PushedFrames:
    """One camera's pushed frames, in capture order, into its worker."""

    def __init__(self, worker: CameraWorker) -> None:
        self.worker = worker
        self.counts = PushCounts()
        self._lock = threading.Lock()
        self._first_at: datetime | None = None
        self._last_at: datetime | None = None
        self._index = 0

    def accept(self, image: np.ndarray, captured_at: datetime) -> FrameOutcome:
        if captured_at.tzinfo is None:
            raise ValueError("captured_at must carry a time zone (UTC)")
        with self._lock:
            if self._last_at is not None and captured_at <= self._last_at:
                return self._drop(captured_at)
            self._first_at = self._first_at or captured_at
            self._last_at = captured_at
            ts_s = (captured_at - self._first_at).total_seconds()
            frame = Frame(image, ts_s, self._index, captured_at)
            self._index += 1
            self.worker.process(frame)
            self.counts.accepted += 1
            return FrameOutcome.ACCEPTED

    def _drop(self, captured_at: datetime) -> FrameOutcome:
        if captured_at == self._last_at:
            self.counts.duplicates += 1
            outcome = FrameOutcome.DUPLICATE
        else:
            self.counts.out_of_order += 1
            outcome = FrameOutcome.OUT_OF_ORDER
        logger.warning(
            "camera %s: pushed frame of %s dropped: %s",
            self.worker.camera.camera_id,
            captured_at.isoformat(),
            outcome.value,
        )
        return outcome


ClipRunner = Callable[[str, Path], None]


class PushHub:
    """Where the ingest routes hand pushed frames and clips.

    ``make_worker(camera_id)`` builds the worker for a camera's pushed frames
    (``None`` for a camera not known here); ``run_clip(camera_id, path)``
    analyses an uploaded recording. Clips run one at a time per hub, in the
    background; their files are removed when done.
    """

    def __init__(
        self,
        make_worker: Callable[[str], CameraWorker | None],
        run_clip: ClipRunner,
        *,
        clip_threads: int = 1,
    ) -> None:
        self._make_worker = make_worker
        self._run_clip = run_clip
        self._cameras: dict[str, PushedFrames] = {}
        self._lock = threading.Lock()
        self._clips = ThreadPoolExecutor(clip_threads, thread_name_prefix="clip")

    def camera(self, camera_id: str) -> PushedFrames | None:
        with self._lock:
            pushed = self._cameras.get(camera_id)
            if pushed is None:
                worker = self._make_worker(camera_id)
                if worker is None:
                    return None
                pushed = self._cameras[camera_id] = PushedFrames(worker)
            return pushed

    def submit_clip(self, camera_id: str, path: Path) -> str:
        """Analyse the clip at ``path`` (now owned by the hub); returns its id."""
        clip_id = uuid.uuid4().hex
        self._clips.submit(self._analyse, camera_id, path, clip_id)
        return clip_id

    def _analyse(self, camera_id: str, path: Path, clip_id: str) -> None:
        try:
            self._run_clip(camera_id, path)
        except Exception:
            logger.exception("camera %s: pushed clip %s failed", camera_id, clip_id)
        finally:
            path.unlink(missing_ok=True)

    def close(self) -> None:
        self._clips.shutdown(wait=True)
        with self._lock:
            for pushed in self._cameras.values():
                pushed.worker.finish()
