"""The main job end to end: `citywatch watch` on real footage files tickets
with evidence, and refuses bad input with one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
CITYWATCH = [sys.executable, "-m", "citywatch_cli"]


def run_citywatch(
    args: list[str], data_dir: Path, models_mirror: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "CITYWATCH_DATA_DIR": str(data_dir),
        "CITYWATCH_MODEL_MIRROR_DIR": str(models_mirror),
        **env,
    }
    environment.pop("CITYWATCH_DATABASE_URL", None)
    return subprocess.run(
        [*CITYWATCH, *args],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


def tickets_in(data_dir: Path) -> list[dict]:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{data_dir / 'citywatch.db'}")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM tickets")).mappings().all()
    engine.dispose()
    return [dict(row) for row in rows]


def camera_file(path: Path, **fields) -> Path:
    path.write_text(yaml.safe_dump(fields))
    return path


@pytest.mark.slow
def test_throw_clip_files_one_throw_ticket_with_a_playable_clip(
    tmp_path: Path, videos_dir: Path, models_mirror: Path
) -> None:
    result = run_citywatch(
        ["watch", str(videos_dir / "throw_facade_ball_720p30.mp4")],
        tmp_path,
        models_mirror,
    )
    assert result.returncode == 0, result.stderr

    tickets = tickets_in(tmp_path)
    assert [t["category"] for t in tickets] == ["throw"]
    event = (
        json.loads(tickets[0]["event"])
        if isinstance(tickets[0]["event"], str)
        else tickets[0]["event"]
    )
    assert event["started_ts_s"] <= 66 / 30 and event["ended_ts_s"] >= 13 / 30
    assert "throw" in result.stdout and "clip" in result.stdout

    clip_key = next(i["key"] for i in event["evidence"] if i["kind"] == "clip")
    clip = tmp_path / "evidence" / clip_key
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        times = [float(f.pts * f.time_base) for f in container.decode(stream)]
    clip_start = event["clip_start_ts_s"]
    assert clip_start + times[0] <= 13 / 30  # the fall is inside the clip
    assert clip_start + times[-1] >= 66 / 30


@pytest.mark.slow
def test_a_recording_analysed_again_leaves_its_reviewed_ticket_alone(
    tmp_path: Path, videos_dir: Path, models_mirror: Path
) -> None:
    from sqlalchemy import create_engine, text

    video = str(videos_dir / "throw_facade_ball_720p30.mp4")
    assert run_citywatch(["watch", video], tmp_path, models_mirror).returncode == 0
    engine = create_engine(f"sqlite:///{tmp_path / 'citywatch.db'}")
    with engine.begin() as connection:
        connection.execute(text("UPDATE tickets SET state = 'confirmed'"))
    engine.dispose()
    evidence = sorted((tmp_path / "evidence").rglob("*.*"))
    written = {path: path.stat().st_mtime_ns for path in evidence}

    again = run_citywatch(["watch", video], tmp_path, models_mirror)

    assert again.returncode == 0, again.stderr
    assert "filed before, now confirmed" in again.stdout
    assert "clip" in again.stdout  # where the evidence lies, as before
    assert [t["state"] for t in tickets_in(tmp_path)] == ["confirmed"]
    assert {p: p.stat().st_mtime_ns for p in evidence} == written
    assert sorted((tmp_path / "evidence").rglob("*.*")) == evidence


@pytest.mark.slow
@pytest.mark.parametrize(
    "video", ["neg_swaying_tree_320x240.avi", "street_plaza_vtest_part1_f000-399.avi"]
)
def test_footage_without_a_throw_files_none(
    tmp_path: Path, videos_dir: Path, models_mirror: Path, video: str
) -> None:
    result = run_citywatch(["watch", str(videos_dir / video)], tmp_path, models_mirror)

    assert result.returncode == 0, result.stderr
    assert tickets_in(tmp_path) == []
    assert "0 ticket(s)" in result.stdout


PARKING_ZONE = [[600, 75], [768, 55], [768, 104], [625, 122]]
LAWN_ZONE = [[80, 375], [248, 355], [248, 404], [105, 422]]
# Where the two parked vehicles stand in the street footage, drawn by hand.
VAN_XYXY = (652, 44, 724, 100)
LIGHT_BLUE_CAR_XYXY = (734, 50, 768, 96)
VEHICLES = ["car", "truck", "bus", "motorcycle"]


def _parking_camera(path: Path, zone: list[list[int]]) -> Path:
    return camera_file(
        path,
        camera_id="plaza-north",
        area_path="old-town/riverside/grid-07",
        model="yolo11n-coco",
        throw={"enabled": False},
        zones=[{"name": "no-parking", "polygon_xy": zone}],
        rules=[
            {
                "name": "no-parking",
                "kind": "dwell",
                "category": "illegal_parking",
                "zone": "no-parking",
                "classes": VEHICLES,
                "dwell_s": 10,
            }
        ],
    )


def _json(value: str | list) -> list:
    return json.loads(value) if isinstance(value, str) else value


def _iou(a: list[float], b: tuple[int, ...]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area_a + area_b - inter)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("zone", "expected_xyxy"),
    [
        # The paved area where the white van and the light-blue car stand,
        # side by side: two vehicles in one zone are two tickets.
        (PARKING_ZONE, [VAN_XYXY, LIGHT_BLUE_CAR_XYXY]),
        # The same shape on the empty lawn: nothing stays there.
        (LAWN_ZONE, []),
    ],
    ids=["paved-area", "lawn"],
)
def test_parked_vehicles_file_one_ticket_each_in_a_no_parking_zone(
    tmp_path: Path,
    videos_dir: Path,
    models_mirror: Path,
    zone: list[list[int]],
    expected_xyxy: list[tuple[int, ...]],
) -> None:
    camera = _parking_camera(tmp_path / "plaza.yaml", zone)
    video = videos_dir / "street_plaza_vtest_part1_f000-399.avi"

    result = run_citywatch(
        ["watch", str(video), "--camera", str(camera)], tmp_path / "var", models_mirror
    )

    assert result.returncode == 0, result.stderr
    tickets = tickets_in(tmp_path / "var")
    assert [t["category"] for t in tickets] == ["illegal_parking"] * len(expected_xyxy)
    assert all(t["area_path"] == "old-town/riverside/grid-07" for t in tickets)
    # One ticket per vehicle, each on its own vehicle: not the van twice, and
    # no pedestrian passing through the zone.
    assert all(t["class_name"] in VEHICLES for t in tickets)
    boxes = sorted(_json(t["bbox"]) for t in tickets)  # left to right
    for box, truth_xyxy in zip(boxes, expected_xyxy, strict=True):
        assert _iou(box, truth_xyxy) > 0.8, (box, truth_xyxy)


def _bad_inputs(tmp: Path, videos_dir: Path) -> dict[str, tuple[list[str], str]]:
    not_video = tmp / "notes.mp4"
    not_video.write_text("these are meeting notes, not video\n" * 40)
    data = (videos_dir / "throw_facade_ball_720p30.mp4").read_bytes()
    truncated = tmp / "cut.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    street = str(videos_dir / "street_plaza_vtest_part1_f000-399.avi")
    typo = camera_file(tmp / "typo.yaml", camera_id="c1", dwel_s=10)
    outside = _parking_camera(tmp / "outside.yaml", [[700, 30], [900, 30], [900, 90]])
    return {
        "missing file": (["watch", str(tmp / "absent.mp4")], "no such file"),
        "not video": (["watch", str(not_video)], "not a video file"),
        "truncated": (["watch", str(truncated)], "cut.mp4"),
        "unknown key": (
            ["watch", street, "--camera", str(typo)],
            "dwel_s: unknown key",
        ),
        "zone outside": (["watch", street, "--camera", str(outside)], "outside the"),
    }


@pytest.mark.parametrize(
    "case", ["missing file", "not video", "truncated", "unknown key", "zone outside"]
)
def test_bad_input_gives_one_clear_line_and_writes_nothing(
    tmp_path: Path, videos_dir: Path, models_mirror: Path, case: str
) -> None:
    args, expected = _bad_inputs(tmp_path, videos_dir)[case]
    data_dir = tmp_path / "var"

    result = run_citywatch(args, data_dir, models_mirror)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    written = (
        [p for p in data_dir.rglob("*") if p.is_file()] if data_dir.exists() else []
    )
    assert written == []


def readme_main_job_command() -> str:
    """The first command of the README: the main job on the embedded default."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = readme.split("```sh\n")[1:]
    commands = [b.split("```")[0].strip() for b in blocks]
    return next(c for c in commands if c.startswith("scripts/citywatch watch"))


@pytest.mark.slow
def test_readme_main_job_command_runs_as_written(tmp_path: Path) -> None:
    command = readme_main_job_command()
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith("CITYWATCH_")
    }
    # Everything else as a new user has it: the script sets up .venv (its fast
    # path once the test command has) and finds the model mirror by itself.
    environment["CITYWATCH_DATA_DIR"] = str(tmp_path)

    result = subprocess.run(
        ["bash", "-c", command],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stderr
    assert "1 ticket(s)" in result.stdout and "throw" in result.stdout
    assert [t["category"] for t in tickets_in(tmp_path)] == ["throw"]
