"""The throw analyzer's optional second stage: a detector looks at the object.

The physics test passes whatever falls like a dropped object, and a bird
diving past the facade or a kite on a gust can. With a ``second_stage``
block in the camera file, the analyzer keeps small crops of the objects it
tracks, and a fall that passed physics is shown to an ONNX detector, crops
from several frames in one batch, before it is filed. When enough crops show
a look-alike class (``veto_classes``) at the object, the fall is vetoed.

The stage only vetoes what it recognises: an object too small or blurred to
be recognised shows nothing and is filed as before. Crops are kept only while
the stage is on, a few per track, evenly spread over the track's life, and
dropped once the analyzer has no further use for the track.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from vision.analyze.fall_track import Sighting, Track
from vision.config import CameraConfig, SecondStageConfig
from vision.errors import CitywatchError, ConfigError

if TYPE_CHECKING:
    # Only the detector's result type: importing supervision itself costs a
    # throw-only camera worker some 90 MB it would never use.
    import supervision as sv

logger = logging.getLogger(__name__)

# A crop is this many times the object's size on each side, so the detector
# sees its outline and a little of what is around it, and never less than
# this many pixels, or the detector has nothing to go on.
_CROP_SIZES = 4.0
_MIN_CROP_PX = 32
_MAX_CROP_PX = 256
# Crops kept per track, as a multiple of the crops a fall is judged on: a
# fall is usually only part of its track (the rest before, the landing).
_KEPT_PER_CROP = 2

Key = tuple[float, float, float]


class CropDetector(Protocol):
    """What the stage needs of a detector: ``vision.detect.detector.Detector``."""

    names: list[str]

    def detect_batch(
        self, images: Sequence[np.ndarray], *, min_score: float
    ) -> list[sv.Detections]: ...


@dataclass(frozen=True, slots=True)
class Crop:
    """A copy of the frame around one sighting; ``object_xy`` in crop pixels."""

    image: np.ndarray
    object_xy: tuple[float, float]


@dataclass(frozen=True, slots=True)
class StageVerdict:
    """What the detector saw at the object of one fall."""

    crops: int
    veto_crops: int
    veto_class: str | None
    seen: list[str]
    vetoed: bool
    failed: bool = False

    @property
    def veto_share(self) -> float:
        return self.veto_crops / self.crops if self.crops else 0.0

    def details(self) -> dict[str, float | int | str | None]:
        """For the event: what the stage looked at and what it saw."""
        if self.failed:
            outcome = "failed"
        elif not self.crops:
            outcome = "no_crops"
        else:
            outcome = "vetoed" if self.vetoed else "passed"
        return {
            "second_stage": outcome,
            "second_stage_crops": self.crops,
            "second_stage_seen": ", ".join(self.seen) or None,
            "second_stage_veto_share": round(self.veto_share, 2),
        }


@dataclass(slots=True)
class _TrackCrops:
    """Crops of one track: every ``stride``-th sighting, thinned when full."""

    stride: int = 1
    sightings: int = 0
    keys: list[Key] = field(default_factory=list)


class SecondStage:
    """Keeps crops of tracked objects and judges a fall's crops at filing."""

    def __init__(
        self, config: SecondStageConfig, detector: CropDetector, *, camera_id: str
    ) -> None:
        unknown = [name for name in config.veto_classes if name not in detector.names]
        if unknown:
            raise ConfigError(
                f"camera {camera_id}: throw.second_stage.veto_classes names "
                f"{', '.join(unknown)}, which model {config.model} does not have "
                f"(model classes: {', '.join(detector.names[:12])}, ...)"
            )
        self.config = config
        self.detector = detector
        self.camera_id = camera_id
        self.vetoed = 0
        self._per_track = _KEPT_PER_CROP * config.crops
        self._tracks: dict[int, _TrackCrops] = {}
        self._crops: dict[Key, tuple[int, Crop]] = {}
        self._orphans = False

    @property
    def crops_kept(self) -> int:
        return len(self._crops)

    def keep(self, image: np.ndarray, tracks: Iterable[Track], ts_s: float) -> None:
        """Crop the sightings these tracks made in the frame at ``ts_s``."""
        for track in tracks:
            sighting = track.last
            if sighting.ts_s != ts_s:
                continue
            state = self._tracks.setdefault(track.track_id, _TrackCrops())
            state.sightings += 1
            if (state.sightings - 1) % state.stride:
                continue
            key = _key(sighting)
            self._crops[key] = (track.track_id, crop_around(image, sighting))
            state.keys.append(key)
            if len(state.keys) > self._per_track:
                self._thin(state)

    def retain(self, track_ids: set[int], sightings: Iterable[Sighting]) -> None:
        """Forget the crops of other tracks, except those of these sightings.

        A fall waiting to be filed may include parts of tracks the analyzer
        no longer keeps: its own sightings hold their crops.
        """
        if not self._orphans and all(i in track_ids for i in self._tracks):
            return
        wanted = {_key(s) for s in sightings}
        self._tracks = {i: s for i, s in self._tracks.items() if i in track_ids}
        self._crops = {
            key: entry
            for key, entry in self._crops.items()
            if entry[0] in self._tracks or key in wanted
        }
        self._orphans = any(i not in self._tracks for i, _ in self._crops.values())

    def judge(self, sightings: list[Sighting]) -> StageVerdict:
        """Run the detector on the fall's crops; vetoed if it sees a look-alike."""
        crops = self._crops_of(sightings)
        if not crops:
            return StageVerdict(0, 0, None, [], vetoed=False)
        try:
            detections = self.detector.detect_batch(
                [crop.image for crop in crops], min_score=self.config.min_score
            )
        except CitywatchError as exc:
            # A throw is filed unchecked rather than lost: a reviewer rejects
            # a false alarm, nobody recovers a missed throw.
            logger.warning(
                "camera %s: throw second stage failed, fall filed unchecked: %s",
                self.camera_id,
                exc,
                extra={"camera_id": self.camera_id},
            )
            return StageVerdict(len(crops), 0, None, [], vetoed=False, failed=True)
        return self._verdict(crops, detections)

    def _verdict(
        self, crops: list[Crop], detections: list[sv.Detections]
    ) -> StageVerdict:
        veto = set(self.config.veto_classes)
        seen: Counter[str] = Counter()
        vetoes: Counter[str] = Counter()
        veto_crops = 0
        for crop, found in zip(crops, detections, strict=True):
            names = classes_at(found, crop.object_xy)
            seen.update(names)
            vetoes.update(names & veto)
            veto_crops += bool(names & veto)
        vetoed = veto_crops >= self.config.veto_share * len(crops)
        self.vetoed += vetoed
        return StageVerdict(
            crops=len(crops),
            veto_crops=veto_crops,
            veto_class=vetoes.most_common(1)[0][0] if vetoes else None,
            seen=[name for name, _ in seen.most_common()],
            vetoed=vetoed,
        )

    def _crops_of(self, sightings: list[Sighting]) -> list[Crop]:
        """Up to ``crops`` kept crops of these sightings, evenly spread."""
        found = [self._crops.get(_key(s)) for s in sightings]
        crops = [entry[1] for entry in found if entry is not None]
        if len(crops) <= self.config.crops:
            return crops
        picks = np.linspace(0, len(crops) - 1, self.config.crops).round().astype(int)
        return [crops[i] for i in picks]

    def _thin(self, state: _TrackCrops) -> None:
        """Drop every other crop and take every other sighting from now on."""
        for key in state.keys[1::2]:
            self._crops.pop(key, None)
        state.keys = state.keys[::2]
        state.stride *= 2


def second_stage_for(
    camera: CameraConfig, detector: CropDetector | None
) -> SecondStage | None:
    """The stage a camera file asks for, with its detector; None when off."""
    config = camera.throw.second_stage
    if config is None:
        if detector is not None:
            raise ValueError(
                f"second_stage: camera {camera.camera_id} has no "
                "throw.second_stage block to run this detector for"
            )
        return None
    if detector is None:
        raise ConfigError(
            f"camera {camera.camera_id}: throw.second_stage needs the detector "
            f"of model {config.model}; vision.pipeline.build_analyzers loads it"
        )
    return SecondStage(config, detector, camera_id=camera.camera_id)


def crop_around(image: np.ndarray, sighting: Sighting) -> Crop:
    """A square around the sighting, a few times its size, inside the frame."""
    height, width = image.shape[:2]
    side = int(min(max(_CROP_SIZES * sighting.size_px, _MIN_CROP_PX), _MAX_CROP_PX))
    side = min(side, width, height)
    x0 = int(min(max(round(sighting.x - side / 2), 0), width - side))
    y0 = int(min(max(round(sighting.y - side / 2), 0), height - side))
    patch = image[y0 : y0 + side, x0 : x0 + side].copy()
    return Crop(patch, (float(sighting.x - x0), float(sighting.y - y0)))


def classes_at(detections: sv.Detections, xy: tuple[float, float]) -> set[str]:
    """Classes of the detections whose box holds the point ``xy``."""
    if len(detections) == 0:
        return set()
    x, y = xy
    x1, y1, x2, y2 = np.asarray(detections.xyxy, dtype=np.float32).T
    inside = (x1 <= x) & (x <= x2) & (y1 <= y) & (y <= y2)
    names = detections.data["class_name"][inside]
    return {str(name) for name in names}


def _key(sighting: Sighting) -> Key:
    return (sighting.ts_s, sighting.x, sighting.y)
