"""The speed table, the command line and the gate's arithmetic."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eval.cli import eval_app
from eval.gate import (
    GateResult,
    check,
    check_events,
    covered_sets,
    load_baseline,
    render_gate_table,
)
from eval.speed import SpeedJob, render_speed_table, run_jobs

REPO = Path(__file__).resolve().parents[2]
TOLERANCES = {
    "map": 0.01,
    "event_f1": 0.0,
    "temporal_iou": 0.05,
    "time_to_alert_s": 0.5,
}


def test_speed_measures_decode_and_the_throw_path_in_subprocesses(videos_dir):
    video = str(videos_dir / "throw_facade_ball_720p30.mp4")
    jobs = [
        SpeedJob("decode", video, max_frames=20),
        SpeedJob("throw", video, max_frames=20),
    ]

    results = run_jobs(jobs)
    table = render_speed_table(results)

    assert [r.get("error") for r in results] == [None, None]
    assert all(r["frames"] == 20 and r["fps_per_core"] > 0 for r in results)
    assert results[1]["resolution_wh"] == [1280, 720]
    # Decoding plus analysis can never be faster than analysis alone.
    assert results[1]["fps_per_core"] <= results[1]["analysis_only_fps"]
    assert results[1]["rss_peak_mib"] > results[1]["rss_before_mib"] > 0
    assert "reference" in table and "throw" in table


@pytest.mark.slow
@pytest.mark.ultralytics
def test_speed_measures_the_street_path_and_the_detector_beside_ultralytics(
    videos_dir, shared_dir, tmp_path
):
    from eval.events import load_truth

    video = str(videos_dir / "street_plaza_vtest_part1_f000-399.avi")
    camera = load_truth(REPO / "eval/truth/plaza_parking.json")[0].camera
    dirs = {
        "camera": camera.model_dump(mode="json"),
        "model_dir": str(tmp_path / "models"),
        "mirror_dir": str(shared_dir / "models"),
    }
    jobs = [
        SpeedJob("decode", video, max_frames=20),
        SpeedJob("street", video, max_frames=20, **dirs),
        SpeedJob("detector", video, max_frames=5, **dirs),
    ]

    decode, street, detector = run_jobs(jobs)
    table = render_speed_table([decode, street, detector])

    assert street["resolution_wh"] == [768, 576]
    assert 0 < street["fps_per_core"] <= decode["fps_per_core"]
    assert detector["images_per_s"] > 0 and detector["ultralytics_images_per_s"] > 0
    assert detector["ratio_to_ultralytics"] == pytest.approx(
        detector["images_per_s"] / detector["ultralytics_images_per_s"], rel=0.05
    )
    assert "ultralytics predict" in table


def test_a_failing_measurement_is_a_row_not_a_crash(tmp_path):
    results = run_jobs([SpeedJob("decode", str(tmp_path / "missing.mp4"))])

    assert "error" in results[0]
    assert "failed" in render_speed_table(results)


def test_gate_fails_a_figure_below_baseline_minus_tolerance():
    baseline = {
        "tolerance": TOLERANCES,
        "detection": [{"model": "m", "set": "s", "map50": 0.70, "map50_95": 0.40}],
        "events": [{"name": "videos", "f1": {"overall": 1.0}}],
    }

    results = check(
        baseline, [{"map50": 0.6905, "map50_95": 0.389}], [{"f1": {"overall": 1.0}}]
    )

    assert [r.passed for r in results] == [True, False, True]
    assert "BELOW BASELINE" in render_gate_table(results)


def test_time_to_alert_fails_the_gate_when_it_rises_past_its_tolerance():
    entry = {
        "name": "videos",
        "temporal_iou": {"throw": 0.8},
        "time_to_alert_stream_s": {"throw": 1.0},
    }
    measured = {
        "temporal_iou": {"throw": 0.78},
        "time_to_alert_stream_s": {"throw": 1.6},
    }

    results = check_events(entry, measured, TOLERANCES)

    assert [(r.figure, r.passed) for r in results] == [
        ("videos: temporal_iou throw", True),
        ("videos: time_to_alert_stream_s throw", False),
    ]
    sooner = {**measured, "time_to_alert_stream_s": {"throw": 0.2}}
    assert all(r.passed for r in check_events(entry, sooner, TOLERANCES))


def test_a_missing_figure_fails_the_gate():
    assert not GateResult("x", 0.5, None, 0.01).passed


def test_committed_baseline_states_its_tolerances():
    baseline = load_baseline()

    assert baseline["tolerance"] == TOLERANCES
    # Speed is reported, never gated: no figure of the machine's pace. Time
    # to alert is in stream seconds, the same on any machine.
    figures = json.dumps({k: v for k, v in baseline.items() if k != "_doc"})
    for word in ("speed", "fps", "per_s", "wall", "latency", "_ms", "rss"):
        assert word not in figures


def test_covered_sets_need_every_class_of_the_set_by_name():
    models = {"coco": ["person", "car"], "pothole": ["pothole"]}
    sets = {"potholes": ["pothole"], "road_damage": ["D00", "D40_pothole"]}

    assert covered_sets(models, sets) == [("pothole", "potholes")]


@pytest.fixture
def small_pothole_set(shared_dir: Path, tmp_path: Path) -> Path:
    """Six images of the shared pothole set, with their labels."""
    source = shared_dir / "data/datasets/potholes"
    for image in sorted((source / "images/test").glob("*.jpg"))[:6]:
        for kind, suffix in (("images", ".jpg"), ("labels", ".txt")):
            target = tmp_path / "potholes" / kind / "test" / (image.stem + suffix)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source / kind / "test" / (image.stem + suffix), target)
    data = tmp_path / "potholes/data.yaml"
    data.write_text("test: images/test\nnames:\n  0: pothole\n")
    return data


def test_detect_command_writes_the_report(small_pothole_set, settings_env, tmp_path):
    out = tmp_path / "report"

    result = CliRunner().invoke(
        eval_app,
        [
            "detect",
            "--model",
            "yolo11n-pothole-416",
            "--data",
            str(small_pothole_set),
            "--out",
            str(out),
        ],
    )

    assert result.exit_code == 0, result.output
    assert "mAP@0.5:0.95" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["header"]["images"] == 6
    assert report["header"]["settings"]["input_size_px"] == 416
    assert (out / "pr_curve.png").is_file() and (out / "confusion_matrix.png").is_file()


def test_compare_command_puts_two_thresholds_side_by_side(
    small_pothole_set, settings_env, tmp_path
):
    out = tmp_path / "cmp"

    result = CliRunner().invoke(
        eval_app,
        [
            "compare",
            "--model",
            "yolo11n-pothole-416",
            "--data",
            str(small_pothole_set),
            "--threshold",
            "0.25",
            "--threshold",
            "0.5",
            "--out",
            str(out),
        ],
    )

    assert result.exit_code == 0, result.output
    rows = json.loads((out / "comparison.json").read_text())
    assert [r["settings"]["operating_score"] for r in rows] == [0.25, 0.5]
    # Same detections: mAP is equal, a higher threshold keeps fewer boxes.
    assert rows[1]["diff_from_first"]["map50"] == 0.0
    assert rows[1]["precision"] >= rows[0]["precision"]
    assert (out / "pr_overlay.png").is_file()


def test_a_set_class_the_model_lacks_ends_in_one_line_and_exit_2(
    small_pothole_set, settings_env
):
    result = CliRunner().invoke(
        eval_app,
        [
            "detect",
            "--model",
            "yolov5n-coco",
            "--data",
            str(small_pothole_set),
            "--imgsz",
            "320",
        ],
    )

    assert result.exit_code == 2
    assert "no class for set classes ['pothole']" in result.output


@pytest.mark.slow
def test_speed_command_runs_live_cameras_side_by_side(
    settings_env, monkeypatch, tmp_path
):
    # The per-path jobs are tested above; here only the many-camera part
    # runs for real: two RTSP streams of the street footage for a few seconds.
    import eval.speed

    monkeypatch.setattr(eval.speed, "run_jobs", lambda jobs, **_: [])

    result = CliRunner().invoke(
        eval_app,
        [
            "speed",
            "--cameras",
            "2",
            "--cameras-duration-s",
            "12",
            "--out",
            str(tmp_path),
        ],
    )

    assert result.exit_code == 0, result.output
    assert "2 camera(s) for 12 s" in result.output
    fleet = json.loads((tmp_path / "cameras.json").read_text())
    assert sorted(fleet["per_camera"]) == ["bench-0", "bench-1"]
    for row in fleet["per_camera"].values():
        assert row["frames_analysed"] > 0 and row["lag_max_s"] < 2.0
