"""Video sources: files and streams decoded with PyAV.

Each frame's time comes from its presentation timestamp times the stream's
time base, never from a frame count over the nominal frame rate: variable
frame-rate recordings and streams that change rate keep true times, so dwell
timers and clip cut points stay right.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import av.error

from vision.errors import SourceError
from vision.types import Frame

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SourceInfo:
    uri: str
    codec: str
    resolution_wh: tuple[int, int]
    nominal_fps: float | None
    duration_s: float | None
    live: bool


def is_live(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


class VideoSource:
    """Decodes one video file or stream into ``Frame`` objects.

    Files are read to their end and every frame is delivered. Opening checks
    that the input exists and holds a decodable video stream, so a wrong path
    or a file that is not video fails before anything is analysed.
    """

    def __init__(self, uri: str, *, open_timeout_s: float = 10.0) -> None:
        self.uri = uri
        self.live = is_live(uri)
        if not self.live and not Path(uri).is_file():
            raise SourceError(f"video {uri}: no such file")

        options = {"rw_timeout": str(int(open_timeout_s * 1e6))} if self.live else {}
        try:
            self._container = av.open(uri, options=options, timeout=open_timeout_s)
        except (av.error.FFmpegError, UnicodeDecodeError) as exc:
            raise SourceError(f"video {uri}: cannot open: {_reason(exc)}") from None

        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"video {uri}: holds no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
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
        started_at = started_at or datetime.now(UTC)
        first_pts_s: float | None = None
        last_ts_s = -1.0
        index = 0
        try:
            for av_frame in self._container.decode(self._stream):
                pts_s = _frame_time_s(av_frame, index, self.info.nominal_fps)
                if first_pts_s is None:
                    first_pts_s = pts_s
                ts_s = pts_s - first_pts_s
                if ts_s <= last_ts_s:
                    # A repeated or out-of-order timestamp: keep time moving
                    # forward by a hair so dwell timers never run backwards.
                    ts_s = last_ts_s + 1e-3
                step_s = ts_s - last_ts_s if index else 0.0
                last_ts_s = ts_s
                # The last frame lasts as long as the one before it.
                self.read_duration_s = ts_s + step_s
                yield Frame(
                    image=av_frame.to_ndarray(format="bgr24"),
                    ts_s=ts_s,
                    index=index,
                    captured_at=started_at + timedelta(seconds=ts_s),
                    corrupt=bool(getattr(av_frame, "is_corrupt", False)),
                )
                index += 1
        except av.error.FFmpegError as exc:
            raise SourceError(
                f"video {self.uri}: unreadable after frame {index}: {_reason(exc)}"
            ) from None

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


def _reason(exc: BaseException) -> str:
    text = (getattr(exc, "strerror", None) or str(exc)).rstrip(".")
    if "Invalid data" in text:
        text += " (not a video file, or a truncated one)"
    return text
