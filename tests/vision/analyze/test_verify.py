"""Camera verification on the shared street footage: a resolved ticket's
place is re-checked with the rule that filed it."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.catalog import resolve_model
from vision.analyze.street import StreetAnalyzer
from vision.config import CameraConfig
from vision.detect.detector import Detector
from vision.ingest.sources import VideoSource
from vision.sink import VerificationOutcome, VerificationRequest
from vision.types import Category

RESOLVED_AT_FRAME = 160  # the group by the lamp post has left; the cars stay
CLEAR_S = 15.0


def plaza_camera() -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "camera_id": "plaza",
            "model": "yolo11n-coco",
            "zones": [
                {
                    "name": "paved",
                    "polygon_xy": [[600, 75], [768, 55], [768, 104], [625, 122]],
                },
                {
                    "name": "lamp-post",
                    "polygon_xy": [[300, 150], [470, 150], [470, 320], [300, 320]],
                },
            ],
            "rules": [
                {
                    "name": "paved-parking",
                    "kind": "dwell",
                    "category": "illegal_parking",
                    "zone": "paved",
                    "classes": ["car", "truck", "bus", "motorcycle"],
                    "dwell_s": 10,
                },
                {
                    "name": "lamp-post-loitering",
                    "kind": "dwell",
                    "category": "loitering",
                    "zone": "lamp-post",
                    "classes": ["person"],
                    "dwell_s": 10,
                },
            ],
        }
    )


@pytest.fixture(scope="module")
def outcomes(videos_dir: Path, models_mirror: Path, tmp_path_factory) -> dict:
    spec = resolve_model(
        "yolo11n-coco",
        model_dir=tmp_path_factory.mktemp("models"),
        mirror_dir=models_mirror,
    )
    detector = Detector.from_file(spec.path, class_names=spec.class_names)
    analyzer = StreetAnalyzer(plaza_camera(), detector)
    events, results = [], {}

    video = videos_dir / "street_plaza_vtest_part1_f000-399.avi"
    with VideoSource(str(video)) as source:
        for frame in source.frames():
            events.extend(analyzer.process(frame))
            if frame.index == RESOLVED_AT_FRAME:
                for n, event in enumerate(events):
                    request = VerificationRequest(str(n), event, clear_s=CLEAR_S)
                    assert analyzer.start_verification(request)
            for outcome in analyzer.take_verification_outcomes():
                results[outcome.request.ticket_id] = outcome
    return {"events": events, "results": results}


@pytest.mark.slow
def test_loitering_that_ended_is_verified_gone(outcomes: dict) -> None:
    events = outcomes["events"]
    loitering = [n for n, e in enumerate(events) if e.category is Category.LOITERING]
    assert loitering, "the group by the lamp post filed nothing"

    for n in loitering:
        outcome = outcomes["results"][str(n)]
        assert outcome.outcome is VerificationOutcome.GONE
        assert outcome.event.ended_ts_s - outcome.event.started_ts_s == pytest.approx(
            CLEAR_S, abs=0.3
        )


@pytest.mark.slow
def test_parked_vehicles_still_there_are_reported_with_new_evidence(
    outcomes: dict,
) -> None:
    events = outcomes["events"]
    parked = [n for n, e in enumerate(events) if e.category is Category.ILLEGAL_PARKING]
    assert len(parked) == 2

    for n in parked:
        outcome = outcomes["results"][str(n)]
        assert outcome.outcome is VerificationOutcome.STILL_THERE
        assert outcome.event.started_ts_s == pytest.approx(16.0, abs=0.3)
        assert outcome.event.detected_ts_s == pytest.approx(26.0, abs=0.5)
        assert outcome.event.event_id != events[n].event_id
        assert outcome.event.bbox_xyxy is not None
