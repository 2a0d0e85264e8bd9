"""The camera worker: one camera's frames through analyzers to filed tickets.

It reads frames, keeps the pre-roll ring, runs the analyzers on every frame,
waits for each event's post-roll, has the evidence written, and hands the
event to the ticket sink. It knows nothing of HTTP or the database.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from vision.analyze import Analyzer
from vision.config import CameraConfig
from vision.errors import CitywatchError
from vision.evidence.writer import EvidenceWriter
from vision.ingest.ring import FrameRing
from vision.sink import FiledTicket, TicketSink
from vision.types import Category, Event, Frame

logger = logging.getLogger(__name__)

_EVENT_NAMESPACE = uuid.UUID("5d1f1c1e-8a8e-4d8e-9a53-6f0c2f1a7c11")


@dataclass(slots=True)
class WorkerStats:
    frames_in: int = 0
    frames_corrupt: int = 0
    events: int = 0
    tickets_created: int = 0
    last_ts_s: float = 0.0
    analysis_s: float = 0.0
    filed: list[tuple[Event, FiledTicket]] = field(default_factory=list)


@dataclass(slots=True)
class _Pending:
    event: Event
    due_ts_s: float
    clip_start_ts_s: float
    clip_end_ts_s: float


class CameraWorker:
    """Runs one camera's analyzers over a stream of frames.

    ``session_key`` names the source session (a recording's identity, or a
    live connection). Event ids are derived from it, so analysing the same
    recording twice files no duplicate tickets.
    """

    def __init__(
        self,
        camera: CameraConfig,
        analyzers: Sequence[Analyzer],
        writer: EvidenceWriter,
        sink: TicketSink,
        *,
        session_key: str,
    ) -> None:
        self.camera = camera
        self.analyzers = list(analyzers)
        self._writer = writer
        self._sink = sink
        self._session_key = session_key
        self._ring = FrameRing(history_s=self._history_s())
        self._pending: list[_Pending] = []
        self._checked_size = False
        self.stats = WorkerStats()
        self.log = logging.getLogger(f"{__name__}.{camera.camera_id}")

    def _history_s(self) -> float:
        clip = self.camera.clip
        throw = self.camera.throw
        return max(clip.max_clip_s, throw.preroll_s + 10.0) + clip.postroll_s

    def run(self, frames: Iterable[Frame], stop: threading.Event | None = None) -> None:
        """Process frames until they end (or ``stop`` is set), then flush."""
        try:
            for frame in frames:
                self.process(frame)
                if stop is not None and stop.is_set():
                    break
        finally:
            self.finish()

    def process(self, frame: Frame) -> None:
        if not self._checked_size:
            self.camera.check_frame_size(frame.resolution_wh)
            self._checked_size = True

        self.stats.frames_in += 1
        self.stats.last_ts_s = frame.ts_s
        if frame.corrupt:
            self.stats.frames_corrupt += 1
        self._ring.push(frame)

        started = time.perf_counter()
        for analyzer in self.analyzers:
            for event in analyzer.process(frame):
                self._hold(event)
        self.stats.analysis_s += time.perf_counter() - started

        self._file_due(frame.ts_s)

    def finish(self) -> None:
        """End of the source: file every held event with the frames there are."""
        for analyzer in self.analyzers:
            for event in analyzer.finish():
                self._hold(event)
        self._file_due(float("inf"))

    def _hold(self, event: Event) -> None:
        """Keep an event until its post-roll has been recorded."""
        event = event.model_copy(
            update={
                "event_id": self._stable_id(event),
                "camera_id": self.camera.camera_id,
                "area_path": self.camera.area_path,
            }
        )
        start_s, end_s = self._clip_span(event)
        self._pending.append(_Pending(event, end_s, start_s, end_s))
        self.stats.events += 1
        self.log.info(
            "camera %s: %s event at %.1f s (rule %s); filing after post-roll",
            self.camera.camera_id,
            event.category.value,
            event.started_ts_s,
            event.rule,
        )

    def _stable_id(self, event: Event) -> str:
        name = f"{self._session_key}/{event.event_id}"
        return uuid.uuid5(_EVENT_NAMESPACE, name).hex

    def _clip_span(self, event: Event) -> tuple[float, float]:
        """Pre-roll before the first sighting, post-roll after the last.

        A long finding (a car parked for an hour) keeps the clip to
        ``max_clip_s``, ending with the post-roll after the rule fired.
        """
        if event.category is Category.THROW:
            preroll_s, postroll_s = (
                self.camera.throw.preroll_s,
                self.camera.throw.postroll_s,
            )
        else:
            preroll_s, postroll_s = (
                self.camera.clip.preroll_s,
                self.camera.clip.postroll_s,
            )
        start_s = event.started_ts_s - preroll_s
        end_s = event.ended_ts_s + postroll_s
        longest_s = max(self.camera.clip.max_clip_s, preroll_s + postroll_s)
        if end_s - start_s > longest_s:
            start_s = end_s - longest_s
        return start_s, end_s

    def _file_due(self, now_ts_s: float) -> None:
        due = [p for p in self._pending if p.due_ts_s <= now_ts_s]
        if not due:
            return
        self._pending = [p for p in self._pending if p.due_ts_s > now_ts_s]
        for pending in due:
            self._file(pending)

    def _file(self, pending: _Pending) -> None:
        frames = self._ring.between(pending.clip_start_ts_s, pending.clip_end_ts_s)
        event = self._writer.write(pending.event, frames, self.camera)
        try:
            filed = self._sink.file(event)
        except CitywatchError as exc:
            self.log.error(
                "camera %s: event %s could not be filed: %s",
                self.camera.camera_id,
                event.event_id,
                exc,
            )
            return
        self.stats.filed.append((event, filed))
        if filed.created:
            self.stats.tickets_created += 1
        self.log.info(
            "camera %s: filed %s ticket %s (evidence %s)",
            self.camera.camera_id,
            event.category.value,
            filed.ticket_id,
            event.evidence_state.value,
        )


def recording_session_key(uri: str, size_bytes: int) -> str:
    """Identity of a recording: the same file analysed again gets the same ids."""
    return f"file:{uri.rsplit('/', 1)[-1]}:{size_bytes}"


def live_session_key(started_at: datetime | None = None) -> str:
    started_at = started_at or datetime.now(UTC)
    return f"live:{started_at.isoformat()}"
