"""Camera health in the worker: a covered lens or a view turned away files
one camera fault, through the normal sink, once per episode."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.config import CameraConfig
from vision.evidence.store import LocalDirStore
from vision.evidence.writer import EvidenceWriter
from vision.health import CameraHealth, HealthSettings, HealthState
from vision.ingest.sources import VideoSource
from vision.sink import MemorySink
from vision.types import Category, EvidenceState, Frame
from vision.worker import CameraWorker

STREET = "street_plaza_vtest_part1_f000-399.avi"
START = datetime(2026, 5, 1, 8, tzinfo=UTC)
SETTINGS = HealthSettings(
    reference_warmup_s=5.0, view_fault_s=5.0, view_clear_s=2.0, check_every_s=0.5
)


def _street(videos_dir: Path, seconds: float) -> list[np.ndarray]:
    with VideoSource(str(videos_dir / STREET)) as source:
        return [f.image for f in itertools.islice(source.frames(), int(seconds * 10))]


def _frames(images: list[np.ndarray]) -> Iterator[Frame]:
    for n, image in enumerate(images):
        yield Frame(image, n / 10, n, START + timedelta(seconds=n / 10))


def _run(images: list[np.ndarray], tmp_path: Path) -> tuple[MemorySink, CameraWorker]:
    camera = CameraConfig(camera_id="plaza", throw={"enabled": False})
    sink = MemorySink()
    health = CameraHealth("plaza", SETTINGS)
    worker = CameraWorker(
        camera,
        [],
        EvidenceWriter(LocalDirStore(tmp_path)),
        sink,
        session_key="test",
        health=health,
    )
    worker.run(_frames(images))
    return sink, worker


def test_covered_lens_files_one_camera_fault(videos_dir: Path, tmp_path: Path) -> None:
    street = _street(videos_dir, 15.0)
    black = [np.zeros_like(street[0])] * 150  # 15 s of a covered lens

    sink, worker = _run(street + black + street[:50], tmp_path)

    faults = [e for e in sink.events if e.category is Category.CAMERA_FAULT]
    assert [e.rule for e in faults] == ["view_covered"]
    assert faults[0].started_ts_s == pytest.approx(15.0, abs=0.6)
    assert faults[0].evidence_state is EvidenceState.STORED  # a clip of the black view
    assert worker.health is not None
    assert worker.health.summary().view_problems == []  # cleared again


def test_view_turned_away_files_one_camera_fault(
    videos_dir: Path, tmp_path: Path
) -> None:
    street = _street(videos_dir, 15.0)
    height, width = street[0].shape[:2]
    with VideoSource(str(videos_dir / "throw_facade_ball_720p30.mp4")) as source:
        other = [cv2.resize(f.image, (width, height)) for f in source.frames()]
    turned = list(itertools.islice(itertools.cycle(other), 150))

    sink, worker = _run(street + turned, tmp_path)

    faults = [e for e in sink.events if e.category is Category.CAMERA_FAULT]
    assert [e.rule for e in faults] == ["view_moved"]
    assert float(faults[0].details["view_similarity"]) < 0.5
    assert worker.health is not None
    assert worker.health.summary().view_problems[0].value == "moved"


def test_the_same_scene_files_no_fault(videos_dir: Path, tmp_path: Path) -> None:
    sink, worker = _run(_street(videos_dir, 40.0), tmp_path)

    assert sink.events == []
    assert worker.health is not None
    summary = worker.health.summary()
    assert summary.state is HealthState.ONLINE
    assert summary.view_similarity is not None and summary.view_similarity > 0.7


def test_frozen_image_is_a_view_problem() -> None:
    health = CameraHealth("plaza", SETTINGS)
    image = np.random.default_rng(1).integers(0, 255, (120, 160, 3), np.uint8)
    for n in range(200):
        health.observe_frame(Frame(image, n / 10, n, START))
    assert [e.rule for e in health.faults()] == ["view_frozen"]
    assert health.faults() == []  # once per episode
