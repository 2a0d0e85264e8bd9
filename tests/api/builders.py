"""Builders for the service tests: events as a camera worker files them."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from vision.evidence.objects import ObjectStore
from vision.types import Category, Event, EvidenceItem, EvidenceKind, EvidenceState

STARTED_AT = datetime(2026, 5, 4, 8, 30, tzinfo=UTC)
_places = itertools.count()


def next_place() -> tuple[int, tuple[float, float, float, float]]:
    """A new track id and a box that overlaps no other builder's box (so each
    event is a new place unless a test says otherwise)."""
    n = next(_places)
    x1 = 10.0 + (n % 20) * 90.0
    y1 = 10.0 + (n // 20 % 12) * 60.0
    return 1000 + n, (x1, y1, x1 + 72.0, y1 + 56.0)


def make_event(**overrides: Any) -> Event:
    """An illegal-parking event with no evidence, at a new place each time;
    fields can be overridden."""
    track_id, bbox_xyxy = next_place()
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "camera_id": "plaza-north",
        "area_path": "old-town/riverside/grid-07",
        "category": Category.ILLEGAL_PARKING,
        "rule": "fire-lane-parking",
        "zone": "fire-lane",
        "score": 0.87,
        "class_name": "car",
        "track_id": track_id,
        "started_ts_s": 4.0,
        "ended_ts_s": 16.0,
        "detected_ts_s": 14.0,
        "started_at": STARTED_AT,
        "detected_at": STARTED_AT + timedelta(seconds=10),
        "bbox_xyxy": bbox_xyxy,
    }
    fields.update(overrides)
    return Event(**fields)


def store_evidence(
    store: ObjectStore, event_id: str, clip: Path, snapshot: Path
) -> list[EvidenceItem]:
    """Put a clip, a snapshot and a metadata record in the store, as the
    evidence writer does, and return the event's evidence items."""
    objects = {
        EvidenceKind.CLIP: store.put_file(f"{event_id}/clip.mp4", clip, "video/mp4"),
        EvidenceKind.SNAPSHOT: store.put_file(
            f"{event_id}/snapshot.jpg", snapshot, "image/jpeg"
        ),
        EvidenceKind.METADATA: store.put_bytes(
            f"{event_id}/metadata.json", b'{"boxes": []}', "application/json"
        ),
    }
    return [
        EvidenceItem(
            kind=kind,
            key=stored.key,
            content_type=stored.content_type,
            sha256=stored.sha256,
            size_bytes=stored.size_bytes,
            state=EvidenceState.STORED,
        )
        for kind, stored in objects.items()
    ]
