"""Output layouts: recognised from shape and class count, decoded like ultralytics."""

from __future__ import annotations

import numpy as np
import pytest

from vision.detect.detector import Detector
from vision.detect.layouts import (
    LayoutError,
    OutputLayout,
    anchor_count,
    class_aware_nms,
    decode,
    recognise_layout,
)
from vision.errors import ModelLoadError

NAMES = {0: "garbage", 1: "vendor", 2: "car"}


def channels_first_output() -> np.ndarray:
    """(1, 7, 8400), three classes: one car at anchor 1234, a weak garbage at 77."""
    output = np.zeros((1, 7, 8400), np.float32)
    output[0, :4, 1234] = (320, 320, 100, 50)
    output[0, 4 + 2, 1234] = 0.9
    output[0, 4 + 0, 77] = 0.3
    return output


@pytest.mark.parametrize(
    "transposed", [False, True], ids=["channels-first", "anchors-first"]
)
def test_anchor_free_output_decodes_one_car_and_drops_the_weak_anchor(transposed):
    output = channels_first_output()
    if transposed:
        output = output.transpose(0, 2, 1).copy()

    layout = recognise_layout(output.shape, len(NAMES), (640, 640))
    raw = decode(
        output[0], layout, len(NAMES), min_score=0.25, nms_iou=0.45, max_det=300
    )

    expected_layout = (
        OutputLayout.ANCHOR_FREE_TRANSPOSED if transposed else OutputLayout.ANCHOR_FREE
    )
    assert layout is expected_layout
    # Anchor 77 scores 0.3 but has no box: it is no object.
    assert raw.class_id.tolist() == [2]
    np.testing.assert_allclose(raw.bbox_xyxy[0], [270, 295, 370, 345])
    assert raw.score[0] == pytest.approx(0.9)


@pytest.mark.parametrize(
    "transposed", [False, True], ids=["channels-first", "anchors-first"]
)
def test_detector_reads_class_count_from_names_metadata(
    tmp_path, build_constant_model, transposed
):
    output = channels_first_output()
    if transposed:
        output = output.transpose(0, 2, 1).copy()
    path = build_constant_model(tmp_path / "three.onnx", output, names=NAMES)

    detector = Detector.from_file(path)
    detections = detector.detect(np.zeros((640, 640, 3), np.uint8))

    assert detector.names == ["garbage", "vendor", "car"]
    assert detections.data["class_name"].tolist() == ["car"]
    np.testing.assert_allclose(detections.xyxy, [[270, 295, 370, 345]])
    np.testing.assert_allclose(detections.confidence, [0.9])


@pytest.mark.parametrize(
    "shape",
    [(1, 9, 8400), (1, 8400, 9), (1, 7), (1, 84, 8400)],
    ids=["9-rows", "9-columns", "2-D", "80-classes"],
)
def test_output_fitting_no_layout_is_refused(shape):
    with pytest.raises(LayoutError, match=r"fits no known layout|3-D"):
        recognise_layout(shape, len(NAMES), (640, 640))


def test_model_with_unknown_layout_is_refused_at_load(tmp_path, build_constant_model):
    path = build_constant_model(
        tmp_path / "odd.onnx", np.zeros((1, 9, 8400), np.float32), names=NAMES
    )

    with pytest.raises(ModelLoadError, match=r"odd\.onnx.*\[1, 9, 8400\].*3 classes"):
        Detector.from_file(path)


@pytest.mark.parametrize(
    ("shape", "num_classes", "end_to_end", "expected"),
    [
        ((1, 25200, 6), 1, None, OutputLayout.YOLOV5_OBJECTNESS),
        ((1, 300, 6), 1, None, OutputLayout.END_TO_END),
        ((1, 300, 6), 80, True, OutputLayout.END_TO_END),
        ((1, 8400, 6), 2, None, OutputLayout.ANCHOR_FREE_TRANSPOSED),
        ((1, 300, 6), 2, True, OutputLayout.END_TO_END),
        ((1, 25200, 85), 80, None, OutputLayout.YOLOV5_OBJECTNESS),
        ((1, 5, 8400), 1, False, OutputLayout.ANCHOR_FREE),
    ],
)
def test_ambiguous_shapes_are_settled_by_anchor_count(
    shape, num_classes, end_to_end, expected
):
    layout = recognise_layout(shape, num_classes, (640, 640), end_to_end=end_to_end)

    assert layout is expected


def test_anchor_count_matches_the_yolo_heads():
    assert anchor_count((640, 640)) == 8400
    assert anchor_count((320, 320)) == 2100
    assert anchor_count((480, 640)) == 6300


def test_objectness_layout_multiplies_objectness_and_class_probability():
    rows = np.zeros((25200, 7), np.float32)
    rows[10] = (100, 100, 20, 20, 0.9, 0.2, 0.5)  # score 0.45, class 1
    rows[11] = (300, 300, 20, 20, 0.3, 0.9, 0.1)  # score 0.27, class 0
    rows[12] = (500, 500, 20, 20, 0.2, 1.0, 1.0)  # objectness under threshold

    raw = decode(
        rows,
        OutputLayout.YOLOV5_OBJECTNESS,
        2,
        min_score=0.25,
        nms_iou=0.45,
        max_det=300,
    )

    assert raw.class_id.tolist() == [1, 0]
    np.testing.assert_allclose(raw.score, [0.45, 0.27], rtol=1e-6)


def test_end_to_end_rows_are_filtered_not_suppressed_again():
    rows = np.zeros((300, 6), np.float32)
    rows[0] = (10, 10, 50, 50, 0.8, 3)
    rows[1] = (12, 12, 50, 50, 0.7, 3)  # overlaps row 0: the graph kept it

    raw = decode(
        rows, OutputLayout.END_TO_END, 80, min_score=0.25, nms_iou=0.45, max_det=1
    )
    both = decode(
        rows, OutputLayout.END_TO_END, 80, min_score=0.25, nms_iou=0.45, max_det=300
    )

    assert raw.score.tolist() == pytest.approx([0.8])
    assert both.class_id.tolist() == [3, 3]


def test_nms_suppresses_within_a_class_only():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]], np.float32)
    score = np.array([0.9, 0.8, 0.7], np.float32)
    class_id = np.array([0, 0, 1])

    keep = class_aware_nms(boxes, score, class_id, 0.45, 300)

    assert keep.tolist() == [0, 2]
