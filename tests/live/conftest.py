"""Fixtures for live-source tests: H.264 footage and a loopback RTSP server."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval.streams import encode_h264, gstreamer_available

STREET = "street_plaza_vtest_part1_f000-399.avi"


@pytest.fixture(scope="session")
def rtsp_ready() -> None:
    if not gstreamer_available():
        pytest.fail(
            "GStreamer's RTSP server is not installed: run scripts/ci-packages.sh"
        )


@pytest.fixture(scope="session")
def street_h264(videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The street clip as H.264, a keyframe every 2 s: a file and a stream."""
    target = tmp_path_factory.mktemp("footage") / "street_gop2.mp4"
    return encode_h264(videos_dir / STREET, target, keyframe_interval_s=2.0)


@pytest.fixture(scope="session")
def street_h264_gop10(
    videos_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    target = tmp_path_factory.mktemp("footage") / "street_gop10.mp4"
    return encode_h264(videos_dir / STREET, target, keyframe_interval_s=10.0)
