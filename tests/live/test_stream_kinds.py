"""Every kind of live source a camera offers reaches analysis and evidence:
RTSP over TCP and over UDP, HLS and MJPEG over HTTP, each from a real server
on loopback serving the street footage."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import av
import pytest

from eval.streams import RtspServer, wait_until
from tests.live.http_streams import HlsServer, MjpegServer
from tests.live.test_rtsp_worker import FAST, _EventAt, _running
from vision.config import CameraConfig
from vision.health import HealthState
from vision.types import EvidenceKind

STREET = "street_plaza_vtest_part1_f000-399.avi"


@contextmanager
def _serving(kind: str, h264: Path, videos_dir: Path, tmp: Path) -> Iterator[str]:
    if kind.startswith("rtsp"):
        with RtspServer(h264) as server:
            yield server.url
    elif kind == "hls":
        with HlsServer(h264, tmp / "hls") as server:
            yield server.url
    else:
        with MjpegServer(videos_dir / STREET) as server:
            yield server.url


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "codec"),
    [
        ("rtsp-tcp", "h264"),
        ("rtsp-udp", "h264"),
        ("hls", "h264"),
        ("mjpeg", "mjpeg"),
    ],
)
def test_each_kind_of_stream_is_analysed_and_kept_as_a_clip(
    rtsp_ready,
    street_h264: Path,
    videos_dir: Path,
    tmp_path: Path,
    kind: str,
    codec: str,
) -> None:
    camera = CameraConfig(
        camera_id="plaza",
        throw={"enabled": False},
        clip={"preroll_s": 3.0, "postroll_s": 1.0},
    )
    live = replace(FAST, rtsp_transport="udp" if kind == "rtsp-udp" else "tcp")
    with _serving(kind, street_h264, videos_dir, tmp_path) as uri:
        with _running(
            uri, tmp_path, analyzers=[_EventAt(5.0)], camera=camera, live=live
        ) as box:
            assert wait_until(lambda: box["sink"].events, 40), kind
            reader, stats = box["reader"], box["worker"].stats

    assert reader.codec == codec
    assert reader.reconnects == 0  # one connection served it all
    assert HealthState.ONLINE in box["states"].seen
    # Every frame up to the event's post-roll arrived (10 fps). Analysis is
    # idle, so frames are skipped only when this machine is busy, never
    # because a source hands over seconds of video at once (HLS segments).
    assert reader.frames_in >= 55
    assert stats.frames_in + stats.frames_skipped <= reader.frames_in
    assert stats.frames_skipped < 0.4 * reader.frames_in
    # Stream time runs at the camera's pace (10 fps), also for MJPEG, whose
    # demuxer numbers frames at 25 fps whatever arrives.
    assert reader.newest_ts_s == pytest.approx(reader.frames_in / 10, rel=0.1)
    (event,) = box["sink"].events
    preroll_s = event.started_ts_s - (event.clip_start_ts_s or event.started_ts_s)
    assert preroll_s >= 3.0 - 0.1  # one frame's spacing
    clip_item = next(i for i in event.evidence if i.kind is EvidenceKind.CLIP)
    with av.open(str(tmp_path / "evidence" / clip_item.key)) as clip:
        assert clip.streams.video[0].codec_context.name == "h264"
        frames = list(clip.decode(video=0))
    assert len(frames) >= 40  # pre-roll and post-roll at 10 fps
