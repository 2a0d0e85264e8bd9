"""Builders for the eval tests: tiny labelled sets and a detector with fixed boxes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
import supervision as sv

Box = tuple[float, float, float, float]


@dataclass
class FixedDetector:
    """Returns, for each image (by its pixel content key), preset boxes.

    Each image carries its key as the value of its top-left pixel, so the
    detector needs no file names: a real image goes in, as in the service.
    """

    names: list[str]
    boxes_by_key: dict[int, list[tuple[Box, float, int]]] = field(default_factory=dict)
    path: Path | None = None

    def detect(
        self,
        image_bgr: np.ndarray,
        *,
        min_score: float = 0.25,
        nms_iou: float = 0.45,
        max_det: int = 300,
    ) -> sv.Detections:
        rows = [
            row
            for row in self.boxes_by_key.get(int(image_bgr[0, 0, 0]), [])
            if row[1] > min_score
        ][:max_det]
        if not rows:
            return sv.Detections.empty()
        return sv.Detections(
            xyxy=np.array([r[0] for r in rows], dtype=np.float32),
            confidence=np.array([r[1] for r in rows], dtype=np.float32),
            class_id=np.array([r[2] for r in rows], dtype=int),
            data={"class_name": np.array([self.names[r[2]] for r in rows])},
        )


def write_image(path: Path, key: int, size_wh: tuple[int, int] = (200, 100)) -> Path:
    """A grey PNG whose top-left pixel holds ``key``."""
    image = np.full((size_wh[1], size_wh[0], 3), 128, dtype=np.uint8)
    image[0, 0] = key
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)
    return path


def write_yolo_set(
    root: Path,
    names: list[str],
    labels: list[list[tuple[int, Box]]],
    size_wh: tuple[int, int] = (200, 100),
) -> Path:
    """A YOLO folder: image i has key i+1 and the given (class, pixel box) labels.

    An image with no labels gets an empty label file.
    """
    width, height = size_wh
    for i, objects in enumerate(labels):
        write_image(root / "images/test" / f"img{i:03d}.png", i + 1, size_wh)
        lines = []
        for class_id, (x1, y1, x2, y2) in objects:
            cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
            w, h = (x2 - x1) / width, (y2 - y1) / height
            lines.append(f"{class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
        label = root / "labels/test" / f"img{i:03d}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("\n".join(lines) + ("\n" if lines else ""))
    data = root / "data.yaml"
    data.write_text(
        "test: images/test\nnames:\n"
        + "".join(f"  {i}: {n}\n" for i, n in enumerate(names))
    )
    return data


@pytest.fixture
def potholes_yaml(shared_dir: Path) -> Path:
    return shared_dir / "data/datasets/potholes/data.yaml"


@pytest.fixture
def settings_env(monkeypatch, shared_dir, tmp_path):
    """Service settings for the commands: a scratch data folder, and the
    shared models as the mirror."""
    from api.settings import get_settings

    monkeypatch.setenv("CITYWATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CITYWATCH_MODEL_MIRROR_DIR", str(shared_dir / "models"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
