"""Camera files: what one camera is, where it looks, and which rules run.

A camera file is YAML (or JSON) parsed into ``CameraConfig``. Unknown keys are
refused, so a typo never silently turns a rule off, and every quantity carries
its unit in its name (``dwell_s``, ``polygon_xy`` in pixels).

Example::

    camera_id: plaza-north
    name: Plaza, north corner
    area_path: old-town/riverside/grid-07
    source: rtsp://camera-17.local/stream1
    model: yolo11n-coco
    zones:
      - name: fire-lane
        polygon_xy: [[600, 30], [768, 30], [768, 120], [600, 120]]
    rules:
      - name: fire-lane-parking
        kind: dwell
        category: illegal_parking
        zone: fire-lane
        classes: [car, truck, bus, motorcycle]
        dwell_s: 10
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vision.errors import ConfigError
from vision.types import Category

Point = tuple[float, float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Zone(_Strict):
    name: str = Field(min_length=1)
    polygon_xy: list[Point] = Field(
        min_length=3, description="Polygon corners in frame pixels, x then y."
    )

    def check_inside(self, resolution_wh: tuple[int, int]) -> None:
        """Refuse a zone that reaches outside a frame of this size."""
        width, height = resolution_wh
        for x, y in self.polygon_xy:
            if not (0 <= x <= width and 0 <= y <= height):
                raise ConfigError(
                    f"zone {self.name!r}: point ({x:g}, {y:g}) lies outside the "
                    f"{width}x{height} frame"
                )


class DetectorConfig(_Strict):
    input_size_px: int | None = Field(
        default=None,
        gt=0,
        description="Long side of the model input; default from the catalog.",
    )
    min_score: float = Field(default=0.25, ge=0.0, le=1.0)
    nms_iou: float = Field(default=0.45, gt=0.0, le=1.0)
    sample_fps: float = Field(
        default=5.0,
        gt=0.0,
        description="Frames per second of stream time given to the detector.",
    )


class DwellRule(_Strict):
    """Objects of some classes staying inside a zone longer than ``dwell_s``.

    The dwell counts from zone entry whether the object moves or not; a gap in
    detections shorter than ``gap_tolerance_s`` (occlusion, a missed frame)
    neither resets it nor starts a second event.
    """

    kind: Literal["dwell"] = "dwell"
    name: str = Field(min_length=1)
    category: Category
    zone: str
    classes: list[str] = Field(min_length=1)
    min_score: float = Field(default=0.3, ge=0.0, le=1.0)
    dwell_s: float = Field(gt=0.0)
    gap_tolerance_s: float = Field(default=30.0, ge=0.0)
    class_window_s: float = Field(
        default=1.0,
        gt=0.0,
        description="A track's class is the majority over at least this long.",
    )


Rule = DwellRule


class SecondStageConfig(_Strict):
    """A detector that looks at a fall's object before it is filed.

    Physics lets through whatever falls like a dropped object; a diving bird
    or a kite can. When this block is present, the detector runs once on
    crops of the object from several frames of a fall that passed, and the
    fall is not filed when enough of them show a look-alike class at the
    object. It only vetoes what it recognises: an object too small or too
    blurred to be recognised is filed as before.
    """

    model: str = Field(
        min_length=1, description="Catalog name or ONNX path of the detector."
    )
    veto_classes: list[str] = Field(
        min_length=1,
        description="Model classes that are look-alikes, not thrown objects "
        "(bird, kite, ...).",
    )
    min_score: float = Field(
        default=0.4, ge=0.0, le=1.0, description="Lowest score of a veto detection."
    )
    veto_share: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="Share of the crops that must show a veto class at the object.",
    )
    crops: int = Field(
        default=6,
        ge=1,
        le=16,
        description="Crops of the object, from as many frames, given to the "
        "detector in one batch.",
    )


class ThrowConfig(_Strict):
    enabled: bool = True
    facade_polygon_xy: list[Point] | None = Field(
        default=None,
        description="The facade region watched for throws; the whole frame "
        "when absent.",
    )
    floor_lines_y: list[float] = Field(
        default_factory=list,
        description="Image rows of the floor boundaries, top floor first.",
    )
    top_floor: int | None = Field(
        default=None, description="Floor number above the first floor line."
    )
    window_columns_x: list[float] = Field(
        default_factory=list,
        description="Image columns of window boundaries, left to right.",
    )
    vertical_vanishing_point_xy: Point | None = Field(
        default=None,
        description="Where the facade's vertical edges meet when extended "
        "(image pixels, usually above the frame). Give it for a camera that "
        "looks steeply up: falls then count as downward along those lines "
        "rather than straight down the image.",
    )
    min_fall_s: float = Field(default=0.3, gt=0.0)
    preroll_s: float = Field(default=5.0, ge=0.0)
    postroll_s: float = Field(default=2.0, ge=0.0)
    second_stage: SecondStageConfig | None = Field(
        default=None,
        description="A detector that vetoes look-alikes among the falls; off "
        "when absent.",
    )


class ClipConfig(_Strict):
    """Clips of street findings; throws have their own in ``ThrowConfig``."""

    preroll_s: float = Field(default=5.0, ge=0.0)
    postroll_s: float = Field(default=3.0, ge=0.0)
    max_clip_s: float = Field(
        default=20.0,
        gt=0.0,
        description="Longest clip; a long dwell keeps its last seconds.",
    )


class CameraConfig(_Strict):
    camera_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    name: str = ""
    area_path: str = Field(
        default="",
        description="Area hierarchy, slash-separated: street office / "
        "community / grid.",
    )
    source: str | None = None
    model: str | None = Field(
        default=None, description="Catalog name or path of the detector model."
    )
    detector: DetectorConfig = DetectorConfig()
    zones: list[Zone] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    throw: ThrowConfig = ThrowConfig()
    clip: ClipConfig = ClipConfig()
    resolution_wh: tuple[int, int] | None = Field(
        default=None, description="Expected frame size; checked at start."
    )
    reference_view: str | None = Field(
        default=None,
        description="Image of the calibrated view, to notice a camera turned "
        "away from it.",
    )

    @model_validator(mode="after")
    def _rules_name_known_zones(self) -> CameraConfig:
        zone_names = [zone.name for zone in self.zones]
        if len(set(zone_names)) != len(zone_names):
            raise ValueError("zone names must be unique")
        for rule in self.rules:
            if rule.zone not in zone_names:
                raise ValueError(
                    f"rule {rule.name!r} names zone {rule.zone!r}, which is not "
                    f"defined (zones: {', '.join(zone_names) or 'none'})"
                )
        if self.rules and not self.model:
            raise ValueError("rules need a detector: set 'model'")
        return self

    def zone(self, name: str) -> Zone:
        return next(zone for zone in self.zones if zone.name == name)

    def check_frame_size(self, resolution_wh: tuple[int, int]) -> None:
        """Refuse zones or calibration that do not fit the camera's frames."""
        zones = list(self.zones)
        if self.throw.facade_polygon_xy:
            zones.append(Zone(name="facade", polygon_xy=self.throw.facade_polygon_xy))
        try:
            for zone in zones:
                zone.check_inside(resolution_wh)
        except ConfigError as exc:
            # A fleet has many camera files: say whose zone it is.
            raise ConfigError(f"camera {self.camera_id}: {exc}") from None

    @classmethod
    def default_for(cls, source: str) -> CameraConfig:
        """What ``watch`` uses without a camera file: throws on the whole frame."""
        stem = Path(source).stem if "://" not in source else "camera"
        camera_id = "".join(c if c.isalnum() or c in "._-" else "-" for c in stem)
        return cls(camera_id=camera_id.strip("-._") or "camera", source=source)


def load_camera_file(path: str | Path) -> CameraConfig:
    """Read and validate a camera file; every problem is a ``ConfigError``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"camera file {path}: not found") from None
    except OSError as exc:
        raise ConfigError(f"camera file {path}: {exc.strerror}") from exc

    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        # YAML's own message spans lines with a picture of the spot; one
        # line is what a fleet's log needs.
        where = " ".join(str(exc).split())
        raise ConfigError(f"camera file {path}: not valid YAML/JSON: {where}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"camera file {path}: expected a mapping at the top")

    try:
        return CameraConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"camera file {path}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    """One line per problem, with the key path: 'rules.0.dwel_s: unknown key'."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "value_error":
            # A check across fields ("rule X names no zone Y"): its own words.
            message = message.removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
