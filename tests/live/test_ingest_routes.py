"""Pushed frames and clips over HTTP: limits from headers, streaming, no leftovers."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import httpx
import numpy as np
import psutil
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.routes.ingest import IngestLimits, ingest_router
from eval.streams import wait_until
from tests.s3server import free_port
from vision.config import CameraConfig
from vision.evidence.store import LocalDirStore
from vision.evidence.writer import EvidenceWriter
from vision.ingest.push import PushHub
from vision.sink import MemorySink
from vision.types import Frame
from vision.worker import CameraWorker

T0 = datetime(2026, 5, 1, 8, tzinfo=UTC)


class _Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def process(self, frame: Frame) -> list:
        self.frames.append(frame)
        return []

    def finish(self) -> list:
        return []


@pytest.fixture
def service(tmp_path: Path):
    recorder = _Recorder()
    clips: list[tuple[str, int]] = []
    camera = CameraConfig(camera_id="kiosk", throw={"enabled": False})

    def make_worker(camera_id: str) -> CameraWorker | None:
        if camera_id != "kiosk":
            return None
        return CameraWorker(
            camera,
            [recorder],
            EvidenceWriter(LocalDirStore(tmp_path / "ev")),
            MemorySink(),
            session_key="push",
        )

    hub = PushHub(
        make_worker, lambda cid, path: clips.append((cid, path.stat().st_size))
    )
    limits = IngestLimits(
        temp_dir=tmp_path / "uploads",
        max_frame_bytes=4 << 20,
        max_clip_bytes=8 << 20,
        min_free_bytes=0,
    )
    app = FastAPI()
    app.include_router(ingest_router(hub, limits))
    with TestClient(app) as client:
        yield client, recorder, clips, hub, limits
    hub.close()


def _jpeg(width: int, height: int) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    cv2.putText(
        image,
        "kiosk",
        (10, height // 2),
        cv2.FONT_HERSHEY_SIMPLEX,
        1,
        (255, 255, 255),
        2,
    )
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 60])
    assert ok
    return data.tobytes()


def _patched_sof(data: bytes, width: int, height: int) -> bytes:
    """The same JPEG with its frame header claiming another size."""
    pos = data.index(b"\xff\xc0")
    return data[: pos + 5] + struct.pack(">HH", height, width) + data[pos + 9 :]


def _post_frame(client, data: bytes, when: datetime, **headers):
    return client.post(
        "/api/cameras/kiosk/frames",
        content=data,
        headers={"X-Captured-At": when.isoformat(), **headers},
    )


def test_header_only_bomb_is_refused_before_decoding(service) -> None:
    client, recorder, *_ = service
    bomb = _patched_sof(_jpeg(64, 64), width=40000, height=30000)
    assert len(bomb) < 5000

    tracemalloc.start()
    response = _post_frame(client, bomb, T0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert response.status_code == 413
    assert "40000x30000" in response.json()["detail"]
    assert peak < 5e6  # no pixel buffer was allocated
    assert recorder.frames == []


def test_large_real_frame_is_accepted_and_downscaled(service) -> None:
    client, recorder, *_ = service
    response = _post_frame(client, _jpeg(8000, 6000), T0)
    assert response.status_code == 202, response.text
    assert recorder.frames[0].image.shape == (750, 1000, 3)  # decoded at 1/8


def test_rgba_png_frame_loses_its_alpha_not_the_request(service) -> None:
    client, recorder, *_ = service
    gradient = np.zeros((416, 339, 3), np.uint8)
    gradient[..., 0] = np.linspace(0, 255, 339, dtype=np.uint8)
    gradient[..., 1] = np.linspace(0, 255, 416, dtype=np.uint8)[:, None]
    gradient[..., 2] = 128
    alpha = np.tile(np.linspace(0, 255, 339).astype(np.uint8), (416, 1))
    rgba = cv2.imencode(".png", np.dstack([gradient, alpha]))[1].tobytes()
    rgb = cv2.imencode(".png", gradient)[1].tobytes()

    with_alpha = _post_frame(client, rgba, T0)
    without = _post_frame(client, rgb, T0 + timedelta(seconds=1))

    assert (with_alpha.status_code, without.status_code) == (202, 202), with_alpha.text
    first, second = (frame.image for frame in recorder.frames)
    assert first.shape == (416, 339, 3)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize(
    ("data", "status"),
    [(b"not a jpeg at all", 422), (b"\xff\xd8\xff\xe0" + b"\x00" * 10, 422)],
)
def test_not_a_jpeg_is_unprocessable(service, data: bytes, status: int) -> None:
    client, *_ = service
    assert _post_frame(client, data, T0).status_code == status


def test_duplicate_and_late_frames_are_dropped_and_counted(service) -> None:
    client, recorder, _, hub, _ = service
    frame = _jpeg(320, 240)
    outcomes = [
        _post_frame(client, frame, T0 + timedelta(seconds=s)).json()["outcome"]
        for s in (0, 1, 1, 0.5, 2)
    ]
    assert outcomes == ["accepted", "accepted", "duplicate", "out_of_order", "accepted"]
    assert [f.ts_s for f in recorder.frames] == [0.0, 1.0, 2.0]
    counts = hub.camera("kiosk").counts
    assert (counts.duplicates, counts.out_of_order) == (1, 1)


@pytest.mark.parametrize(
    ("query", "headers", "status"),
    [
        ("", {}, 422),  # no capture time
        ("?captured_at=2026-05-01T08:00:00", {}, 422),  # no zone
        ("?captured_at=0001-01-01T00:00:00Z", {}, 422),  # a clock never set
        ("", {"X-Captured-At": "2026-05-01T08:00:00"}, 422),
        ("?captured_at=2026-05-01T08:00:00Z", {}, 202),
    ],
)
def test_capture_time_is_required(service, query, headers, status) -> None:
    client, *_ = service
    response = client.post(
        f"/api/cameras/kiosk/frames{query}", content=_jpeg(64, 64), headers=headers
    )
    assert response.status_code == status


def test_unknown_camera_is_404(service) -> None:
    client, *_ = service
    response = client.post(
        "/api/cameras/nobody/frames?captured_at=2026-05-01T08:00Z",
        content=_jpeg(64, 64),
    )
    assert response.status_code == 404


def test_clip_limits_and_disk_room(service, tmp_path: Path) -> None:
    client, _, clips, hub, limits = service
    too_big = client.post("/api/cameras/kiosk/clips", content=b"\0" * (9 << 20))
    assert too_big.status_code == 413

    accepted = client.post("/api/cameras/kiosk/clips", content=b"\0" * (1 << 20))
    assert accepted.status_code == 202
    assert wait_until(lambda: clips == [("kiosk", 1 << 20)], 5)

    # A disk that cannot keep its reserve after the upload: 507, said plainly.
    full = IngestLimits(temp_dir=limits.temp_dir, min_free_bytes=1 << 60)
    app = FastAPI()
    app.include_router(ingest_router(hub, full))
    with TestClient(app) as other:
        response = other.post("/api/cameras/kiosk/clips", content=b"\0" * 1024)
    assert response.status_code == 507
    assert "disk space" in response.json()["detail"]
    assert wait_until(lambda: list(limits.directory.iterdir()) == [], 5)


def _body(total_bytes: int, chunk_bytes: int = 1 << 20):
    chunk = os.urandom(chunk_bytes)
    for _ in range(total_bytes // chunk_bytes):
        yield chunk


@contextmanager
def _ingest_service(
    uploads: Path, *, wrapper: Sequence[str] = (), **env: str
) -> Iterator[tuple[str, psutil.Process]]:
    """The push routes in a uvicorn process of their own: its URL for clips."""
    port = free_port()
    server = subprocess.Popen(
        [
            *wrapper,
            sys.executable,
            "-m",
            "uvicorn",
            "tests.live.ingest_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env={**os.environ, "INGEST_TEMP_DIR": str(uploads), **env},
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert wait_until(lambda: _answers(port), 30)
        url = f"http://127.0.0.1:{port}/api/cameras/cam-1/clips"
        yield url, psutil.Process(server.pid)
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.slow
def test_large_upload_streams_to_disk_with_flat_memory(tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    with _ingest_service(uploads, INGEST_MAX_CLIP_BYTES=str(256 << 20)) as (
        url,
        process,
    ):
        before = process.memory_info().rss
        peak = before

        # Over the limit: refused from Content-Length before the body is read.
        with httpx.Client(timeout=60) as client:
            refused = client.post(url, content=b"\0" * (300 << 20))
            assert refused.status_code == 413

            def watch():
                nonlocal peak
                peak = max(peak, process.memory_info().rss)

            response = client.post(
                url,
                content=_watched(_body(200 << 20), watch),
                headers={"Content-Length": str(200 << 20)},
            )
        assert response.status_code == 202, response.text
        assert response.json()["size_bytes"] == 200 << 20
        assert (peak - before) < 50e6
        assert wait_until(lambda: list(uploads.iterdir()) == [], 10)


def _small_filesystem_wrapper(directory: Path, size_mb: int) -> list[str]:
    """A command prefix that runs a program with a tmpfs of ``size_mb`` mounted
    on ``directory``, in a mount namespace of its own (no privileges needed
    where unprivileged user namespaces are allowed)."""
    mount = f'mount -t tmpfs -o size={size_mb}m tmpfs "$0" && exec "$@"'
    wrapper = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", mount]
    if shutil.which("unshare") is None:
        pytest.skip("cannot mount a small filesystem here: no unshare")
    probe = subprocess.run(
        [*wrapper, str(directory), "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {probe.stderr.strip()}")
    return [*wrapper, str(directory)]


@pytest.mark.slow
def test_full_upload_disk_answers_507_and_keeps_nothing(tmp_path: Path) -> None:
    # The upload directory is a 256 MB filesystem; the service's own size
    # limit (1 GiB here) is not what stops these uploads.
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    wrapper = _small_filesystem_wrapper(uploads, size_mb=256)
    limit = str(1 << 30)
    with _ingest_service(uploads, wrapper=wrapper, INGEST_MAX_CLIP_BYTES=limit) as (
        url,
        process,
    ):
        # Seen from inside the server's mount namespace: the small filesystem.
        mounted = Path(f"/proc/{process.pid}/root") / uploads.relative_to("/")
        assert shutil.disk_usage(mounted).total <= 256 << 20
        with httpx.Client(timeout=60) as client:
            # The declared length does not fit: refused before reading.
            declared = client.post(url, content=b"\0" * (300 << 20))
            # No length declared: the disk fills while the body streams in.
            streamed = client.post(url, content=_body(300 << 20))
            leftovers = list(mounted.iterdir())
            after = client.post(url, content=b"\0" * (1 << 20))

    for response in (declared, streamed):
        assert response.status_code == 507, response.text
        assert "not enough disk space" in response.json()["detail"]
    assert "upload directory is full" in streamed.json()["detail"]
    assert leftovers == []  # the partial upload was removed
    assert after.status_code == 202  # the service keeps taking clips


def _watched(chunks, watch):
    for n, chunk in enumerate(chunks):
        if n % 8 == 0:
            watch()
        yield chunk
    watch()


def _answers(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
        return True
    except httpx.HTTPError:
        time.sleep(0.1)
        return False
