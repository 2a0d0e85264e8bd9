"""Throw analyzer sweeps on synthetic footage: recall, origin error, false alarms.

Falls are rendered on the real facade by ``eval.synth_throw`` and analysed by
the deployed ``ThrowAnalyzer``. Four axes are swept, each with the others at
their defaults (``synth_throw.placed``: release point in the upper part of
the view, 15-45 m above a camera 8-20 m from the facade, an 8 px object at
25 fps), every value with bright and dark objects:

- object size at release (px), fall height (m above ground), camera tilt
  (degrees above level) and frame rate.

For each value: recall, origin error (px between the traced-back origin and
the true release point), and time to alert in stream seconds counted from
the end of the fall (the last frame showing the object, in view or landed):
when the analyzer decides, and when the camera worker files the ticket, which
waits for the clip's post-roll after the last sighting.

Look-alikes are measured on long distractor-only streams: for each kind
(and all kinds mixed) an analyzer watches chunks of a few minutes in which a
fresh instance of the distractor appears every few seconds (a bird crossing,
a leaf drifting down, a gust of rain, lights switching, a shaking camera).
False alarms are reported per camera-hour of stream time.

With a second stage (``StageSpec``: a detector and the classes it vetoes),
every analyzer is built as a camera worker builds it, by
``vision.pipeline.build_analyzers`` from a camera whose ``throw.second_stage``
block names the model, so recall and false alarms are measured with the
stage on; the falls and distractors it vetoed are counted beside them.

Work runs in a pool of processes, one OpenCV thread each.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from eval.synth_throw import (
    _DISTRACTOR_MAKERS,
    CAMERA_HEIGHT_M,
    DISTRACTORS,
    SynthSpec,
    SynthTruth,
    load_background,
    placed,
    render,
    score_clip,
    vertical_vanishing_point_xy,
    with_whole_fall,
)
from models.catalog import ModelSpec, resolve_model
from vision.analyze.throw import ThrowAnalyzer
from vision.config import CameraConfig, SecondStageConfig, ThrowConfig
from vision.errors import ConfigError
from vision.types import Event, Frame

logger = logging.getLogger(__name__)

MIXED = "mixed"
AXES = ("size_px", "height_m", "tilt_deg", "fps")
AXIS_LABELS = {
    "size_px": "object size at release (px)",
    "height_m": "fall height above ground (m)",
    "tilt_deg": "camera tilt above level (deg)",
    "fps": "frame rate (fps)",
}
GREYS = (230, 30)  # a bright and a dark object
RECALL_TARGET = 0.95
RECALL_TARGET_MIN_SIZE_PX = 6.0
# Distractor clips of the streams at the analyzer's usual working size.
STREAM_RESOLUTION_WH = (640, 360)
STREAM_FPS = 25.0
_NOISE_PLANES = 32
# Look-alikes a COCO model recognises that fall past a facade.
DEFAULT_VETO_CLASSES = ("bird", "kite")


@dataclass(frozen=True)
class SweepPlan:
    """What to sweep and how much distractor footage to watch."""

    seeds: int = 10
    sizes_px: tuple[float, ...] = (3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 30)
    heights_m: tuple[float, ...] = (5, 10, 15, 20, 30, 45, 60, 80)
    tilts_deg: tuple[float, ...] = (10, 20, 30, 40, 50, 60)
    fps_values: tuple[float, ...] = (10, 12.5, 15, 20, 25, 30, 50)
    distractor_s: float = 3600.0  # stream seconds per kind
    chunk_s: float = 300.0  # one analyzer run
    episode_s: float = 8.0  # a fresh distractor instance this often
    postroll_s: float = CameraConfig(camera_id="synth").throw.postroll_s
    processes: int = 2
    # Each synthetic camera's file gives the vanishing point of its facade's
    # verticals, as an installer enters it for a camera that looks up.
    verticals: bool = True

    @classmethod
    def quick(
        cls, seeds: int = 2, processes: int = 2, verticals: bool = True
    ) -> SweepPlan:
        """A couple of minutes per distractor kind and a few falls per axis."""
        return cls(
            seeds=seeds,
            sizes_px=(6, 10, 20),
            heights_m=(10, 40),
            tilts_deg=(20, 50),
            fps_values=(12.5, 30),
            distractor_s=120.0,
            chunk_s=120.0,
            processes=processes,
            verticals=verticals,
        )

    def axis_values(self, axis: str) -> tuple[float, ...]:
        return {
            "size_px": self.sizes_px,
            "height_m": self.heights_m,
            "tilt_deg": self.tilts_deg,
            "fps": self.fps_values,
        }[axis]


@dataclass(frozen=True)
class StageSpec:
    """The throw analyzer's second stage in a sweep: its block and model file.

    ``config.model`` is the resolved file, so worker processes load it
    without pulling.
    """

    config: SecondStageConfig
    model: ModelSpec

    @classmethod
    def resolve(
        cls,
        model: str,
        veto_classes: tuple[str, ...] = DEFAULT_VETO_CLASSES,
        *,
        model_dir: Path,
        mirror_dir: Path | None = None,
    ) -> StageSpec:
        """Find (and pull) the model once, before the worker processes start."""
        spec = resolve_model(model, model_dir=model_dir, mirror_dir=mirror_dir)
        unknown = set(veto_classes) - set(spec.class_names or veto_classes)
        if unknown:
            raise ConfigError(
                f"model {model} has no class {', '.join(sorted(unknown))} to veto"
            )
        config = SecondStageConfig(
            model=str(spec.path), veto_classes=list(veto_classes)
        )
        return cls(config=config, model=replace(spec, name=spec.name or model))


@dataclass(frozen=True)
class ThrowTask:
    """One throw clip: the axis swept, its value and the rendered spec."""

    shared_dir: Path
    axis: str
    value: float
    spec: SynthSpec
    postroll_s: float
    stage: StageSpec | None = None
    verticals: bool = True


@dataclass(frozen=True)
class StreamTask:
    """One analyzer run over a distractor-only stream."""

    shared_dir: Path
    kind: str
    chunk: int
    duration_s: float
    episode_s: float
    stage: StageSpec | None = None
    verticals: bool = True


@dataclass
class SweepReport:
    plan: SweepPlan
    throws: list[dict[str, Any]] = field(default_factory=list)
    streams: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0
    stage: StageSpec | None = None


# Placing a fall on the facade.


def aimed(
    base: SynthSpec,
    seed: int,
    *,
    height_m: float | None = None,
    tilt_deg: float | None = None,
) -> SynthSpec:
    """The default placement for ``seed``, with the fall height or tilt forced.

    The release pixel stays where ``placed`` put it. A forced height keeps the
    facade distance and turns the camera so the release point shows there; a
    forced tilt keeps the height and moves the facade to where the release
    point shows there.
    """
    spec = placed(base, seed)
    if height_m is None and tilt_deg is None:
        return spec
    width, height = spec.resolution_wh
    focal_px = (width / 2) / math.tan(math.radians(spec.hfov_deg) / 2)
    above_axis = math.atan((height / 2 - spec.release_uv[1]) / focal_px)
    if height_m is not None:
        elevation = math.atan2(height_m - CAMERA_HEIGHT_M, spec.distance_m)
        spec = replace(spec, tilt_deg=math.degrees(elevation - above_axis))
    if tilt_deg is not None:
        above_camera_m = spec.distance_m * math.tan(
            math.radians(spec.tilt_deg) + above_axis
        )
        elevation = min(math.radians(tilt_deg) + above_axis, math.radians(85.0))
        spec = replace(
            spec,
            tilt_deg=tilt_deg,
            distance_m=above_camera_m / math.tan(elevation),
        )
    return with_whole_fall(replace(spec, duration_s=6.0))


def throw_tasks(
    shared_dir: Path, plan: SweepPlan, stage: StageSpec | None = None
) -> list[ThrowTask]:
    """Every throw clip of the plan: axis x value x seed x object grey."""
    tasks = []
    base = SynthSpec()
    for axis in AXES:
        for value in plan.axis_values(axis):
            for seed in range(plan.seeds):
                for grey in GREYS:
                    spec = _spec_for(base, axis, value, seed)
                    tasks.append(
                        ThrowTask(
                            shared_dir,
                            axis,
                            float(value),
                            replace(spec, object_grey=grey),
                            plan.postroll_s,
                            stage,
                            plan.verticals,
                        )
                    )
    return tasks


def _spec_for(base: SynthSpec, axis: str, value: float, seed: int) -> SynthSpec:
    if axis == "height_m":
        return aimed(base, seed, height_m=value)
    if axis == "tilt_deg":
        return aimed(base, seed, tilt_deg=value)
    spec = placed(base, seed)
    if axis == "size_px":
        return replace(spec, size_px=value)
    if axis == "fps":
        return replace(spec, fps=value)
    raise ValueError(f"axis: expected one of {AXES}, got {axis!r}")


def run_throw(task: ThrowTask) -> dict[str, Any]:
    """Render, analyse and score one fall."""
    spec = task.spec
    frames, truth = render(spec, load_background(task.shared_dir, spec.resolution_wh))
    vanishing_point = vertical_vanishing_point_xy(spec) if task.verticals else None
    analyzer = throw_analyzer("synth", task.stage, vanishing_point)
    events = [event for frame in frames for event in analyzer.process(frame)]
    events += analyzer.finish()
    row: dict[str, Any] = {
        "axis": task.axis,
        "value": task.value,
        "seed": spec.seed,
        "grey": spec.object_grey,
        "tilt_deg": round(spec.tilt_deg, 1),
        "distance_m": round(spec.distance_m, 1),
        **score_clip(events, truth),
        "vetoed": _vetoed(analyzer),
    }
    return row | _alert_times(events, truth, spec.fps, task.postroll_s)


def _alert_times(
    events: list[Event], truth: SynthTruth, fps: float, postroll_s: float
) -> dict[str, float | None]:
    """Stream seconds from the true start and end of the fall to the alert.

    The end is the end of the last frame that shows the object; the worker
    files the ticket once the post-roll after the last sighting is recorded.
    """
    none: dict[str, float | None] = {
        "alert_after_start_s": None,
        "alert_after_end_s": None,
        "filed_after_end_s": None,
    }
    if truth.first_ts_s is None or truth.last_ts_s is None:
        return none
    hits = [
        e
        for e in events
        if e.started_ts_s <= truth.last_ts_s + 0.1
        and e.ended_ts_s >= truth.first_ts_s - 0.1
    ]
    if not hits:
        return none
    event = hits[0]
    end_s = truth.last_ts_s + 1.0 / fps
    filed_s = max(event.detected_ts_s, event.ended_ts_s + postroll_s)
    return {
        "alert_after_start_s": round(event.detected_ts_s - truth.first_ts_s, 3),
        "alert_after_end_s": round(event.detected_ts_s - end_s, 3),
        "filed_after_end_s": round(filed_s - end_s, 3),
    }


# Distractor-only streams.


def stream_tasks(
    shared_dir: Path, plan: SweepPlan, stage: StageSpec | None = None
) -> list[StreamTask]:
    """Chunks covering ``distractor_s`` of stream per kind, and mixed."""
    tasks = []
    for kind in (*DISTRACTORS, MIXED):
        left_s, chunk = plan.distractor_s, 0
        while left_s > 1e-6:
            duration_s = min(plan.chunk_s, left_s)
            tasks.append(
                StreamTask(
                    shared_dir,
                    kind,
                    chunk,
                    duration_s,
                    plan.episode_s,
                    stage,
                    plan.verticals,
                )
            )
            left_s -= duration_s
            chunk += 1
    return tasks


def distractor_frames(
    kind: str,
    duration_s: float,
    *,
    background: np.ndarray,
    seed: int,
    episode_s: float = 8.0,
    fps: float = STREAM_FPS,
    noise_sigma: float = 2.0,
) -> Iterator[Frame]:
    """A distractor-only stream: a fresh instance of the kind every episode.

    Sensor noise comes from a bank of precomputed planes picked at random per
    frame: the same statistics as fresh noise at a fraction of the cost, which
    is what makes an hour of stream per kind affordable.
    """
    rng = np.random.default_rng(seed)
    height, width = background.shape[:2]
    names = DISTRACTORS if kind == MIXED else (kind,)
    spec = SynthSpec(resolution_wh=(width, height), fps=fps, throw=False)
    base = background.astype(np.float32)
    noise = rng.normal(0.0, noise_sigma, (_NOISE_PLANES, height, width, 1))
    noise = noise.astype(np.float32)
    started_at = datetime(2026, 1, 1, tzinfo=UTC)
    per_episode = max(1, round(episode_s * fps))
    painters: list[Callable[[np.ndarray, float], np.ndarray]] = []
    for index in range(int(duration_s * fps)):
        if index % per_episode == 0:
            painters = [_DISTRACTOR_MAKERS[name](spec, rng) for name in names]
        ts_s = round(index / fps, 6)
        episode_ts_s = (index % per_episode) / fps
        image = base.copy()
        for paint in painters:
            image = paint(image, episode_ts_s)
        image += noise[rng.integers(_NOISE_PLANES)]
        yield Frame(
            image=np.clip(image, 0, 255).astype(np.uint8),
            ts_s=ts_s,
            index=index,
            captured_at=started_at + timedelta(seconds=ts_s),
        )


def stream_seed(kind: str, chunk: int) -> int:
    """The seed of one chunk: ``distractor_frames`` with it replays the chunk."""
    return 100_000 * (1 + (*DISTRACTORS, MIXED).index(kind)) + chunk


def run_stream(task: StreamTask) -> dict[str, Any]:
    """Analyse one chunk of distractor stream; its false alarms."""
    started = time.perf_counter()
    seed = stream_seed(task.kind, task.chunk)
    background = load_background(task.shared_dir, STREAM_RESOLUTION_WH)
    view = SynthSpec(resolution_wh=STREAM_RESOLUTION_WH)
    vanishing_point = vertical_vanishing_point_xy(view) if task.verticals else None
    analyzer = throw_analyzer(f"synth-{task.kind}", task.stage, vanishing_point)
    events, frames = [], 0
    for frame in distractor_frames(
        task.kind,
        task.duration_s,
        background=background,
        seed=seed,
        episode_s=task.episode_s,
    ):
        events += analyzer.process(frame)
        frames += 1
    events += analyzer.finish()
    return {
        "kind": task.kind,
        "chunk": task.chunk,
        "frames": frames,
        "stream_s": frames / STREAM_FPS,
        "false_alarms": len(events),
        "false_alarm_ts_s": [round(e.started_ts_s, 2) for e in events],
        "vetoed": _vetoed(analyzer),
        "wall_s": round(time.perf_counter() - started, 2),
    }


def throw_analyzer(
    camera_id: str,
    stage: StageSpec | None,
    vanishing_point_xy: tuple[float, float] | None = None,
) -> ThrowAnalyzer:
    """The analyzer a camera worker would run, with the stage if given."""
    from vision.pipeline import build_analyzers

    throw = ThrowConfig(
        second_stage=stage.config if stage else None,
        vertical_vanishing_point_xy=vanishing_point_xy,
    )
    camera = CameraConfig(camera_id=camera_id, throw=throw)
    analyzer = build_analyzers(camera, lambda _path: _stage_detector(stage))[0]
    assert isinstance(analyzer, ThrowAnalyzer)
    return analyzer


_DETECTORS: dict[Path, Any] = {}


def _stage_detector(stage: StageSpec | None) -> Any:
    """One detector per worker process, on one thread like OpenCV."""
    from vision.detect.detector import Detector

    assert stage is not None  # asked for only when the camera has the block
    spec = stage.model
    if spec.path not in _DETECTORS:
        _DETECTORS[spec.path] = Detector.from_file(
            spec.path,
            class_names=spec.class_names,
            input_size_px=spec.input_size_px,
            intra_op_threads=1,
        )
    return _DETECTORS[spec.path]


def _vetoed(analyzer: ThrowAnalyzer) -> int:
    return analyzer.second_stage.vetoed if analyzer.second_stage else 0


# Running the plan.


def run_sweep(
    shared_dir: Path,
    plan: SweepPlan,
    *,
    stage: StageSpec | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> SweepReport:
    """Every throw clip and distractor chunk of the plan, in a process pool;
    with ``stage``, the throw analyzer runs its second stage."""
    started = time.perf_counter()
    streams = stream_tasks(shared_dir, plan, stage)
    throws = throw_tasks(shared_dir, plan, stage)
    report = SweepReport(plan=plan, stage=stage)
    total, done = len(streams) + len(throws), 0
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=plan.processes, mp_context=context, initializer=_one_thread
    ) as pool:
        # Long chunks first, so the short clips fill the gaps at the end.
        stream_futures = [pool.submit(run_stream, task) for task in streams]
        throw_futures = [pool.submit(run_throw, task) for task in throws]
        for future in stream_futures:
            report.streams.append(future.result())
            done += 1
            if on_progress:
                on_progress(done, total)
        for future in throw_futures:
            report.throws.append(future.result())
            done += 1
            if on_progress and done % 50 == 0:
                on_progress(done, total)
    report.wall_s = round(time.perf_counter() - started, 1)
    logger.info(
        "throw sweep: %d falls, %d distractor chunks in %.0f s",
        len(report.throws),
        len(report.streams),
        report.wall_s,
    )
    return report


def _one_thread() -> None:
    cv2.setNumThreads(1)


# Summaries.


def recall_table(report: SweepReport, axis: str) -> list[dict[str, Any]]:
    """Per value of one axis: clips, hits, recall, origin error, alert times."""
    rows = []
    for value in report.plan.axis_values(axis):
        clips = [r for r in report.throws if r["axis"] == axis and r["value"] == value]
        hits = [r for r in clips if r["hit"]]
        rows.append(
            {
                "value": value,
                "clips": len(clips),
                "hits": len(hits),
                "recall": len(hits) / len(clips) if clips else None,
                "recall_bright": _recall([r for r in clips if r["grey"] > 128]),
                "recall_dark": _recall([r for r in clips if r["grey"] <= 128]),
                "false_alarms": sum(int(r["false_alarms"]) for r in clips),
                "origin_error_median_px": _quantile(hits, "origin_error_px", 0.5),
                "origin_error_p90_px": _quantile(hits, "origin_error_px", 0.9),
                "alert_after_end_median_s": _quantile(hits, "alert_after_end_s", 0.5),
                "alert_after_end_max_s": _quantile(hits, "alert_after_end_s", 1.0),
                "filed_after_end_max_s": _quantile(hits, "filed_after_end_s", 1.0),
            }
        )
    return rows


def false_alarm_table(report: SweepReport) -> list[dict[str, Any]]:
    """Per distractor kind (and mixed): stream hours and false alarms."""
    rows = []
    for kind in (*DISTRACTORS, MIXED):
        chunks = [r for r in report.streams if r["kind"] == kind]
        hours = sum(r["stream_s"] for r in chunks) / 3600.0
        alarms = sum(r["false_alarms"] for r in chunks)
        rows.append(
            {
                "kind": kind,
                "stream_h": round(hours, 3),
                "frames": sum(r["frames"] for r in chunks),
                "false_alarms": alarms,
                "per_camera_hour": round(alarms / hours, 2) if hours else None,
                "vetoed": sum(r.get("vetoed", 0) for r in chunks),
                "wall_s": round(sum(r["wall_s"] for r in chunks), 1),
            }
        )
    return rows


def targets(report: SweepReport) -> dict[str, Any]:
    """The two targets: recall on 6 px and more at 25 fps, no false alarm."""
    # The size axis runs at the default 25 fps over the default placements.
    eligible = [
        r
        for r in report.throws
        if r["axis"] == "size_px" and r["value"] >= RECALL_TARGET_MIN_SIZE_PX
    ]
    recall = _recall(eligible)
    alarms = {row["kind"]: row["false_alarms"] for row in false_alarm_table(report)}
    hits = [r for r in report.throws if r["hit"]]
    return {
        "recall_6px_up_25fps": recall,
        "recall_clips": len(eligible),
        "recall_met": recall is not None and recall >= RECALL_TARGET,
        "false_alarms_by_kind": alarms,
        "no_false_alarm_met": not any(alarms.values()),
        "origin_error_median_px": _quantile(hits, "origin_error_px", 0.5),
        "origin_error_p90_px": _quantile(hits, "origin_error_px", 0.9),
        "alert_after_end_median_s": _quantile(hits, "alert_after_end_s", 0.5),
        "alert_after_end_p95_s": _quantile(hits, "alert_after_end_s", 0.95),
        "alert_after_end_max_s": _quantile(hits, "alert_after_end_s", 1.0),
        "filed_after_end_max_s": _quantile(hits, "filed_after_end_s", 1.0),
    }


def _recall(rows: list[dict[str, Any]]) -> float | None:
    return sum(int(r["hit"]) for r in rows) / len(rows) if rows else None


def _quantile(rows: list[dict[str, Any]], key: str, q: float) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    values = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    return round(float(np.quantile(values, q)), 3) if values else None


# Writing the report.


def write_report(report: SweepReport, out: Path, *, machine: str) -> dict[str, Path]:
    """report.json, README.md and one recall plot per axis under ``out``."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    paths = {
        axis: plot_recall(report, axis, out / f"recall_vs_{axis}.png") for axis in AXES
    }
    summary = {
        "plan": report.plan.__dict__,
        "second_stage": _stage_summary(report),
        "wall_s": report.wall_s,
        "machine": machine,
        "targets": targets(report),
        "recall": {axis: recall_table(report, axis) for axis in AXES},
        "false_alarms": false_alarm_table(report),
    }
    paths["json"] = out / "report.json"
    paths["json"].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    paths["markdown"] = out / "README.md"
    paths["markdown"].write_text(render_markdown(report, machine=machine), "utf-8")
    return paths


def _stage_summary(report: SweepReport) -> dict[str, Any] | None:
    """The stage's settings and what it vetoed; None when it was off."""
    if report.stage is None:
        return None
    return {
        **report.stage.config.model_dump(mode="json"),
        "model": report.stage.model.name,
        "vetoed_falls": sum(r.get("vetoed", 0) for r in report.throws),
        "vetoed_distractors": sum(r.get("vetoed", 0) for r in report.streams),
    }


def plot_recall(report: SweepReport, axis: str, path: Path) -> Path:
    """Recall against one axis (bright, dark and all objects), target drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = recall_table(report, axis)
    values = [row["value"] for row in rows]
    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for key, label, style in (
        ("recall", "all", "o-"),
        ("recall_bright", "bright object", "^--"),
        ("recall_dark", "dark object", "v--"),
    ):
        recalls = [np.nan if row[key] is None else row[key] for row in rows]
        axes.plot(values, recalls, style, label=label, linewidth=1.6, markersize=5)
    axes.axhline(RECALL_TARGET, color="grey", linestyle=":", label="target 0.95")
    axes.set_ylim(-0.02, 1.05)
    axes.set_xlabel(AXIS_LABELS[axis])
    axes.set_ylabel("recall")
    clips = rows[0]["clips"] if rows else 0
    axes.set_title(f"Throw recall vs {AXIS_LABELS[axis]} ({clips} falls per point)")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def render_markdown(report: SweepReport, *, machine: str) -> str:
    plan, goal = report.plan, targets(report)
    lines = [
        "# Throw analyzer on synthetic footage",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine}; the whole "
        f"sweep took {report.wall_s / 60:.1f} min with {plan.processes} processes.",
        f"Falls: {len(report.throws)} clips ({plan.seeds} placements x bright and "
        "dark objects per point). Distractors: "
        f"{plan.distractor_s / 60:.0f} min of stream per kind at "
        f"{STREAM_RESOLUTION_WH[0]}x{STREAM_RESOLUTION_WH[1]} "
        f"{STREAM_FPS:g} fps, a fresh instance every {plan.episode_s:g} s, "
        f"analysed in runs of {plan.chunk_s / 60:g} min.",
        f"Regenerate: `citywatch eval throw-sweep {_regenerate_options(report)}`.",
        *_stage_lines(report),
        "",
        "Each axis is swept with the others at their defaults: an 8 px object "
        "at 25 fps in 640x360, released 15-45 m above a camera 8-20 m from the "
        "facade, the camera tilted so the release point shows in the upper part "
        "of the view. A forced fall height keeps the facade distance and turns "
        "the camera; a forced tilt keeps the height and moves the facade (at 60 "
        "degrees to within 2-9 m of the camera, so the object passes close by "
        "the lens). "
        + (
            "Each camera file gives the vanishing point of the facade's "
            "verticals, so a fall slanting outward along them in a steep view "
            "counts as downward. "
            if plan.verticals
            else "No camera file gives the vanishing point of the verticals. "
        )
        + "Origin "
        "error: pixels between the event's origin and the true release point. "
        "Alert after end: stream seconds from the end of the last frame showing "
        "the object (left the view or landed) to the analyzer's decision.",
        "",
        "## Targets",
        "",
        f"- Recall on objects of {RECALL_TARGET_MIN_SIZE_PX:g} px and more at "
        f"25 fps: {_fmt(goal['recall_6px_up_25fps'])} over "
        f"{goal['recall_clips']} falls (target {RECALL_TARGET}): "
        f"{'met' if goal['recall_met'] else 'NOT met'}.",
        "- False alarms on distractor-only streams: "
        f"{sum(goal['false_alarms_by_kind'].values())} "
        f"(target none): {'met' if goal['no_false_alarm_met'] else 'NOT met'}.",
        f"- Origin error over all found falls: median "
        f"{_fmt(goal['origin_error_median_px'], 1)} px, 90th percentile "
        f"{_fmt(goal['origin_error_p90_px'], 1)} px.",
        "- Decision after the object left the view or landed (stream s): median "
        f"{_fmt(goal['alert_after_end_median_s'], 2)}, 95th percentile "
        f"{_fmt(goal['alert_after_end_p95_s'], 2)}, max "
        f"{_fmt(goal['alert_after_end_max_s'], 2)}; ticket filed at most "
        f"{_fmt(goal['filed_after_end_max_s'], 2)} s after the end (post-roll "
        f"{plan.postroll_s:g} s after the last sighting).",
        "",
        "## False alarms per camera-hour",
        "",
        "| distractor | stream h | frames | false alarms | per camera-hour |",
        "|---|---|---|---|---|",
    ]
    for row in false_alarm_table(report):
        lines.append(
            f"| {row['kind']} | {row['stream_h']:.2f} | {row['frames']} | "
            f"{row['false_alarms']} | {row['per_camera_hour']} |"
        )
    lines += _false_alarm_times(report)
    for axis in AXES:
        lines += _axis_section(report, axis)
    return "\n".join(lines) + "\n"


def _regenerate_options(report: SweepReport) -> str:
    verticals = "" if report.plan.verticals else " --no-verticals"
    if report.stage is None:
        return f"--out docs/throw_sweep{verticals}"
    vetoes = "".join(f" --veto-class {c}" for c in report.stage.config.veto_classes)
    return f"--second-stage {report.stage.model.name}{vetoes}{verticals}"


def _stage_lines(report: SweepReport) -> list[str]:
    summary = _stage_summary(report)
    if summary is None:
        return []
    return [
        "",
        f"Second stage on: {summary['model']} on {summary['crops']} crops of "
        f"each fall that passed physics, vetoing "
        f"{', '.join(summary['veto_classes'])} at score >= {summary['min_score']:g} "
        f"in {summary['veto_share']:g} of the crops. It vetoed "
        f"{summary['vetoed_falls']} candidates on the fall clips and "
        f"{summary['vetoed_distractors']} on the distractor streams.",
    ]


def _false_alarm_times(report: SweepReport) -> list[str]:
    """Where each false alarm began, to replay its chunk (``stream_seed``)."""
    lines = []
    for kind in (*DISTRACTORS, MIXED):
        times = [
            f"{row['chunk']}/{ts_s:g}"
            for row in report.streams
            if row["kind"] == kind
            for ts_s in row["false_alarm_ts_s"]
        ]
        if times:
            shown = ", ".join(times[:12]) + (", ..." if len(times) > 12 else "")
            lines.append(f"- {kind}: {shown}")
    if not lines:
        return []
    return [
        "",
        "False alarms as chunk/stream second; `distractor_frames(kind, "
        f"{report.plan.chunk_s:g}, seed=stream_seed(kind, chunk), "
        f"episode_s={report.plan.episode_s:g}, ...)` replays a chunk.",
        "",
        *lines,
    ]


def _axis_section(report: SweepReport, axis: str) -> list[str]:
    lines = [
        "",
        f"## Recall vs {AXIS_LABELS[axis]}",
        "",
        f"![recall vs {axis}](recall_vs_{axis}.png)",
        "",
        "| value | falls | found | recall | bright | dark | false alarms | "
        "origin error median / p90 px | alert after end median / max s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in recall_table(report, axis):
        lines.append(
            f"| {row['value']:g} | {row['clips']} | {row['hits']} | "
            f"{_fmt(row['recall'])} | {_fmt(row['recall_bright'])} | "
            f"{_fmt(row['recall_dark'])} | {row['false_alarms']} | "
            f"{_fmt(row['origin_error_median_px'], 1)} / "
            f"{_fmt(row['origin_error_p90_px'], 1)} | "
            f"{_fmt(row['alert_after_end_median_s'], 2)} / "
            f"{_fmt(row['alert_after_end_max_s'], 2)} |"
        )
    return lines


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def describe_machine() -> str:
    """Core count and CPU model, as the report header states them."""
    import os

    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text(errors="replace") if cpuinfo.exists() else ""
    models = [
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.startswith("model name")
    ]
    return f"a {os.cpu_count()}-core VM ({models[0] if models else 'unknown CPU'})"
