"""The pre-roll as the camera sent it: encoded packets of the last seconds.

Evidence must show the seconds before an event, so a camera worker keeps the
source's own compressed packets for ``history_s`` seconds of stream time, back
to the keyframe before that point whatever the keyframe interval: a clip can
only start at a keyframe. An H.264/H.265 clip is then cut by remuxing these
packets, byte for byte, with no re-encoding; other codecs (MJPEG) are decoded
from the packets and encoded once when a clip is cut.

A connection's codec parameters are a ``StreamFormat``. A reconnect starts a
new segment of the ring, because timestamps and parameters may change; a clip
never spans two segments.
"""

from __future__ import annotations

import io
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction

import av
import numpy as np

from vision.errors import FrameError

# Codecs an MP4 carries as they are: their clips are remuxed, not re-encoded.
REMUXABLE_CODECS = frozenset({"h264", "hevc"})


@dataclass(frozen=True, eq=False)
class StreamFormat:
    """Codec parameters of one connection, enough to decode or remux packets.

    ``template`` is a tiny Matroska file holding the stream's parameters
    (with its extradata: SPS/PPS for H.264); PyAV can only copy parameters
    from an open stream, and this outlives the connection it came from.
    """

    codec: str
    resolution_wh: tuple[int, int]
    time_base: Fraction
    extradata: bytes | None
    template: bytes

    @classmethod
    def from_stream(cls, stream: av.video.stream.VideoStream) -> StreamFormat:
        buffer = io.BytesIO()
        with av.open(buffer, "w", format="matroska") as out:
            copy = out.add_stream_from_template(stream)
            # The header is only written with the first packet.
            placeholder = av.Packet(b"\x00")
            placeholder.pts = placeholder.dts = 0
            placeholder.time_base = stream.time_base
            placeholder.stream = copy
            out.mux(placeholder)
        context = stream.codec_context
        return cls(
            codec=context.name,
            resolution_wh=(context.width, context.height),
            time_base=Fraction(stream.time_base),
            extradata=bytes(context.extradata) if context.extradata else None,
            template=buffer.getvalue(),
        )

    @property
    def remuxable(self) -> bool:
        return self.codec in REMUXABLE_CODECS

    def decoder(self) -> av.CodecContext:
        context = av.CodecContext.create(self.codec, "r")
        if self.extradata:
            context.extradata = self.extradata
        return context


@dataclass(frozen=True, slots=True)
class HeldPacket:
    """One encoded packet with its times on the worker's stream clock."""

    data: bytes
    pts: int | None
    dts: int | None
    duration: int
    keyframe: bool
    ts_s: float  # presentation time, stream seconds
    captured_at: datetime
    fmt: StreamFormat

    def to_av(self) -> av.Packet:
        packet = av.Packet(self.data)
        packet.pts = self.pts
        packet.dts = self.dts if self.dts is not None else self.pts
        packet.duration = self.duration
        packet.time_base = self.fmt.time_base
        packet.is_keyframe = self.keyframe
        return packet


@dataclass(frozen=True, slots=True)
class HeldFrame:
    """A frame of a held clip; ``decode()`` decodes it from the packets."""

    ts_s: float
    index: int
    captured_at: datetime
    clip: HeldClip = field(repr=False)
    packet_index: int = 0

    def decode(self) -> np.ndarray:
        return self.clip.decode_frame(self)


class HeldClip(Sequence[HeldFrame]):
    """The packets of one clip, in decode order, and its frames in time order.

    The clip starts at a keyframe at or before the requested start, so it
    holds at least the requested pre-roll.
    """

    def __init__(self, packets: list[HeldPacket]) -> None:
        if not packets or not packets[0].keyframe:
            raise ValueError("a held clip starts with a keyframe packet")
        self.packets = packets
        self.fmt = packets[0].fmt
        order = sorted(range(len(packets)), key=lambda n: packets[n].ts_s)
        self._frames = [
            HeldFrame(
                packets[n].ts_s, index, packets[n].captured_at, self, packet_index=n
            )
            for index, n in enumerate(order)
        ]

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, index):  # type: ignore[override] # list-like access
        return self._frames[index]

    @property
    def size_bytes(self) -> int:
        return sum(len(p.data) for p in self.packets)

    def decode_frame(self, frame: HeldFrame) -> np.ndarray:
        """Decode from the keyframe before ``frame`` up to it."""
        start = max(
            n for n in range(frame.packet_index + 1) if self.packets[n].keyframe
        )
        target_pts = self.packets[frame.packet_index].pts
        for pts, image in self._decode(self.packets[start:]):
            if pts == target_pts:
                return image
        raise FrameError(f"held frame at {frame.ts_s:.3f} s cannot be decoded")

    def iter_images(self) -> Iterator[tuple[HeldFrame, np.ndarray]]:
        """Every frame with its image, in time order, decoding each once."""
        by_pts = {self.packets[f.packet_index].pts: f for f in self._frames}
        for pts, image in self._decode(self.packets):
            held = by_pts.get(pts)
            if held is not None:
                yield held, image

    def _decode(
        self, packets: Sequence[HeldPacket]
    ) -> Iterator[tuple[int, np.ndarray]]:
        decoder = self.fmt.decoder()
        try:
            for held in packets:
                for av_frame in decoder.decode(held.to_av()):
                    yield av_frame.pts, av_frame.to_ndarray(format="bgr24")
            for av_frame in decoder.decode(None):
                yield av_frame.pts, av_frame.to_ndarray(format="bgr24")
        except av.error.FFmpegError as exc:
            raise FrameError(f"held packets cannot be decoded: {exc}") from None


class PacketRing:
    """Packets of the last ``history_s`` seconds, back to a keyframe.

    Thread-safe: a live source's reader pushes while the worker cuts clips.
    """

    def __init__(self, history_s: float) -> None:
        if history_s <= 0:
            raise ValueError(f"history_s must be positive, got {history_s}")
        self.history_s = history_s
        self._segments: deque[deque[HeldPacket]] = deque()
        self._lock = threading.Lock()
        self._bytes = 0

    def push(self, packet: HeldPacket) -> None:
        with self._lock:
            if not self._segments or self._segments[-1][0].fmt is not packet.fmt:
                if not packet.keyframe:
                    return  # nothing decodes before a connection's first keyframe
                self._segments.append(deque())
            self._segments[-1].append(packet)
            self._bytes += len(packet.data)
            self._drop_older_than(packet.ts_s - self.history_s)

    def _drop_older_than(self, ts_s: float) -> None:
        # Whole old segments go once their last packet is out of the history.
        while len(self._segments) > 1 and self._segments[0][-1].ts_s < ts_s:
            self._bytes -= sum(len(p.data) for p in self._segments.popleft())
        # A leading group of pictures goes once the next one starts in time.
        segment = self._segments[0]
        while True:
            following = _next_keyframe(segment)
            if following is None or segment[following].ts_s > ts_s:
                return
            for _ in range(following):
                self._bytes -= len(segment.popleft().data)

    def clip(self, start_ts_s: float, end_ts_s: float) -> HeldClip | None:
        """Packets from the keyframe at or before ``start_ts_s`` to ``end_ts_s``.

        The latest segment that holds frames in the span is used. ``None``
        when nothing in the span is held.
        """
        with self._lock:
            for segment in reversed(self._segments):
                packets = _span(list(segment), start_ts_s, end_ts_s)
                if packets:
                    return HeldClip(packets)
        return None

    @property
    def oldest_ts_s(self) -> float | None:
        with self._lock:
            return self._segments[0][0].ts_s if self._segments else None

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._segments)


def _next_keyframe(segment: deque[HeldPacket]) -> int | None:
    for n in range(1, len(segment)):
        if segment[n].keyframe:
            return n
    return None


def _span(
    packets: list[HeldPacket], start_ts_s: float, end_ts_s: float
) -> list[HeldPacket]:
    if not packets or packets[0].ts_s > end_ts_s:
        return []
    first = 0
    for n, packet in enumerate(packets):
        if packet.ts_s > start_ts_s:
            break
        if packet.keyframe:
            first = n
    last = first
    for n in range(first, len(packets)):
        if packets[n].ts_s <= end_ts_s:
            last = n
    if packets[last].ts_s < start_ts_s:
        return []
    return packets[first : last + 1]
