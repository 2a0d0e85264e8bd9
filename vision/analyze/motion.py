"""Motion proposals for small fast objects on a facade.

Each frame is cropped to the watched region, turned grey and shrunk by a whole
factor chosen so that the smallest object still covers one full working pixel
(a 3 px object always covers one 2x2 block, so halving costs no recall). It is
compared with a running background whose learning rate is set in seconds of
stream time, against a per-pixel threshold that follows how much each pixel
usually flickers (leaves, compression noise on edges), so busy places ask for
more contrast than a plain wall.

Frames whose whole picture changes (rain, lights) or shifts (camera shake,
see ``camera_motion``) are vetoed: they yield no proposals and the
background re-learns quickly, for a settling time after a shake. Near-repeated
frames (left by frame-rate conversion) carry no new information and are
reported as repeats, so a tracker never sees an object stand still for a frame.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from vision.analyze.camera_motion import CameraMotionDetector

logger = logging.getLogger(__name__)

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Blob:
    """One moving spot, in full-frame pixels.

    ``clutter`` is how often its neighbourhood moved lately (0-1): high in a
    swaying tree, low on a still wall.
    """

    x: float
    y: float
    bbox_xyxy: tuple[float, float, float, float]
    area_px: float
    contrast: float
    clutter: float = 0.0

    @property
    def size_px(self) -> float:
        x1, y1, x2, y2 = self.bbox_xyxy
        return max(x2 - x1, y2 - y1)


@dataclass(frozen=True, slots=True)
class MotionResult:
    """What one frame showed: blobs, or why it was left out."""

    blobs: list[Blob]
    changed_fraction: float
    veto: str | None = None
    repeat: bool = False
    mask: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class MotionSettings:
    min_object_px: float = 3.0
    # An object falling close to the camera, or blurred by its own speed,
    # spans tens of pixels across; only blobs wider than this in both
    # directions (a person, a car) are never a thrown object.
    max_object_px: float = 120.0
    background_tau_s: float = 1.0
    deviation_tau_s: float = 4.0
    warmup_s: float = 0.3
    min_contrast: float = 10.0
    strong_contrast: float = 18.0
    deviation_gain: float = 3.5
    veto_changed_fraction: float = 0.12
    # After the camera moved, edges stay smeared in the background until it
    # has re-learnt the picture.
    shake_settle_s: float = 0.5
    veto_blob_count: int = 150
    repeat_ratio: float = 0.4
    clutter_cell_px: int = 12
    clutter_tau_s: float = 2.0
    clutter_memory_s: float = 60.0
    max_clutter: float = 0.3


class MotionProposer:
    """Background subtraction on the watched region at reduced resolution."""

    def __init__(
        self,
        resolution_wh: tuple[int, int],
        region_polygon_xy: list[Point] | None = None,
        settings: MotionSettings | None = None,
    ) -> None:
        self.settings = settings or MotionSettings()
        self.resolution_wh = resolution_wh
        _width, _height = resolution_wh
        self.factor = _work_factor(resolution_wh, self.settings.min_object_px)
        self._roi_xyxy = _region_box(region_polygon_xy, resolution_wh, self.factor)
        x1, y1, x2, y2 = self._roi_xyxy
        self.work_wh = ((x2 - x1) // self.factor, (y2 - y1) // self.factor)
        self._region_mask = _region_mask(
            region_polygon_xy, self._roi_xyxy, self.factor, self.work_wh
        )
        self._region_pixels = max(1, int(cv2.countNonZero(self._region_mask)))
        self._kernel = np.ones((3, 3), np.uint8)

        self._background: np.ndarray | None = None
        self._deviation: np.ndarray | None = None
        self._threshold: np.ndarray | None = None
        self._previous: np.ndarray | None = None
        self._last_ts_s: float | None = None
        self._learn_until_ts_s = -math.inf
        self._frame_change: deque[float] = deque(maxlen=15)
        cell = self.settings.clutter_cell_px
        self._clutter_wh = (
            max(1, self.work_wh[0] // cell),
            max(1, self.work_wh[1] // cell),
        )
        self._clutter = np.zeros(self._clutter_wh[::-1], np.float32)
        self._coverage = np.zeros_like(self._clutter)
        self._blob_share = np.zeros_like(self._clutter)
        self._clutter_frames = 0
        self._camera = CameraMotionDetector()

    def propose(
        self, image: np.ndarray, ts_s: float, *, studio_range: bool = False
    ) -> MotionResult:
        """Find moving blobs in one frame (BGR or grey, full resolution).

        ``studio_range`` says a grey image is a decoder's luma on the 16-235
        scale; it is stretched to 0-255 so that contrasts mean the same as on
        a converted colour picture.
        """
        grey = self._work_image(image)
        if studio_range:
            grey = cv2.LUT(grey, _STUDIO_TO_FULL)
        if self._background is None:
            self._start(grey, ts_s)
            return MotionResult([], 0.0, veto="warmup")

        last_ts_s = ts_s if self._last_ts_s is None else self._last_ts_s
        dt_s = max(ts_s - last_ts_s, 1e-3)
        if self._is_repeat(grey):
            return MotionResult([], 0.0, repeat=True)
        self._last_ts_s = ts_s

        assert self._threshold is not None
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(self._background))
        low = cv2.compare(diff, self._threshold, cv2.CMP_GT)
        low = cv2.bitwise_and(low, self._region_mask)
        changed_fraction = cv2.countNonZero(low) / self._region_pixels

        veto = None
        if self._camera.update(grey).moved:
            veto = "camera_motion"
            self._learn_until_ts_s = ts_s + self.settings.shake_settle_s
        elif ts_s < self._learn_until_ts_s:
            veto = "warmup"
        elif changed_fraction > self.settings.veto_changed_fraction:
            veto = "global_change"
            # The picture as a whole changed (lights, shake): learn it fast
            # instead of reporting half the frame as moving for seconds.
            self._learn_until_ts_s = ts_s + self.settings.warmup_s
        blobs: list[Blob] = []
        if veto is None:
            try:
                blobs = self._blobs(low, diff, dt_s)
            except _TooManyBlobs:
                veto = "too_many_blobs"

        self._learn(grey, diff, low, dt_s, fast=veto is not None)
        return MotionResult(blobs, changed_fraction, veto=veto, mask=low)

    @property
    def region_xyxy(self) -> tuple[int, int, int, int]:
        """The part of the frame analysed, in full-frame pixels."""
        return self._roi_xyxy

    def full_res_box(self, x: int, y: int, w: int, h: int) -> tuple[float, ...]:
        """A working-resolution box in full-frame pixels."""
        f = self.factor
        x0, y0 = self._roi_xyxy[:2]
        return (x0 + x * f, y0 + y * f, x0 + (x + w) * f, y0 + (y + h) * f)

    def _work_image(self, image: np.ndarray) -> np.ndarray:
        x1, y1, x2, y2 = self._roi_xyxy
        crop = image[y1:y2, x1:x2]
        if crop.ndim == 3 and crop.shape[2] == 3:
            crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        elif crop.ndim == 3:
            crop = crop[:, :, 0]
        if self.factor == 1:
            return np.ascontiguousarray(crop)
        return cv2.resize(crop, self.work_wh, interpolation=cv2.INTER_AREA)

    def _start(self, grey: np.ndarray, ts_s: float) -> None:
        self._background = grey.astype(np.float32)
        self._deviation = np.full(grey.shape, 2.0, np.float32)
        self._threshold = self._threshold_from(self._deviation)
        self._previous = grey
        self._last_ts_s = ts_s
        self._learn_until_ts_s = ts_s + self.settings.warmup_s

    def _is_repeat(self, grey: np.ndarray) -> bool:
        """A frame that repeats the previous one almost exactly."""
        assert self._previous is not None
        change = float(cv2.norm(grey, self._previous, cv2.NORM_L1)) / grey.size
        self._previous = grey
        typical = float(np.median(self._frame_change)) if self._frame_change else 0.0
        if typical > 0 and change < self.settings.repeat_ratio * typical:
            return True
        self._frame_change.append(change)
        return False

    def _update_clutter(
        self, moving: np.ndarray, dt_s: float, blob_cells: tuple[np.ndarray, ...]
    ) -> None:
        """Follow how busy each cell is, two ways; the busier one counts.

        Coverage: the share of recent frames in which motion filled a good
        part of the cell (foliage in a gust). It is a running mean at first,
        so a tree counts as clutter from the first frames.

        Blobs: whether strong blobs keep turning up in the cell. Once the
        per-pixel thresholds have learnt how much a tree flickers, its motion
        mask turns sparse and coverage fades, yet it still throws up small
        blobs in the same cells, frame after frame, and more in every gust.
        This share rises in a couple of seconds and fades over a minute, so a
        tree that rests between gusts stays known. A falling object passes
        through a cell in a frame or two, which raises it by a few hundredths.
        """
        settings = self.settings
        cells = cv2.resize(moving, self._clutter_wh, interpolation=cv2.INTER_AREA)
        covered = (cells > 0.06 * 255).astype(np.float32)
        self._clutter_frames += 1
        beta = max(
            1.0 - math.exp(-dt_s / settings.clutter_tau_s), 1.0 / self._clutter_frames
        )
        cv2.accumulateWeighted(covered, self._coverage, beta)

        seen = np.zeros_like(self._blob_share)
        seen[blob_cells] = 1.0
        rise = 1.0 - math.exp(-dt_s / settings.clutter_tau_s)
        fade = 1.0 - math.exp(-dt_s / settings.clutter_memory_s)
        rate = np.where(seen > self._blob_share, rise, fade).astype(np.float32)
        self._blob_share += rate * (seen - self._blob_share)
        np.maximum(self._coverage, self._blob_share, out=self._clutter)

    def clutter_at(self, x: float, y: float) -> float:
        """How often the place at full-frame (x, y) moved lately, 0-1."""
        x0, y0 = self._roi_xyxy[:2]
        cell = self.settings.clutter_cell_px * self.factor
        col = min(max(int((x - x0) // cell), 0), self._clutter_wh[0] - 1)
        row = min(max(int((y - y0) // cell), 0), self._clutter_wh[1] - 1)
        return float(self._clutter[row, col])

    def _blobs(self, low: np.ndarray, diff: np.ndarray, dt_s: float) -> list[Blob]:
        strong = cv2.bitwise_and(
            cv2.compare(diff, self._strong_threshold(), cv2.CMP_GT), low
        )
        if not cv2.countNonZero(strong):
            self._update_clutter(low, dt_s, _NO_CELLS)
            return []
        # Label only the part of the picture that moved: labelling costs by
        # area, and motion on a facade is usually a few small spots.
        x, y, w, h = cv2.boundingRect(low)
        joined = cv2.dilate(low[y : y + h, x : x + w], self._kernel)
        count, labels, stats, centroids = cv2.connectedComponentsWithStats(
            joined, connectivity=8, ltype=cv2.CV_16U
        )
        strong = strong[y : y + h, x : x + w]
        strong_labels = labels[strong > 0].astype(np.intp)
        peak = np.zeros(count, np.float32)
        np.maximum.at(
            peak,
            strong_labels,
            diff[y : y + h, x : x + w][strong > 0].astype(np.float32),
        )
        stats[:, 0] += x
        stats[:, 1] += y
        # The background label has no centroid when the crop is all motion.
        centroids = np.nan_to_num(centroids) + np.array([x, y], float)
        moving = self._moving(stats, peak)
        self._update_clutter(low, dt_s, self._cells_of(centroids[moving]))
        if moving.size > self.settings.veto_blob_count:
            raise _TooManyBlobs
        labels_kept = moving[self._calm(centroids[moving])]
        return [
            self._blob(stats[label], centroids[label], peak[label])
            for label in labels_kept
        ]

    def _moving(self, stats: np.ndarray, peak: np.ndarray) -> np.ndarray:
        """Labels of strong blobs small enough to be a thrown object.

        Busy places included: a frame full of them (rain, a tree in a gust)
        is vetoed as a whole, and each marks its cell as busy.
        """
        # Dilation grew each blob by a working pixel on each side.
        sizes = np.maximum(stats[:, 2:4] - 2, 1) * self.factor
        small = sizes.min(axis=1) <= self.settings.max_object_px
        return np.flatnonzero((peak > 0) & small)

    def _cells_of(self, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Clutter-map rows and columns of working-pixel centroids."""
        cell = self.settings.clutter_cell_px
        cols = np.clip(centroids[:, 0] // cell, 0, self._clutter_wh[0] - 1)
        rows = np.clip(centroids[:, 1] // cell, 0, self._clutter_wh[1] - 1)
        return rows.astype(np.intp), cols.astype(np.intp)

    def _calm(self, centroids: np.ndarray) -> np.ndarray:
        """Which of these centroids lie outside busy places."""
        return self._clutter[self._cells_of(centroids)] <= self.settings.max_clutter

    def _blob(self, stat: np.ndarray, centroid: np.ndarray, peak: float) -> Blob:
        x, y, w, h, area = (int(v) for v in stat)
        box = self.full_res_box(x, y, w, h)
        f = self.factor
        x0, y0 = self._roi_xyxy[:2]
        x = x0 + (centroid[0] + 0.5) * f - 0.5
        y = y0 + (centroid[1] + 0.5) * f - 0.5
        return Blob(
            x=x,
            y=y,
            clutter=self.clutter_at(x, y),
            bbox_xyxy=(box[0] + f, box[1] + f, box[2] - f, box[3] - f),
            area_px=float(area) * f * f,
            contrast=float(peak),
        )

    def _strong_threshold(self) -> np.ndarray:
        assert self._threshold is not None
        extra = self.settings.strong_contrast - self.settings.min_contrast
        return cv2.add(self._threshold, max(0, int(extra)))

    def _learn(
        self,
        grey: np.ndarray,
        diff: np.ndarray,
        moving: np.ndarray,
        dt_s: float,
        *,
        fast: bool,
    ) -> None:
        assert self._background is not None and self._deviation is not None
        tau_s = self.settings.background_tau_s / (8.0 if fast else 1.0)
        alpha = 1.0 - math.exp(-dt_s / tau_s)
        still = cv2.bitwise_not(moving) if not fast else None
        cv2.accumulateWeighted(grey, self._background, alpha, mask=still)
        if not fast:
            # Moving pixels still learn, slowly, so a change that stays (a
            # light left on, a parked object) fades into the background.
            cv2.accumulateWeighted(grey, self._background, alpha / 10.0, mask=moving)
        beta = 1.0 - math.exp(-dt_s / self.settings.deviation_tau_s)
        cv2.accumulateWeighted(diff, self._deviation, beta * (4.0 if fast else 1.0))
        self._threshold = self._threshold_from(self._deviation)

    def _threshold_from(self, deviation: np.ndarray) -> np.ndarray:
        # One saturating pass to 8 bits, then the floor and the ceiling.
        threshold = cv2.convertScaleAbs(deviation, alpha=self.settings.deviation_gain)
        threshold = cv2.max(threshold, self.settings.min_contrast)
        return cv2.min(threshold, 250)


_NO_CELLS = (np.zeros(0, np.intp), np.zeros(0, np.intp))
_STUDIO_TO_FULL = np.clip(
    np.round((np.arange(256) - 16) * 255.0 / 219.0), 0, 255
).astype(np.uint8)


class _TooManyBlobs(Exception):
    """Raised inside blob extraction when a frame must be vetoed."""


def _work_factor(resolution_wh: tuple[int, int], min_object_px: float) -> int:
    """Largest shrink that keeps one fully covered pixel of the smallest object.

    An object of n pixels always covers a whole block of f pixels when
    f <= (n + 1) / 2; small frames are not shrunk below about 320 columns.
    """
    width, _ = resolution_wh
    factor = max(1, int((min_object_px + 1) // 2))
    while factor > 1 and width // factor < 320:
        factor -= 1
    return factor


def _region_box(
    polygon_xy: list[Point] | None, resolution_wh: tuple[int, int], factor: int
) -> tuple[int, int, int, int]:
    width, height = resolution_wh
    if not polygon_xy:
        x1, y1, x2, y2 = 0, 0, width, height
    else:
        points = np.asarray(polygon_xy, dtype=float)
        x1 = max(0, int(points[:, 0].min()))
        y1 = max(0, int(points[:, 1].min()))
        x2 = min(width, math.ceil(points[:, 0].max()))
        y2 = min(height, math.ceil(points[:, 1].max()))
    # Whole working pixels only.
    x2 = x1 + max(factor, (x2 - x1) // factor * factor)
    y2 = y1 + max(factor, (y2 - y1) // factor * factor)
    return x1, y1, min(x2, width), min(y2, height)


def _region_mask(
    polygon_xy: list[Point] | None,
    roi_xyxy: tuple[int, int, int, int],
    factor: int,
    work_wh: tuple[int, int],
) -> np.ndarray:
    mask = np.zeros((work_wh[1], work_wh[0]), np.uint8)
    if not polygon_xy:
        mask[:] = 255
        return mask
    points = (np.asarray(polygon_xy, dtype=float) - roi_xyxy[:2]) / factor
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 255)
    return mask
