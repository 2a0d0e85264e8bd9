"""Detector accuracy on a labelled set, through the service's own Detector.

``evaluate_detector`` runs every image of a ``LabelledSet`` through
``vision.detect.detector.Detector`` (the deployed pre- and post-processing),
then measures:

- COCO mAP@0.5:0.95, mAP@0.5 and mAP@0.75 by faster-coco-eval, with every
  image of the set listed in the ground truth (images without objects
  included) and ``maxDets`` raised to the detector's ``max_det``;
- AP at IoU 0.5 and 0.5:0.95 under the four conventions of ``eval.ap``
  (COCO-101 recomputed, VOC-11, all-point, ultralytics), from the same
  detections, so a figure from another tool can be compared with the one it
  should equal;
- per-class precision, recall and F1 at the operating threshold (default
  0.25: what a camera keeps), the false positives per image without objects,
  and a confusion matrix at IoU 0.5.

Model classes are matched to the set's classes by name through an explicit
``ClassTable``; a set class the model lacks is an error, never a silent AP 0.
Detections of model classes the set does not have are dropped and counted.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eval.ap import (
    COCO_IOU_THRESHOLDS,
    CONVENTION_NOTES,
    APConvention,
    RankedMatches,
    box_iou,
    rank_matches,
)
from eval.datasets import ClassTable, LabelledImage, LabelledSet
from eval.progress import ProgressBar

logger = logging.getLogger(__name__)

DEFAULT_OPERATING_SCORE = 0.25


@dataclass(frozen=True)
class DetectionSettings:
    """How the detector is run for evaluation; printed in every report.

    The defaults are ultralytics ``val``'s: keep every box above 0.001, NMS
    at IoU 0.7, at most 300 boxes per image. ``letterbox`` is ``minimal``
    (pad to the next stride multiple, as the service runs a free-size model)
    or ``square`` (pad to the full input size, as the classic YOLOv5 tools and
    fixed-size exports do).
    """

    min_score: float = 0.001
    nms_iou: float = 0.7
    max_det: int = 300
    operating_score: float = DEFAULT_OPERATING_SCORE
    input_size_px: int | None = None
    letterbox: str = "minimal"

    def __post_init__(self) -> None:
        if self.letterbox not in {"minimal", "square"}:
            raise ValueError(
                f"letterbox: expected 'minimal' or 'square', got {self.letterbox!r}"
            )
        if self.operating_score < self.min_score:
            raise ValueError(
                f"operating_score {self.operating_score} is below min_score "
                f"{self.min_score}: the boxes it needs were never kept"
            )


@dataclass(frozen=True)
class ImagePredictions:
    image: LabelledImage
    bbox_xyxy: np.ndarray  # (n, 4) frame pixels
    score: np.ndarray  # (n,)
    class_index: np.ndarray  # (n,) index into the set's classes


def predict_set(
    detector: Any,
    labelled_set: LabelledSet,
    table: ClassTable,
    settings: DetectionSettings,
    *,
    progress: bool = True,
) -> tuple[list[ImagePredictions], dict[str, int]]:
    """Run the detector on every image; returns predictions and counts of
    dropped boxes by model class name (classes the set does not have)."""
    from vision.ingest.images import read_image

    to_set = table.set_index_of_model()
    dropped: dict[str, int] = {}
    results = []
    images = len(labelled_set.images)
    with ProgressBar("detecting", images, unit="img", enabled=progress) as bar:
        for image in labelled_set.images:
            detections = detector.detect(
                read_image(image.path),
                min_score=settings.min_score,
                nms_iou=settings.nms_iou,
                max_det=settings.max_det,
            )
            keep = np.array([int(c) in to_set for c in detections.class_id], dtype=bool)
            for c in detections.class_id[~keep]:
                name = table.model_names[int(c)]
                dropped[name] = dropped.get(name, 0) + 1
            results.append(
                ImagePredictions(
                    image=image,
                    bbox_xyxy=np.asarray(detections.xyxy[keep], dtype=np.float64),
                    score=np.asarray(detections.confidence[keep], dtype=np.float64),
                    class_index=np.array(
                        [to_set[int(c)] for c in detections.class_id[keep]], dtype=int
                    ),
                )
            )
            bar.advance()
    return results, dropped


def coco_metrics(
    labelled_set: LabelledSet, predictions: list[ImagePredictions], max_det: int
) -> dict[str, Any]:
    """COCO box metrics by faster-coco-eval; per-class AP and the 101-point
    precision envelope at IoU 0.5 (the library's own PR curve)."""
    from faster_coco_eval import COCO, COCOeval_faster

    truth = COCO(labelled_set.to_coco())
    results = coco_results(labelled_set, predictions)
    detections = truth.loadRes(results) if results else truth.loadRes([])
    evaluator = COCOeval_faster(truth, detections, "bbox", print_function=logger.debug)
    evaluator.params.maxDets = [1, 10, max_det]
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    stats = evaluator.stats
    # precision[T, R, K, A, M]: area range "all", the largest maxDets.
    precision = np.asarray(evaluator.eval["precision"])[:, :, :, 0, -1]
    per_class = []
    for k, name in enumerate(labelled_set.class_names):
        curve = precision[:, :, k]
        per_class.append(
            {
                "class": name,
                "ap50_95": _defined_mean(curve),
                "ap50": _defined_mean(curve[0]),
                "pr101_iou50": [round(float(v), 5) for v in curve[0]],
            }
        )
    return {
        "map50_95": _undefined_as_none(stats[0]),
        "map50": _undefined_as_none(stats[1]),
        "map75": _undefined_as_none(stats[2]),
        "max_dets": [1, 10, max_det],
        "per_class": per_class,
    }


def coco_results(
    labelled_set: LabelledSet, predictions: list[ImagePredictions]
) -> list[dict[str, Any]]:
    """Detections in COCO result form, with the set's category ids."""
    results = []
    for pred in predictions:
        for box, score, index in zip(
            pred.bbox_xyxy, pred.score, pred.class_index, strict=True
        ):
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append(
                {
                    "image_id": pred.image.image_id,
                    "category_id": labelled_set.category_ids[int(index)],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                }
            )
    return results


def _defined_mean(values: np.ndarray) -> float | None:
    defined = values[values > -1]
    return float(defined.mean()) if defined.size else None


def _undefined_as_none(value: float) -> float | None:
    return None if value < 0 else float(value)


def ranked_per_class(
    labelled_set: LabelledSet, predictions: list[ImagePredictions]
) -> list[RankedMatches]:
    """COCO-style matches of each class over the set (IoU 0.5:0.95 columns)."""
    ranked = []
    for k in range(len(labelled_set.class_names)):
        per_image = []
        for pred in predictions:
            truth = pred.image.bbox_xyxy[pred.image.class_index == k]
            mine = pred.class_index == k
            per_image.append((truth, pred.bbox_xyxy[mine], pred.score[mine]))
        ranked.append(rank_matches(per_image, COCO_IOU_THRESHOLDS))
    return ranked


def convention_table(
    class_names: list[str], ranked: list[RankedMatches]
) -> dict[str, Any]:
    """AP@0.5 and AP@0.5:0.95 (mean over classes) under every convention."""
    table = {}
    for convention in APConvention:
        ap50 = [r.ap(convention, 0) for r in ranked]
        ap50_95 = [r.mean_ap(convention) for r in ranked]
        table[convention.value] = {
            "note": CONVENTION_NOTES[convention],
            "map50": _mean_defined(ap50),
            "map50_95": _mean_defined(ap50_95),
            "per_class_ap50": dict(zip(class_names, ap50, strict=True)),
        }
    return table


def _mean_defined(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def operating_point(
    labelled_set: LabelledSet,
    predictions: list[ImagePredictions],
    ranked: list[RankedMatches],
    operating_score: float,
) -> dict[str, Any]:
    """Precision, recall and F1 at IoU 0.5 of the boxes a camera would keep
    (score above ``operating_score``), and false boxes on empty images."""
    per_class = []
    for name, matches in zip(labelled_set.class_names, ranked, strict=True):
        kept = matches.score > operating_score
        tp = int(matches.tp[kept, 0].sum())
        fp = int(kept.sum()) - tp
        fn = matches.num_truth - tp
        per_class.append({"class": name, **_prf(tp, fp, fn)})
    totals = {k: sum(row[k] for row in per_class) for k in ("tp", "fp", "fn")}
    empty = [p for p in predictions if p.image.is_empty]
    false_on_empty = sum(int((p.score > operating_score).sum()) for p in empty)
    return {
        "score_threshold": operating_score,
        "iou": 0.5,
        "per_class": per_class,
        "all": _prf(**totals),
        "empty_images": len(empty),
        "false_positives_on_empty_images": false_on_empty,
        "false_positives_per_empty_image": (
            false_on_empty / len(empty) if empty else None
        ),
    }


def _prf(tp: int, fp: int, fn: int) -> dict[str, Any]:
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision is not None and recall is not None and precision + recall > 0
        else (0.0 if precision is not None and recall is not None else None)
    )
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def confusion_matrix(
    num_classes: int,
    predictions: list[ImagePredictions],
    operating_score: float,
    iou_threshold: float = 0.5,
) -> np.ndarray:
    """Counts[true, predicted] with a last row/column for background.

    Boxes above the score are matched to objects whatever their class, best
    score first, each to the free object it overlaps most (IoU at or above
    the threshold): a box on a car called a truck lands in (car, truck); a box
    on nothing in (background, class); a missed object in (class, background).
    """
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=int)
    for pred in predictions:
        kept = pred.score > operating_score
        order = np.argsort(-pred.score[kept], kind="stable")
        boxes, classes = pred.bbox_xyxy[kept][order], pred.class_index[kept][order]
        truth = pred.image
        iou = box_iou(boxes, truth.bbox_xyxy)
        taken = np.zeros(len(truth.class_index), dtype=bool)
        for row, predicted in enumerate(classes):
            candidates = np.where(taken, -1.0, iou[row]) if taken.size else np.zeros(0)
            best = int(np.argmax(candidates)) if candidates.size else -1
            if best >= 0 and candidates[best] >= iou_threshold:
                taken[best] = True
                matrix[truth.class_index[best], predicted] += 1
            else:
                matrix[num_classes, predicted] += 1
        for true_class in truth.class_index[~taken]:
            matrix[true_class, num_classes] += 1
    return matrix


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def evaluate_detector(
    detector: Any,
    labelled_set: LabelledSet,
    settings: DetectionSettings,
    *,
    class_map: dict[str, str] | None = None,
    model_label: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Everything the report shows, as a JSON-ready dict (see module doc)."""
    table = ClassTable.build(labelled_set.class_names, list(detector.names), class_map)
    started = time.perf_counter()
    predictions, dropped = predict_set(
        detector, labelled_set, table, settings, progress=progress
    )
    detect_s = time.perf_counter() - started
    report = score_predictions(labelled_set, predictions, settings)
    report["header"] = report_header(
        detector, labelled_set, settings, table, model_label
    )
    report["dropped_boxes_by_model_class"] = dropped
    report["timing"] = {
        "detect_s": round(detect_s, 2),
        "images_per_s": round(len(predictions) / detect_s, 2) if detect_s else None,
    }
    return report


def score_predictions(
    labelled_set: LabelledSet,
    predictions: list[ImagePredictions],
    settings: DetectionSettings,
) -> dict[str, Any]:
    """The figures of one set of predictions (no header, no timing)."""
    ranked = ranked_per_class(labelled_set, predictions)
    matrix = confusion_matrix(
        len(labelled_set.class_names), predictions, settings.operating_score
    )
    return {
        "coco": coco_metrics(labelled_set, predictions, settings.max_det),
        "conventions": convention_table(labelled_set.class_names, ranked),
        "operating_point": operating_point(
            labelled_set, predictions, ranked, settings.operating_score
        ),
        "confusion_matrix": {
            "labels": [*labelled_set.class_names, "background"],
            "counts_true_by_predicted": matrix.tolist(),
        },
        "_pr_curves": _pr_curves(labelled_set.class_names, ranked),
    }


def report_header(
    detector: Any,
    labelled_set: LabelledSet,
    settings: DetectionSettings,
    table: ClassTable,
    model_label: str | None,
) -> dict[str, Any]:
    path = Path(getattr(detector, "path", "") or "")
    target_hw = getattr(detector, "target_hw", None)
    return {
        "model": model_label or path.name,
        "model_file": path.name,
        "model_sha256": file_sha256(path) if path.is_file() else None,
        "input_size_hw": list(target_hw) if target_hw else None,
        "set": labelled_set.name,
        "set_source": str(labelled_set.source),
        "split": labelled_set.split,
        "images": len(labelled_set.images),
        "images_without_objects": labelled_set.num_empty_images,
        "boxes": labelled_set.num_boxes,
        "boxes_per_class": dict(
            zip(labelled_set.class_names, labelled_set.boxes_per_class(), strict=True)
        ),
        "settings": {
            **asdict(settings),
            # The size the detector really letterboxes to (catalog default).
            "input_size_px": settings.input_size_px
            or (max(target_hw) if target_hw else None),
        },
        "class_table": table.rows(),
        "headline_convention": "coco101 (faster-coco-eval, area 'all', "
        f"maxDets {settings.max_det})",
    }


def _pr_curves(
    class_names: list[str], ranked: list[RankedMatches]
) -> dict[str, dict[str, list[float]]]:
    """Raw precision-recall curves at IoU 0.5, for plots; not in the JSON."""
    curves = {}
    for name, matches in zip(class_names, ranked, strict=True):
        recall, precision = matches.curve(0)
        curves[name] = {
            "recall": recall.tolist(),
            "precision": precision.tolist(),
            "score": matches.score.tolist(),
        }
    return curves


def load_detector_for_eval(
    name_or_path: str,
    settings: DetectionSettings,
    *,
    model_dir: Path,
    mirror_dir: Path | None = None,
    intra_op_threads: int | None = None,
    graph_optimization: str = "all",
) -> Any:
    """The service's Detector for a catalog name or file, with the letterbox
    and input size the evaluation asks for."""
    from models.catalog import resolve_model
    from vision.detect.detector import Detector

    spec = resolve_model(name_or_path, model_dir=model_dir, mirror_dir=mirror_dir)
    return Detector.from_file(
        spec.path,
        class_names=spec.class_names,
        input_size_px=settings.input_size_px or spec.input_size_px,
        intra_op_threads=intra_op_threads,
        graph_optimization=graph_optimization,
        full_size_input=settings.letterbox == "square",
    )
