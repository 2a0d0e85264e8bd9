"""Event scoring: matching by time overlap, and the pipeline on real footage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eval.cli import eval_app
from eval.compare import event_comparison_rows, render_event_comparison
from eval.events import (
    FoundEvent,
    TrueEvent,
    VideoRun,
    evaluate_events,
    load_truth,
    match_events,
    score_runs,
    temporal_iou,
)
from eval.gate import check_events, event_figures, load_baseline
from models.catalog import resolve_model
from vision.config import CameraConfig
from vision.detect.detector import Detector
from vision.errors import ConfigError
from vision.types import Category

REPO = Path(__file__).resolve().parents[2]
PARKING = Category.ILLEGAL_PARKING


def found(start_s: float, end_s: float, category: Category = PARKING) -> FoundEvent:
    return FoundEvent(category, start_s, end_s, detected_ts_s=end_s)


def video_run(truth: list[TrueEvent], events: list[FoundEvent], duration_s=60.0):
    from eval.events import TruthVideo

    video = TruthVideo(Path("v.mp4"), CameraConfig(camera_id="cam"), truth)
    return VideoRun(video, events, duration_s, 600, 1.0, [(0.0, 100.0), (10.0, 101.0)])


def test_an_event_spanning_two_true_events_matches_one_and_misses_the_other():
    truth = [TrueEvent(PARKING, 0.0, 10.0), TrueEvent(PARKING, 20.0, 40.0)]

    scores = score_runs([video_run(truth, [found(5.0, 35.0)])])["per_category"]

    # tIoU with the second (15/35) beats the first (5/35): it takes that one.
    row = scores["illegal_parking"]
    assert (row["tp"], row["fp"], row["fn"]) == (1, 0, 1)
    assert row["precision"] == 1.0 and row["recall"] == 0.5
    assert row["f1"] == pytest.approx(2 / 3)
    assert row["mean_temporal_iou"] == pytest.approx(15 / 35)


def test_two_events_on_one_true_event_are_one_hit_and_one_false_alarm():
    truth = [TrueEvent(PARKING, 0.0, 10.0)]

    row = score_runs([video_run(truth, [found(1.0, 9.0), found(2.0, 4.0)])])[
        "per_category"
    ]["illegal_parking"]

    assert (row["tp"], row["fp"], row["fn"]) == (1, 1, 0)
    assert row["mean_temporal_iou"] == pytest.approx(0.8)


def test_events_of_another_category_never_match():
    truth = [TrueEvent(Category.THROW, 0.0, 2.0)]

    pairs = match_events(truth, [found(0.0, 2.0, PARKING)])

    assert pairs == []


def test_time_to_alert_and_to_ticket_in_stream_and_wall_time():
    truth = [TrueEvent(PARKING, 0.0, 40.0)]
    event = FoundEvent(
        PARKING,
        0.0,
        10.0,
        detected_ts_s=10.0,
        detected_wall_s=102.5,
        filed_ts_s=13.0,  # after a 3 s post-roll
        filed_wall_s=103.25,
    )

    row = score_runs([video_run(truth, [event])])["per_category"]["illegal_parking"]

    # The true start's frame was analysed at wall time 100.0.
    assert row["time_to_alert_stream_s"] == 10.0
    assert row["time_to_alert_wall_s"] == pytest.approx(2.5)
    assert row["time_to_ticket_stream_s"] == 13.0
    assert row["time_to_ticket_wall_s"] == pytest.approx(3.25)


def test_false_alarms_per_camera_hour_count_footage_without_true_events():
    runs = [video_run([], [found(1.0, 2.0)], duration_s=1800.0)]

    row = score_runs(runs)["per_category"]["illegal_parking"]

    assert row["false_alarms_per_camera_hour"] == pytest.approx(2.0)
    assert row["recall"] is None and row["f1"] == 0.0


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [((0, 10), (5, 15), 5 / 15), ((0, 10), (10, 20), 0.0), ((3, 3), (3, 3), 1.0)],
)
def test_temporal_iou(a, b, expected):
    assert temporal_iou(a, b) == pytest.approx(expected)


def test_shared_truth_reads_falling_objects_as_throws_in_seconds(videos_dir):
    videos = {v.path.name: v for v in load_truth(videos_dir / "ground_truth.json")}

    throw = videos["throw_facade_ball_720p30.mp4"].events
    street = videos["street_plaza_vtest_part1_f000-399.avi"]

    # falling_frames [13, 66] at 30 fps: 13/30 to 67/30 s.
    assert throw == [TrueEvent(Category.THROW, 13 / 30, 67 / 30)]
    assert street.events == []
    assert "stationary_parked_vehicles" in street.activities
    assert videos["neg_swaying_tree_320x240.avi"].events == []


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"category": "parking"}, "unknown category"),
        ({"category": "throw", "frames": [1, 5]}, "need the video's fps"),
        ({"category": "throw"}, "needs start_s/end_s"),
        ({"category": "throw", "start_s": 5, "end_s": 1}, "before it starts"),
    ],
)
def test_bad_truth_items_are_refused_with_their_reason(tmp_path, event, message):
    path = tmp_path / "truth.json"
    path.write_text(json.dumps([{"file": "x.mp4", "events": [event]}]))

    with pytest.raises(ConfigError, match=message):
        load_truth(path)


def assert_holds_baseline(report: dict, truth_name: str) -> None:
    """F1, temporal IoU and time to alert held to the committed baseline."""
    baseline = load_baseline()
    entry = next(e for e in baseline["events"] if truth_name in e["truth"])

    results = check_events(entry, event_figures(report), baseline["tolerance"])

    assert {r.figure.split(": ")[1].split()[0] for r in results} == {
        "f1",
        "temporal_iou",
        "time_to_alert_stream_s",
    }
    assert [(r.figure, r.measured) for r in results if not r.passed] == []


@pytest.fixture(scope="module")
def street_loader(shared_dir, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("models")

    def load(name: str) -> Detector:
        spec = resolve_model(
            name, model_dir=model_dir, mirror_dir=shared_dir / "models"
        )
        return Detector.from_file(
            spec.path, class_names=spec.class_names, input_size_px=spec.input_size_px
        )

    return load


def test_eval_events_on_the_shared_videos_prints_the_throw_and_nothing_else(
    videos_dir, settings_env, tmp_path
):
    result = CliRunner().invoke(
        eval_app,
        [
            "events",
            "--truth",
            str(videos_dir / "ground_truth.json"),
            "--out",
            str(tmp_path),
        ],
    )

    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "events.json").read_text())
    throw = report["per_category"]["throw"]
    assert (throw["tp"], throw["fp"], throw["fn"]) == (1, 0, 0)
    assert throw["false_alarms_per_camera_hour"] == 0.0
    # The throw is decided after its true start, once the fall is seen to end
    # (the analyzer waits at most 3 s for a track that may continue it).
    assert 0.0 < throw["time_to_alert_stream_s"] <= (67 - 13) / 30 + 3.0
    # The clip ends before the post-roll is recorded: the ticket is filed at
    # its last frame, 73/30 s, which is 60/30 s after the true start.
    assert throw["time_to_ticket_stream_s"] == pytest.approx(60 / 30, abs=1e-6)
    rows = {row["video"]: row for row in report["videos"]}
    assert rows["street_plaza_vtest_part1_f000-399.avi"]["found"] == []
    assert rows["neg_swaying_tree_320x240.avi"]["found"] == []
    # What it prints: P/R/F1, temporal IoU and the delays, per category.
    assert "| precision | recall | F1 | mean tIoU | alert (stream s) |" in result.output
    assert (
        "| throw | 1 | 0 | 0 | 1.000 | 1.000 | 1.000 | "
        f"{throw['mean_temporal_iou']:.3f} | {throw['time_to_alert_stream_s']:.3f} |"
    ) in result.output
    assert_holds_baseline(report, "ground_truth")


@pytest.mark.slow
def test_a_no_parking_zone_around_the_parked_vehicles_gives_two_events(
    street_loader,
):
    report = evaluate_events(REPO / "eval/truth/plaza_parking.json", street_loader)

    row = report["per_category"]["illegal_parking"]
    assert (row["tp"], row["fp"], row["fn"]) == (2, 0, 0)
    assert_holds_baseline(report, "plaza")


def test_two_rule_settings_side_by_side_differ_from_the_first():
    truth = [TrueEvent(PARKING, 0.0, 40.0)]
    sooner = score_runs([video_run(truth, [found(0.0, 10.0)])])
    later = score_runs([video_run(truth, [found(0.0, 30.0), found(31.0, 40.0)])])

    rows = event_comparison_rows([sooner, later], ["dwell-10", "dwell-30"])

    assert [row["run"] for row in rows] == ["dwell-10", "dwell-30"]
    diff = rows[1]["diff_from_first"]
    # One hit and one false alarm: precision 1/2, F1 2/3; tIoU 30/40 vs 10/40.
    assert diff["precision"] == pytest.approx(-0.5)
    assert diff["f1"] == pytest.approx(2 / 3 - 1)
    assert diff["mean_temporal_iou"] == pytest.approx(0.5)
    assert diff["time_to_alert_stream_s"] == pytest.approx(20.0)
    assert "| illegal_parking | dwell-30 | 0.500 (-0.500) |" in (
        render_event_comparison(rows)
    )


def test_eval_events_sets_two_truth_files_side_by_side(
    videos_dir, settings_env, tmp_path
):
    # The same clip, watched for throws and with the throw analyzer off.
    clip = str(videos_dir / "throw_facade_ball_720p30.mp4")
    event = {"type": "falling_object", "falling_frames": [13, 66]}
    camera_off = {"camera_id": "facade", "throw": {"enabled": False}}
    truths = []
    for name, extra in (("watched", {}), ("off", {"camera": camera_off})):
        path = tmp_path / f"{name}.json"
        path.write_text(
            json.dumps([{"file": clip, "fps": 30.0, "events": [event], **extra}])
        )
        truths += ["--truth", str(path)]

    result = CliRunner().invoke(
        eval_app, ["events", *truths, "--out", str(tmp_path / "out")]
    )

    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "out/comparison.json").read_text())
    assert [(r["run"], r["recall"]) for r in rows] == [("watched", 1.0), ("off", 0.0)]
    assert rows[1]["diff_from_first"]["f1"] == -1.0
    assert (tmp_path / "out/off/events.json").is_file()
    assert "# Event runs side by side" in result.output
