"""Zone membership of detections.

An object is in a zone when its anchor point lies inside the zone's polygon.
The anchor is the bottom centre of the box: for vehicles and people that is
where they touch the ground, so a car whose roof overlaps a no-parking strip
drawn on the road behind it is not counted as standing on it.
"""

from __future__ import annotations

import numpy as np
import supervision as sv

from vision.config import Zone


class ZoneArea:
    """A camera zone that answers which detections stand inside it."""

    def __init__(
        self, zone: Zone, anchor: sv.Position = sv.Position.BOTTOM_CENTER
    ) -> None:
        self.zone = zone
        self.anchor = anchor
        polygon = np.round(np.asarray(zone.polygon_xy, dtype=float)).astype(int)
        self._polygon_zone = sv.PolygonZone(
            polygon=polygon, triggering_anchors=(anchor,)
        )

    @property
    def name(self) -> str:
        return self.zone.name

    def contains(self, detections: sv.Detections) -> np.ndarray:
        """One bool per detection: is its anchor point inside the zone?"""
        if len(detections) == 0:
            return np.zeros(0, dtype=bool)
        return np.asarray(self._polygon_zone.trigger(detections), dtype=bool)

    def contains_box(self, bbox_xyxy: tuple[float, float, float, float]) -> bool:
        box = sv.Detections(xyxy=np.asarray([bbox_xyxy], dtype=float))
        return bool(self.contains(box)[0])
