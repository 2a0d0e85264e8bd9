"""Pothole models on the shared pothole set: agreement with the reference
tools' own validation, and the regression gate's detection figures.

Each model runs through the service's Detector on the 133-image test split
under the reference run's settings (``eval/references.json``): ultralytics
``val`` for the YOLO11n model (imgsz 416, NMS IoU 0.7), YOLOv5's ``val.py``
with a square 640 input for the classic YOLOv5 model (NMS IoU 0.6).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eval.datasets import load_labelled_set
from eval.detection import DetectionSettings, evaluate_detector, load_detector_for_eval
from eval.gate import check, covered_sets, load_baseline
from eval.report import load_references, write_detection_report

MODELS = {
    "yolo11n-pothole-416": "yolo11n_pothole_416_dynamic.onnx",
    "yolov5n-pothole": "yolov5n_pothole_dynamic.onnx",
}
AGREEMENT = 0.01


@pytest.fixture(scope="module")
def pothole_reports(shared_dir: Path, tmp_path_factory) -> dict[str, dict]:
    labelled = load_labelled_set(shared_dir / "data/datasets/potholes/data.yaml")
    references = load_references()["potholes"]["models"]
    model_dir = tmp_path_factory.mktemp("models")
    reports = {}
    for name, file in MODELS.items():
        settings = DetectionSettings(**references[file]["eval_settings"])
        detector = load_detector_for_eval(
            name, settings, model_dir=model_dir, mirror_dir=shared_dir / "models"
        )
        reports[name] = evaluate_detector(
            detector, labelled, settings, model_label=name, progress=False
        )
    return reports


@pytest.mark.parametrize("name", list(MODELS))
def test_map_agrees_with_the_reference_tool_within_a_hundredth(name, pothole_reports):
    report = pothole_reports[name]
    reference = load_references()["potholes"]["models"][MODELS[name]]["reference"]
    header = report["header"]

    assert header["images"] == 133
    assert header["boxes"] == 330
    for convention in ("coco101", reference["convention"]):
        figures = report["conventions"][convention]
        assert figures["map50"] == pytest.approx(reference["map50"], abs=AGREEMENT)
        assert figures["map50_95"] == pytest.approx(
            reference["map50_95"], abs=AGREEMENT
        )
    # The library's COCO figure is the one our own COCO-101 recomputes.
    assert report["coco"]["map50"] == pytest.approx(
        report["conventions"]["coco101"]["map50"], abs=1e-9
    )


def test_report_shows_the_reference_the_published_result_and_the_picking_split(
    pothole_reports, tmp_path
):
    paths = write_detection_report(pothole_reports["yolov5n-pothole"], tmp_path)
    markdown = paths["markdown"].read_text()

    assert "0.7360" in markdown and "0.4380" in markdown
    assert "0.763" in markdown and "0.502" in markdown
    assert "picked by YOLOv5 on this very split" in markdown
    assert "Not like for like" not in markdown


def test_gate_detection_figures_hold_against_the_baseline(pothole_reports):
    baseline = load_baseline()
    measured = [
        {
            "map50": pothole_reports[entry["model"]]["coco"]["map50"],
            "map50_95": pothole_reports[entry["model"]]["coco"]["map50_95"],
        }
        for entry in baseline["detection"]
    ]
    # The event figures are held by the event tests, on their own runs.
    results = check({**baseline, "events": []}, measured, [])

    assert [r.figure for r in results if not r.passed] == []


def test_baseline_covers_every_catalog_model_on_every_shared_set_it_can_score(
    shared_dir,
):
    from eval.datasets import load_yolo_set
    from models.catalog import load_catalog

    sets = {
        path.parent.name: load_yolo_set(path).class_names
        for path in sorted((shared_dir / "data/datasets").glob("*/data.yaml"))
    }
    models = {
        name: entry.class_names
        for name, entry in load_catalog().items()
        if entry.task == "detect"
    }

    expected = covered_sets(models, sets)
    gated = sorted((e["model"], e["set"]) for e in load_baseline()["detection"])

    assert gated == expected


@pytest.mark.slow
@pytest.mark.ultralytics
def test_ultralytics_val_gives_the_recorded_reference(shared_dir, tmp_path):
    os.environ.setdefault("YOLO_OFFLINE", "1")
    ultralytics = pytest.importorskip("ultralytics")
    model = ultralytics.YOLO(
        str(shared_dir / "models/yolo11n_pothole_416_dynamic.onnx")
    )

    metrics = model.val(
        data=str(shared_dir / "data/datasets/potholes/data.yaml"),
        split="test",
        imgsz=416,
        batch=1,
        conf=0.001,
        iou=0.7,
        device="cpu",
        plots=False,
        project=str(tmp_path),
        verbose=False,
    )
    reference = load_references()["potholes"]["models"][MODELS["yolo11n-pothole-416"]]

    assert metrics.box.map50 == pytest.approx(reference["reference"]["map50"], abs=1e-3)
    assert metrics.box.map == pytest.approx(
        reference["reference"]["map50_95"], abs=1e-3
    )
