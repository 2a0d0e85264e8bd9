"""The README's examples are what users copy first: they must load."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from vision.config import load_camera_file

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_camera_file_loads(tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    cameras = [b for b in blocks if "camera_id" in (yaml.safe_load(b) or {})]
    assert cameras, "the README shows no camera file"

    for number, block in enumerate(cameras):
        path = tmp_path / f"camera-{number}.yaml"
        path.write_text(block, encoding="utf-8")
        assert load_camera_file(path).camera_id
