"""Footage written by the ingest tests themselves."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_vfr_h264(path: Path, x264_params: str | None = None) -> None:
    """60 frames of grey level 4n: 0-29 at 1/30 s spacing, 30-59 at 1/5 s.

    A variable frame rate is where counting frames over the nominal rate goes
    wrong, so times must come from the container's timestamps.
    """
    time_base = Fraction(1, 1000)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if x264_params:
            stream.options = {"x264-params": x264_params}

        for n in range(60):
            image = np.full((120, 160, 3), n * 4, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = round((n / 30 if n < 30 else 1 + (n - 30) / 5) * 1000)
            frame.time_base = time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
