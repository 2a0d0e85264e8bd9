"""Still evidence: an annotated snapshot, and a throw's trajectory image.

Both are drawn on copies; the clip itself always stays as recorded, and the
review page draws outlines over it from the metadata record instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from vision.errors import FrameError
from vision.types import Event

JPEG_CONTENT_TYPE = "image/jpeg"

_FINDING_BGR = (0, 0, 255)
_ZONE_BGR = (0, 215, 255)
_TRACK_BGR = (255, 255, 0)
_ORIGIN_BGR = (0, 0, 255)


def draw_snapshot(
    image: np.ndarray,
    event: Event,
    *,
    zone_polygon_xy: Sequence[tuple[float, float]] | None = None,
) -> np.ndarray:
    """The frame with the zone outlined and the finding boxed and labelled."""
    canvas = image.copy()
    if zone_polygon_xy:
        points = np.round(np.asarray(zone_polygon_xy)).astype(np.int32)
        cv2.polylines(canvas, [points], isClosed=True, color=_ZONE_BGR, thickness=2)

    if event.bbox_xyxy is not None:
        x1, y1, x2, y2 = (round(v) for v in event.bbox_xyxy)
        pad = 6 if (x2 - x1) < 24 else 0  # tiny objects get a visible margin
        cv2.rectangle(
            canvas, (x1 - pad, y1 - pad), (x2 + pad, y2 + pad), _FINDING_BGR, 2
        )
        label = event.category.value
        if event.class_name:
            label += f" {event.class_name}"
        _put_label(canvas, label, (x1 - pad, y1 - pad))

    if event.trajectory:
        _draw_trajectory(canvas, event)
    return canvas


def draw_trajectory(image: np.ndarray, event: Event) -> np.ndarray:
    """The object's positions over the facade, with its origin marked."""
    canvas = image.copy()
    _draw_trajectory(canvas, event)
    if event.origin is not None:
        text = "origin"
        if event.origin.floor is not None:
            text += f" floor {event.origin.floor}"
        if event.origin.window is not None:
            text += f" window {event.origin.window}"
        _put_label(canvas, text, (round(event.origin.x) + 12, round(event.origin.y)))
    return canvas


def _draw_trajectory(canvas: np.ndarray, event: Event) -> None:
    points = np.array([(p.x, p.y) for p in event.trajectory], dtype=np.float64)
    if len(points) >= 2:
        cv2.polylines(canvas, [np.round(points).astype(np.int32)], False, _TRACK_BGR, 2)
    for x, y in np.round(points).astype(int):
        cv2.circle(canvas, (int(x), int(y)), 3, _TRACK_BGR, -1)
    if event.origin is not None:
        centre = (round(event.origin.x), round(event.origin.y))
        cv2.circle(canvas, centre, 10, _ORIGIN_BGR, 2)
        cv2.drawMarker(canvas, centre, _ORIGIN_BGR, cv2.MARKER_CROSS, 24, 2)


def _put_label(canvas: np.ndarray, text: str, anchor_xy: tuple[int, int]) -> None:
    """White text on a dark box above the anchor, kept inside the frame."""
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1
    (width, height), baseline = cv2.getTextSize(text, font, scale, thickness)
    frame_h, frame_w = canvas.shape[:2]
    x = min(max(anchor_xy[0], 0), max(frame_w - width - 4, 0))
    y = min(max(anchor_xy[1], height + baseline + 4), frame_h - 1)
    cv2.rectangle(
        canvas, (x, y - height - baseline - 4), (x + width + 4, y), (0, 0, 0), -1
    )
    cv2.putText(
        canvas,
        text,
        (x + 2, y - baseline - 2),
        font,
        scale,
        (255, 255, 255),
        thickness,
        cv2.LINE_AA,
    )


def encode_jpeg(image: np.ndarray, *, quality: int = 90) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise FrameError("snapshot cannot be JPEG-encoded")
    return encoded.tobytes()
