"""Many cameras on one machine: a process per camera, restarted when it
crashes, all stopped cleanly; their figures reach one metrics endpoint."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from functools import partial
from pathlib import Path

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from eval.streams import RtspServer, encode_counter, wait_until
from tests.live.conftest import rtsp_ready, street_h264  # noqa: F401 # fixtures
from vision.evidence.store import LocalDirStore
from vision.health import HealthSettings
from vision.ingest.live import LiveSettings
from vision.metrics import CameraStatus, StatusBoard, health_summary, metrics_app
from vision.sink import FiledTicket
from vision.supervisor import SupervisorSettings, serve_cameras
from vision.types import Event


class JsonDirSink:
    """Files each event as a JSON file: a sink a worker process can build."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def file(self, event: Event) -> FiledTicket:
        path = self.directory / f"{event.event_id}.json"
        created = not path.exists()
        path.write_text(event.model_dump_json())
        return FiledTicket(ticket_id=event.event_id, created=created)


def _camera_file(directory: Path, camera_id: str, source: str, reference: Path) -> Path:
    path = directory / f"{camera_id}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "camera_id": camera_id,
                "source": source,
                "throw": {"enabled": False},
                "reference_view": str(reference),
            }
        )
    )
    return path


@pytest.mark.slow
def test_supervisor_runs_restarts_and_stops_every_camera(
    rtsp_ready,  # noqa: F811 # the imported fixture
    street_h264: Path,  # noqa: F811
    videos_dir: Path,
    tmp_path: Path,
) -> None:
    # The reference view is other footage: each camera reports its view lost.
    import av
    import cv2

    with av.open(str(videos_dir / "throw_facade_ball_720p30.mp4")) as clip:
        image = next(clip.decode(video=0)).to_ndarray(format="bgr24")
    reference = tmp_path / "reference.jpg"
    cv2.imwrite(str(reference), cv2.resize(image, (768, 576)))

    board = StatusBoard()
    stop = threading.Event()
    with RtspServer(street_h264) as server:
        files = [
            _camera_file(tmp_path, f"cam-{n}", server.url, reference) for n in range(2)
        ]
        settings = SupervisorSettings(
            spool_root=tmp_path / "spool",
            live=LiveSettings(open_timeout_s=3, read_timeout_s=3, backoff_max_s=2),
            health=HealthSettings(view_fault_s=2.0, check_every_s=0.5),
            restart_initial_s=0.5,
            stop_timeout_s=20,
        )
        thread = threading.Thread(
            target=serve_cameras,
            args=(
                files,
                partial(JsonDirSink, tmp_path / "tickets"),
                partial(LocalDirStore, tmp_path / "store"),
                settings,
            ),
            kwargs={"board": board, "stop": stop, "install_signal_handlers": False},
        )
        thread.start()
        try:
            assert wait_until(
                lambda: sum(s.frames_analysed > 20 for s in board.statuses()) == 2, 60
            )
            # A worker that crashes is restarted.
            victim = board.statuses()[0].pid
            assert victim is not None and victim != os.getpid()
            os.kill(victim, signal.SIGKILL)
            assert wait_until(
                lambda: (
                    board.statuses()[0].restarts == 1
                    and board.statuses()[0].pid not in (None, victim)
                    and board.statuses()[0].frames_analysed > 5
                ),
                30,
            )
        finally:
            stopped_at = time.monotonic()
            stop.set()
            thread.join(60)
        stop_s = time.monotonic() - stopped_at

    assert not thread.is_alive()
    assert stop_s < 20
    tickets = [json.loads(p.read_text()) for p in (tmp_path / "tickets").iterdir()]
    faults = sorted((t["camera_id"], t["rule"]) for t in tickets)
    # One fault per camera and episode; the restarted camera has a new episode.
    assert ("cam-1", "view_moved") in faults and ("cam-0", "view_moved") in faults
    assert all(t["category"] == "camera_fault" for t in tickets)
    summary = {s["camera_id"]: s for s in health_summary(board)}
    assert summary["cam-1"]["view_problems"] == ["moved"]
    # The worker processes' own figures reach the metrics endpoint (those of
    # the restarted cam-0 count from its restart).
    scraped = _scrape(board)
    for camera_id in ("cam-0", "cam-1"):
        assert scraped["citywatch_camera_frames_in_total", camera_id] > 5
        assert scraped["citywatch_camera_frames_analysed_total", camera_id] > 5
        assert scraped["citywatch_camera_faults_total", camera_id] >= 1
    assert scraped["citywatch_camera_restarts_total", "cam-0"] == 1


def _scrape(board: StatusBoard) -> dict[tuple[str, str], float]:
    """``/metrics`` of ``board``, parsed: (sample name, camera) -> value."""
    app = FastAPI()
    app.mount("/metrics", metrics_app(board))
    with TestClient(app) as client:
        text = client.get("/metrics/").text
    return {
        (sample.name, sample.labels["camera_id"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "state" not in sample.labels
    }


@pytest.mark.slow
def test_stopping_cuts_a_recording_short(tmp_path: Path) -> None:
    # Five minutes of footage take far longer to analyse than the stop may.
    recording = encode_counter(tmp_path / "long.mp4", seconds=300)
    camera_file = tmp_path / "recorded.yaml"
    camera_file.write_text(
        yaml.safe_dump({"camera_id": "recorded", "source": str(recording)})
    )
    stop = threading.Event()
    thread = threading.Thread(
        target=serve_cameras,
        args=(
            [camera_file],
            partial(JsonDirSink, tmp_path / "tickets"),
            partial(LocalDirStore, tmp_path / "store"),
            SupervisorSettings(spool_root=tmp_path / "spool", stop_timeout_s=60),
        ),
        kwargs={"stop": stop, "install_signal_handlers": False},
    )
    thread.start()
    time.sleep(8.0)  # the worker process starts and analyses for a while
    stopped_at = time.monotonic()
    stop.set()
    thread.join(90)

    assert not thread.is_alive()
    # Stopped where it was (about a second), not left to finish the footage
    # (a quarter of a minute more here) or be killed at the stop timeout.
    assert time.monotonic() - stopped_at < 6


def test_metrics_endpoint_shows_every_camera_and_the_spool() -> None:
    board = StatusBoard()
    board.publish(
        CameraStatus(
            "cam-a",
            state="online",
            frames_in=100,
            frames_analysed=60,
            frames_skipped=40,
            lag_s=0.3,
            spool_bytes=5 << 20,
            spool_pending=3,
            spool_pressure=0.25,
        )
    )
    board.publish(CameraStatus("cam-b", state="offline", reason="no frame for 20 s"))
    app = FastAPI()
    app.mount("/metrics", metrics_app(board))
    with TestClient(app) as client:
        text = client.get("/metrics/").text

    assert 'citywatch_camera_frames_skipped_total{camera_id="cam-a"} 40.0' in text
    assert 'citywatch_camera_lag_s{camera_id="cam-a"} 0.3' in text
    assert 'citywatch_camera_spool_pressure{camera_id="cam-a"} 0.25' in text
    assert 'citywatch_camera_state{camera_id="cam-b",state="offline"} 1.0' in text
    assert health_summary(board)[1]["reason"] == "no frame for 20 s"
