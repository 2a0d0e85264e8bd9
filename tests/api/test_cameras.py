"""Cameras beside the API: pushed frames reach the camera's worker, only
with the camera's own key; health and metrics are served."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from api.cameras import CameraFleet, camera_files_in
from api.main import create_app
from api.settings import Settings
from eval.streams import wait_until
from vision.errors import ConfigError


def _camera_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "cameras"
    folder.mkdir()
    for camera_id, grid in (("gate-push", "grid-1"), ("yard-push", "grid-2")):
        (folder / f"{camera_id}.yaml").write_text(
            yaml.safe_dump({"camera_id": camera_id, "area_path": f"old-town/{grid}"})
        )
    return folder


def test_pushed_frames_need_the_cameras_own_key(
    tmp_path: Path,
    settings: Settings,
    session_factory,
    store,
    camera_headers,
    shared_dir: Path,
) -> None:
    fleet = CameraFleet(settings, camera_files_in(_camera_folder(tmp_path)))
    app = create_app(
        settings, store=store, session_factory=session_factory, cameras=fleet
    )
    frame = (shared_dir / "data/images/bus.jpg").read_bytes()
    gate = camera_headers("gate-push")

    with TestClient(app) as client:
        url = "/api/cameras/gate-push/frames?captured_at=2026-12-03T10:00:00Z"
        accepted = client.post(url, content=frame, headers=gate)
        again = client.post(url, content=frame, headers=gate)
        other = client.post(
            "/api/cameras/yard-push/frames", content=frame, headers=gate
        )
        anonymous = client.post(url, content=frame)
        health = client.get("/api/health/cameras", headers=gate)
        metrics = client.get("/metrics/")

    assert accepted.status_code == 202
    assert again.json()["outcome"] == "duplicate"
    assert other.status_code == 403
    assert anonymous.status_code == 401
    assert health.status_code == 200
    assert metrics.status_code == 200


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "absent", "not a directory"),
        (lambda d: d, "holds no camera files"),
    ],
)
def test_a_bad_camera_folder_is_refused_at_start(tmp_path: Path, make, message) -> None:
    with pytest.raises(ConfigError, match=message):
        camera_files_in(make(tmp_path))


def test_camera_health_shows_only_the_cameras_of_the_callers_areas(
    tmp_path: Path,
    settings: Settings,
    session_factory,
    store,
    camera_headers,
    user_headers,
) -> None:
    fleet = CameraFleet(settings, camera_files_in(_camera_folder(tmp_path)))
    for camera_id in fleet.cameras:
        fleet.board.mark_offline(camera_id, "not started in this test")
    app = create_app(
        settings, store=store, session_factory=session_factory, cameras=fleet
    )
    callers = {
        "office": user_headers("olga", [("read_only", "old-town")]),
        "grid-1": user_headers("gil", [("dispatcher", "old-town/grid-1")]),
        "elsewhere": user_headers("nia", [("reviewer", "new-town")]),
        "gate camera": camera_headers("gate-push"),
    }

    with TestClient(app) as client:
        seen = {
            who: [
                s["camera_id"]
                for s in client.get("/api/health/cameras", headers=headers).json()
            ]
            for who, headers in callers.items()
        }
        pushed = client.post(
            "/api/cameras/gate-push/frames", content=b"x", headers=callers["grid-1"]
        )

    assert seen == {
        "office": ["gate-push", "yard-push"],
        "grid-1": ["gate-push"],
        "elsewhere": [],
        "gate camera": ["gate-push"],
    }
    assert pushed.status_code == 403  # only the camera's own key pushes


@pytest.mark.slow
def test_a_pushed_recording_is_analysed_into_a_ticket(
    tmp_path: Path,
    settings: Settings,
    session_factory,
    store,
    camera_headers,
    user_headers,
    videos_dir: Path,
) -> None:
    folder = tmp_path / "cameras"
    folder.mkdir()
    (folder / "facade-push.yaml").write_text(
        yaml.safe_dump({"camera_id": "facade-push", "area_path": "old-town/grid-1"})
    )
    fleet = CameraFleet(settings, camera_files_in(folder))
    app = create_app(
        settings, store=store, session_factory=session_factory, cameras=fleet
    )
    recording = (videos_dir / "throw_facade_ball_720p30.mp4").read_bytes()
    reviewer = user_headers("rita", [("reviewer", "old-town")])

    with TestClient(app) as client:
        pushed = client.post(
            "/api/cameras/facade-push/clips",
            content=recording,
            headers=camera_headers("facade-push"),
        )

        def filed() -> list[dict]:
            return client.get("/api/tickets", headers=reviewer).json()["items"]

        # Analysed in the background, like any recording.
        assert wait_until(lambda: filed(), 120, step_s=1.0)
        tickets = filed()

    assert pushed.status_code == 202
    assert pushed.json()["size_bytes"] == len(recording)
    assert [(t["camera_id"], t["category"]) for t in tickets] == [
        ("facade-push", "throw")
    ]
    assert tickets[0]["evidence_state"] == "stored"
    assert list((tmp_path / "uploads").iterdir()) == []  # the upload is gone
