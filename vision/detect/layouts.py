"""Output layouts of ultralytics ONNX exports, and their decoding.

Four layouts exist in the field:

- anchor-free heads (YOLOv5u, v8, 11): ``(N, 4+nc, A)`` channels first, box
  ``cx, cy, w, h`` then class scores, no objectness; some tools hand the same
  data transposed as ``(N, A, 4+nc)``;
- the classic YOLOv5 head: ``(N, A, 5+nc)`` with an objectness column, score =
  objectness x class probability, ``A`` three times the anchor-free count;
- end-to-end exports with NMS inside: ``(N, K, 6)`` rows ``x1, y1, x2, y2,
  score, class``, padded with zeros up to a fixed ``K``.

The layout is recognised from the output shape and the class count, never by
assuming 80 classes; ambiguous shapes are settled by the anchor count expected
for the input size, and shapes that fit no layout are refused.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# ultralytics offsets boxes by class * MAX_WH for class-aware NMS and keeps at
# most MAX_NMS candidates per image; the same constants give the same boxes.
MAX_WH = 7680
MAX_NMS = 30000
DEFAULT_STRIDES = (8, 16, 32)


class OutputLayout(enum.Enum):
    ANCHOR_FREE = "anchor-free (N, 4+nc, A)"
    ANCHOR_FREE_TRANSPOSED = "anchor-free transposed (N, A, 4+nc)"
    YOLOV5_OBJECTNESS = "YOLOv5 with objectness (N, A, 5+nc)"
    END_TO_END = "end-to-end with NMS (N, K, 6)"


class LayoutError(ValueError):
    """An output tensor fits none of the known layouts."""


@dataclass(frozen=True)
class RawDetections:
    """Detections of one image in model-input pixels."""

    bbox_xyxy: np.ndarray  # (n, 4) float32
    score: np.ndarray  # (n,) float32
    class_id: np.ndarray  # (n,) int64

    @classmethod
    def empty(cls) -> RawDetections:
        return cls(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
        )


def anchor_count(
    input_hw: tuple[int, int], strides: Sequence[int] = DEFAULT_STRIDES
) -> int:
    """Anchor points of an anchor-free head for an input of ``input_hw``."""
    height, width = input_hw
    return sum(-(-height // s) * -(-width // s) for s in strides)


def recognise_layout(
    shape: Sequence[int],
    num_classes: int,
    input_hw: tuple[int, int] | None = None,
    *,
    end_to_end: bool | None = None,
) -> OutputLayout:
    """Tell the layout of a detection output of ``shape`` for ``num_classes``.

    ``end_to_end`` is the export's own statement (ONNX metadata), when known.
    Raises LayoutError saying what was found when no layout fits.
    """
    if len(shape) != 3:
        raise LayoutError(
            f"expected a 3-D detection output (batch, rows, columns), found shape "
            f"{list(shape)}"
        )
    _, dim1, dim2 = shape
    candidates = []
    if dim1 == 4 + num_classes:
        candidates.append(OutputLayout.ANCHOR_FREE)
    if dim2 == 4 + num_classes:
        candidates.append(OutputLayout.ANCHOR_FREE_TRANSPOSED)
    if dim2 == 5 + num_classes:
        candidates.append(OutputLayout.YOLOV5_OBJECTNESS)
    if dim2 == 6 and end_to_end is not False:
        candidates.append(OutputLayout.END_TO_END)
    if end_to_end and OutputLayout.END_TO_END in candidates:
        return OutputLayout.END_TO_END
    if len(candidates) > 1 and input_hw is not None:
        candidates = _narrow_by_anchor_count(candidates, shape, input_hw)
    if len(candidates) == 1:
        return candidates[0]

    found = f"output shape {list(shape)} with {num_classes} classes" + (
        f" for input {input_hw[0]}x{input_hw[1]}" if input_hw else ""
    )
    if not candidates:
        raise LayoutError(
            f"{found} fits no known layout: expected (N, {4 + num_classes}, A), "
            f"(N, A, {4 + num_classes}), (N, A, {5 + num_classes}) or (N, K, 6)"
        )
    names = ", ".join(c.value for c in candidates)
    raise LayoutError(f"{found} is ambiguous between {names}")


def _narrow_by_anchor_count(
    candidates: list[OutputLayout], shape: Sequence[int], input_hw: tuple[int, int]
) -> list[OutputLayout]:
    anchors = anchor_count(input_hw)
    rows = {
        OutputLayout.ANCHOR_FREE: shape[2] == anchors,
        OutputLayout.ANCHOR_FREE_TRANSPOSED: shape[1] == anchors,
        OutputLayout.YOLOV5_OBJECTNESS: shape[1] == 3 * anchors,
        # An end-to-end export keeps a fixed number of rows, whatever the size.
        OutputLayout.END_TO_END: shape[1] not in (anchors, 3 * anchors),
    }
    return [c for c in candidates if rows[c]]


def check_output(shape: Sequence[int], layout: OutputLayout, num_classes: int) -> None:
    """Raise LayoutError when a run's output no longer matches its layout."""
    width = {
        OutputLayout.ANCHOR_FREE: (1, 4 + num_classes),
        OutputLayout.ANCHOR_FREE_TRANSPOSED: (2, 4 + num_classes),
        OutputLayout.YOLOV5_OBJECTNESS: (2, 5 + num_classes),
        OutputLayout.END_TO_END: (2, 6),
    }[layout]
    if len(shape) != 3 or shape[width[0]] != width[1]:
        raise LayoutError(
            f"output shape {list(shape)} does not match the model's layout "
            f"{layout.value} with {num_classes} classes"
        )


def decode(
    output: np.ndarray,
    layout: OutputLayout,
    num_classes: int,
    *,
    min_score: float,
    nms_iou: float,
    max_det: int,
) -> RawDetections:
    """Decode one image's output (no batch axis) into boxes in input pixels.

    Scores must exceed ``min_score`` (strictly, as ultralytics does), and
    boxes must have an area. Boxes of
    the same class overlapping by more than ``nms_iou`` are suppressed; NMS is
    skipped for end-to-end exports, which already ran it.
    """
    output = np.asarray(output, dtype=np.float32)
    if layout is OutputLayout.END_TO_END:
        return _decode_end_to_end(output, min_score, max_det)
    if layout is OutputLayout.YOLOV5_OBJECTNESS:
        boxes_xywh, score, class_id = _best_class_with_objectness(
            output, num_classes, min_score
        )
    else:
        rows = output if layout is OutputLayout.ANCHOR_FREE else output.T
        boxes_xywh, score, class_id = _best_class(rows, num_classes, min_score)
    # A box without area (or with NaN) is no object, whatever its score;
    # padding rows and dead anchors look like this.
    solid = (boxes_xywh[:, 2] > 0) & (boxes_xywh[:, 3] > 0) & np.isfinite(score)
    boxes_xywh, score, class_id = boxes_xywh[solid], score[solid], class_id[solid]
    if score.size == 0:
        return RawDetections.empty()
    bbox_xyxy = xywh_to_xyxy(boxes_xywh)
    keep = class_aware_nms(bbox_xyxy, score, class_id, nms_iou, max_det)
    return RawDetections(bbox_xyxy[keep], score[keep], class_id[keep])


def _best_class(
    channels_first: np.ndarray, num_classes: int, min_score: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = channels_first[4 : 4 + num_classes]
    candidate = np.flatnonzero(scores.max(axis=0) > min_score)
    class_scores = scores[:, candidate]
    class_id = class_scores.argmax(axis=0)
    score = class_scores[class_id, np.arange(candidate.size)]
    boxes = channels_first[:4, candidate].T
    return boxes, score, class_id.astype(np.int64)


def _best_class_with_objectness(
    rows: np.ndarray, num_classes: int, min_score: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # As YOLOv5's NMS: objectness first, then objectness x class probability.
    rows = rows[rows[:, 4] > min_score]
    class_scores = rows[:, 5 : 5 + num_classes] * rows[:, 4:5]
    class_id = class_scores.argmax(axis=1)
    score = class_scores[np.arange(rows.shape[0]), class_id]
    keep = score > min_score
    return rows[keep, :4], score[keep], class_id[keep].astype(np.int64)


def _decode_end_to_end(
    rows: np.ndarray, min_score: float, max_det: int
) -> RawDetections:
    solid = (rows[:, 2] > rows[:, 0]) & (rows[:, 3] > rows[:, 1])
    rows = rows[(rows[:, 4] > min_score) & solid][:max_det]
    return RawDetections(
        np.ascontiguousarray(rows[:, :4]),
        rows[:, 4].copy(),
        rows[:, 5].astype(np.int64),
    )


def xywh_to_xyxy(boxes_xywh: np.ndarray) -> np.ndarray:
    out = np.empty_like(boxes_xywh, dtype=np.float32)
    half_w = boxes_xywh[:, 2] / 2
    half_h = boxes_xywh[:, 3] / 2
    out[:, 0] = boxes_xywh[:, 0] - half_w
    out[:, 1] = boxes_xywh[:, 1] - half_h
    out[:, 2] = boxes_xywh[:, 0] + half_w
    out[:, 3] = boxes_xywh[:, 1] + half_h
    return out


def class_aware_nms(
    bbox_xyxy: np.ndarray,
    score: np.ndarray,
    class_id: np.ndarray,
    iou_threshold: float,
    max_det: int,
) -> np.ndarray:
    """Indices kept by greedy NMS per class, best first, at most ``max_det``.

    Mirrors ultralytics: at most MAX_NMS best candidates, classes separated
    by offsetting boxes with class * MAX_WH (in float32, as torch does), and a
    box is dropped when its IoU with a kept one is greater than the threshold.
    """
    order = np.argsort(-score, kind="stable")[:MAX_NMS]
    boxes = bbox_xyxy[order].astype(np.float32) + (
        class_id[order, None].astype(np.float32) * np.float32(MAX_WH)
    )
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    remaining = np.arange(order.size)
    keep: list[int] = []
    while remaining.size and len(keep) < max_det:
        best, rest = remaining[0], remaining[1:]
        keep.append(int(best))
        inter_w = np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(
            boxes[best, 0], boxes[rest, 0]
        )
        inter_h = np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(
            boxes[best, 1], boxes[rest, 1]
        )
        inter = np.clip(inter_w, 0, None) * np.clip(inter_h, 0, None)
        iou = inter / (area[best] + area[rest] - inter)
        remaining = rest[~(iou > iou_threshold)]
    return order[np.asarray(keep, dtype=np.int64)]
