"""The evidence writer: turns an event and its frames into stored evidence.

For each event it cuts a clip (pre-roll + post-roll, as much as the source
holds), draws a snapshot of the finding, for a throw a trajectory image, and
writes a metadata record that lets a viewer draw the outline over the
untouched clip. Every object's SHA-256, size and content type goes into the
record and onto the event; objects the store could not take are marked
``pending`` or ``missing`` with the reason, never dropped silently.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

from vision.config import CameraConfig
from vision.errors import StoreError
from vision.evidence.clip import CLIP_CONTENT_TYPE, write_clip
from vision.evidence.snapshot import (
    JPEG_CONTENT_TYPE,
    draw_snapshot,
    draw_trajectory,
    encode_jpeg,
)
from vision.evidence.store import ObjectStore
from vision.ingest.ring import BufferedFrame
from vision.types import (
    Category,
    Event,
    EvidenceItem,
    EvidenceKind,
    EvidenceState,
)

logger = logging.getLogger(__name__)

METADATA_CONTENT_TYPE = "application/json"


def evidence_prefix(event: Event) -> str:
    """Object keys group evidence by camera, day and event."""
    day = event.started_at.strftime("%Y/%m/%d")
    return f"{event.camera_id}/{day}/{event.event_id}"


class EvidenceWriter:
    def __init__(self, store: ObjectStore, *, jpeg_quality: int = 90) -> None:
        self._store = store
        self._jpeg_quality = jpeg_quality

    def write(
        self,
        event: Event,
        frames: Sequence[BufferedFrame],
        camera: CameraConfig,
    ) -> Event:
        """Store the evidence of ``event`` and return it with its items."""
        if not frames:
            logger.error(
                "camera %s: no frames held for event %s; its evidence is missing",
                event.camera_id,
                event.event_id,
            )
            return event.model_copy(
                update={"evidence": [missing_clip(event, "no frames were held")]}
            )

        prefix = evidence_prefix(event)
        clip_start_ts_s = frames[0].ts_s
        event = event.model_copy(update={"clip_start_ts_s": clip_start_ts_s})
        items = [self._put_clip(prefix, frames)]

        key_frame = _frame_nearest(frames, _snapshot_ts_s(event))
        image = key_frame.decode()
        zone = camera.zone(event.zone).polygon_xy if event.zone else None
        snapshot = draw_snapshot(image, event, zone_polygon_xy=zone)
        items.append(
            self._put_jpeg(prefix, EvidenceKind.SNAPSHOT, "snapshot.jpg", snapshot)
        )

        if event.category is Category.THROW and event.trajectory:
            first = _frame_nearest(frames, event.started_ts_s).decode()
            items.append(
                self._put_jpeg(
                    prefix,
                    EvidenceKind.TRAJECTORY,
                    "trajectory.jpg",
                    draw_trajectory(first, event),
                )
            )

        record = metadata_record(event, items, frames, zone)
        items.append(
            self._put(
                f"{prefix}/metadata.json",
                EvidenceKind.METADATA,
                json.dumps(record, indent=1).encode(),
                METADATA_CONTENT_TYPE,
            )
        )
        return event.model_copy(update={"evidence": items})

    def _put_clip(self, prefix: str, frames: Sequence[BufferedFrame]) -> EvidenceItem:
        key = f"{prefix}/clip.mp4"
        with tempfile.TemporaryDirectory(prefix="citywatch-clip-") as tmp:
            path = Path(tmp) / "clip.mp4"
            write_clip(frames, path)
            return self._put(key, EvidenceKind.CLIP, path, CLIP_CONTENT_TYPE)

    def _put_jpeg(self, prefix, kind, name, image) -> EvidenceItem:
        data = encode_jpeg(image, quality=self._jpeg_quality)
        return self._put(f"{prefix}/{name}", kind, data, JPEG_CONTENT_TYPE)

    def _put(
        self, key: str, kind: EvidenceKind, data: bytes | Path, content_type: str
    ) -> EvidenceItem:
        try:
            if isinstance(data, Path):
                stored = self._store.put_file(key, data, content_type)
            else:
                stored = self._store.put_bytes(key, data, content_type)
        except StoreError as exc:
            logger.error("evidence %s could not be kept: %s", key, exc)
            return EvidenceItem(
                kind=kind,
                key=key,
                content_type=content_type,
                state=EvidenceState.MISSING,
                reason=str(exc),
            )
        return EvidenceItem(
            kind=kind,
            key=key,
            content_type=content_type,
            sha256=stored.sha256,
            size_bytes=stored.size_bytes,
            state=getattr(stored, "state", EvidenceState.STORED),
            reason=getattr(stored, "reason", None),
        )


def metadata_record(
    event: Event,
    items: Sequence[EvidenceItem],
    frames: Sequence[BufferedFrame],
    zone_polygon_xy: Sequence[tuple[float, float]] | None,
) -> dict:
    """What a viewer needs to draw the finding over the clip, times in clip seconds.

    ``event_offset_s`` is where the finding starts in the clip, so a player
    can open the clip there.
    """
    start = frames[0].ts_s
    return {
        "event_id": event.event_id,
        "camera_id": event.camera_id,
        "category": event.category.value,
        "rule": event.rule,
        "zone": event.zone,
        "zone_polygon_xy": [list(p) for p in zone_polygon_xy or []],
        "class_name": event.class_name,
        "score": event.score,
        "started_at": event.started_at.isoformat(),
        "clip": {
            "start_ts_s": start,
            "duration_s": frames[-1].ts_s - start,
            "frames": len(frames),
            "event_offset_s": max(0.0, event.started_ts_s - start),
            "event_end_s": max(0.0, event.ended_ts_s - start),
        },
        "boxes": [
            {"t_s": round(box.ts_s - start, 3), "bbox_xyxy": list(box.bbox_xyxy)}
            for box in event.boxes
        ],
        "trajectory": [
            {"t_s": round(p.ts_s - start, 3), "x": p.x, "y": p.y}
            for p in event.trajectory
        ],
        "origin": event.origin.model_dump() if event.origin else None,
        "objects": [
            item.model_dump(
                mode="json",
                include={
                    "kind",
                    "key",
                    "content_type",
                    "sha256",
                    "size_bytes",
                    "state",
                },
            )
            for item in items
        ],
    }


def _snapshot_ts_s(event: Event) -> float:
    """The moment the snapshot shows: when the finding had the drawn box."""
    for box in event.boxes:
        if event.bbox_xyxy is not None and box.bbox_xyxy == event.bbox_xyxy:
            return box.ts_s
    return min(event.detected_ts_s, event.ended_ts_s)


def _frame_nearest(frames: Sequence[BufferedFrame], ts_s: float) -> BufferedFrame:
    return min(frames, key=lambda f: abs(f.ts_s - ts_s))


def missing_clip(event: Event, reason: str) -> EvidenceItem:
    """The clip an event should have had, recorded as missing with why."""
    return EvidenceItem(
        kind=EvidenceKind.CLIP,
        key=f"{evidence_prefix(event)}/clip.mp4",
        content_type=CLIP_CONTENT_TYPE,
        state=EvidenceState.MISSING,
        reason=reason,
    )
