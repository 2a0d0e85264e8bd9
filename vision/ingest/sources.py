"""Video sources: files and streams decoded with PyAV.

Each frame's time comes from its presentation timestamp times the stream's
time base, never from a frame count over the nominal frame rate: variable
frame-rate recordings and streams that change rate keep true times, so dwell
timers and clip cut points stay right.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import av.error
import numpy as np

from vision.errors import SourceError
from vision.ingest.packets import HeldPacket, StreamFormat
from vision.types import Frame

logger = logging.getLogger(__name__)

# Demuxers with no clock of their own: they number frames at a nominal 25 fps
# whatever the camera sends, so a live stream of them is timed by arrival.
_UNTIMED_FORMATS = frozenset({"mpjpeg", "mjpeg", "jpeg_pipe"})
_ARRIVALS_KEPT = 64  # packets a frame may take to come out of the decoder
# Demuxers that hand over seconds of video at once (whole segments).
_SEGMENTED_FORMATS = frozenset({"hls", "dash"})


@dataclass(frozen=True, slots=True)
class SourceInfo:
    uri: str
    codec: str
    resolution_wh: tuple[int, int]
    nominal_fps: float | None
    duration_s: float | None
    live: bool


@dataclass(slots=True)
class DecodedFrame:
    """A decoded frame not yet converted to BGR: a live source converts only
    the frames that are analysed."""

    av_frame: av.VideoFrame
    ts_s: float
    index: int
    captured_at: datetime
    corrupt: bool

    def to_frame(self) -> Frame:
        luma, studio_range = _luma_plane(self.av_frame)
        return Frame(
            image=self.av_frame.to_ndarray(format="bgr24"),
            ts_s=self.ts_s,
            index=self.index,
            captured_at=self.captured_at,
            corrupt=self.corrupt,
            luma=luma,
            luma_studio_range=studio_range,
        )


# 8-bit pixel formats whose first plane is the luma (Y) of the picture.
_LUMA_FIRST_FORMATS = frozenset(
    {
        "yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p",
        "yuv411p", "yuvj411p", "yuv440p", "yuvj440p", "nv12", "nv21", "gray",
    }
)  # fmt: skip
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG


def _luma_plane(av_frame: av.VideoFrame) -> tuple[np.ndarray | None, bool]:
    """A copy of the frame's luma plane and whether it is studio range.

    Copied, because the decoder may hand the frame's buffers on once the
    frame is released. None for formats without an 8-bit luma plane.
    """
    name = av_frame.format.name
    if name not in _LUMA_FIRST_FORMATS:
        return None, False
    plane = av_frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    luma = rows[:, : av_frame.width].copy()
    full = name.startswith("yuvj") or name == "gray"
    full = full or getattr(av_frame, "color_range", 0) == _FULL_RANGE
    return luma, not full


@dataclass(slots=True)
class SourceChunk:
    packets: list[HeldPacket]
    frames: list[DecodedFrame]


class _StreamClock:
    """One connection's times: origin at its first frame, plus an offset."""

    def __init__(
        self,
        started_at: datetime,
        offset_s: float,
        index: int,
        *,
        by_arrival: bool = False,
    ) -> None:
        self.started_at = started_at
        self.offset_s = offset_s
        self.origin_s: float | None = None
        self.index = index
        self._first_index = index
        self.last_ts_s = offset_s - 1.0
        self.read_duration_s = 0.0
        # pts -> arrival (monotonic s) of each packet, for untimed streams
        self._arrivals: dict[int, float] | None = {} if by_arrival else None

    def arrived(self, av_packet: av.Packet) -> None:
        """Note when a packet of an untimed stream arrived: that is its time."""
        if self._arrivals is None or av_packet.pts is None:
            return
        self._arrivals[av_packet.pts] = time.monotonic()
        self._arrivals.pop(av_packet.pts - _ARRIVALS_KEPT, None)

    def _arrival_s(self, pts: int | None) -> float | None:
        if self._arrivals is None or pts is None:
            return None
        return self._arrivals.get(pts)

    def frame(self, av_frame: av.VideoFrame, fps: float | None) -> DecodedFrame:
        pts_s = self._arrival_s(av_frame.pts)
        if pts_s is None:
            pts_s = _frame_time_s(av_frame, self.index - self._first_index, fps)
        if self.origin_s is None:
            self.origin_s = pts_s
        ts_s = pts_s - self.origin_s + self.offset_s
        if ts_s <= self.last_ts_s:
            # A repeated or out-of-order timestamp: keep time moving
            # forward by a hair so dwell timers never run backwards.
            ts_s = self.last_ts_s + 1e-3
        first = self.index == self._first_index
        step_s = 0.0 if first else ts_s - self.last_ts_s
        self.last_ts_s = ts_s
        # The last frame lasts as long as the one before it.
        self.read_duration_s = ts_s - self.offset_s + step_s
        decoded = DecodedFrame(
            av_frame,
            ts_s,
            self.index,
            self.started_at + timedelta(seconds=ts_s),
            bool(getattr(av_frame, "is_corrupt", False)),
        )
        self.index += 1
        return decoded

    def hold(self, av_packet: av.Packet, fmt: StreamFormat) -> HeldPacket:
        assert self.origin_s is not None
        stamp = av_packet.pts if av_packet.pts is not None else av_packet.dts
        pts_s = self._arrival_s(av_packet.pts)
        if pts_s is None and stamp is not None:
            pts_s = float(stamp * av_packet.time_base)
        ts_s = (
            pts_s - self.origin_s + self.offset_s
            if pts_s is not None
            else self.last_ts_s
        )
        return HeldPacket(
            data=bytes(av_packet),
            pts=av_packet.pts if av_packet.pts is not None else av_packet.dts,
            dts=av_packet.dts,
            duration=av_packet.duration or 0,
            keyframe=av_packet.is_keyframe,
            ts_s=ts_s,
            captured_at=self.started_at + timedelta(seconds=ts_s),
            fmt=fmt,
        )


def is_live(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")


def redact_uri(uri: str) -> str:
    """The URI without ``user:password@``: camera URLs never reach a log."""
    return _CREDENTIALS.sub(r"\g<scheme>***@", uri)


def stream_options(
    uri: str, read_timeout_s: float, rtsp_transport: str
) -> dict[str, str]:
    """FFmpeg options that bound every wait on a stream, by protocol."""
    timeout_us = str(int(read_timeout_s * 1e6))
    scheme = uri.split("://", 1)[0].lower()
    if scheme in ("rtsp", "rtsps"):
        if rtsp_transport not in ("tcp", "udp"):
            raise ValueError(
                f"rtsp_transport must be 'tcp' or 'udp', got {rtsp_transport!r}"
            )
        # 'timeout' is the RTSP socket I/O timeout in FFmpeg 5 and later.
        return {"rtsp_transport": rtsp_transport, "timeout": timeout_us}
    options = {"rw_timeout": timeout_us}
    if scheme in ("http", "https"):
        options["reconnect"] = "0"  # reconnecting is the worker's job
    return options


class VideoSource:
    """Decodes one video file or stream into ``Frame`` objects.

    Files are read to their end and every frame is delivered. Opening checks
    that the input exists and holds a decodable video stream, so a wrong path
    or a file that is not video fails before anything is analysed.
    """

    def __init__(
        self,
        uri: str,
        *,
        open_timeout_s: float = 10.0,
        read_timeout_s: float | None = None,
        rtsp_transport: str = "tcp",
    ) -> None:
        self.uri = uri
        self.live = is_live(uri)
        shown = redact_uri(uri)
        if not self.live and not Path(uri).is_file():
            problem = "not a regular file" if Path(uri).exists() else "no such file"
            raise SourceError(f"video {shown}: {problem}")

        read_timeout_s = read_timeout_s or open_timeout_s
        self._read_timeout_s = read_timeout_s
        options = (
            stream_options(uri, read_timeout_s, rtsp_transport) if self.live else {}
        )
        # PyAV's (open, read) timeouts interrupt any blocking call, whatever
        # the protocol; the options above add the protocol's own socket ones.
        timeout = (open_timeout_s, read_timeout_s) if self.live else open_timeout_s
        try:
            self._container = av.open(uri, options=options, timeout=timeout)
        except (av.error.FFmpegError, UnicodeDecodeError) as exc:
            reason = _reason(exc, open_timeout_s)
            raise SourceError(f"video {shown}: cannot open: {reason}") from None
        except OSError as exc:  # PyAV raises plain OS errors for some protocols
            raise SourceError(f"video {shown}: cannot open: {exc}") from None

        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"video {shown}: holds no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        formats = set(self._container.format.name.split(","))
        self.timed_by_arrival = self.live and bool(formats & _UNTIMED_FORMATS)
        self.segmented = self.live and bool(formats & _SEGMENTED_FORMATS)
        self.info = self._describe()
        self.read_duration_s = 0.0

    def _describe(self) -> SourceInfo:
        stream = self._stream
        rate = stream.average_rate or stream.guessed_rate
        duration_s = None
        if stream.duration is not None and stream.time_base is not None:
            duration_s = float(stream.duration * stream.time_base)
        elif self._container.duration is not None:
            duration_s = self._container.duration / av.time_base
        return SourceInfo(
            uri=self.uri,
            codec=stream.codec_context.name,
            resolution_wh=(stream.codec_context.width, stream.codec_context.height),
            nominal_fps=float(rate) if rate else None,
            duration_s=duration_s,
            live=self.live,
        )

    def frames(self, started_at: datetime | None = None) -> Iterator[Frame]:
        """Yield frames in presentation order until the source ends.

        ``started_at`` is the wall-clock time of stream time zero; it defaults
        to now. Raises ``SourceError`` when the data turns out not to decode.
        ``read_duration_s`` grows with the frames read: the true duration once
        a recording has been read to its end, whatever its header claims.
        """
        for chunk in self.read(started_at=started_at):
            for decoded in chunk.frames:
                yield decoded.to_frame()

    def read(
        self,
        started_at: datetime | None = None,
        *,
        ts_offset_s: float = 0.0,
        index_offset: int = 0,
    ) -> Iterator[SourceChunk]:
        """Yield each demuxed packet with the frames it decoded to.

        Packets and frames share one clock: stream seconds since the first
        frame, plus ``ts_offset_s`` (a live source's reconnects continue the
        clock of the connection before). Packets read before the first frame
        decodes are held back until the clock's origin is known.
        """
        clock = _StreamClock(
            started_at or datetime.now(UTC),
            ts_offset_s,
            index_offset,
            by_arrival=self.timed_by_arrival,
        )
        fmt: StreamFormat | None = None
        early: list[av.Packet] = []
        try:
            for av_packet in self._container.demux(self._stream):
                if av_packet.size == 0 and av_packet.dts is None:
                    frames = self._decode(None, clock)  # flush at the end
                    yield SourceChunk([], frames)
                    continue
                if fmt is None:
                    fmt = StreamFormat.from_stream(self._stream)
                clock.arrived(av_packet)
                frames = self._decode(av_packet, clock)
                early.append(av_packet)
                if clock.origin_s is None:
                    yield SourceChunk([], [])  # control back to a watchdog
                    continue
                packets = [clock.hold(p, fmt) for p in early]
                early.clear()
                yield SourceChunk(packets, frames)
        except av.error.FFmpegError as exc:
            raise SourceError(
                f"video {redact_uri(self.uri)}: unreadable after frame "
                f"{clock.index}: "
                f"{_reason(exc, self._read_timeout_s)}"
            ) from None

    def _decode(
        self, av_packet: av.Packet | None, clock: _StreamClock
    ) -> list[DecodedFrame]:
        frames = []
        for av_frame in self._stream.decode(av_packet):
            if av_frame.time_base is None:  # frames flushed at the end have none
                av_frame.time_base = self._stream.time_base
            decoded = clock.frame(av_frame, self.info.nominal_fps)
            self.read_duration_s = clock.read_duration_s
            frames.append(decoded)
        return frames

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def check_file_readable(path: str) -> None:
    """Demux a whole file (no decoding) to find truncation or garbage early.

    A recording cut short fails here, before any event is filed from its
    first half, so a bad file leaves nothing half-written behind.
    """
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise SourceError(f"video {path}: holds no video stream")
            stream = container.streams.video[0]
            indexed = stream.frames  # from the container's index; 0 if unknown
            packets = sum(1 for packet in container.demux(stream) if packet.size)
    except av.error.FFmpegError as exc:
        raise SourceError(f"video {path}: {_reason(exc)}") from None

    if packets == 0:
        raise SourceError(f"video {path}: holds no video frames")
    if indexed and packets < indexed:
        raise SourceError(
            f"video {path}: truncated: its index lists {indexed} frames but "
            f"only {packets} are present"
        )


def _frame_time_s(av_frame: av.VideoFrame, index: int, fps: float | None) -> float:
    if av_frame.pts is not None and av_frame.time_base is not None:
        return float(av_frame.pts * av_frame.time_base)
    if av_frame.time is not None:
        return float(av_frame.time)
    # No timestamp at all (raw elementary streams): the nominal rate is the
    # only clock left.
    return index / (fps or 25.0)


def _reason(exc: BaseException, timeout_s: float | None = None) -> str:
    if isinstance(exc, av.error.ExitError) and timeout_s is not None:
        # PyAV's interrupt callback: the open or read timeout ran out.
        return f"no data for {timeout_s:g} s"
    text = (getattr(exc, "strerror", None) or str(exc)).rstrip(".")
    if "Invalid data" in text:
        text += " (not a video file, or a truncated one)"
    return text
