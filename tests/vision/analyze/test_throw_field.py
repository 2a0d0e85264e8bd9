"""Field conditions: damaged streams and night-time insects near the lens."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from eval.synth_throw import load_background
from vision.analyze.throw import ThrowAnalyzer
from vision.config import CameraConfig
from vision.ingest.sources import VideoSource
from vision.types import Frame

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _run(analyzer: ThrowAnalyzer, frames: object) -> list:
    events = []
    for frame in frames:  # type: ignore[attr-defined]
        events += analyzer.process(frame)
    return events + analyzer.finish()


def _write_h264(path: Path, background: np.ndarray, frame_count: int) -> None:
    """A raw H.264 stream, keyframe every 50 frames, no B-frames."""
    rng = np.random.default_rng(0)
    height, width = background.shape[:2]
    with av.open(str(path), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": "50", "bf": "0", "preset": "ultrafast"}
        for i in range(frame_count):
            image = background.copy()
            # A pedestrian-sized block walking along the bottom.
            x = 100 + 4 * i
            cv2.rectangle(image, (x, 600), (x + 40, 700), (40, 60, 200), -1)
            noise = rng.integers(-3, 4, image.shape[:2], dtype=np.int16)[..., None]
            image = np.clip(image + noise, 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, "bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _damage(path: Path, fractions: tuple[float, ...], size_bytes: int) -> None:
    """Overwrite bytes with noise at given places; the headers stay intact."""
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(1)
    for fraction in fractions:
        offset = max(1024, int(len(data) * fraction))
        data[offset : offset + size_bytes] = rng.integers(
            0, 256, size_bytes, dtype=np.uint8
        ).tobytes()
    path.write_bytes(bytes(data))


@pytest.mark.slow
def test_damaged_h264_decodes_to_the_end_without_a_throw(
    shared_dir: Path, tmp_path: Path
) -> None:
    clip = tmp_path / "clip.h264"
    _write_h264(clip, load_background(shared_dir, (1280, 720)), frame_count=250)
    _damage(clip, (0.3, 0.6), 2048)

    analyzer = ThrowAnalyzer(CameraConfig(camera_id="damaged"))
    with VideoSource(str(clip)) as source:
        frames = list(source.frames(started_at=T0))
        events = _run(analyzer, frames)
    # Decoding carried on past both damaged places to the last frame.
    assert len(frames) >= 240
    assert events == []
    assert analyzer.frames_seen == len(frames)
    # The damaged frames were flagged and kept out of the analysis...
    corrupt = [f.index for f in frames if f.corrupt]
    assert corrupt and analyzer.frames_corrupt == len(corrupt)
    # ...and with the keyframe after the last damage (one every 50 frames),
    # decoding is whole again.
    assert max(corrupt) < 200 and not any(f.corrupt for f in frames[200:])


def _ir_night(frame_count: int, fps: float, ts_step_s: float | None = None):
    """IR-look frames: moths near the lens and a web swaying in a corner."""
    rng = np.random.default_rng(7)
    width, height = 640, 360
    moths = [
        [rng.uniform(0, width), rng.uniform(0, height / 2), rng.uniform(15, 40)]
        for _ in range(3)
    ]
    for index in range(frame_count):
        grey = np.full((height, width), 20, np.float32)
        for moth in moths:
            step = rng.uniform(30, 80)
            angle = rng.uniform(0, 2 * math.pi)
            moth[0] = float(np.clip(moth[0] + step * math.cos(angle), 0, width))
            moth[1] = float(np.clip(moth[1] + step * math.sin(angle), 0, height / 2))
            cv2.circle(grey, (round(moth[0]), round(moth[1])), round(moth[2]), 220, -1)
        grey = cv2.GaussianBlur(grey, (0, 0), 6)
        sway = 3 * math.sin(2 * math.pi * 2.0 * index / fps)
        for k in range(5):
            x0 = 540 + 18 * k + sway
            cv2.line(grey, (round(x0), 0), (round(x0 + 30 + sway), 80), 200, 1)
        grey += rng.normal(0, 2, grey.shape)
        image = np.clip(grey, 0, 255).astype(np.uint8)
        ts_s = index * (ts_step_s if ts_step_s else 1 / fps)
        yield Frame(
            image=cv2.merge([image, image, image]),
            ts_s=ts_s,
            index=index,
            captured_at=T0 + timedelta(seconds=ts_s),
        )


def test_moths_and_web_at_night_are_no_throw() -> None:
    analyzer = ThrowAnalyzer(CameraConfig(camera_id="night"))
    assert _run(analyzer, _ir_night(frame_count=150, fps=15.0)) == []
    assert analyzer.health_warnings() == []


def test_constant_motion_in_a_corner_warns_of_lens_obstruction() -> None:
    """The clock runs 20x fast: 10 min of stream time in 600 frames at 15 fps."""
    analyzer = ThrowAnalyzer(CameraConfig(camera_id="night"))
    frames = _ir_night(frame_count=640, fps=15.0, ts_step_s=20 / 15)
    for frame in frames:
        assert analyzer.process(frame) == []
        if frame.ts_s < 590:
            assert analyzer.health_warnings() == [], frame.ts_s
    warnings = analyzer.health_warnings()
    corners = [w for w in warnings if w.kind == "lens_obstruction"]
    assert corners, warnings
    x1, y1, _, _ = corners[0].region_xyxy
    assert x1 >= 320 and y1 == 0
    assert corners[0].duration_s >= 600
    assert analyzer.constant_motion_regions()
