"""The evidence writer: playable clips, snapshots and a faithful record."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from vision.config import CameraConfig
from vision.evidence.store import LocalDirStore
from vision.evidence.writer import EvidenceWriter
from vision.ingest.ring import FrameRing
from vision.ingest.sources import VideoSource
from vision.types import (
    Category,
    Event,
    EvidenceKind,
    EvidenceState,
    Origin,
    TimedBox,
    TrajectoryPoint,
)


@pytest.fixture(scope="module")
def ball_ring(videos_dir: Path) -> FrameRing:
    ring = FrameRing(history_s=30.0)
    with VideoSource(str(videos_dir / "throw_facade_ball_720p30.mp4")) as source:
        for frame in source.frames(started_at=datetime(2026, 5, 1, tzinfo=UTC)):
            ring.push(frame)
    return ring


def _throw_event() -> Event:
    points = [(13, 612, 35), (35, 628, 74), (53, 664, 219), (65, 755, 650)]
    return Event(
        camera_id="facade-1",
        category=Category.THROW,
        rule="throw",
        started_ts_s=13 / 30,
        ended_ts_s=65 / 30,
        detected_ts_s=66 / 30,
        started_at=datetime(2026, 5, 1, tzinfo=UTC),
        bbox_xyxy=(658.0, 213.0, 670.0, 225.0),
        boxes=[TimedBox(ts_s=53 / 30, bbox_xyxy=(658.0, 213.0, 670.0, 225.0))],
        trajectory=[TrajectoryPoint(ts_s=n / 30, x=x, y=y) for n, x, y in points],
        origin=Origin(x=610, y=35, floor=30),
    )


def test_throw_evidence_is_playable_and_recorded(
    tmp_path: Path, ball_ring: FrameRing
) -> None:
    store = LocalDirStore(tmp_path)
    frames = ball_ring.between(-5.0, 10.0)
    camera = CameraConfig(camera_id="facade-1")

    event = EvidenceWriter(store).write(_throw_event(), frames, camera)

    kinds = {item.kind: item for item in event.evidence}
    assert set(kinds) == {
        EvidenceKind.CLIP,
        EvidenceKind.SNAPSHOT,
        EvidenceKind.TRAJECTORY,
        EvidenceKind.METADATA,
    }
    assert event.evidence_state is EvidenceState.STORED

    clip = kinds[EvidenceKind.CLIP]
    clip_path = tmp_path / clip.key
    assert clip.content_type == "video/mp4"
    assert hashlib.sha256(clip_path.read_bytes()).hexdigest() == clip.sha256
    with av.open(str(clip_path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        decoded = list(container.decode(stream))
    assert len(decoded) == 74  # the whole recording: it holds less than the rolls
    span_s = float(decoded[-1].pts * decoded[-1].time_base)
    assert span_s == pytest.approx(73 / 30, abs=0.01)

    snapshot = cv2.imread(str(tmp_path / kinds[EvidenceKind.SNAPSHOT].key))
    assert snapshot.shape == (720, 1280, 3)

    record = json.loads((tmp_path / kinds[EvidenceKind.METADATA].key).read_bytes())
    assert record["clip"]["event_offset_s"] == pytest.approx(13 / 30)
    assert record["trajectory"][0] == {
        "t_s": pytest.approx(0.433, abs=1e-3),
        "x": 612.0,
        "y": 35.0,
    }
    assert {o["kind"] for o in record["objects"]} == {"clip", "snapshot", "trajectory"}


def test_no_frames_gives_missing_evidence_not_silence(tmp_path: Path) -> None:
    event = EvidenceWriter(LocalDirStore(tmp_path)).write(
        _throw_event(), [], CameraConfig(camera_id="facade-1")
    )
    assert event.evidence_state is EvidenceState.MISSING
    assert event.evidence[0].reason == "no frames were held"


def test_odd_frame_sizes_are_trimmed_to_encode(tmp_path: Path) -> None:
    ring = FrameRing(history_s=5.0)
    from vision.types import Frame

    for n in range(10):
        image = np.full((101, 151, 3), n * 20, np.uint8)
        ring.push(Frame(image, n / 10, n, datetime.now(UTC)))
    event = _throw_event().model_copy(update={"trajectory": [], "started_ts_s": 0.2})

    result = EvidenceWriter(LocalDirStore(tmp_path)).write(
        event, ring.between(0, 1), CameraConfig(camera_id="facade-1")
    )
    clip = next(i for i in result.evidence if i.kind is EvidenceKind.CLIP)
    with av.open(str(tmp_path / clip.key)) as container:
        assert container.streams.video[0].codec_context.width == 150
