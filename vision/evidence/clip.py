"""Event clips: browser-playable MP4 files.

A clip cut from an H.264 or H.265 source's own packets (a ``HeldClip``) is
remuxed into MP4 as it is: no re-encoding, no loss, the camera's bytes. Any
other source (MJPEG cameras and recordings, frames pushed as JPEGs) is
encoded: OpenCV's pip wheels cannot encode H.264, so clips are written with
PyAV's libx264 in yuv420p. Both have the index at the front (``+faststart``),
which every browser plays inline. Each frame keeps its own timestamp, so a
clip of a variable-rate source plays at true speed.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vision.ingest.packets import HeldClip
from vision.ingest.ring import BufferedFrame

CLIP_CONTENT_TYPE = "video/mp4"
_TIME_BASE = Fraction(1, 1000)


def write_clip(
    frames: Sequence[BufferedFrame] | HeldClip,
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
    if isinstance(frames, HeldClip) and frames.fmt.remuxable:
        return remux_clip(frames, path)

    images = _decoded(frames)
    _, first = next(images)
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
        for buffered, image in _chain_first(frames[0], first, images):
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


def remux_clip(clip: HeldClip, path: Path) -> float:
    """Write ``clip``'s packets to an MP4 unchanged; return its duration.

    Times are shifted so the clip's first frame is at zero.
    """
    first = clip.packets[0]
    origin = first.pts if first.pts is not None else 0
    template = av.open(io.BytesIO(clip.fmt.template))
    try:
        with av.open(str(path), mode="w", options={"movflags": "+faststart"}) as out:
            stream = out.add_stream_from_template(template.streams.video[0])
            stream.time_base = clip.fmt.time_base
            for held in clip.packets:
                packet = held.to_av()
                packet.pts = None if held.pts is None else held.pts - origin
                packet.dts = None if packet.dts is None else packet.dts - origin
                packet.stream = stream
                out.mux(packet)
    finally:
        template.close()
    step_s = clip[-1].ts_s - clip[-2].ts_s if len(clip) > 1 else 0.04
    return clip[-1].ts_s - clip[0].ts_s + step_s


def _decoded(frames: Sequence[BufferedFrame] | HeldClip):
    if isinstance(frames, HeldClip):
        yield from frames.iter_images()  # decodes each packet once
        return
    for buffered in frames:
        yield buffered, buffered.decode()


def _chain_first(head, image: np.ndarray, rest):
    yield head, image
    yield from rest


def _even(n: int) -> int:
    # yuv420p halves chroma in both directions: sizes must be even.
    return n - (n % 2)


def _nominal_fps(frames: Sequence[BufferedFrame]) -> int:
    if len(frames) < 2:
        return 25
    span_s = frames[-1].ts_s - frames[0].ts_s
    return max(1, round((len(frames) - 1) / span_s)) if span_s > 0 else 25
