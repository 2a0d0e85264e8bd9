"""Classic YOLOv5 exports reproduce the boxes of the original PyTorch code."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vision.detect.detector import Detector
from vision.detect.layouts import OutputLayout
from vision.ingest.images import read_image


def reference_cases(shared_dir):
    refs = json.loads(
        (shared_dir / "models/refs/yolov5_reference_detections.json").read_text()
    )
    return refs["models"].items()


@pytest.mark.parametrize(
    "model", ["yolov5n_pothole_dynamic.onnx", "yolov5n_coco_dynamic.onnx"]
)
def test_square_640_reproduces_reference_within_a_pixel(shared_dir, model):
    reference = dict(reference_cases(shared_dir))[model]
    detector = Detector.from_file(
        shared_dir / "models" / model, input_size_px=640, full_size_input=True
    )

    compared = 0
    for case in reference["images"]:
        frame = read_image(shared_dir / case["image"])
        ours = detector.detect(frame, min_score=0.25, nms_iou=0.45)
        want = case["detections"]
        assert len(ours) == len(want), case["image"]
        for expected in want:
            distance = np.abs(ours.xyxy - np.array(expected["xyxy"])).max(axis=1)
            best = int(distance.argmin())
            assert distance[best] <= 1.0, (case["image"], expected)
            assert ours.data["class_name"][best] == expected["class"]
            assert ours.confidence[best] == pytest.approx(
                expected["confidence"], abs=1e-3
            )
            compared += 1

    assert detector.layout is OutputLayout.YOLOV5_OBJECTNESS
    assert compared == {"yolov5n_pothole_dynamic.onnx": 13}.get(model, 7)
