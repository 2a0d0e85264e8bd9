"""Same ONNX file, same images: our boxes are ultralytics' boxes.

Every box ultralytics' predict returns must be matched by one of ours of the
same class with IoU >= 0.99 and confidence within 0.01, and we may add none;
boxes whose confidence lies within 0.01 of the threshold may differ.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.detect.detector import Detector
from vision.ingest.images import read_image

pytestmark = pytest.mark.ultralytics

MIN_SCORE = 0.25
NMS_IOU = 0.7  # ultralytics' predict default
MARGIN = 0.01
DATASETS = ("garbage_bins", "potholes", "road_damage_rdd2022_cz")


@pytest.fixture(scope="module")
def yolo_class():
    os.environ["YOLO_OFFLINE"] = "1"
    ultralytics = pytest.importorskip("ultralytics")
    return ultralytics.YOLO


@pytest.fixture(scope="module")
def parity_inputs(shared_dir: Path) -> list[tuple[str, np.ndarray | Path]]:
    """Files (read by each side itself) and video frames, square and not."""
    data = shared_dir / "data"
    inputs: list[tuple[str, np.ndarray | Path]] = [
        (p.name, p) for p in sorted((data / "images").glob("*.jpg"))
    ]
    for name in DATASETS:
        files = sorted((data / "datasets" / name / "images" / "test").glob("*.jpg"))
        inputs += [(p.name, p) for p in files[:20]]
    capture = cv2.VideoCapture(
        str(data / "videos/street_plaza_vtest_part1_f000-399.avi")
    )
    for index in range(0, 400, 100):
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        assert ok
        inputs.append((f"street-{index}", frame))
    capture.release()
    inputs.append(("street-portrait", np.ascontiguousarray(inputs[-1][1][:, 200:500])))
    inputs.append(("street-square", np.ascontiguousarray(inputs[-2][1][:, :576])))
    return inputs


def assert_same_boxes(ours, theirs, label: str) -> None:
    their_boxes = theirs.boxes.xyxy.numpy()
    their_conf = theirs.boxes.conf.numpy()
    their_cls = theirs.boxes.cls.numpy().astype(int)
    matched = np.zeros(len(ours), bool)
    for box, conf, cls in zip(their_boxes, their_conf, their_cls, strict=True):
        same_class = np.flatnonzero((ours.class_id == cls) & ~matched)
        if same_class.size:
            iou = _iou(box, ours.xyxy[same_class])
            best = same_class[int(iou.argmax())]
            if iou.max() >= 0.99 and abs(ours.confidence[best] - conf) <= MARGIN:
                matched[best] = True
                continue
        assert conf < MIN_SCORE + MARGIN, (
            f"{label}: ultralytics box {box} {conf:.3f} unmatched"
        )
    extra = ours.confidence[~matched]
    assert (extra < MIN_SCORE + MARGIN).all(), (
        f"{label}: extra boxes {ours.xyxy[~matched]}"
    )


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / (area + areas - inter)


def run_parity(yolo_class, model_path: Path, size_px: int, inputs) -> int:
    detector = Detector.from_file(model_path, input_size_px=size_px)
    reference = yolo_class(str(model_path), task="detect")
    compared = 0
    for label, source in inputs:
        frame = read_image(source) if isinstance(source, Path) else source
        theirs = reference.predict(
            str(source) if isinstance(source, Path) else source,
            imgsz=size_px,
            conf=MIN_SCORE,
            iou=NMS_IOU,
            verbose=False,
        )[0]
        ours = detector.detect(frame, min_score=MIN_SCORE, nms_iou=NMS_IOU)
        assert_same_boxes(ours, theirs, f"{model_path.name}@{size_px} {label}")
        compared += len(theirs.boxes)
    return compared


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "size_px", "min_boxes"),
    [
        ("yolo11n_coco_deq_fp32_dynamic.onnx", 640, 50),
        ("yolo11n_coco_deq_fp32_dynamic.onnx", 320, 50),
        ("yolo11n_coco_int8dyn_640.onnx", 640, 50),
        ("yolo11n_coco_int8dyn_320.onnx", 320, 50),
        # One class: only the twenty pothole images hold its objects.
        ("yolo11n_pothole_416_dynamic.onnx", 416, 15),
    ],
)
def test_shared_models_match_ultralytics(
    yolo_class, models_dir, parity_inputs, model, size_px, min_boxes
):
    compared = run_parity(yolo_class, models_dir / model, size_px, parity_inputs)

    assert compared > min_boxes  # the images really contain objects


@pytest.mark.slow
def test_end_to_end_export_matches_ultralytics(
    yolo_class, models_dir, parity_inputs, tmp_path_factory
):
    folder = tmp_path_factory.mktemp("e2e")
    weights = shutil.copy(models_dir / "yolo11n_coco_deq_fp32.pt", folder / "y11n.pt")
    with warnings.catch_warnings():
        # torch's tracer warns about Python control flow in the NMS wrapper.
        warnings.simplefilter("ignore")
        exported = yolo_class(weights).export(
            format="onnx", nms=True, imgsz=640, dynamic=False, verbose=False
        )

    detector = Detector.from_file(exported)
    compared = run_parity(yolo_class, Path(exported), 640, parity_inputs)

    assert detector.layout.name == "END_TO_END"
    assert compared > 50
