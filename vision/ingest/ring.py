"""The pre-roll ring buffer: the last seconds of a camera, kept compressed.

Evidence must show the seconds before an event (who threw, how the car
arrived), so every frame is kept for ``history_s`` seconds of stream time.
Sources that deliver encoded video keep their own packets instead
(``packets.PacketRing``) and their clips are remuxed; this ring serves the
rest, such as cameras that push single JPEG frames. Frames are held
JPEG-encoded, a tenth of their raw size, and decoded again only when a clip
is cut.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime

import cv2
import numpy as np

from vision.errors import FrameError
from vision.types import Frame


@dataclass(frozen=True, slots=True)
class BufferedFrame:
    ts_s: float
    index: int
    captured_at: datetime
    jpeg: bytes

    def decode(self) -> np.ndarray:
        image = cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise FrameError(f"buffered frame {self.index} cannot be decoded")
        return image


class FrameRing:
    """Frames of the last ``history_s`` seconds, oldest first."""

    def __init__(self, history_s: float, *, jpeg_quality: int = 90) -> None:
        if history_s <= 0:
            raise ValueError(f"history_s must be positive, got {history_s}")
        self.history_s = history_s
        self._params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
        self._frames: deque[BufferedFrame] = deque()
        self._bytes = 0

    def push(self, frame: Frame) -> None:
        ok, encoded = cv2.imencode(".jpg", frame.image, self._params)
        if not ok:
            raise FrameError(f"frame {frame.index} cannot be JPEG-encoded")
        jpeg = encoded.tobytes()
        self._frames.append(
            BufferedFrame(frame.ts_s, frame.index, frame.captured_at, jpeg)
        )
        self._bytes += len(jpeg)
        self._drop_older_than(frame.ts_s - self.history_s)

    def _drop_older_than(self, ts_s: float) -> None:
        while self._frames and self._frames[0].ts_s < ts_s:
            self._bytes -= len(self._frames.popleft().jpeg)

    def between(self, start_ts_s: float, end_ts_s: float) -> list[BufferedFrame]:
        """Frames with ``start_ts_s <= ts_s <= end_ts_s`` that are still held."""
        return [f for f in self._frames if start_ts_s <= f.ts_s <= end_ts_s]

    @property
    def oldest_ts_s(self) -> float | None:
        return self._frames[0].ts_s if self._frames else None

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._frames)
