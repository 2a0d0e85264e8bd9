"""The throw analyzer's second stage measured by the eval harness."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eval.cli import eval_app
from eval.throw_sweep import (
    StageSpec,
    SweepPlan,
    false_alarm_table,
    run_sweep,
    write_report,
)
from vision.errors import ConfigError

BALL_CLIP = "throw_facade_ball_720p30.mp4"
STAGE = {"model": "yolo11n-coco", "veto_classes": ["bird", "kite"]}


def ball_truth(tmp_path: Path, videos_dir: Path, stage: dict) -> Path:
    """The ball clip under a camera whose throw analyzer runs ``stage``."""
    path = tmp_path / "ball-staged.json"
    video = {
        "file": str(videos_dir / BALL_CLIP),
        "fps": 30.0,
        "camera": {"camera_id": "facade", "throw": {"second_stage": stage}},
        "events": [{"type": "falling_object", "falling_frames": [13, 66]}],
    }
    path.write_text(json.dumps([video]))
    return path


def test_eval_events_runs_the_second_stage_a_truth_file_asks_for(
    videos_dir: Path,
    settings_env,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    truth = ball_truth(tmp_path, videos_dir, STAGE)

    with caplog.at_level(logging.INFO):
        result = CliRunner().invoke(
            eval_app, ["events", "--truth", str(truth), "--out", str(tmp_path)]
        )

    assert result.exit_code == 0, result.output
    throw = json.loads((tmp_path / "events.json").read_text())["per_category"]
    assert (throw["throw"]["tp"], throw["throw"]["fp"], throw["throw"]["fn"]) == (
        1,
        0,
        0,
    )
    # The camera has no street rules: the one detector loaded is the stage's.
    loaded = [r for r in caplog.records if r.getMessage().startswith("loaded detector")]
    assert len(loaded) == 1
    assert "yolo11n_coco" in loaded[0].getMessage()


def test_eval_events_stops_on_a_second_stage_model_that_cannot_load(
    videos_dir: Path, settings_env, tmp_path: Path
) -> None:
    truth = ball_truth(tmp_path, videos_dir, {**STAGE, "model": "no-such-model"})

    result = CliRunner().invoke(eval_app, ["events", "--truth", str(truth)])

    assert result.exit_code == 2
    assert "camera facade: throw.second_stage.model: model 'no-such-model'" in (
        result.output
    )


@pytest.mark.slow
def test_a_sweep_with_the_second_stage_counts_what_it_vetoed(
    shared_dir: Path, tmp_path: Path
) -> None:
    plan = SweepPlan(
        seeds=1,
        sizes_px=(8,),
        heights_m=(),
        tilts_deg=(),
        fps_values=(),
        distractor_s=4.0,
        chunk_s=4.0,
        processes=1,
    )
    stage = StageSpec.resolve(
        "yolo11n-coco", model_dir=tmp_path / "models", mirror_dir=shared_dir / "models"
    )

    report = run_sweep(shared_dir, plan, stage=stage)
    paths = write_report(report, tmp_path / "out", machine="test machine")

    assert [row["hit"] for row in report.throws] == [1, 1]
    assert all(row["vetoed"] == 0 for row in report.throws)
    assert all("vetoed" in row for row in false_alarm_table(report))
    summary = json.loads(paths["json"].read_text())["second_stage"]
    assert summary["model"] == "yolo11n-coco"
    assert summary["veto_classes"] == ["bird", "kite"]
    assert "Second stage on: yolo11n-coco" in paths["markdown"].read_text()


def test_a_sweep_refuses_a_veto_class_the_model_lacks(
    shared_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="yolo11n-coco has no class pigeon"):
        StageSpec.resolve(
            "yolo11n-coco",
            ("bird", "pigeon"),
            model_dir=tmp_path,
            mirror_dir=shared_dir / "models",
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--veto-class", "bird"], "--veto-class: needs --second-stage MODEL"),
        (
            ["--second-stage", "yolo11n-coco", "--veto-class", "pigeon"],
            "model yolo11n-coco has no class pigeon to veto",
        ),
    ],
)
def test_throw_sweep_refuses_a_wrong_second_stage_before_it_starts(
    settings_env, options: list[str], message: str
) -> None:
    result = CliRunner().invoke(eval_app, ["throw-sweep", "--quick", *options])

    assert result.exit_code == 2
    assert message in result.output
