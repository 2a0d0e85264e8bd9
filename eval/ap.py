"""Average precision under the conventions found in the field.

The same ranked detections give different AP depending on how the
precision-recall curve is summarised. Every figure the harness prints names
its convention:

- ``coco101``: COCO (pycocotools, faster-coco-eval). The precision envelope
  (the best precision at this recall or any higher one) is read at 101 recall
  points 0, 0.01, ..., 1, each taking the envelope at the first detection
  whose recall reaches it; AP is their mean.
- ``voc11``: PASCAL VOC 2007. The envelope at 11 recall points 0, 0.1, ..., 1,
  averaged.
- ``all_point``: PASCAL VOC 2010 and later. The area under the envelope as a
  step function, summed over every recall step.
- ``ultralytics``: ultralytics and YOLOv5 ``val``. The envelope with sentinel
  points (recall 0 at precision 1, then precision 0 at the last recall and at
  recall 1) linearly interpolated at 101 recall points and integrated with the
  trapezoid rule. The sentinel drop to 0 at the end and the linear ramps
  between steps make it differ from ``coco101`` by up to a few hundredths.
- ``yolov5``: the classic YOLOv5 ``val.py``. As ``ultralytics``, but with a
  single end sentinel (recall 1 at precision 0), so the envelope ramps down
  linearly from the last recall to recall 1 instead of dropping at once;
  it reads slightly higher when the last recall is well below 1.

Detections are matched to ground truth as COCO does: in falling score order,
each takes the unmatched ground-truth box of its class with the highest IoU
at or above the threshold; a second box on an already matched object is a
false positive.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np


class APConvention(enum.StrEnum):
    COCO101 = "coco101"
    VOC11 = "voc11"
    ALL_POINT = "all_point"
    ULTRALYTICS = "ultralytics"
    YOLOV5 = "yolov5"


CONVENTION_NOTES = {
    APConvention.COCO101: "COCO: envelope read at 101 recall points (step), mean",
    APConvention.VOC11: "VOC2007: envelope at 11 recall points, mean",
    APConvention.ALL_POINT: "VOC2010+: area under the envelope (all points)",
    APConvention.ULTRALYTICS: "ultralytics/YOLOv5 val: 101-point linear "
    "interpolation of the envelope, trapezoid rule",
    APConvention.YOLOV5: "classic YOLOv5 val.py: as ultralytics, envelope "
    "ramping to 0 at recall 1",
}

COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


@dataclass(frozen=True)
class RankedMatches:
    """Detections of one class over a whole set, best score first.

    ``tp`` has one column per IoU threshold: True where the detection matched
    an object at that threshold.
    """

    score: np.ndarray  # (n,)
    tp: np.ndarray  # (n, t) bool
    num_truth: int

    def curve(self, column: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Recall and precision after each detection, for one IoU column."""
        hits = self.tp[:, column].astype(np.float64)
        tp_cum = np.cumsum(hits)
        fp_cum = np.cumsum(1.0 - hits)
        recall = tp_cum / self.num_truth if self.num_truth else np.zeros_like(tp_cum)
        precision = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(float).eps)
        return recall, precision

    def ap(self, convention: APConvention, column: int = 0) -> float | None:
        """AP at one IoU column; None when there is no object (AP undefined)."""
        if self.num_truth == 0:
            return None
        recall, precision = self.curve(column)
        return average_precision(recall, precision, convention)

    def mean_ap(self, convention: APConvention) -> float | None:
        """AP averaged over all IoU columns (0.5:0.95 for the COCO columns)."""
        values = [self.ap(convention, c) for c in range(self.tp.shape[1])]
        if any(v is None for v in values):
            return None
        return float(np.mean(values))


def precision_envelope(precision: np.ndarray) -> np.ndarray:
    """Best precision at this point or any later one (higher recall)."""
    if precision.size == 0:
        return precision.astype(np.float64)
    return np.maximum.accumulate(precision[::-1].astype(np.float64))[::-1]


def average_precision(
    recall: np.ndarray, precision: np.ndarray, convention: APConvention
) -> float:
    """AP of one ranked curve (recall non-decreasing) under ``convention``."""
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if recall.shape != precision.shape:
        raise ValueError(
            f"recall and precision: expected the same shape, got {recall.shape} "
            f"and {precision.shape}"
        )
    if recall.size == 0:
        return 0.0
    if convention is APConvention.COCO101:
        return _sampled_step(recall, precision, np.linspace(0.0, 1.0, 101))
    if convention is APConvention.VOC11:
        return _sampled_step(recall, precision, np.linspace(0.0, 1.0, 11))
    if convention is APConvention.ALL_POINT:
        return _all_point(recall, precision)
    if convention is APConvention.ULTRALYTICS:
        return _interpolated_trapezoid(recall, precision, drop_at_end=True)
    if convention is APConvention.YOLOV5:
        return _interpolated_trapezoid(recall, precision, drop_at_end=False)
    raise ValueError(
        f"convention: expected one of {list(APConvention)}, got {convention}"
    )


def _sampled_step(
    recall: np.ndarray, precision: np.ndarray, points: np.ndarray
) -> float:
    envelope = precision_envelope(precision)
    # First detection whose recall reaches each point, as pycocotools does.
    index = np.searchsorted(recall, points, side="left")
    sampled = np.where(
        index < recall.size, envelope[np.minimum(index, recall.size - 1)], 0.0
    )
    return float(sampled.mean())


def _all_point(recall: np.ndarray, precision: np.ndarray) -> float:
    envelope = precision_envelope(precision)
    steps = np.diff(np.concatenate(([0.0], recall)))
    return float(np.sum(steps * envelope))


def _interpolated_trapezoid(
    recall: np.ndarray, precision: np.ndarray, *, drop_at_end: bool
) -> float:
    # Mirrors compute_ap of ultralytics.utils.metrics (drop_at_end) and of
    # YOLOv5's utils/metrics.py.
    if drop_at_end:
        padded_recall = np.concatenate(([0.0], recall, [recall[-1]], [1.0]))
        padded_precision = np.concatenate(([1.0], precision, [0.0], [0.0]))
    else:
        padded_recall = np.concatenate(([0.0], recall, [1.0]))
        padded_precision = np.concatenate(([1.0], precision, [0.0]))
    envelope = precision_envelope(padded_precision)
    points = np.linspace(0.0, 1.0, 101)
    values = np.interp(points, padded_recall, envelope)
    return float(np.sum((values[1:] + values[:-1]) / 2.0 * np.diff(points)))


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU of every pair of pixel boxes x1, y1, x2, y2: shape (len a, len b)."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    inter_w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(
        a[:, None, 0], b[None, :, 0]
    )
    inter_h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(
        a[:, None, 1], b[None, :, 1]
    )
    inter = np.clip(inter_w, 0, None) * np.clip(inter_h, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def match_image(
    truth_xyxy: np.ndarray,
    pred_xyxy: np.ndarray,
    pred_score: np.ndarray,
    iou_thresholds: np.ndarray = COCO_IOU_THRESHOLDS,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy COCO matching of one image and one class.

    Returns the detection order (falling score) and a (n, t) bool array of
    matches in that order, one column per IoU threshold.
    """
    order = np.argsort(-np.asarray(pred_score), kind="stable")
    thresholds = np.asarray(iou_thresholds, dtype=np.float64)
    tp = np.zeros((order.size, thresholds.size), dtype=bool)
    if order.size == 0 or len(truth_xyxy) == 0:
        return order, tp
    iou = box_iou(np.asarray(pred_xyxy)[order], truth_xyxy)
    for column, threshold in enumerate(thresholds):
        taken = np.zeros(iou.shape[1], dtype=bool)
        for row in range(order.size):
            candidates = np.where(taken, -1.0, iou[row])
            best = int(np.argmax(candidates))
            # pycocotools keeps a match when IoU >= threshold (minus 1e-10).
            if candidates[best] >= threshold - 1e-10:
                taken[best] = True
                tp[row, column] = True
    return order, tp


def rank_matches(
    per_image: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    iou_thresholds: np.ndarray = COCO_IOU_THRESHOLDS,
) -> RankedMatches:
    """Match every image of one class and rank all detections together.

    ``per_image`` holds (truth_xyxy, pred_xyxy, pred_score) for each image,
    including images without objects, whose detections are all false.
    """
    scores, flags, num_truth = [], [], 0
    for truth_xyxy, pred_xyxy, pred_score in per_image:
        order, tp = match_image(truth_xyxy, pred_xyxy, pred_score, iou_thresholds)
        scores.append(np.asarray(pred_score, dtype=np.float64)[order])
        flags.append(tp)
        num_truth += len(truth_xyxy)
    width = len(iou_thresholds)
    score = np.concatenate(scores) if scores else np.zeros(0)
    tp = np.concatenate(flags) if flags else np.zeros((0, width), dtype=bool)
    order = np.argsort(-score, kind="stable")
    return RankedMatches(score=score[order], tp=tp[order], num_truth=num_truth)
