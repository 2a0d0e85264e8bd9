"""Did the camera itself move between two frames?

A shaking pole or a gust against the housing shifts the whole picture by a
pixel or a few. Background subtraction then reports every edge of the facade
as moving, and chains of those edge blobs can look like anything, falls
included. A change in lighting is caught by the share of changed pixels; a
shift is not always, because a facade of plain walls changes only along its
edges.

The shift is estimated the Lucas-Kanade way, once per tile of a coarse grid,
from image gradients at half the working resolution or less (a shift of a
few working pixels stays in the range where the linear estimate holds). The
camera moved when most textured tiles agree on one clear shift. Walkers,
cars and swaying trees move parts of the picture in different directions,
or leave most tiles still, so they do not count as camera motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True, slots=True)
class CameraShift:
    """The picture's shift since the previous frame, in working pixels."""

    dx: float
    dy: float
    agreeing_share: float
    moved: bool

    @property
    def magnitude(self) -> float:
        return float(np.hypot(self.dx, self.dy))


class CameraMotionDetector:
    """Compares each frame with the one before it, tile by tile."""

    def __init__(
        self,
        *,
        grid_wh: tuple[int, int] = (4, 3),
        min_shift_px: float = 0.5,
        min_agreeing_share: float = 0.6,
        max_width_px: int = 360,
    ) -> None:
        self.grid_wh = grid_wh
        self.max_width_px = max_width_px
        self.min_shift_px = min_shift_px
        self.min_agreeing_share = min_agreeing_share
        self._previous: np.ndarray | None = None
        self._gradients: tuple[np.ndarray, np.ndarray] | None = None

    def update(self, grey: np.ndarray) -> CameraShift:
        """Shift of ``grey`` (a working-resolution image) from the last one."""
        small, scale = _shrunk(grey, self.max_width_px)
        small = small.astype(np.float32)
        previous, gradients = self._previous, self._gradients
        self._previous = small
        self._gradients = _gradients(small)
        if previous is None or gradients is None or previous.shape != small.shape:
            return CameraShift(0.0, 0.0, 0.0, False)

        shifts, textured = self._tile_shifts(previous, small, gradients)
        if not textured.any():
            return CameraShift(0.0, 0.0, 0.0, False)
        shifts = shifts[textured] * scale
        dx, dy = np.median(shifts, axis=0)
        tolerance = max(0.5 * float(np.hypot(dx, dy)), self.min_shift_px)
        agreeing = np.hypot(shifts[:, 0] - dx, shifts[:, 1] - dy) <= tolerance
        clear = np.hypot(shifts[:, 0], shifts[:, 1]) >= self.min_shift_px
        share = float(np.mean(agreeing & clear))
        return CameraShift(
            float(dx), float(dy), share, share >= self.min_agreeing_share
        )

    def _tile_shifts(
        self,
        previous: np.ndarray,
        current: np.ndarray,
        gradients: tuple[np.ndarray, np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray]:
        """One Lucas-Kanade shift per tile, and which tiles have texture."""
        ix, iy = gradients
        it = current - previous
        # Tile sums of the normal-equation terms, as tile means.
        # OpenCV resizes at most four channels at once, so one term at a time.
        sxx, sxy, syy, sxt, syt = (
            cv2.resize(term, self.grid_wh, interpolation=cv2.INTER_AREA).ravel()
            for term in (ix * ix, ix * iy, iy * iy, ix * it, iy * it)
        )
        det = sxx * syy - sxy * sxy
        # A tile of plain wall or sky cannot show a shift either way.
        textured = (det > 1e-3) & (np.minimum(sxx, syy) > 0.5)
        safe = np.where(textured, det, 1.0)
        dx = -(syy * sxt - sxy * syt) / safe
        dy = -(sxx * syt - sxy * sxt) / safe
        return np.stack([dx, dy], axis=1), textured

    def reset(self) -> None:
        self._previous = None
        self._gradients = None


def _shrunk(grey: np.ndarray, max_width_px: int) -> tuple[np.ndarray, float]:
    """Halve once, and again while wider than ``max_width_px``.

    Returns the image and how many working pixels one of its pixels spans.
    A shake of a few pixels in a large frame stays within the linear range
    of the estimate at the coarser level, and costs a quarter as much.
    """
    small, scale = cv2.pyrDown(grey), 2.0
    while small.shape[1] > max_width_px:
        small, scale = cv2.pyrDown(small), scale * 2.0
    return small, scale


def _gradients(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (
        cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8),
        cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8),
    )
