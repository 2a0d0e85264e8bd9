"""Video sources: true timestamps, clear refusals of bad files."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from tests.vision.ingest.support import write_vfr_h264
from vision.errors import SourceError
from vision.ingest.ring import FrameRing
from vision.ingest.sources import VideoSource, check_file_readable


def test_variable_frame_rate_times_come_from_timestamps(tmp_path: Path) -> None:
    clip = tmp_path / "vfr.mp4"
    write_vfr_h264(clip)

    with VideoSource(str(clip)) as source:
        frames = list(source.frames())
        duration_s = source.read_duration_s

    assert len(frames) == 60
    assert frames[45].ts_s == pytest.approx(4.0, abs=0.01)  # not 45/30 = 1.5
    assert frames[59].ts_s == pytest.approx(6.8, abs=0.01)
    assert duration_s == pytest.approx(7.0, abs=0.25)


def test_recorded_clip_times_follow_its_frame_rate(videos_dir: Path) -> None:
    with VideoSource(str(videos_dir / "street_plaza_vtest_part1_f000-399.avi")) as src:
        assert src.info.resolution_wh == (768, 576)
        times = [frame.ts_s for frame in src.frames()]

    assert len(times) == 400
    assert times[0] == 0.0
    assert times[399] == pytest.approx(39.9, abs=1e-6)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "absent.mp4", "no such file"),
        (lambda d: _text_file(d / "notes.mp4"), "not a video file"),
    ],
)
def test_bad_files_are_refused_with_the_reason(tmp_path, make, message) -> None:
    with pytest.raises(SourceError, match=message):
        VideoSource(str(make(tmp_path)))


def test_truncated_recording_is_refused_before_analysis(
    tmp_path: Path, videos_dir: Path
) -> None:
    data = (videos_dir / "throw_facade_ball_720p30.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])

    with pytest.raises(SourceError, match=r"cut\.mp4"):
        VideoSource(str(cut))  # the index sits at the end: unreadable at once


def test_truncated_recording_with_index_up_front_is_refused(
    tmp_path: Path, videos_dir: Path
) -> None:
    whole = tmp_path / "faststart.mp4"
    with (
        av.open(str(videos_dir / "throw_facade_ball_720p30.mp4")) as source,
        av.open(str(whole), "w", options={"movflags": "+faststart"}) as out,
    ):
        stream = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])

    check_file_readable(str(whole))
    with pytest.raises(SourceError, match="truncated"):
        check_file_readable(str(cut))


def test_ring_keeps_only_its_history(videos_dir: Path) -> None:
    ring = FrameRing(history_s=1.0)
    with VideoSource(str(videos_dir / "neg_swaying_tree_320x240.avi")) as source:
        for frame in source.frames():
            ring.push(frame)
            last_ts_s = frame.ts_s

    held = ring.between(0.0, last_ts_s)
    assert held[0].ts_s >= last_ts_s - 1.0
    assert len(held) == pytest.approx(15, abs=1)  # one second at 15 fps
    assert held[-1].decode().shape == (240, 320, 3)


def _text_file(path: Path) -> Path:
    path.write_text("this is not a video\n" * 50)
    return path
