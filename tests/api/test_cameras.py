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
from vision.errors import ConfigError


def _camera_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "cameras"
    folder.mkdir()
    for camera_id in ("gate-push", "yard-push"):
        (folder / f"{camera_id}.yaml").write_text(
            yaml.safe_dump({"camera_id": camera_id, "area_path": "old-town/grid-1"})
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
