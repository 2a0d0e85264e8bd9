"""Real-time policy: live streams analyse the newest frame, recordings every frame."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from eval.streams import RtspServer, encode_counter
from tests.live.test_rtsp_worker import FAST
from vision.config import CameraConfig
from vision.evidence.store import LocalDirStore
from vision.evidence.writer import EvidenceWriter
from vision.ingest.live import SourcePolicy
from vision.pipeline import run_live, run_source
from vision.sink import MemorySink
from vision.types import Event, Frame


class _SlowAnalyzer:
    """Takes ``delay_s`` per frame: analysis at a fraction of the stream's rate."""

    name = "slow"

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.seen: list[float] = []
        self.mismatched = 0  # frames whose picture is not of their stream time

    def process(self, frame: Frame) -> list[Event]:
        self.seen.append(frame.ts_s)
        if not _shows_frame(frame.image, round(frame.ts_s * 25)):
            self.mismatched += 1
        time.sleep(self.delay_s)
        return []

    def finish(self) -> list[Event]:
        return []


def _shows_frame(image: np.ndarray, n: int) -> bool:
    """Does the picture carry frame ``n``'s burned-in marker? ``encode_counter``
    draws a white box at x = 3n mod 320, so a picture tells its own time."""
    expected_x = n * 3 % 320
    if expected_x > 280:
        return True  # the box wraps at the edge: nothing to compare
    white = np.flatnonzero(image[65].min(axis=1) > 200)
    return white.size > 0 and abs(int(white[0]) - expected_x) <= 3


def test_policy_is_explicit_per_source_type() -> None:
    assert SourcePolicy.for_uri("rtsp://cam/stream") is SourcePolicy.NEWEST_FRAME
    assert SourcePolicy.for_uri("https://cam/live.m3u8") is SourcePolicy.NEWEST_FRAME
    assert SourcePolicy.for_uri("/data/clip.mp4") is SourcePolicy.EVERY_FRAME


@pytest.mark.slow
@pytest.mark.parametrize(
    ("delay_s", "run_s", "max_lag_s", "skipped_share"),
    [
        # Half the stream's rate, for a minute after settling.
        (2 / 25, 65.0, 1.0, 0.3),
        # A detector taking 200 ms a frame (5 of 25 frames a second), for two
        # minutes: the gap stays under 2 s and does not grow.
        (0.2, 125.0, 2.0, 0.6),
    ],
    ids=["half-rate", "200ms-analysis"],
)
def test_lag_stays_bounded_when_analysis_is_slower_than_the_stream(
    rtsp_ready,
    tmp_path: Path,
    delay_s: float,
    run_s: float,
    max_lag_s: float,
    skipped_share: float,
    report_figure,
) -> None:
    media = encode_counter(tmp_path / "counter.mp4", seconds=run_s + 15, fps=25)
    camera = CameraConfig(camera_id="counter", throw={"enabled": False})
    analyzer = _SlowAnalyzer(delay_s=delay_s)
    stop = threading.Event()
    samples: list[tuple[float, float, int]] = []  # (wall s, lag s, rss bytes)
    process = psutil.Process()
    started = time.monotonic()

    def on_status(worker, reader) -> None:
        samples.append(
            (time.monotonic() - started, worker.stats.lag_s, process.memory_info().rss)
        )
        if time.monotonic() - started > run_s:
            stop.set()

    with RtspServer(media) as server:
        run = run_live(
            server.url,
            camera,
            analyzers=[analyzer],
            writer=EvidenceWriter(LocalDirStore(tmp_path / "ev")),
            sink=MemorySink(),
            stop=stop,
            live_settings=FAST,
            on_status=on_status,
        )

    settled = [s for s in samples if s[0] > 5]
    lags = [lag for _, lag, _ in settled]
    assert max(lags) < max_lag_s  # stream seconds; about one analysis behind
    first, last = settled[: len(settled) // 3], settled[-len(settled) // 3 :]
    assert max(lag for _, lag, _ in last) <= max(lag for _, lag, _ in first) + 0.2
    assert (last[-1][2] - first[0][2]) < 50e6  # memory stays flat
    stats = run.stats
    report_figure(
        f"live lag, analysis at {delay_s * 1000:.0f} ms a frame of a 25 fps "
        f"stream for {run_s:.0f} s: max {max(lags):.2f} s (first third "
        f"{max(lag for _, lag, _ in first):.2f} s, last third "
        f"{max(lag for _, lag, _ in last):.2f} s), {stats.frames_skipped} of "
        f"{stats.frames_in + stats.frames_skipped} frames skipped"
    )
    assert stats.frames_skipped > skipped_share * stats.frames_in
    # The lag is of the pictures themselves: each analysed frame shows the
    # marker burned in for its stream time.
    assert analyzer.mismatched <= 0.02 * len(analyzer.seen)
    # Analysis kept pace with the stream: the last analysed frame is recent.
    assert analyzer.seen[-1] > run_s - 5.0


def test_recordings_analyse_every_frame(rtsp_ready, tmp_path: Path) -> None:
    media = encode_counter(tmp_path / "counter.mp4", seconds=8, fps=25)
    analyzer = _SlowAnalyzer(delay_s=0.0)
    run = run_source(
        str(media),
        CameraConfig(camera_id="counter", throw={"enabled": False}),
        analyzers=[analyzer],
        writer=EvidenceWriter(LocalDirStore(tmp_path / "ev")),
        sink=MemorySink(),
    )
    assert run.stats.frames_in == 200
    assert run.stats.frames_skipped == 0
    assert len(analyzer.seen) == 200


@pytest.mark.slow
def test_stream_files_the_same_tickets_as_the_file(
    rtsp_ready, street_h264: Path, tmp_path: Path, models_mirror: Path
) -> None:
    from models.catalog import resolve_model
    from vision.detect.detector import Detector
    from vision.pipeline import build_analyzers

    camera = CameraConfig.model_validate(
        {
            "camera_id": "plaza-north",
            "model": "yolo11n-coco",
            "throw": {"enabled": False},
            "zones": [
                {
                    "name": "no-parking",
                    "polygon_xy": [[600, 75], [768, 55], [768, 104], [625, 122]],
                }
            ],
            "rules": [
                {
                    "name": "no-parking",
                    "kind": "dwell",
                    "category": "illegal_parking",
                    "zone": "no-parking",
                    "classes": ["car", "truck", "bus", "motorcycle"],
                    "dwell_s": 10,
                }
            ],
        }
    )
    spec = resolve_model(
        "yolo11n-coco", model_dir=tmp_path / "models", mirror_dir=models_mirror
    )
    detector = Detector.from_file(
        spec.path, class_names=spec.class_names, input_size_px=spec.input_size_px
    )

    def tickets(run_events) -> list[tuple[str, float]]:
        return sorted((e.category.value, round(e.started_ts_s)) for e in run_events)

    file_sink = MemorySink()
    run_source(
        str(street_h264),
        camera,
        analyzers=build_analyzers(camera, lambda _: detector),
        writer=EvidenceWriter(LocalDirStore(tmp_path / "file")),
        sink=file_sink,
    )

    stream_sink = MemorySink()
    stop = threading.Event()

    def on_status(worker, reader) -> None:
        if reader.reconnects:  # the stream reached its end
            stop.set()

    live = FAST.__class__(**{**FAST.__dict__, "backoff_initial_s": 3.0})
    with RtspServer(street_h264) as server:
        run_live(
            server.url,
            camera,
            analyzers=build_analyzers(camera, lambda _: detector),
            writer=EvidenceWriter(LocalDirStore(tmp_path / "stream")),
            sink=stream_sink,
            stop=stop,
            live_settings=live,
            on_status=on_status,
        )

    assert len(file_sink.events) == 2
    file_tickets, stream_tickets = (
        tickets(file_sink.events),
        tickets(stream_sink.events),
    )
    assert [c for c, _ in stream_tickets] == [c for c, _ in file_tickets]
    for (_, a), (_, b) in zip(file_tickets, stream_tickets, strict=True):
        assert abs(a - b) <= 1
