"""Dwell rules over scripted detections: one event per real object.

A stub detector returns boxes from a script of stream time (or from the
frame's pixels), so each case states exactly what the detector saw; the
tracker, the object registry and the rule are the real ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest
import supervision as sv

from vision.analyze.rules import MAX_EVENT_BOXES, ObjectRegistry
from vision.analyze.street import StreetAnalyzer
from vision.config import CameraConfig
from vision.sink import MemorySink
from vision.types import Category, Event, Frame

COCO_SUBSET = ["person", "bicycle", "car", "motorcycle", "bus", "truck"]
SESSION_START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)

Box = tuple[tuple[float, float, float, float], str, float]
Script = Callable[[float, np.ndarray], list[Box]]


def make_detections(boxes: list[Box]) -> sv.Detections:
    """Real detections as the ONNX detector returns them."""
    if not boxes:
        return sv.Detections.empty()
    names = [name for _, name, _ in boxes]
    return sv.Detections(
        xyxy=np.array([xyxy for xyxy, _, _ in boxes], dtype=np.float32),
        confidence=np.array([score for _, _, score in boxes], dtype=np.float32),
        class_id=np.array([COCO_SUBSET.index(name) for name in names]),
        data={"class_name": np.array(names)},
    )


@dataclass
class ScriptedDetector:
    """Returns the script's boxes for the frame being analysed."""

    script: Script
    names: list[str]
    now_s: float = 0.0
    calls: int = 0

    def detect(
        self, image_bgr: np.ndarray, *, min_score: float, nms_iou: float
    ) -> sv.Detections:
        self.calls += 1
        boxes = [
            box for box in self.script(self.now_s, image_bgr) if box[2] >= min_score
        ]
        return make_detections(boxes)


def make_camera(
    polygon_xy: list[tuple[float, float]], rules: list[dict], **detector: float
) -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "camera_id": "street-7",
            "model": "yolo11n-coco",
            "detector": detector,
            "zones": [{"name": "no-parking", "polygon_xy": polygon_xy}],
            "rules": rules,
        }
    )


def parking_rule(**overrides: object) -> dict:
    rule = {
        "name": "no-parking-10s",
        "category": "illegal_parking",
        "zone": "no-parking",
        "classes": ["car", "truck", "bus", "motorcycle"],
        "dwell_s": 10.0,
    }
    rule.update(overrides)
    return rule


def blank_frames(
    duration_s: float, fps: float, resolution_wh: tuple[int, int]
) -> Iterator[Frame]:
    width, height = resolution_wh
    image = np.zeros((height, width, 3), np.uint8)
    for index in range(round(duration_s * fps)):
        ts_s = index / fps
        yield Frame(image, ts_s, index, SESSION_START + timedelta(seconds=ts_s))


def run(
    camera: CameraConfig, script: Script, frames: Iterator[Frame]
) -> tuple[list[Event], ScriptedDetector]:
    detector = ScriptedDetector(script, COCO_SUBSET)
    analyzer = StreetAnalyzer(camera, detector)
    events = []
    for frame in frames:
        detector.now_s = frame.ts_s
        events.extend(analyzer.process(frame))
    events.extend(analyzer.finish())
    return events, detector


# -- A headlight sweep makes a parked car score as a person for one second ---

CAR_XYXY = (260.0, 180.0, 380.0, 260.0)  # the dark 120x80 "vehicle"


def headlight_frames() -> Iterator[Frame]:
    """20 s at 10 fps: a dark rectangle; at 5 s a bright ellipse sweeps by."""
    background = np.full((360, 640, 3), 60, np.uint8)
    x1, y1, x2, y2 = (int(v) for v in CAR_XYXY)
    background[y1:y2, x1:x2] = 15
    for index in range(200):
        ts_s = index / 10
        image = background
        if 5.0 <= ts_s < 6.0:
            glow = np.zeros((360, 640), np.float32)
            centre_x = int((ts_s - 5.0) * 700)
            cv2.ellipse(glow, (centre_x, 220), (90, 45), 0, 0, 360, 255.0, -1)
            glow = cv2.GaussianBlur(glow, (0, 0), 25)
            image = np.clip(background + glow[..., None], 0, 255).astype(np.uint8)
        yield Frame(image, ts_s, index, SESSION_START + timedelta(seconds=ts_s))


def headlight_script(ts_s: float, image: np.ndarray) -> list[Box]:
    """Person 0.76 while the sweep lights the scene, car 0.80 otherwise."""
    swept = image.max() > 120
    return [(CAR_XYXY, "person", 0.76) if swept else (CAR_XYXY, "car", 0.80)]


def test_headlight_sweep_over_parked_car_files_no_person_and_one_car_event() -> None:
    camera = make_camera(
        [(200, 150), (440, 150), (440, 300), (200, 300)],
        [
            parking_rule(dwell_s=8.0),
            {
                "name": "loitering",
                "category": "loitering",
                "zone": "no-parking",
                "classes": ["person"],
                "dwell_s": 0.5,
                "class_window_s": 1.0,
            },
        ],
    )
    frames = list(headlight_frames())
    assert (
        sum(headlight_script(f.ts_s, f.image)[0][1] == "person" for f in frames) == 10
    )

    events, _ = run(camera, headlight_script, iter(frames))

    assert [(e.rule, e.class_name) for e in events] == [("no-parking-10s", "car")]
    (event,) = events
    assert event.category is Category.ILLEGAL_PARKING
    assert event.started_ts_s == 0.0
    assert event.detected_ts_s == pytest.approx(8.0)
    assert event.ended_ts_s == event.detected_ts_s
    assert event.bbox_xyxy == CAR_XYXY


def test_object_class_is_the_majority_over_its_history() -> None:
    registry = ObjectRegistry(rejoin_s=30.0)
    for step in range(20):
        ts_s = step * 0.2
        name = "person" if 10 <= step < 15 else "car"
        tracked = make_detections([(CAR_XYXY, name, 0.8)])
        tracked.tracker_id = np.array([1])
        (observation,) = registry.update(tracked, ts_s)
    assert observation.obj.decided_class(class_window_s=1.0) == "car"
    assert observation.obj.decided_class(class_window_s=10.0) is None


# -- A car stops in the zone, is hidden by a bus, another car drives through --

ZONE_1280 = [(300, 300), (900, 300), (900, 500), (300, 500)]
BUS_XYXY = (380.0, 300.0, 720.0, 470.0)


def parked_car_xyxy(ts_s: float) -> tuple[float, float, float, float]:
    """Enters the zone at 2 s, drives on until 5 s, then stands still."""
    centre_x = 310 + 60 * (min(ts_s, 5.0) - 2.0)
    return (centre_x - 80, 360.0, centre_x + 80, 450.0)


def bus_and_passing_car_script(ts_s: float, image: np.ndarray) -> list[Box]:
    boxes: list[Box] = []
    score = 0.8 + 0.05 * np.sin(ts_s)
    if 80.0 <= ts_s < 95.0:
        boxes.append((BUS_XYXY, "bus", 0.9))
    elif ts_s < 200.0:
        boxes.append((parked_car_xyxy(ts_s), "car", score))
    if 30.0 <= ts_s < 34.0:
        centre_x = 200 + 200 * (ts_s - 30.0)
        boxes.append(((centre_x - 80, 260.0, centre_x + 80, 350.0), "car", 0.85))
    return boxes


@pytest.mark.parametrize(
    ("dwell_s", "gap_tolerance_s", "started_ts_s", "detected_ts_s"),
    [
        (60.0, None, 2.0, 62.0),  # fires before the bus comes
        (100.0, None, 2.0, 102.0),  # the default bridges the 15 s occlusion
        (100.0, 10.0, 95.0, 195.0),  # a shorter tolerance restarts the dwell
    ],
)
def test_car_stopping_in_zone_files_one_event_counted_from_entry(
    dwell_s: float,
    gap_tolerance_s: float | None,
    started_ts_s: float,
    detected_ts_s: float,
) -> None:
    tolerance = {} if gap_tolerance_s is None else {"gap_tolerance_s": gap_tolerance_s}
    camera = make_camera(ZONE_1280, [parking_rule(dwell_s=dwell_s, **tolerance)])
    if gap_tolerance_s is None:
        assert camera.rules[0].gap_tolerance_s >= 30.0
    frames = blank_frames(200.0, 5.0, (1280, 720))

    events, detector = run(camera, bus_and_passing_car_script, frames)

    assert detector.calls == 1000
    assert len(events) == 1
    (event,) = events
    assert event.class_name == "car"
    assert event.zone == "no-parking"
    assert event.started_ts_s == pytest.approx(started_ts_s)
    assert event.detected_ts_s == pytest.approx(detected_ts_s)
    assert event.ended_ts_s == event.detected_ts_s
    assert event.started_at == SESSION_START + timedelta(seconds=started_ts_s)
    assert event.bbox_xyxy == parked_car_xyxy(100.0)
    assert 0.75 <= event.score <= 0.85
    assert 2 <= len(event.boxes) <= MAX_EVENT_BOXES
    assert event.boxes[0].ts_s == pytest.approx(started_ts_s)
    assert event.boxes[-1].ts_s == pytest.approx(detected_ts_s)


# -- A parked car missed for 0.44 s at 25 fps, and a second car beside it ----

FIRST_CAR_XYXY = (320.0, 340.0, 480.0, 430.0)
SECOND_CAR_XYXY = (620.0, 350.0, 780.0, 440.0)


def missed_frames_script(ts_s: float, image: np.ndarray) -> list[Box]:
    boxes: list[Box] = []
    frame_index = round(ts_s * 25)
    if frame_index < 100:
        boxes.append((FIRST_CAR_XYXY, "car", 0.82))
    elif frame_index > 110:
        x1, y1, x2, y2 = FIRST_CAR_XYXY
        boxes.append(((x1 + 5, y1, x2 + 5, y2), "car", 0.82))
    if ts_s >= 2.0:
        boxes.append((SECOND_CAR_XYXY, "car", 0.78))
    return boxes


@pytest.mark.parametrize("sample_fps", [5.0, 25.0])
def test_missed_detections_do_not_split_an_object_into_two_events(
    sample_fps: float,
) -> None:
    camera = make_camera(ZONE_1280, [parking_rule()], sample_fps=sample_fps)

    events, _ = run(camera, missed_frames_script, blank_frames(30.0, 25.0, (1280, 720)))
    sink = MemorySink()
    filed = [sink.file(event) for event in [*events, events[0]]]

    assert [(e.started_ts_s, e.detected_ts_s) for e in events] == [
        pytest.approx((0.0, 10.0)),
        pytest.approx((2.0, 12.0)),
    ]
    assert events[0].event_id != events[1].event_id
    # The tracker bridged the gap itself: one track id for the whole stay.
    assert [e.details["track_ids"].count(",") for e in events] == [0, 0]
    assert [f.created for f in filed] == [True, True, False]
    assert len(sink.events) == 2


def test_re_analysing_a_recording_files_the_same_event_ids() -> None:
    camera = make_camera(ZONE_1280, [parking_rule()])

    first, _ = run(camera, missed_frames_script, blank_frames(30.0, 25.0, (1280, 720)))
    second, _ = run(camera, missed_frames_script, blank_frames(30.0, 25.0, (1280, 720)))
    sink = MemorySink()
    created = [sink.file(event).created for event in [*first, *second]]

    assert [e.event_id for e in first] == [e.event_id for e in second]
    assert created == [True, True, False, False]


# -- Occlusion longer than the tracker's tolerance ----------------------------


def test_track_broken_by_long_occlusion_rejoins_its_object() -> None:
    """A pedestrian group hides the car for 6 s; the tracker issues a new id."""

    def script(ts_s: float, image: np.ndarray) -> list[Box]:
        if 4.0 <= ts_s < 10.0:
            return []
        x1, y1, x2, y2 = FIRST_CAR_XYXY
        shift = 0.0 if ts_s < 4.0 else 8.0
        return [((x1 + shift, y1, x2 + shift, y2 + 3), "car", 0.7)]

    camera = make_camera(ZONE_1280, [parking_rule(dwell_s=12.0)])
    events, _ = run(camera, script, blank_frames(30.0, 10.0, (1280, 720)))

    assert len(events) == 1
    (event,) = events
    assert event.started_ts_s == 0.0
    assert event.detected_ts_s == pytest.approx(12.0)
    assert event.details["track_ids"].count(",") == 1  # two ids, one object


# -- Vehicles that only drive through -----------------------------------------


def crossing_script(
    crossing_s: float, stop_s: float = 0.0
) -> Callable[[float, np.ndarray], list[Box]]:
    """A car drives left to right across the zone (x 300-900) in crossing_s,
    optionally stopping in the middle for stop_s."""
    start_x, end_x = 150.0, 1050.0
    speed = (900 - 300) / crossing_s
    stop_at_x = 600.0

    def script(ts_s: float, image: np.ndarray) -> list[Box]:
        t = ts_s - 1.0
        if t < 0:
            return []
        x = start_x + speed * t
        if x > stop_at_x and stop_s:
            x = max(stop_at_x, start_x + speed * (t - stop_s))
        if x > end_x:
            return []
        return [((x - 80, 380.0, x + 80, 460.0), "car", 0.85)]

    return script


@pytest.mark.parametrize("crossing_s", [1.0, 3.0, 6.0, 9.5])
def test_vehicle_driving_through_the_zone_files_nothing(crossing_s: float) -> None:
    camera = make_camera(ZONE_1280, [parking_rule()])
    events, _ = run(
        camera, crossing_script(crossing_s), blank_frames(30, 10, (1280, 720))
    )
    assert events == []


def test_vehicle_stopping_on_its_way_through_files_one_event() -> None:
    camera = make_camera(ZONE_1280, [parking_rule()])
    script = crossing_script(3.0, stop_s=12.0)
    events, _ = run(camera, script, blank_frames(30, 10, (1280, 720)))

    assert len(events) == 1
    assert events[0].started_ts_s == pytest.approx(1.0 + 150 / 200, abs=0.21)
    assert events[0].detected_ts_s - events[0].started_ts_s == pytest.approx(
        10.0, abs=0.21
    )


def test_weak_detections_do_not_count_towards_dwell() -> None:
    def script(ts_s: float, image: np.ndarray) -> list[Box]:
        return [(FIRST_CAR_XYXY, "car", 0.2)]

    camera = make_camera(ZONE_1280, [parking_rule()], min_score=0.1)
    events, detector = run(camera, script, blank_frames(20, 5, (1280, 720)))
    assert detector.calls == 100
    assert events == []


@pytest.mark.parametrize(
    ("gap_tolerance_s", "detected_ts_s"),
    [
        (0.0, 16.0),  # the 1 s gap restarts the dwell at 6 s
        (0.5, 16.0),
        (1.5, 10.0),  # the gap is bridged
    ],
)
def test_gap_tolerance_is_measured_in_stream_seconds(
    gap_tolerance_s: float, detected_ts_s: float
) -> None:
    def script(ts_s: float, image: np.ndarray) -> list[Box]:
        hidden = 5.0 <= ts_s < 6.0
        return [] if hidden else [(FIRST_CAR_XYXY, "car", 0.8)]

    camera = make_camera(ZONE_1280, [parking_rule(gap_tolerance_s=gap_tolerance_s)])
    events, _ = run(camera, script, blank_frames(30, 10, (1280, 720)))

    assert [e.detected_ts_s for e in events] == [pytest.approx(detected_ts_s)]
