"""The values that flow between pipeline stages.

Frames travel on the hot path and are plain dataclasses. Events and evidence
cross process and network boundaries (worker → ticket sink → API) and are
pydantic models, so they serialise to JSON the same way everywhere.

Times: ``*_ts_s`` are stream time in seconds, taken from the container's
timestamps and counted from the first frame of the source session; ``*_at``
are UTC datetimes. Boxes are pixel ``x1, y1, x2, y2`` in the frame's own
resolution.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import numpy as np
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame of a camera.

    ``image`` is HxWx3 uint8 BGR. ``ts_s`` is its presentation time in stream
    seconds; ``captured_at`` is the wall-clock time it stands for (the session
    start plus ``ts_s`` for recordings, the arrival time for live streams).
    """

    image: np.ndarray
    ts_s: float
    index: int
    captured_at: datetime
    corrupt: bool = False
    # The decoder's own luma plane, when the video carried one: motion
    # analysis works on grey and takes it as it is instead of converting the
    # colour picture back. Studio-range luma (16-235) is flagged so that
    # contrasts can be read on the full 0-255 scale.
    luma: np.ndarray | None = None
    luma_studio_range: bool = False

    @property
    def resolution_wh(self) -> tuple[int, int]:
        height, width = self.image.shape[:2]
        return width, height


class Category(StrEnum):
    """What a ticket is about. Rules name one of these in camera files."""

    THROW = "throw"
    ILLEGAL_PARKING = "illegal_parking"
    STREET_VENDING = "street_vending"
    GARBAGE = "garbage"
    ROAD_DAMAGE = "road_damage"
    CROWD = "crowd"
    LOITERING = "loitering"
    CAMERA_FAULT = "camera_fault"


class EvidenceKind(StrEnum):
    CLIP = "clip"
    SNAPSHOT = "snapshot"
    TRAJECTORY = "trajectory"
    METADATA = "metadata"


class EvidenceState(StrEnum):
    """Where one piece of evidence is.

    ``pending`` is spooled locally while the upload is retried; ``missing``
    could not be kept at all, and an alarm said why.
    """

    STORED = "stored"
    PENDING = "pending"
    MISSING = "missing"


# Whole numbers are stored as 64-bit integers by every database we run on.
_BIGINT_MAX = 2**63 - 1
# A camera clock outside these years is broken. Refusing its times keeps the
# date arithmetic of filing (duplicate windows, deadlines) within range.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def plausible_time(value: datetime) -> datetime:
    """``value`` when a working clock could show it; ValueError otherwise."""
    if not _EARLIEST <= value < _LATEST:
        raise ValueError(f"{value.isoformat()} is outside 1970-2199")
    return value


# Wall-clock times carry their zone; stream times are finite and within
# decades of the session's start.
WallTime = Annotated[AwareDatetime, AfterValidator(plausible_time)]
StreamSeconds = Annotated[float, Field(ge=-1e9, le=1e9, allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class TimedBox(_Model):
    """Where the finding was at one moment, for drawing over the clip."""

    ts_s: StreamSeconds
    bbox_xyxy: tuple[float, float, float, float]


class TrajectoryPoint(_Model):
    ts_s: StreamSeconds
    x: float
    y: float


class Origin(_Model):
    """Where a thrown object came from, in image pixels and on the facade."""

    x: float
    y: float
    floor: int | None = None
    window: int | None = None
    traced_back: bool = Field(
        default=False,
        description="True when the point was extrapolated along the fitted "
        "trajectory because the object was first seen already falling.",
    )


class EvidenceItem(_Model):
    kind: EvidenceKind
    key: str = Field(description="Object key in the evidence store.")
    content_type: str
    sha256: str | None = None
    size_bytes: int | None = Field(default=None, ge=0, le=_BIGINT_MAX)
    state: EvidenceState = EvidenceState.STORED
    reason: str | None = Field(
        default=None, description="Why the item is pending or missing."
    )


class Event(_Model):
    """What a rule or analyzer found, with the evidence that shows it.

    ``event_id`` is the idempotency key of the ticket it files: a retry of
    the same event never makes a second ticket.
    """

    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    camera_id: str
    area_path: str = ""
    category: Category
    rule: str = Field(description="Name of the rule or analyzer that fired.")
    zone: str | None = None
    score: float = Field(ge=0.0, le=1.0, default=1.0)
    class_name: str | None = None
    track_id: int | None = Field(default=None, ge=-_BIGINT_MAX - 1, le=_BIGINT_MAX)
    started_ts_s: StreamSeconds
    ended_ts_s: StreamSeconds
    detected_ts_s: StreamSeconds = Field(
        description="Stream time at which the rule decided; time to alert is "
        "this minus started_ts_s."
    )
    started_at: WallTime
    detected_at: WallTime = Field(default_factory=lambda: datetime.now(UTC))
    bbox_xyxy: tuple[float, float, float, float] | None = None
    boxes: list[TimedBox] = Field(default_factory=list)
    trajectory: list[TrajectoryPoint] = Field(default_factory=list)
    origin: Origin | None = None
    evidence: list[EvidenceItem] = Field(default_factory=list)
    clip_start_ts_s: StreamSeconds | None = Field(
        default=None,
        description="Stream time of the clip's first frame; times in the "
        "metadata record are relative to it.",
    )
    details: dict[str, float | int | str | None] = Field(default_factory=dict)

    @property
    def evidence_state(self) -> EvidenceState:
        """The worst state of any evidence item: what the ticket shows."""
        states = {item.state for item in self.evidence}
        if EvidenceState.MISSING in states:
            return EvidenceState.MISSING
        if EvidenceState.PENDING in states:
            return EvidenceState.PENDING
        return EvidenceState.STORED
