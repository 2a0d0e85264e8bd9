"""Live sources: a reader thread that reconnects and always has the newest frame.

A camera stream does not wait for its viewer. The reader thread demuxes and
decodes continuously, pushes every packet into the pre-roll ring, and keeps
only the newest decoded frame for the worker; when analysis is slower than
the stream, the frames in between are skipped on purpose and counted, so the
worker never builds a backlog. Recordings are read differently (every frame,
in the worker's own thread), see ``SourcePolicy``.

Every wait is bounded: opening and each read have timeouts, a connection
that delivers no frame for ``stall_timeout_s`` is dropped, and reconnects
back off exponentially with jitter, so a camera that comes back is picked up
without hammering one that is down.

A segmented stream (HLS) hands over seconds of video at once; its frames are
released at the pace of their own timestamps, so the newest-frame policy
skips frames only when analysis is slower than the stream, not because a
segment arrived whole.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import SimpleNamespace

from tenacity import wait_exponential_jitter

from vision.errors import CameraUnavailable, SourceError
from vision.ingest.packets import HeldPacket
from vision.ingest.sources import DecodedFrame, VideoSource, is_live, redact_uri

logger = logging.getLogger(__name__)


class SourcePolicy(StrEnum):
    """How frames reach analysis, explicit per source type."""

    EVERY_FRAME = "every_frame"  # recordings: nothing is dropped
    NEWEST_FRAME = "newest_frame"  # live streams: stale frames are skipped

    @classmethod
    def for_uri(cls, uri: str) -> SourcePolicy:
        return cls.NEWEST_FRAME if is_live(uri) else cls.EVERY_FRAME


@dataclass(frozen=True)
class LiveSettings:
    """Timeouts and reconnect backoff of a live source, in seconds."""

    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    stall_timeout_s: float = 15.0  # no decoded frame this long: reconnect
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    backoff_jitter_s: float = 1.0
    rtsp_transport: str = "tcp"


class _Pace:
    """Seconds to hold each frame so frames go out at their stream's pace.

    The schedule starts at the connection's first frame. A frame that is due
    already goes out at once (pacing never adds to a backlog), and one far
    ahead of the schedule (a jump in the stream's timestamps) starts a new
    schedule instead of holding the reader.
    """

    max_hold_s = 1.0  # longer than any frame interval a camera uses

    def __init__(self) -> None:
        self._origin_s: float | None = None  # monotonic time of stream time 0

    def hold_s(self, ts_s: float) -> float:
        now = time.monotonic()
        if self._origin_s is None:
            self._origin_s = now - ts_s
        ahead_s = self._origin_s + ts_s - now
        if ahead_s > self.max_hold_s:
            self._origin_s, ahead_s = now - ts_s, 0.0
        return max(0.0, ahead_s)


@dataclass(frozen=True, slots=True)
class TakenFrame:
    frame: DecodedFrame
    skipped: int  # frames decoded since the last take and never analysed
    newest_ts_s: float


class LiveReader:
    """Reads one live source in a thread; ``take()`` hands out the newest frame.

    ``on_packets`` receives every packet (the pre-roll ring); ``on_state``
    hears ``(online, reason)`` on every connection change.
    """

    def __init__(
        self,
        uri: str,
        settings: LiveSettings | None = None,
        *,
        on_packets: Callable[[list[HeldPacket]], None] | None = None,
        on_state: Callable[[bool, str | None], None] | None = None,
        name: str = "camera",
    ) -> None:
        self.uri = uri
        self.shown_uri = redact_uri(uri)
        self.settings = settings or LiveSettings()
        self._on_packets = on_packets or (lambda packets: None)
        self._on_state = on_state or (lambda online, reason: None)
        self._stop = threading.Event()
        self._restart = threading.Event()
        self._cond = threading.Condition()
        self._latest: DecodedFrame | None = None
        self._latest_seq = 0
        self._taken_seq = 0
        self._thread = threading.Thread(
            target=self._run, name=f"reader-{name}", daemon=True
        )
        self._wait = wait_exponential_jitter(
            multiplier=self.settings.backoff_initial_s,
            max=self.settings.backoff_max_s,
            jitter=self.settings.backoff_jitter_s,
        )
        self.frames_in = 0
        self.reconnects = 0
        self.connections = 0
        self.online = False
        self.last_error: str | None = None
        self.newest_ts_s = 0.0
        self._last_frame_monotonic = time.monotonic()
        self._clock_ts_s = 0.0
        self._index = 0
        self.resolution_wh: tuple[int, int] | None = None
        self.codec: str | None = None
        self.ended = False

    # -- control -------------------------------------------------------------

    def start(self) -> LiveReader:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout_s)

    def restart(self, reason: str) -> None:
        """Drop the connection and reconnect (the watchdog's hand)."""
        if not self._restart.is_set():
            logger.warning("source %s: restarting: %s", self.shown_uri, reason)
            self.last_error = reason
            self._restart.set()

    def seconds_since_frame(self) -> float:
        return time.monotonic() - self._last_frame_monotonic

    def take(self, timeout_s: float) -> TakenFrame | None:
        """The newest frame not yet taken, waiting up to ``timeout_s``."""
        with self._cond:
            if self._latest_seq == self._taken_seq:
                self._cond.wait(timeout_s)
            if self._latest_seq == self._taken_seq or self._latest is None:
                return None
            skipped = self._latest_seq - self._taken_seq - 1
            self._taken_seq = self._latest_seq
            return TakenFrame(self._latest, skipped, self.newest_ts_s)

    # -- the reader thread ----------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            delivered = self._connection()
            if self._stop.is_set():
                break
            failures = 0 if delivered else failures + 1
            self.reconnects += 1
            delay_s = self._wait(SimpleNamespace(attempt_number=max(failures, 1)))
            logger.warning(
                "source %s: reconnecting in %.1f s (%s)",
                self.shown_uri,
                delay_s,
                self.last_error,
            )
            self._stop.wait(delay_s)
        self._set_online(False, "stopped")

    def _connection(self) -> bool:
        """One connection, read until it fails; True when it delivered frames."""
        self._restart.clear()
        settings = self.settings
        opened_monotonic = time.monotonic()
        delivered = False
        try:
            source = VideoSource(
                self.uri,
                open_timeout_s=settings.open_timeout_s,
                read_timeout_s=settings.read_timeout_s,
                rtsp_transport=settings.rtsp_transport,
            )
        except SourceError as exc:
            self._set_online(False, str(exc))
            return False
        self.connections += 1
        self.resolution_wh = source.info.resolution_wh
        self.codec = source.info.codec
        # The stream clock continues across reconnects at wall-clock pace.
        offset_s = self._clock_ts_s
        if self.frames_in:
            offset_s += time.monotonic() - self._last_frame_monotonic
        pace = _Pace() if source.segmented else None
        try:
            with source:
                chunks = source.read(
                    started_at=datetime.now(UTC),
                    ts_offset_s=offset_s,
                    index_offset=self._index,
                )
                for chunk in chunks:
                    if chunk.packets:
                        self._on_packets(chunk.packets)
                    for decoded in chunk.frames:
                        delivered = True
                        if pace is not None:
                            self._stop.wait(pace.hold_s(decoded.ts_s))
                        self._publish(decoded)
                    self._check_watchdog(opened_monotonic, delivered)
                    if self._stop.is_set() or self._restart.is_set():
                        return delivered
            raise CameraUnavailable(f"video {self.shown_uri}: stream ended")
        except (SourceError, OSError) as exc:
            self._set_online(False, str(exc))
        return delivered

    def _check_watchdog(self, opened_monotonic: float, delivered: bool) -> None:
        since = opened_monotonic if not delivered else self._last_frame_monotonic
        silent_s = time.monotonic() - since
        if silent_s > self.settings.stall_timeout_s:
            raise CameraUnavailable(
                f"video {self.shown_uri}: no frame decoded for {silent_s:.0f} s"
            )

    def _publish(self, decoded: DecodedFrame) -> None:
        with self._cond:
            self._latest = decoded
            self._latest_seq += 1
            self.frames_in += 1
            self.newest_ts_s = decoded.ts_s
            self._clock_ts_s = decoded.ts_s
            self._index = decoded.index + 1
            self._last_frame_monotonic = time.monotonic()
            self._cond.notify_all()
        if not self.online:
            self._set_online(True, None)

    def _set_online(self, online: bool, reason: str | None) -> None:
        if not online:
            self.last_error = reason
        if online != self.online or not online:
            self.online = online
            self._on_state(online, reason)
