"""The throw analyzer's second stage: a detector that vetoes look-alikes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import supervision as sv

from models.catalog import resolve_model
from tests.vision.analyze.support import run
from vision.analyze.fall_track import Sighting, Track
from vision.analyze.throw import ThrowAnalyzer
from vision.analyze.throw_second_stage import SecondStage, crop_around
from vision.config import (
    CameraConfig,
    SecondStageConfig,
    ThrowConfig,
    load_camera_file,
)
from vision.detect.detector import Detector
from vision.errors import ConfigError, FrameError, ModelLoadError
from vision.ingest.sources import VideoSource
from vision.pipeline import build_analyzers
from vision.types import Frame

BALL_CLIP = "throw_facade_ball_720p30.mp4"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAMES = ["person", "bird", "kite", "sports ball"]
Box = tuple[float, float, float, float]


@dataclass
class StubDetector:
    """Reports, for the i-th crop of each batch, the i-th row of ``boxes``
    (the last row again for the rest); a box given as None covers the crop."""

    boxes: list[list[tuple[Box | None, float, str]]]
    names: list[str] = field(default_factory=lambda: list(NAMES))
    batches: list[int] = field(default_factory=list)

    def detect_batch(
        self, images: Sequence[np.ndarray], *, min_score: float
    ) -> list[sv.Detections]:
        self.batches.append(len(images))
        rows = self.boxes + [self.boxes[-1]] * len(images)
        return [
            _detections(image, rows[i], min_score) for i, image in enumerate(images)
        ]


def _detections(
    image: np.ndarray, rows: list[tuple[Box | None, float, str]], min_score: float
) -> sv.Detections:
    height, width = image.shape[:2]
    kept = [row for row in rows if row[1] >= min_score]
    if not kept:
        return sv.Detections.empty()
    return sv.Detections(
        xyxy=np.array(
            [box or (0.0, 0.0, float(width), float(height)) for box, _, _ in kept],
            dtype=np.float32,
        ),
        confidence=np.array([score for _, score, _ in kept], dtype=np.float32),
        class_id=np.array([NAMES.index(name) for _, _, name in kept]),
        data={"class_name": np.array([name for _, _, name in kept])},
    )


BIRD_EVERYWHERE = [[(None, 0.9, "bird")]]
NOTHING: list[list[tuple[Box | None, float, str]]] = [[]]


def staged_camera(**stage: Any) -> CameraConfig:
    fields = {"model": "yolo11n-coco", "veto_classes": ["bird"], **stage}
    config = SecondStageConfig(**fields)
    return CameraConfig(camera_id="tower-7", throw=ThrowConfig(second_stage=config))


@pytest.fixture(scope="module")
def ball_frames(videos_dir: Path) -> list[Frame]:
    with VideoSource(str(videos_dir / BALL_CLIP)) as source:
        return list(source.frames(started_at=T0))


@pytest.fixture(scope="module")
def coco_loader(models_mirror: Path, tmp_path_factory: pytest.TempPathFactory):
    model_dir = tmp_path_factory.mktemp("models")

    def load(name: str) -> Detector:
        spec = resolve_model(name, model_dir=model_dir, mirror_dir=models_mirror)
        return Detector.from_file(
            spec.path, class_names=spec.class_names, input_size_px=spec.input_size_px
        )

    return load


# The camera file block.


def test_the_second_stage_is_off_by_default() -> None:
    camera = CameraConfig(camera_id="tower-7")

    assert camera.throw.second_stage is None
    assert ThrowAnalyzer(camera).second_stage is None


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            "{model: yolo11n-coco, veto_classes: [bird], veto_pct: 50}",
            "throw.second_stage.veto_pct: unknown key",
        ),
        ("{model: yolo11n-coco}", "throw.second_stage.veto_classes: Field required"),
        (
            "{model: yolo11n-coco, veto_classes: []}",
            "throw.second_stage.veto_classes: List should have at least 1 item",
        ),
        (
            "{model: yolo11n-coco, veto_classes: [bird], veto_share: 0}",
            "throw.second_stage.veto_share: Input should be greater than 0",
        ),
        (
            "{model: yolo11n-coco, veto_classes: [bird], crops: 40}",
            "throw.second_stage.crops: Input should be less than or equal to 16",
        ),
    ],
)
def test_a_wrong_second_stage_block_is_refused(
    tmp_path: Path, block: str, message: str
) -> None:
    path = tmp_path / "tower.yaml"
    path.write_text(f"camera_id: tower-7\nthrow:\n  second_stage: {block}\n")

    with pytest.raises(ConfigError, match=message):
        load_camera_file(path)


def test_a_second_stage_block_reads_with_its_defaults(tmp_path: Path) -> None:
    path = tmp_path / "tower.yaml"
    path.write_text(
        "camera_id: tower-7\n"
        "throw:\n"
        "  second_stage: {model: yolo11n-coco, veto_classes: [bird, kite]}\n"
    )

    stage = load_camera_file(path).throw.second_stage

    assert stage == SecondStageConfig(
        model="yolo11n-coco",
        veto_classes=["bird", "kite"],
        min_score=0.4,
        veto_share=0.5,
        crops=6,
    )


def test_a_veto_class_the_model_lacks_is_refused_at_start() -> None:
    camera = staged_camera(veto_classes=["bird", "pigeon"])

    with pytest.raises(ConfigError, match=r"veto_classes names pigeon.*yolo11n-coco"):
        ThrowAnalyzer(camera, second_stage=StubDetector(NOTHING))


def test_a_second_stage_without_its_detector_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"throw\.second_stage needs the detector"):
        ThrowAnalyzer(staged_camera())


# Vetoes on the real ball clip, with a stub detector.


def test_a_fall_the_detector_sees_as_a_bird_is_not_filed(
    ball_frames: list[Frame], caplog: pytest.LogCaptureFixture
) -> None:
    detector = StubDetector(BIRD_EVERYWHERE)
    analyzer = ThrowAnalyzer(staged_camera(), second_stage=detector)

    with caplog.at_level(logging.INFO, logger="vision.analyze.throw"):
        events = run(analyzer, ball_frames)

    assert events == []
    assert detector.batches == [6]
    assert analyzer.second_stage is not None and analyzer.second_stage.vetoed == 1
    vetoes = [r for r in caplog.records if "not filed" in r.getMessage()]
    assert len(vetoes) == 1
    assert vetoes[0].levelno == logging.INFO
    assert vetoes[0].name == "vision.analyze.throw.tower-7"
    assert "saw bird at the object in 6 of 6 crops (share 1.00)" in (
        vetoes[0].getMessage()
    )


def test_a_fall_the_detector_sees_nothing_in_is_filed(
    ball_frames: list[Frame],
) -> None:
    detector = StubDetector(NOTHING)

    events = run(ThrowAnalyzer(staged_camera(), second_stage=detector), ball_frames)

    assert len(events) == 1
    assert detector.batches == [6]
    assert events[0].details["second_stage"] == "passed"
    assert events[0].details["second_stage_crops"] == 6
    assert events[0].details["second_stage_seen"] is None


@pytest.mark.parametrize(
    ("boxes", "seen"),
    [
        # Birds in a third of the crops: less than the veto share.
        ([[(None, 0.9, "bird")], [(None, 0.9, "bird")], []], "bird"),
        # A bird in every crop, but away from the object.
        ([[((0.0, 0.0, 3.0, 3.0), 0.9, "bird")]], None),
        # A bird too weak to count; a ball the stage does not veto.
        ([[(None, 0.3, "bird"), (None, 0.8, "sports ball")]], "sports ball"),
    ],
)
def test_what_the_detector_does_not_recognise_at_the_object_is_filed(
    ball_frames: list[Frame], boxes, seen: str | None
) -> None:
    detector = StubDetector(boxes)

    events = run(ThrowAnalyzer(staged_camera(), second_stage=detector), ball_frames)

    assert len(events) == 1
    assert events[0].details["second_stage"] == "passed"
    assert events[0].details["second_stage_seen"] == seen


class FailingDetector(StubDetector):
    def detect_batch(
        self, images: Sequence[np.ndarray], *, min_score: float
    ) -> list[sv.Detections]:
        raise FrameError("model.onnx: inference failed on input [6, 3, 640, 640]")


def test_a_fall_is_filed_unchecked_when_the_detector_fails(
    ball_frames: list[Frame], caplog: pytest.LogCaptureFixture
) -> None:
    detector = FailingDetector(NOTHING)

    with caplog.at_level(logging.WARNING):
        events = run(ThrowAnalyzer(staged_camera(), second_stage=detector), ball_frames)

    assert len(events) == 1
    assert events[0].details["second_stage"] == "failed"
    assert "tower-7: throw second stage failed, fall filed unchecked" in caplog.text


def test_crops_are_kept_only_while_the_stage_is_on(
    ball_frames: list[Frame],
) -> None:
    off = ThrowAnalyzer(CameraConfig(camera_id="tower-7"))
    on = ThrowAnalyzer(staged_camera(), second_stage=StubDetector(NOTHING))
    kept = []
    for frame in ball_frames:
        off.process(frame)
        on.process(frame)
        assert on.second_stage is not None
        kept.append(on.second_stage.crops_kept)

    assert off.second_stage is None
    assert not any(hasattr(off, name) for name in ("_crops", "crops_kept"))
    assert max(kept) > 0
    assert on.second_stage is not None
    assert on.second_stage.crops_kept < max(kept)


# Keeping crops.


def _sighting(ts_s: float, x: float, y: float, size_px: float = 8.0) -> Sighting:
    half = size_px / 2
    return Sighting(
        ts_s=ts_s,
        captured_at=T0,
        x=x,
        y=y,
        size_px=size_px,
        contrast=40.0,
        bbox_xyxy=(x - half, y - half, x + half, y + half),
    )


def test_a_long_track_keeps_a_few_crops_spread_over_its_life() -> None:
    stage = SecondStage(
        staged_camera().throw.second_stage,  # type: ignore[arg-type]
        StubDetector(NOTHING),
        camera_id="tower-7",
    )
    image = np.zeros((360, 640, 3), np.uint8)
    track = Track(1)
    for i in range(100):
        track.add(_sighting(i / 25, 300.0, 10.0 + 3 * i), 400)
        stage.keep(image, [track], i / 25)

    assert stage.crops_kept <= 12
    crops = stage._crops_of(track.sightings)
    assert len(crops) == 6
    kept_ts = sorted(key[0] for key in stage._crops)
    assert kept_ts[0] == 0.0 and kept_ts[-1] >= 60 / 25

    stage.retain(set(), [])
    assert stage.crops_kept == 0


def test_crops_of_a_fall_waiting_to_be_filed_outlive_its_track() -> None:
    stage = SecondStage(
        staged_camera().throw.second_stage,  # type: ignore[arg-type]
        StubDetector(NOTHING),
        camera_id="tower-7",
    )
    image = np.zeros((360, 640, 3), np.uint8)
    first, second = Track(1), Track(2)
    for i in range(4):
        first.add(_sighting(i / 25, 300.0, 10.0 + 3 * i), 400)
        second.add(_sighting(i / 25, 100.0, 10.0 + 3 * i), 400)
        stage.keep(image, [first, second], i / 25)

    stage.retain({2}, first.sightings[:2])

    assert len(stage._crops_of(first.sightings)) == 2
    assert len(stage._crops_of(second.sightings)) == 4
    stage.retain({2}, [])
    assert len(stage._crops_of(first.sightings)) == 0


@pytest.mark.parametrize(
    ("xy", "size_px", "side", "object_xy"),
    [
        ((320.0, 180.0), 4.0, 32, (16.0, 16.0)),  # small: at least 32 px
        ((320.0, 180.0), 20.0, 80, (40.0, 40.0)),  # four times its size
        ((3.0, 350.0), 4.0, 32, (3.0, 22.0)),  # clipped into the frame
        ((320.0, 180.0), 300.0, 256, (128.0, 128.0)),  # never larger than 256
    ],
)
def test_a_crop_is_a_square_around_the_object_inside_the_frame(
    xy: tuple[float, float],
    size_px: float,
    side: int,
    object_xy: tuple[float, float],
) -> None:
    image = np.zeros((360, 640, 3), np.uint8)

    crop = crop_around(image, _sighting(0.0, *xy, size_px=size_px))

    assert crop.image.shape == (side, side, 3)
    assert crop.object_xy == object_xy


# The real detector, loaded by the pipeline.


@pytest.mark.slow
def test_the_ball_throw_is_filed_once_with_the_coco_stage_on(
    ball_frames: list[Frame], coco_loader
) -> None:
    camera = staged_camera(veto_classes=["bird"])
    analyzers = build_analyzers(camera, coco_loader)

    events = run(analyzers[0], ball_frames)  # type: ignore[arg-type]

    assert len(events) == 1
    assert events[0].details["second_stage"] == "passed"
    assert events[0].details["second_stage_crops"] == 6


def test_a_second_stage_model_that_cannot_load_stops_the_camera(
    tmp_path: Path, coco_loader
) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")

    where = r"camera tower-7: throw.second_stage.model: .*broken.onnx"
    with pytest.raises(ModelLoadError, match=where):
        build_analyzers(staged_camera(model=str(broken)), coco_loader)
