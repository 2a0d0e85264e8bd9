"""Throw sweeps on synthetic footage: recall targets, false alarms, the report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eval.cli import eval_app
from eval.events import FoundEvent, TrueEvent, TruthVideo, VideoRun, score_runs
from eval.synth_throw import CAMERA_HEIGHT_M, DISTRACTORS, SynthSpec, fall_track
from eval.throw_sweep import (
    AXES,
    MIXED,
    RECALL_TARGET,
    SweepPlan,
    SweepReport,
    aimed,
    distractor_frames,
    false_alarm_table,
    recall_table,
    run_sweep,
    stream_tasks,
    targets,
    throw_tasks,
    write_report,
)
from vision.config import CameraConfig
from vision.types import Category


@pytest.fixture(scope="module")
def quick(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The CI sweep: a few falls per axis, two minutes of each distractor."""
    report = run_sweep(shared_dir, SweepPlan.quick())
    out = tmp_path_factory.mktemp("throw-sweep")
    return report, write_report(report, out, machine="test machine")


def _size_rows(report: SweepReport, low_px: float, high_px: float) -> list[dict]:
    return [
        r
        for r in report.throws
        if r["axis"] == "size_px" and low_px <= r["value"] <= high_px
    ]


@pytest.mark.slow
def test_objects_of_6_to_16_px_at_25_fps_are_found(quick) -> None:
    report, _ = quick

    rows = _size_rows(report, 6.0, 16.0)

    recall = sum(int(r["hit"]) for r in rows) / len(rows)
    assert len(rows) >= 8
    assert recall >= RECALL_TARGET, [r for r in rows if not r["hit"]]
    assert sum(int(r["false_alarms"]) for r in report.throws) == 0


@pytest.mark.slow
def test_objects_of_20_px_at_25_fps_are_found(quick) -> None:
    report, _ = quick

    rows = _size_rows(report, 20.0, 30.0)

    assert rows
    assert targets(report)["recall_6px_up_25fps"] >= RECALL_TARGET
    assert sum(int(r["hit"]) for r in rows) / len(rows) >= RECALL_TARGET


@pytest.mark.slow
@pytest.mark.parametrize("kind", [*DISTRACTORS, MIXED])
def test_two_minutes_of_a_distractor_raise_no_throw(quick, kind: str) -> None:
    report, _ = quick

    row = {r["kind"]: r for r in false_alarm_table(report)}[kind]

    assert row["frames"] == 120 * 25
    assert row["false_alarms"] == 0, [
        r["false_alarm_ts_s"] for r in report.streams if r["kind"] == kind
    ]


@pytest.mark.slow
def test_alert_comes_soon_after_the_fall_ends_and_the_ticket_after_post_roll(
    quick,
) -> None:
    report, _ = quick

    goal = targets(report)

    assert goal["alert_after_end_max_s"] <= 1.0
    assert goal["filed_after_end_max_s"] <= 1.0 + report.plan.postroll_s
    assert goal["origin_error_median_px"] < 20.0


@pytest.mark.slow
def test_report_has_tables_and_one_recall_plot_per_axis(quick) -> None:
    report, paths = quick

    markdown = paths["markdown"].read_text(encoding="utf-8")
    summary = json.loads(paths["json"].read_text(encoding="utf-8"))

    for axis in AXES:
        assert paths[axis].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"recall_vs_{axis}.png" in markdown
        assert len(summary["recall"][axis]) == len(report.plan.axis_values(axis))
    assert "False alarms per camera-hour" in markdown
    assert "| rain | 0.03 | 3000 | 0 | 0.0 |" in markdown


@pytest.mark.parametrize(
    ("height_m", "tilt_deg"), [(5.0, None), (60.0, None), (None, 20.0), (None, 50.0)]
)
def test_a_forced_height_or_tilt_keeps_the_release_pixel(
    height_m: float | None, tilt_deg: float | None
) -> None:
    default = aimed(SynthSpec(), 3)

    spec = aimed(SynthSpec(), 3, height_m=height_m, tilt_deg=tilt_deg)

    _, u, v, _ = fall_track(spec)[0]  # the object at rest before release
    assert (u, v) == pytest.approx(default.release_uv, abs=0.01)
    width, height = spec.resolution_wh
    focal_px = width / 2  # 90 degree field of view
    elevation = math.radians(spec.tilt_deg) + math.atan((height / 2 - v) / focal_px)
    above_camera_m = spec.distance_m * math.tan(elevation)
    if height_m is not None:
        assert above_camera_m + CAMERA_HEIGHT_M == pytest.approx(height_m)
    else:
        assert spec.tilt_deg == tilt_deg


def test_plan_covers_every_axis_value_with_bright_and_dark_objects(tmp_path) -> None:
    plan = SweepPlan.quick(seeds=2)

    tasks = throw_tasks(tmp_path, plan)

    for axis in AXES:
        for value in plan.axis_values(axis):
            greys = [
                t.spec.object_grey for t in tasks if (t.axis, t.value) == (axis, value)
            ]
            assert sorted(greys) == [30, 30, 230, 230]
    assert {t.spec.fps for t in tasks if t.axis == "fps"} == set(plan.fps_values)


def test_distractor_streams_add_up_to_the_planned_stream_time(tmp_path) -> None:
    plan = SweepPlan(distractor_s=3600.0, chunk_s=300.0)

    tasks = stream_tasks(tmp_path, plan)

    for kind in (*DISTRACTORS, MIXED):
        chunks = [t for t in tasks if t.kind == kind]
        assert sum(t.duration_s for t in chunks) == pytest.approx(3600.0)
        assert len(chunks) == 12


def test_a_distractor_stream_is_continuous_and_repaints_every_episode(
    shared_dir: Path,
) -> None:
    from eval.synth_throw import load_background

    background = load_background(shared_dir, (160, 90))

    frames = list(
        distractor_frames(
            "lights", 4.0, background=background, seed=1, episode_s=2.0, fps=10.0
        )
    )

    assert [f.index for f in frames] == list(range(40))
    assert frames[-1].ts_s == pytest.approx(3.9)
    # Lights switch on during an episode and are off again when the next begins.
    means = [float(f.image.mean()) for f in frames]
    assert means[19] > means[0] + 20.0
    assert means[20] < means[19] - 20.0


def test_recall_table_counts_hits_per_value() -> None:
    plan = SweepPlan.quick()
    rows = [
        {"axis": "size_px", "value": 6.0, "grey": 230, "hit": 1, "false_alarms": 0}
        | {"origin_error_px": 4.0, "alert_after_end_s": 0.1, "filed_after_end_s": 2.0},
        {"axis": "size_px", "value": 6.0, "grey": 30, "hit": 0, "false_alarms": 0}
        | {"origin_error_px": math.nan, "alert_after_end_s": None},
    ]
    report = SweepReport(plan=plan, throws=rows)

    first = recall_table(report, "size_px")[0]

    assert (first["clips"], first["hits"], first["recall"]) == (2, 1, 0.5)
    assert (first["recall_bright"], first["recall_dark"]) == (1.0, 0.0)
    assert first["origin_error_median_px"] == 4.0


def test_events_report_the_alert_after_the_true_end() -> None:
    truth = [TrueEvent(Category.THROW, 1.0, 2.5)]
    event = FoundEvent(Category.THROW, 1.1, 2.4, detected_ts_s=3.0)
    video = TruthVideo(Path("v.mp4"), CameraConfig(camera_id="cam"), truth)
    run = VideoRun(video, [event], 10.0, 250, 1.0, [(0.0, 100.0)])

    row = score_runs([run])["per_category"]["throw"]

    assert row["alert_after_end_stream_s"] == pytest.approx(0.5)
    assert row["alert_after_end_stream_max_s"] == pytest.approx(0.5)


def test_throw_sweep_command_is_listed() -> None:
    result = CliRunner().invoke(eval_app, ["throw-sweep", "--help"])

    assert result.exit_code == 0
    assert "--quick" in result.output and "--seeds" in result.output


def test_1080p_summary_relates_analysis_to_decode_and_real_time() -> None:
    from eval.speed import hd_summary

    video = "throw_facade_ball_1080p25.mp4"
    results = [
        {"kind": "decode", "video": video, "fps_per_core": 200.0},
        {"kind": "throw", "video": video, "fps_per_core": 80.0}
        | {"analysis_only_fps": 160.0},
        {"kind": "worker", "video": video, "rss_peak_mib": 250.0},
        {"kind": "decode", "video": "other_720p30.mp4", "fps_per_core": 900.0},
    ]

    summary = hd_summary(results)

    assert summary == {
        "decode_fps": 200.0,
        "analysis_fps": 160.0,
        "analysis_over_decode": 1.25,
        "realtime_factor_25fps": 3.2,
        "worker_rss_peak_mib": 250.0,
    }
