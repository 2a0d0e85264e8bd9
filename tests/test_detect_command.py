"""`citywatch detect`: each image's detections as JSON lines in its own pixels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.settings import Settings
from api.watch import load_detector
from tests.test_main_job import run_citywatch
from vision.ingest.images import read_image


def test_detections_print_as_json_lines_in_each_images_pixels(
    tmp_path: Path, shared_dir: Path, models_mirror: Path
) -> None:
    images = [shared_dir / "data/images" / name for name in ("bus.jpg", "zidane.jpg")]

    result = run_citywatch(
        ["detect", "--model", "yolo11n-coco", *map(str, images)],
        tmp_path,
        models_mirror,
    )

    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    detector = load_detector(
        "yolo11n-coco", Settings(data_dir=tmp_path, model_mirror_dir=models_mirror)
    )
    for image in images:
        printed = [r for r in rows if r["image"] == str(image)]
        expected = detector.detect(read_image(image), min_score=0.25)
        assert [r["class_name"] for r in printed] == list(expected.data["class_name"])
        for row, xyxy, score in zip(
            printed, expected.xyxy, expected.confidence, strict=True
        ):
            box = [row["x1"], row["y1"], row["x2"], row["y2"]]
            assert box == pytest.approx(xyxy.tolist(), abs=0.05)
            assert row["confidence"] == pytest.approx(float(score), abs=1e-4)
    assert {"bus", "person"} <= {r["class_name"] for r in rows}


def test_an_image_that_cannot_be_read_is_one_clear_line(
    tmp_path: Path, models_mirror: Path
) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("not an image")

    result = run_citywatch(["detect", str(notes)], tmp_path / "var", models_mirror)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "notes.jpg" in errors[0], result.stderr
