"""Detector evaluation pitfalls, each with its value worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.datasets import load_labelled_set
from eval.detection import ClassTable, DetectionSettings, evaluate_detector
from eval.report import write_detection_report
from tests.eval.conftest import FixedDetector, write_image, write_yolo_set
from vision.errors import ConfigError

SETTINGS = DetectionSettings(min_score=0.001, nms_iou=0.7, max_det=300)
BOX = (20.0, 20.0, 80.0, 70.0)


def empty_images_set(tmp_path: Path) -> tuple[Path, FixedDetector]:
    """5 images with one garbage box, 5 without; a perfect box at 0.9 on each
    positive image and a false box at 0.95 on each empty one."""
    labels = [[(0, BOX)] for _ in range(5)] + [[] for _ in range(5)]
    data = write_yolo_set(tmp_path / "set", ["garbage"], labels)
    detector = FixedDetector(["garbage"])
    for i in range(5):
        detector.boxes_by_key[i + 1] = [(BOX, 0.9, 0)]
    for i in range(5, 10):
        detector.boxes_by_key[i + 1] = [((100.0, 10.0, 150.0, 60.0), 0.95, 0)]
    return data, detector


def test_false_boxes_on_images_without_objects_halve_ap(tmp_path):
    data, detector = empty_images_set(tmp_path)
    labelled = load_labelled_set(data)

    report = evaluate_detector(detector, labelled, SETTINGS, progress=False)

    # Ranking: 5 false boxes (0.95) then 5 hits (0.9): the envelope is 0.5 at
    # every recall, by COCO-101 and by all-point alike.
    assert labelled.num_empty_images == 5
    assert report["coco"]["map50"] == pytest.approx(0.5, abs=1e-6)
    assert report["conventions"]["coco101"]["map50"] == pytest.approx(0.5)
    assert report["conventions"]["all_point"]["map50"] == pytest.approx(0.5)
    point = report["operating_point"]
    assert point["false_positives_per_empty_image"] == 1.0
    assert point["all"]["precision"] == 0.5


def test_skipping_images_without_objects_would_wrongly_give_one(tmp_path):
    data, detector = empty_images_set(tmp_path)
    labelled = load_labelled_set(data)
    positives = labelled.__class__(
        **{
            **labelled.__dict__,
            "images": [i for i in labelled.images if not i.is_empty],
        }
    )

    report = evaluate_detector(detector, positives, SETTINGS, progress=False)

    assert report["coco"]["map50"] == pytest.approx(1.0)


def test_images_without_objects_are_listed_in_the_coco_truth(tmp_path):
    data, _ = empty_images_set(tmp_path)

    coco = load_labelled_set(data).to_coco()

    assert len(coco["images"]) == 10
    assert len(coco["annotations"]) == 5


def test_an_image_without_a_label_file_counts_as_without_objects(tmp_path):
    data, _detector = empty_images_set(tmp_path)
    (tmp_path / "set/labels/test/img009.txt").unlink()

    labelled = load_labelled_set(data)

    assert labelled.num_empty_images == 5
    assert len(labelled.images) == 10


def test_a_set_with_no_objects_reports_false_box_rates_and_undefined_ap(tmp_path):
    data = write_yolo_set(tmp_path / "neg", ["garbage"], [[], [], []])
    detector = FixedDetector(["garbage"], {1: [(BOX, 0.9, 0)], 2: [(BOX, 0.6, 0)]})

    report = evaluate_detector(
        detector, load_labelled_set(data), SETTINGS, progress=False
    )

    assert report["coco"]["map50"] is None
    assert report["coco"]["map50_95"] is None
    assert report["conventions"]["coco101"]["map50"] is None
    point = report["operating_point"]
    assert point["false_positives_on_empty_images"] == 2
    assert point["false_positives_per_empty_image"] == pytest.approx(2 / 3)
    assert (
        "undefined"
        in write_detection_report(report, tmp_path / "out")["markdown"].read_text()
    )


def three_class_truth(tmp_path: Path, annotation_ids: list[int]) -> Path:
    """A COCO JSON with categories 1-3 (garbage, vendor, car)."""
    boxes = [(10, 10, 60, 40), (80, 10, 140, 60), (20, 50, 90, 95)]
    write_image(tmp_path / "images/a.png", 1)
    truth = {
        "images": [{"id": 7, "file_name": "a.png", "width": 200, "height": 100}],
        "categories": [
            {"id": 1, "name": "garbage"},
            {"id": 2, "name": "vendor"},
            {"id": 3, "name": "car"},
        ],
        "annotations": [
            {
                "id": n + 1,
                "image_id": 7,
                "category_id": cid,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
            }
            for n, (cid, (x1, y1, x2, y2)) in enumerate(
                zip(annotation_ids, boxes, strict=True)
            )
        ],
    }
    path = tmp_path / "truth.json"
    path.write_text(json.dumps(truth))
    return path


def three_class_detector() -> FixedDetector:
    # The detector numbers classes from 0, in an order of its own.
    names = ["car", "garbage", "vendor"]
    boxes = {
        "garbage": (10, 10, 60, 40),
        "vendor": (80, 10, 140, 60),
        "car": (20, 50, 90, 95),
    }
    return FixedDetector(
        names, {1: [(box, 0.9, names.index(name)) for name, box in boxes.items()]}
    )


def test_ids_from_one_in_coco_and_from_zero_in_the_model_match_by_name(tmp_path):
    labelled = load_labelled_set(three_class_truth(tmp_path, [1, 2, 3]))

    report = evaluate_detector(
        three_class_detector(), labelled, SETTINGS, progress=False
    )

    assert [row["ap50"] for row in report["coco"]["per_class"]] == [1.0, 1.0, 1.0]
    assert [row["ap50_95"] for row in report["coco"]["per_class"]] == [1.0, 1.0, 1.0]


def test_yolo_labels_from_zero_give_the_same_result(tmp_path):
    boxes = [(10, 10, 60, 40), (80, 10, 140, 60), (20, 50, 90, 95)]
    data = write_yolo_set(
        tmp_path / "yolo", ["garbage", "vendor", "car"], [list(enumerate(boxes))]
    )

    report = evaluate_detector(
        three_class_detector(), load_labelled_set(data), SETTINGS, progress=False
    )

    assert report["coco"]["map50"] == pytest.approx(1.0)


def test_annotation_ids_from_zero_against_categories_from_one_fail_fast(tmp_path):
    with pytest.raises(ConfigError, match=r"category_id \[0\]"):
        load_labelled_set(three_class_truth(tmp_path, [0, 1, 2]))


def test_a_set_class_the_model_lacks_is_an_error_naming_it():
    with pytest.raises(ConfigError, match=r"no class for set classes \['vendor'\]"):
        ClassTable.build(["garbage", "vendor"], ["garbage", "car"])


def test_a_renamed_class_is_matched_through_the_class_map():
    table = ClassTable.build(
        ["D40_pothole"], ["car", "pothole"], {"D40_pothole": "pothole"}
    )

    assert table.model_index == [1]


def test_boxes_of_classes_the_set_lacks_are_dropped_and_counted(tmp_path):
    data = write_yolo_set(tmp_path / "s", ["car"], [[(0, BOX)]])
    detector = FixedDetector(["person", "car"], {1: [(BOX, 0.9, 1), (BOX, 0.8, 0)]})

    report = evaluate_detector(
        detector, load_labelled_set(data), SETTINGS, progress=False
    )

    assert report["dropped_boxes_by_model_class"] == {"person": 1}
    assert report["coco"]["map50"] == pytest.approx(1.0)


def test_confusion_matrix_counts_a_wrong_class_a_false_box_and_a_miss(tmp_path):
    objects = [(0, (10.0, 10.0, 60.0, 40.0)), (1, (100.0, 10.0, 150.0, 60.0))]
    data = write_yolo_set(tmp_path / "s", ["car", "truck"], [objects])
    detector = FixedDetector(
        ["car", "truck"],
        {1: [((10.0, 10.0, 60.0, 40.0), 0.9, 1), ((150.0, 70.0, 190.0, 95.0), 0.8, 0)]},
    )

    report = evaluate_detector(
        detector, load_labelled_set(data), SETTINGS, progress=False
    )

    # rows true (car, truck, background), columns predicted
    assert report["confusion_matrix"]["counts_true_by_predicted"] == [
        [0, 1, 0],
        [0, 0, 1],
        [1, 0, 0],
    ]


def test_report_header_states_cut_offs_max_detections_and_convention(tmp_path):
    data, detector = empty_images_set(tmp_path)
    report = evaluate_detector(
        detector, load_labelled_set(data), SETTINGS, progress=False
    )

    paths = write_detection_report(report, tmp_path / "out")
    markdown = paths["markdown"].read_text()

    assert "score > 0.001" in markdown
    assert "maxDets [1, 10, 300]" in markdown
    assert "coco101" in markdown
    assert paths["pr_curve"].stat().st_size > 0
    assert paths["confusion_matrix"].stat().st_size > 0
    assert json.loads(paths["json"].read_text())["coco"]["map50"] == pytest.approx(0.5)
