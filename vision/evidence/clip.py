"""Event clips: browser-playable H.264 MP4 files.

OpenCV's pip wheels cannot encode H.264, so clips are written with PyAV's
libx264 in yuv420p with the index at the front (``+faststart``), which every
browser plays inline. Each frame keeps its own timestamp, so a clip of a
variable-rate source plays at true speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vision.ingest.ring import BufferedFrame

CLIP_CONTENT_TYPE = "video/mp4"
_TIME_BASE = Fraction(1, 1000)


def write_clip(
    frames: Sequence[BufferedFrame],
    path: Path,
    *,
    crf: int = 23,
    preset: str = "veryfast",
) -> float:
    """Encode ``frames`` to ``path``; return the clip's duration in seconds.

    Frame times are kept relative to the first frame, in milliseconds.
    """
    if not frames:
        raise ValueError("a clip needs at least one frame")

    first = frames[0].decode()
    height, width = _even(first.shape[0]), _even(first.shape[1])
    start_ts_s = frames[0].ts_s
    nominal_fps = _nominal_fps(frames)

    with av.open(str(path), mode="w", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=nominal_fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = _TIME_BASE
        stream.codec_context.time_base = _TIME_BASE
        stream.options = {"crf": str(crf), "preset": preset}

        last_pts = -1
        for buffered, image in _decoded(frames, first):
            pts = round((buffered.ts_s - start_ts_s) * 1000)
            pts = max(pts, last_pts + 1)  # strictly increasing for the muxer
            last_pts = pts
            video_frame = av.VideoFrame.from_ndarray(
                image[:height, :width], format="bgr24"
            )
            video_frame.pts = pts
            video_frame.time_base = _TIME_BASE
            out.mux(stream.encode(video_frame))
        out.mux(stream.encode(None))

    return frames[-1].ts_s - start_ts_s + 1.0 / nominal_fps


def _decoded(frames: Sequence[BufferedFrame], first: np.ndarray):
    yield frames[0], first
    for buffered in frames[1:]:
        yield buffered, buffered.decode()


def _even(n: int) -> int:
    # yuv420p halves chroma in both directions: sizes must be even.
    return n - (n % 2)


def _nominal_fps(frames: Sequence[BufferedFrame]) -> int:
    if len(frames) < 2:
        return 25
    span_s = frames[-1].ts_s - frames[0].ts_s
    return max(1, round((len(frames) - 1) / span_s)) if span_s > 0 else 25
