"""The camera worker: one camera's frames through analyzers to filed tickets.

It reads frames, keeps the pre-roll, runs the analyzers, waits for each
event's post-roll, has the evidence written, and hands the event to the
ticket sink. It knows nothing of HTTP or the database.

The pre-roll is the source's own encoded packets when the source provides
them (``push_packets``; clips of H.264/H.265 sources are then remuxed without
re-encoding), otherwise the frames themselves, JPEG-encoded (frames pushed one
by one). Recordings are analysed frame by frame (``run_chunks``); a live
source is analysed at its newest frame (``run_live``): frames that arrive
while the analyzers are busy are skipped on purpose and counted, and the lag
between the newest frame and the analysed one is measured in stream time.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from vision.analyze import Analyzer
from vision.config import CameraConfig
from vision.errors import CitywatchError
from vision.evidence.writer import EvidenceWriter, missing_clip
from vision.health import CameraHealth
from vision.ingest.live import LiveReader
from vision.ingest.packets import HeldPacket, PacketRing
from vision.ingest.ring import FrameRing
from vision.ingest.sources import SourceChunk
from vision.sink import FiledTicket, TicketSink
from vision.types import Category, Event, Frame

logger = logging.getLogger(__name__)

_EVENT_NAMESPACE = uuid.UUID("5d1f1c1e-8a8e-4d8e-9a53-6f0c2f1a7c11")
# Seconds of footage before a camera fault that go with its ticket.
_FAULT_CLIP_S = 5.0

FrameHook = Callable[[Frame], None]


@dataclass(slots=True)
class WorkerStats:
    frames_in: int = 0  # frames analysed (live: newest frames only)
    frames_corrupt: int = 0
    frames_skipped: int = 0  # live frames never analysed because analysis was busy
    events: int = 0
    faults: int = 0
    tickets_created: int = 0
    last_ts_s: float = 0.0
    analysis_s: float = 0.0
    lag_s: float = 0.0  # newest frame minus analysed frame, stream seconds
    max_lag_s: float = 0.0
    filed: list[tuple[Event, FiledTicket]] = field(default_factory=list)


@dataclass(slots=True)
class _Pending:
    event: Event
    due_ts_s: float
    clip_start_ts_s: float
    clip_end_ts_s: float
    # Where the event goes once its evidence is written; the ticket sink
    # unless it answers a verification request.
    deliver: Callable[[Event], None] | None = None


class CameraWorker:
    """Runs one camera's analyzers over a stream of frames.

    ``session_key`` names the source session (a recording's identity, or a
    live connection). Event ids are derived from it, so analysing the same
    recording twice files no duplicate tickets. ``health``, when given, is
    fed every analysed frame and its fault events are filed like any other.
    ``frame_hooks`` are called with every analysed frame after the analyzers
    (a place for re-checking resolved tickets).
    """

    def __init__(
        self,
        camera: CameraConfig,
        analyzers: Sequence[Analyzer],
        writer: EvidenceWriter,
        sink: TicketSink,
        *,
        session_key: str,
        health: CameraHealth | None = None,
        frame_hooks: Sequence[FrameHook] = (),
    ) -> None:
        self.camera = camera
        self.analyzers = list(analyzers)
        self._writer = writer
        self._sink = sink
        self._session_key = session_key
        self.health = health
        self.frame_hooks = list(frame_hooks)
        self._frame_ring = FrameRing(history_s=self._history_s())
        self.packet_ring = PacketRing(history_s=self._history_s())
        self._uses_packets = False
        self._pending: list[_Pending] = []
        self._checked_size = False
        self._filer: ThreadPoolExecutor | None = None
        self._filing: list[Future[None]] = []
        self._lock = threading.Lock()
        self.stats = WorkerStats()
        self.log = logging.getLogger(f"{__name__}.{camera.camera_id}")

    def _history_s(self) -> float:
        clip = self.camera.clip
        throw = self.camera.throw
        return max(clip.max_clip_s, throw.preroll_s + 10.0) + clip.postroll_s

    # -- feeding ----------------------------------------------------------------

    def push_packets(self, packets: Iterable[HeldPacket]) -> None:
        """Keep the source's encoded packets as the pre-roll (thread-safe)."""
        for packet in packets:
            self.packet_ring.push(packet)
            self._uses_packets = True

    def run(self, frames: Iterable[Frame], stop: threading.Event | None = None) -> None:
        """Process frames until they end (or ``stop`` is set), then flush."""
        try:
            for frame in frames:
                self.process(frame)
                if stop is not None and stop.is_set():
                    break
        finally:
            self.finish()

    def run_chunks(
        self, chunks: Iterable[SourceChunk], stop: threading.Event | None = None
    ) -> None:
        """A recording: every packet into the pre-roll, every frame analysed."""
        try:
            for chunk in chunks:
                self.push_packets(chunk.packets)
                for decoded in chunk.frames:
                    self.process(decoded.to_frame())
                if stop is not None and stop.is_set():
                    break
        finally:
            self.finish()

    def run_live(
        self,
        reader: LiveReader,
        stop: threading.Event,
        *,
        on_tick: Callable[[], None] | None = None,
        tick_s: float = 1.0,
    ) -> None:
        """A live source: analyse the newest frame until ``stop`` is set.

        Filing runs in a background thread, so a slow object store never
        holds up analysis. ``on_tick`` is called about every ``tick_s`` (to
        publish status). The reader must already be started; it is stopped.
        """
        self._filer = ThreadPoolExecutor(1, thread_name_prefix="filer")
        next_tick = time.monotonic()
        skipped_ratio = 0.0
        try:
            while not stop.is_set():
                taken = reader.take(timeout_s=0.2)
                if taken is not None:
                    self.stats.frames_skipped += taken.skipped
                    self.process(taken.frame.to_frame())
                    self._measure_lag(reader.newest_ts_s, taken.frame.ts_s)
                    share = taken.skipped / (taken.skipped + 1)
                    skipped_ratio = 0.9 * skipped_ratio + 0.1 * share
                    if self.health is not None:
                        self.health.observe_lag(self.stats.lag_s, skipped_ratio)
                self._watch(reader)
                if on_tick is not None and time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + tick_s
                    on_tick()
        finally:
            reader.stop()
            self.finish()

    def _measure_lag(self, newest_ts_s: float, analysed_ts_s: float) -> None:
        lag_s = max(0.0, newest_ts_s - analysed_ts_s)
        self.stats.lag_s = lag_s
        self.stats.max_lag_s = max(self.stats.max_lag_s, lag_s)

    def _watch(self, reader: LiveReader) -> None:
        """Restart a silent source; file the faults that health found."""
        silent_s = reader.seconds_since_frame()
        if reader.online and silent_s > reader.settings.stall_timeout_s:
            reader.restart(f"no frame for {silent_s:.0f} s")
        self._file_faults()

    # -- analysis ------------------------------------------------------------

    def process(self, frame: Frame) -> None:
        if not self._checked_size:
            self.camera.check_frame_size(frame.resolution_wh)
            self._checked_size = True

        self.stats.frames_in += 1
        self.stats.last_ts_s = frame.ts_s
        if frame.corrupt:
            self.stats.frames_corrupt += 1
        if not self._uses_packets:
            self._frame_ring.push(frame)

        started = time.perf_counter()
        for analyzer in self.analyzers:
            for event in analyzer.process(frame):
                self._hold(event)
        self.stats.analysis_s += time.perf_counter() - started

        for hook in self.frame_hooks:
            hook(frame)
        if self.health is not None:
            self.health.observe_frame(frame)
            self._file_faults()
        self._file_due(frame.ts_s)

    def finish(self) -> None:
        """End of the source: file every held event with the frames there are."""
        for analyzer in self.analyzers:
            for event in analyzer.finish():
                self._hold(event)
        self._file_faults()
        self._file_due(float("inf"))
        if self._filer is not None:
            self._filer.shutdown(wait=True)  # every event in flight is filed
            self._filer = None

    def _file_faults(self) -> None:
        if self.health is None:
            return
        for event in self.health.faults():
            event = self._identify(event)
            end_s = max(event.ended_ts_s, self.stats.last_ts_s)
            self.stats.faults += 1
            self.log.error(
                "camera %s: camera fault %s: %s",
                self.camera.camera_id,
                event.rule,
                event.details.get("reason"),
            )
            self._file(_Pending(event, end_s, end_s - _FAULT_CLIP_S, end_s))

    def _hold(self, event: Event) -> None:
        """Keep an event until its post-roll has been recorded."""
        event = self._identify(event)
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

    def hold_for_delivery(self, event: Event, deliver: Callable[[Event], None]) -> None:
        """Write ``event``'s evidence after its post-roll and hand it to
        ``deliver`` instead of filing it: a verification's answer."""
        start_s, end_s = self._clip_span(event)
        self._pending.append(_Pending(event, end_s, start_s, end_s, deliver))

    def _identify(self, event: Event) -> Event:
        return event.model_copy(
            update={
                "event_id": self._stable_id(event),
                "camera_id": self.camera.camera_id,
                "area_path": self.camera.area_path,
            }
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
        """Cut the clip now (the ring moves on), write and file it, maybe later."""
        start_s, end_s = pending.clip_start_ts_s, pending.clip_end_ts_s
        frames = (
            self.packet_ring.clip(start_s, end_s)
            if self._uses_packets
            else self._frame_ring.between(start_s, end_s)
        ) or []
        if self._filer is None:
            self._write_and_file(pending.event, frames, pending.deliver)
        else:
            self._filer.submit(
                self._write_and_file, pending.event, frames, pending.deliver
            )

    def _write_and_file(
        self, event: Event, frames, deliver: Callable[[Event], None] | None = None
    ) -> None:
        earlier = None if deliver is not None else self._filed_before(event)
        if earlier is not None:
            self._keep_earlier(event, earlier)
            return
        try:
            event = self._writer.write(event, frames, self.camera)
            if deliver is not None:
                deliver(event)
                return
            filed = self._sink.file(event)
        except (KeyboardInterrupt, SystemExit):
            # Stopped while the evidence was written or the ticket filed (a
            # store that hangs, a second Ctrl-C): keep what the camera saw.
            if deliver is None:
                self._keep_unfiled(event)
            raise
        except CitywatchError as exc:
            self.log.error(
                "camera %s: event %s could not be filed: %s",
                self.camera.camera_id,
                event.event_id,
                exc,
            )
            return
        with self._lock:
            self.stats.filed.append((event, filed))
            if filed.created:
                self.stats.tickets_created += 1
        if filed.attached:
            self.log.info(
                "camera %s: %s event %s repeats open ticket %s at the same "
                "place; attached to it, which keeps its own evidence",
                self.camera.camera_id,
                event.category.value,
                event.event_id,
                filed.ticket_id,
            )
            return
        self.log.info(
            "camera %s: filed %s ticket %s (evidence %s)",
            self.camera.camera_id,
            event.category.value,
            filed.ticket_id,
            filed.evidence_state or event.evidence_state.value,
        )

    def _keep_unfiled(self, event: Event) -> None:
        """Hand an event the camera was stopped in the middle of filing to
        the sink's outbox, if it has one; its evidence, if not yet written,
        is recorded missing."""
        keep = getattr(self._sink, "keep", None)
        if keep is None:
            return
        if not event.evidence:
            reason = "the camera was stopped while its evidence was written"
            event = event.model_copy(update={"evidence": [missing_clip(event, reason)]})
        try:
            path = keep(event)
        except OSError as exc:
            self.log.error(
                "camera %s: stopped while filing event %s, which could not be kept: %s",
                self.camera.camera_id,
                event.event_id,
                exc.strerror or exc,
            )
            return
        self.log.warning(
            "camera %s: stopped while filing event %s; kept in %s for the next run",
            self.camera.camera_id,
            event.event_id,
            path,
        )

    def _filed_before(self, event: Event) -> FiledTicket | None:
        """The ticket this event went into on an earlier run, if the sink
        can tell; a failing question is left to the filing to report."""
        ask = getattr(self._sink, "filed_before", None)
        if ask is None:
            return None
        try:
            return ask(event.event_id)
        except CitywatchError:
            return None

    def _keep_earlier(self, event: Event, earlier: FiledTicket) -> None:
        """Leave a ticket filed before untouched, evidence included: a
        reviewer may already have judged what it shows."""
        with self._lock:
            self.stats.filed.append((event, earlier))
        self.log.info(
            "camera %s: %s event %s was filed before as ticket %s (%s); "
            "its evidence stays as it was",
            self.camera.camera_id,
            event.category.value,
            event.event_id,
            earlier.ticket_id,
            earlier.state or "state unknown",
        )


def recording_session_key(uri: str, size_bytes: int) -> str:
    """Identity of a recording: the same file analysed again gets the same ids."""
    return f"file:{uri.rsplit('/', 1)[-1]}:{size_bytes}"


def live_session_key(started_at: datetime | None = None) -> str:
    started_at = started_at or datetime.now(UTC)
    return f"live:{started_at.isoformat()}"
