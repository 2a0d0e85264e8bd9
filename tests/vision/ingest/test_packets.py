"""The encoded pre-roll: packets back to a keyframe, clips remuxed untouched."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import av
import pytest

from eval.streams import encode_h264
from tests.vision.ingest.support import write_vfr_h264
from vision.config import CameraConfig
from vision.evidence.clip import write_clip
from vision.evidence.store import LocalDirStore
from vision.evidence.writer import EvidenceWriter
from vision.ingest.packets import PacketRing
from vision.ingest.sources import VideoSource
from vision.types import Category, Event, EvidenceKind

STREET = "street_plaza_vtest_part1_f000-399.avi"


@pytest.fixture(scope="module")
def street_gop10(videos_dir: Path, tmp_path_factory) -> Path:
    """The street clip as H.264 with a keyframe only every 10 s."""
    target = tmp_path_factory.mktemp("h264") / "street_gop10.mp4"
    return encode_h264(videos_dir / STREET, target, keyframe_interval_s=10.0)


def _fill(uri: Path, history_s: float) -> tuple[PacketRing, list]:
    ring = PacketRing(history_s)
    frames = []
    with VideoSource(str(uri)) as source:
        for chunk in source.read(started_at=datetime(2026, 5, 1, tzinfo=UTC)):
            for packet in chunk.packets:
                ring.push(packet)
            frames.extend(chunk.frames)
    return ring, frames


def test_ring_keeps_packets_back_to_the_keyframe_before_its_history(
    street_gop10: Path,
) -> None:
    ring, frames = _fill(street_gop10, history_s=5.0)

    last_ts_s = frames[-1].ts_s  # 39.9 s; keyframes at 0, 10, 20, 30 s
    assert ring.oldest_ts_s == pytest.approx(30.0)
    assert ring.oldest_ts_s <= last_ts_s - 5.0
    assert len(ring) == pytest.approx(100, abs=1)


def test_clip_of_an_h264_source_is_remuxed_byte_for_byte_with_full_preroll(
    street_gop10: Path, tmp_path: Path
) -> None:
    ring, _ = _fill(street_gop10, history_s=30.0)
    # An event at 27 s with 5 s of pre-roll: the clip must start at the
    # keyframe at 20 s, 7 s before the event, never at 22 s.
    clip = ring.clip(27.0 - 5.0, 27.0 + 3.0)
    assert clip is not None
    assert clip[0].ts_s == pytest.approx(20.0)
    assert clip[-1].ts_s == pytest.approx(30.0)

    path = tmp_path / "clip.mp4"
    duration_s = write_clip(clip, path)

    with av.open(str(street_gop10)) as source:
        stream = source.streams.video[0]
        original = [bytes(p) for p in source.demux(stream) if p.size]
    with av.open(str(path)) as out:
        stream = out.streams.video[0]
        assert stream.codec_context.name == "h264"
        cut = [bytes(p) for p in out.demux(stream) if p.size]
        out.seek(0)
        decoded = list(out.decode(video=0))
    assert cut == original[200:301]  # the source's own packets, untouched
    assert len(decoded) == 101
    assert duration_s == pytest.approx(10.1, abs=0.01)


def test_mjpeg_source_clip_is_encoded_to_h264(videos_dir: Path, tmp_path: Path) -> None:
    ring, _ = _fill(videos_dir / STREET, history_s=30.0)
    clip = ring.clip(20.0, 24.0)
    assert clip is not None and clip.fmt.codec == "mjpeg"
    assert clip[0].ts_s == pytest.approx(20.0)  # every MJPEG frame is a keyframe

    path = tmp_path / "clip.mp4"
    write_clip(clip, path)
    with av.open(str(path)) as out:
        stream = out.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert len(list(out.decode(stream))) == 41


def test_evidence_from_held_packets_has_snapshot_and_offset(
    street_gop10: Path, tmp_path: Path
) -> None:
    ring, _ = _fill(street_gop10, history_s=30.0)
    event = Event(
        camera_id="plaza",
        category=Category.ILLEGAL_PARKING,
        rule="no-parking",
        started_ts_s=27.0,
        ended_ts_s=27.0,
        detected_ts_s=27.0,
        started_at=datetime(2026, 5, 1, tzinfo=UTC),
        bbox_xyxy=(600.0, 60.0, 700.0, 120.0),
    )
    store = LocalDirStore(tmp_path)
    written = EvidenceWriter(store).write(
        event, ring.clip(22.0, 30.0) or [], CameraConfig(camera_id="plaza")
    )
    kinds = {item.kind for item in written.evidence}
    assert kinds == {EvidenceKind.CLIP, EvidenceKind.SNAPSHOT, EvidenceKind.METADATA}
    assert written.clip_start_ts_s == pytest.approx(20.0)


def test_clip_of_variable_frame_rate_footage_is_cut_by_timestamps(
    tmp_path: Path,
) -> None:
    source = tmp_path / "vfr.mp4"
    # A keyframe every 10 frames and no B-frames: packets in time order.
    write_vfr_h264(source, "keyint=10:min-keyint=10:scenecut=0:bframes=0")
    ring, _ = _fill(source, history_s=30.0)

    # 0.7-2.0 s is frames 21-35 (not frames 21-60 as 30 fps would have it);
    # the clip reaches back to the keyframe of frame 20 at 0.667 s.
    clip = ring.clip(0.7, 2.0)
    assert clip is not None
    path = tmp_path / "clip.mp4"
    duration_s = write_clip(clip, path)

    with av.open(str(path)) as out:
        decoded = [
            (float(f.pts * f.time_base), int(f.to_ndarray(format="gray").mean()))
            for f in out.decode(video=0)
        ]
    frames = range(20, 36)
    source_ts_s = [n / 30 if n < 30 else 1 + (n - 30) / 5 for n in frames]
    assert [level for _, level in decoded] == pytest.approx(
        [4 * n for n in frames], abs=2
    )
    assert [ts_s for ts_s, _ in decoded] == pytest.approx(
        [ts_s - source_ts_s[0] for ts_s in source_ts_s], abs=0.002
    )
    assert duration_s == pytest.approx(2.0 - 20 / 30 + 0.2, abs=0.002)
