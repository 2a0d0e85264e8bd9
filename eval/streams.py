"""Footage as H.264 files and a real RTSP server serving them on loopback,
for the live-camera tests and the camera benchmark."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")


def gstreamer_available() -> bool:
    """Debian's python3 with GStreamer's RTSP server bindings is installed."""
    if shutil.which(SYSTEM_PYTHON) is None:
        return False
    probe = subprocess.run(
        [
            SYSTEM_PYTHON,
            "-c",
            "import gi; gi.require_version('GstRtspServer', '1.0'); "
            "from gi.repository import GstRtspServer",
        ],
        capture_output=True,
    )
    return probe.returncode == 0


def encode_h264(
    source: Path,
    target: Path,
    *,
    keyframe_interval_s: float = 2.0,
    max_frames: int | None = None,
    resolution_wh: tuple[int, int] | None = None,
) -> Path:
    """Re-encode ``source`` as H.264 (no B-frames) at its own frame rate."""
    with av.open(str(source)) as inp:
        stream_in = inp.streams.video[0]
        fps = Fraction(stream_in.average_rate or 25)
        width = resolution_wh[0] if resolution_wh else stream_in.codec_context.width
        height = resolution_wh[1] if resolution_wh else stream_in.codec_context.height
        with av.open(str(target), "w") as out:
            stream = out.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {
                "preset": "ultrafast",
                "bf": "0",
                "g": str(max(1, round(keyframe_interval_s * float(fps)))),
                "keyint_min": str(max(1, round(keyframe_interval_s * float(fps)))),
                "sc_threshold": "0",
            }
            for n, frame in enumerate(inp.decode(stream_in)):
                if max_frames is not None and n >= max_frames:
                    break
                image = frame.to_ndarray(format="bgr24")
                if resolution_wh:
                    image = cv2.resize(image, resolution_wh)
                out.mux(stream.encode(_frame(image, n)))
            out.mux(stream.encode(None))
    return target


def encode_counter(
    target: Path, *, seconds: float, fps: int = 25, size_wh=(320, 240)
) -> Path:
    """A synthetic H.264 stream with the frame number burned in."""
    with av.open(str(target), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = *size_wh, "yuv420p"
        stream.options = {"preset": "ultrafast", "bf": "0", "g": str(fps)}
        for n in range(int(seconds * fps)):
            image = np.full((size_wh[1], size_wh[0], 3), 90, np.uint8)
            cv2.rectangle(
                image,
                (n * 3 % size_wh[0], 40),
                (n * 3 % size_wh[0] + 30, 90),
                (255, 255, 255),
                -1,
            )
            cv2.putText(
                image, str(n), (20, 200), cv2.FONT_HERSHEY_SIMPLEX, 2, (0, 255, 255), 3
            )
            out.mux(stream.encode(_frame(image, n)))
        out.mux(stream.encode(None))
    return target


def _frame(image: np.ndarray, n: int) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(image, format="bgr24")
    frame.pts = n
    return frame


class RtspServer:
    """GStreamer's RTSP server in a subprocess; ``kill()`` and ``start()`` again."""

    def __init__(self, media: Path, port: int | None = None) -> None:
        self.media = media
        self.port = port or free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/stream"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> RtspServer:
        self._process = subprocess.Popen(
            [
                SYSTEM_PYTHON,
                str(SERVER_SCRIPT),
                "--port",
                str(self.port),
                "--file",
                str(self.media),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if line.strip() != b"ready":
            self.kill()
            raise RuntimeError(f"RTSP server did not start on port {self.port}")
        return self

    def kill(self) -> None:
        if self._process is None:
            return
        self._process.kill()
        self._process.wait(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._process = None

    def pause(self) -> None:
        """Freeze the server: connections stay open and nothing is sent."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


def wait_until(predicate, timeout_s: float, step_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())


def free_port() -> int:
    """A TCP port nobody listens on right now, on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
