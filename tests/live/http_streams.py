"""Camera streams over HTTP on loopback: MJPEG (multipart) and live HLS.

``MjpegServer`` sends the frames of a recording as one endless
``multipart/x-mixed-replace`` response at the recording's frame rate, as IP
cameras do. ``HlsServer`` cuts an H.264 file into segments once (remuxed, not
re-encoded) and serves a live playlist that grows with wall-clock time: a
sliding window of the segments published so far and no end marker until the
last is out, so a client reads at the pace of the stream.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from http.server import (
    BaseHTTPRequestHandler,
    SimpleHTTPRequestHandler,
    ThreadingHTTPServer,
)
from pathlib import Path

import av
import cv2

BOUNDARY = b"frame"


class _Loopback:
    """A threaded HTTP server on a free loopback port, as a context manager."""

    path = "/"

    def __init__(self, handler) -> None:  # type: ignore[no-untyped-def]
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.path}"

    def __enter__(self):  # type: ignore[no-untyped-def]
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class MjpegServer(_Loopback):
    """Serves ``video`` as MJPEG over HTTP at its own frame rate, looping."""

    path = "/video.mjpg"

    def __init__(self, video: Path) -> None:
        self.jpegs, self.fps = _jpegs(video)
        super().__init__(_MjpegHandler)


class _MjpegHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        owner: MjpegServer = self.server.owner  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header(
            "Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}"
        )
        self.end_headers()
        started = time.monotonic()
        try:
            for n in range(10**9):
                data = owner.jpegs[n % len(owner.jpegs)]
                part = (
                    b"--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                    % (BOUNDARY, len(data))
                )
                self.wfile.write(part + data + b"\r\n")
                time.sleep(max(0.0, started + (n + 1) / owner.fps - time.monotonic()))
        except OSError:
            pass  # the client went away

    def log_message(self, format: str, *args: object) -> None:
        pass


def _jpegs(video: Path) -> tuple[list[bytes], float]:
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    jpegs = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        jpegs.append(cv2.imencode(".jpg", image)[1].tobytes())
    capture.release()
    return jpegs, fps


class HlsServer(_Loopback):
    """Serves an H.264 ``video`` as live HLS, segments published in real time."""

    path = "/live.m3u8"
    window = 5  # segments listed at once

    def __init__(self, video: Path, directory: Path, segment_s: float = 2.0) -> None:
        self.directory = directory
        self.durations_s = _segment(video, directory, segment_s)
        self.started = time.monotonic()
        handler = functools.partial(_HlsHandler, directory=str(directory))
        super().__init__(handler)

    def __enter__(self):  # type: ignore[no-untyped-def]
        self.started = time.monotonic()
        return super().__enter__()

    def playlist(self) -> bytes:
        """The segments out by now, as a live camera's encoder publishes them."""
        elapsed_s = time.monotonic() - self.started
        starts_s = [sum(self.durations_s[:n]) for n in range(len(self.durations_s))]
        out = sum(start <= elapsed_s for start in starts_s)
        first = max(0, out - self.window)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{math.ceil(max(self.durations_s))}",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
        ]
        for n in range(first, out):
            lines += [f"#EXTINF:{self.durations_s[n]:.3f},", f"seg{n}.ts"]
        if out == len(self.durations_s):
            lines.append("#EXT-X-ENDLIST")
        return ("\n".join(lines) + "\n").encode()


class _HlsHandler(SimpleHTTPRequestHandler):
    # Keep-alive, as HLS servers do: FFmpeg reuses the connection for the
    # next segment and skips a segment whose reused connection was closed.
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        owner: HlsServer = self.server.owner  # type: ignore[attr-defined]
        if self.path.split("?")[0] != owner.path:
            super().do_GET()  # a segment file
            return
        body = owner.playlist()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.apple.mpegurl")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _segment(video: Path, directory: Path, segment_s: float) -> list[float]:
    """Remux ``video`` into MPEG-TS segments; their durations in seconds."""
    directory.mkdir(parents=True, exist_ok=True)
    vod = directory / "vod.m3u8"
    options = {
        "hls_time": str(segment_s),
        "hls_list_size": "0",
        "hls_segment_filename": str(directory / "seg%d.ts"),
    }
    with (
        av.open(str(video)) as source,
        av.open(str(vod), "w", format="hls", options=options) as out,
    ):
        stream_in = source.streams.video[0]
        stream_out = out.add_stream_from_template(stream_in)
        for packet in source.demux(stream_in):
            if packet.dts is None:
                continue
            packet.stream = stream_out
            out.mux(packet)
    return [
        float(line.split(":", 1)[1].rstrip(","))
        for line in vod.read_text().splitlines()
        if line.startswith("#EXTINF:")
    ]
