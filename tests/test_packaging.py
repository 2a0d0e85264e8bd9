"""The service installs and runs on a headless server without the train extra,
and an environment never holds two OpenCV builds."""

from __future__ import annotations

import importlib.metadata
import itertools
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import av
import cv2
import yaml

from tests.test_main_job import PARKING_ZONE, REPO_ROOT, tickets_in

TRAIN_ONLY = {"torch", "torchvision", "ultralytics", "onnx"}
OPENCV_BUILDS = {
    "opencv-python",
    "opencv-python-headless",
    "opencv-contrib-python",
    "opencv-contrib-python-headless",
}


def _names(requirements: list[str]) -> set[str]:
    return {
        re.match(r"[A-Za-z0-9._-]+", r).group(0).lower()  # type: ignore[union-attr]
        for r in requirements
    }


def test_service_dependencies_leave_out_torch_and_desktop_opencv() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    runtime = _names(project["dependencies"])

    assert not runtime & TRAIN_ONLY
    assert runtime & OPENCV_BUILDS == {"opencv-python-headless"}
    assert {"torch", "ultralytics"} <= _names(project["optional-dependencies"]["train"])


def test_environment_holds_one_headless_opencv_build() -> None:
    installed = {
        (d.metadata["Name"] or "").lower() for d in importlib.metadata.distributions()
    }

    # ultralytics pulls the desktop build, whose cv2 overwrites the headless one.
    assert installed & OPENCV_BUILDS == {"opencv-python-headless"}
    assert re.search(r"GUI:\s+NONE", cv2.getBuildInformation())


def _short_street_clip(videos_dir: Path, path: Path, frames: int) -> Path:
    with (
        av.open(str(videos_dir / "street_plaza_vtest_part1_f000-399.avi")) as source,
        av.open(str(path), "w") as out,
    ):
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 768, 576, "yuv420p"
        for frame in itertools.islice(source.decode(video=0), frames):
            out.mux(stream.encode(frame.reformat(format="yuv420p")))
        out.mux(stream.encode(None))
    return path


def test_main_job_runs_without_the_train_extra(
    tmp_path: Path, videos_dir: Path, models_mirror: Path
) -> None:
    """Detector, tracker, dwell rule and evidence, with torch, ultralytics and
    onnx unimportable: what a server with only the service installed has."""
    video = _short_street_clip(videos_dir, tmp_path / "street.mp4", frames=70)
    camera = tmp_path / "plaza.yaml"
    rule = {
        "name": "no-parking",
        "category": "illegal_parking",
        "zone": "paved",
        "classes": ["car", "truck"],
        "dwell_s": 5,
    }
    zone = {"name": "paved", "polygon_xy": PARKING_ZONE}
    identity = {"camera_id": "plaza", "model": "yolo11n-coco"}
    camera.write_text(yaml.safe_dump({**identity, "zones": [zone], "rules": [rule]}))
    blocked = "".join(f"sys.modules[{name!r}] = None; " for name in sorted(TRAIN_ONLY))
    code = (
        f"import sys; {blocked}from citywatch_cli import main; "
        f"sys.argv = ['citywatch', 'watch', {str(video)!r}, "
        f"'--camera', {str(camera)!r}]; main()"
    )

    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("CITYWATCH_")},
            "CITYWATCH_DATA_DIR": str(tmp_path / "var"),
            "CITYWATCH_MODEL_MIRROR_DIR": str(models_mirror),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stderr
    tickets = tickets_in(tmp_path / "var")
    assert sorted(t["class_name"] for t in tickets) == ["car", "truck"]
