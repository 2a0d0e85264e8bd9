"""Where motion never stops: a hint that something sits on the lens.

Street scenes move in bursts. A spider web, a moth or a drop of water near
the lens moves all night in the same part of the picture. The watched region is cut
into a coarse grid; a cell counts as constantly moving once motion has shown
in it without a quiet spell for ``constant_after_s`` of stream time. A corner
cell in that state raises a lens-obstruction warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from vision.analyze.motion import MotionResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HealthWarning:
    kind: str
    message: str
    region_xyxy: tuple[float, float, float, float]
    since_ts_s: float
    duration_s: float


class MotionHealth:
    """Per-cell record of how long motion has gone on without a pause."""

    def __init__(
        self,
        region_xyxy: tuple[int, int, int, int],
        *,
        grid_wh: tuple[int, int] = (4, 4),
        constant_after_s: float = 600.0,
        quiet_gap_s: float = 10.0,
        active_fraction: float = 0.002,
    ) -> None:
        self.region_xyxy = region_xyxy
        self.grid_wh = grid_wh
        self.constant_after_s = constant_after_s
        self.quiet_gap_s = quiet_gap_s
        self.active_fraction = active_fraction
        shape = (grid_wh[1], grid_wh[0])
        self._since_ts_s = np.full(shape, np.nan)
        self._last_active_ts_s = np.full(shape, np.nan)
        self._warned: set[tuple[int, int]] = set()

    def update(self, ts_s: float, result: MotionResult) -> None:
        """Record one analysed frame; vetoed frames say nothing about cells."""
        if result.mask is None or result.veto is not None:
            return
        cells = cv2.resize(
            result.mask, self.grid_wh, interpolation=cv2.INTER_AREA
        ).astype(float)
        active = cells / 255.0 > self.active_fraction

        quiet = ts_s - self._last_active_ts_s > self.quiet_gap_s
        self._since_ts_s[quiet] = np.nan
        self._last_active_ts_s[active] = ts_s
        starting = active & np.isnan(self._since_ts_s)
        self._since_ts_s[starting] = ts_s
        self._log_new_warnings()

    def constant_regions(self) -> list[tuple[float, float, float, float]]:
        return [self._cell_box(row, col) for row, col in self._constant_cells()]

    def warnings(self) -> list[HealthWarning]:
        found = []
        for row, col in self._constant_cells():
            since = float(self._since_ts_s[row, col])
            duration = float(self._last_active_ts_s[row, col]) - since
            corner = row in (0, self.grid_wh[1] - 1) and col in (0, self.grid_wh[0] - 1)
            kind = "lens_obstruction" if corner else "constant_motion"
            message = (
                f"motion has not stopped for {duration / 60:.0f} min in a corner "
                "of the view: something may sit on or near the lens"
                if corner
                else f"motion has not stopped for {duration / 60:.0f} min here"
            )
            found.append(
                HealthWarning(kind, message, self._cell_box(row, col), since, duration)
            )
        return found

    def _constant_cells(self) -> list[tuple[int, int]]:
        duration = self._last_active_ts_s - self._since_ts_s
        rows, cols = np.nonzero(
            np.nan_to_num(duration, nan=0.0) >= self.constant_after_s
        )
        return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True)]

    def _cell_box(self, row: int, col: int) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = self.region_xyxy
        cell_w, cell_h = (x2 - x1) / self.grid_wh[0], (y2 - y1) / self.grid_wh[1]
        return (
            x1 + col * cell_w,
            y1 + row * cell_h,
            x1 + (col + 1) * cell_w,
            y1 + (row + 1) * cell_h,
        )

    def _log_new_warnings(self) -> None:
        for cell in self._constant_cells():
            if cell not in self._warned:
                self._warned.add(cell)
                logger.warning(
                    "constant motion for %.0f s in region %s",
                    self.constant_after_s,
                    self._cell_box(*cell),
                )
