"""``citywatch eval``: accuracy, event, speed and regression commands.

The typer app ``eval_app`` is mounted by the main command; it also runs on
its own as ``python -m eval.cli``. Model files are found through the catalog
with the service's settings (model_dir, model_mirror_dir), so an evaluation
loads exactly what a camera would.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from vision.errors import CitywatchError

eval_app = typer.Typer(
    no_args_is_help=True,
    help="Benchmark detectors and the pipeline on eval sets.",
)

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[1]

ModelOption = Annotated[str, typer.Option(help="Catalog name or ONNX file.")]
DataOption = Annotated[
    Path, typer.Option(help="YOLO data.yaml or COCO JSON ground truth.")
]
SplitOption = Annotated[str, typer.Option(help="Split of a data.yaml.")]
ImgszOption = Annotated[
    int | None, typer.Option(help="Model input size; default from the catalog.")
]
ConfOption = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="Score cut-off of boxes kept for AP.")
]
IouOption = Annotated[float, typer.Option(min=0.0, max=1.0, help="NMS IoU.")]
MaxDetOption = Annotated[int, typer.Option(min=1, help="Boxes kept per image.")]
LetterboxOption = Annotated[
    str,
    typer.Option(help="minimal (next stride multiple, as deployed) or square."),
]
ClassMapOption = Annotated[
    list[str] | None,
    typer.Option(help="SET_CLASS=MODEL_CLASS where the names differ (repeatable)."),
]


def _guarded(action: Callable[[], T]) -> T:
    """Expected failures end as one line on stderr and exit code 2."""
    try:
        return action()
    except (CitywatchError, ValueError) as exc:
        typer.echo(f"citywatch eval: error: {exc}", err=True)
        raise typer.Exit(code=2) from None


def _dirs() -> tuple[Path, Path | None, int | None]:
    from api.settings import get_settings

    settings = get_settings()
    assert settings.model_dir is not None  # derived by Settings
    return settings.model_dir, settings.model_mirror_dir, settings.ort_intra_op_threads


def _eval_loader() -> Callable[[str, Any], Any]:
    from api.settings import get_settings
    from eval.detection import load_detector_for_eval

    model_dir, mirror_dir, threads = _dirs()
    graph_optimization = get_settings().ort_graph_optimization
    return lambda name, settings: load_detector_for_eval(
        name,
        settings,
        model_dir=model_dir,
        mirror_dir=mirror_dir,
        intra_op_threads=threads,
        graph_optimization=graph_optimization,
    )


def _street_loader() -> Callable[[str], object]:
    from api.settings import get_settings
    from api.watch import load_detector

    # The service's own loader: events are measured with what is deployed.
    settings = get_settings()
    return lambda name: load_detector(name, settings)


def _class_map(pairs: list[str] | None) -> dict[str, str]:
    mapping = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(
                f"--class-map: expected SET_CLASS=MODEL_CLASS, got {pair!r}"
            )
        set_class, model_class = pair.split("=", 1)
        mapping[set_class.strip()] = model_class.strip()
    return mapping


def _shared_dir() -> Path:
    return Path(os.environ.get("CITYWATCH_SHARED_DIR", REPO_ROOT.parent / "shared"))


@eval_app.command()
def detect(
    model: ModelOption,
    data: DataOption,
    split: SplitOption = "test",
    imgsz: ImgszOption = None,
    conf: ConfOption = 0.001,
    iou: IouOption = 0.7,
    max_det: MaxDetOption = 300,
    threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Operating threshold for P/R/F1.")
    ] = 0.25,
    letterbox: LetterboxOption = "minimal",
    class_map: ClassMapOption = None,
    images: Annotated[
        Path | None, typer.Option(help="Image folder of a COCO JSON set.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Report folder.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """COCO mAP, per-class P/R/F1, PR curves and confusion matrix of a model."""
    from eval.datasets import load_labelled_set
    from eval.detection import DetectionSettings, evaluate_detector
    from eval.report import write_detection_report

    def run() -> dict[str, Path]:
        settings = DetectionSettings(
            min_score=conf,
            nms_iou=iou,
            max_det=max_det,
            operating_score=threshold,
            input_size_px=imgsz,
            letterbox=letterbox,
        )
        labelled_set = load_labelled_set(data, split=split, images_dir=images)
        detector = _eval_loader()(model, settings)
        report = evaluate_detector(
            detector,
            labelled_set,
            settings,
            class_map=_class_map(class_map),
            model_label=model if not Path(model).suffix else None,
            progress=progress and sys.stderr.isatty(),
        )
        folder = out or Path("runs/eval") / f"{Path(model).stem}-{labelled_set.name}"
        return write_detection_report(report, folder)

    paths = _guarded(run)
    typer.echo(paths["markdown"].read_text(encoding="utf-8"))
    typer.echo(f"report: {paths['markdown']} (JSON {paths['json']})")


@eval_app.command()
def events(
    truth: Annotated[
        list[Path],
        typer.Option(
            help="Truth file (JSON or YAML); repeat to set the same videos under "
            "other rules side by side."
        ),
    ],
    videos: Annotated[
        Path | None, typer.Option(help="Video folder; default beside the truth file.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write events.json/.md here.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Event precision/recall/F1, temporal IoU and time to alert on video."""
    from eval.compare import write_event_comparison
    from eval.events import evaluate_events, render_events_markdown

    labels = _run_labels(truth)
    reports: list[dict[str, Any]] = []
    for path, label in zip(truth, labels, strict=True):
        report = _guarded(
            lambda path=path: evaluate_events(
                path,
                _street_loader(),
                videos_dir=videos,
                progress=progress and sys.stderr.isatty(),
            )
        )
        markdown = render_events_markdown(report)
        if out is not None:
            folder = out if len(truth) == 1 else out / label
            folder.mkdir(parents=True, exist_ok=True)
            text = json.dumps(report, indent=2) + "\n"
            (folder / "events.json").write_text(text, "utf-8")
            (folder / "events.md").write_text(markdown, "utf-8")
        typer.echo(markdown)
        reports.append(report)
    if len(truth) > 1:
        folder = out or Path("runs/eval/compare-events")
        paths = write_event_comparison(reports, labels, folder)
        typer.echo(paths["markdown"].read_text(encoding="utf-8"))


def _run_labels(paths: list[Path]) -> list[str]:
    """Each truth file's stem, numbered where two share one."""
    stems = [path.stem for path in paths]
    return [
        stem if stems.count(stem) == 1 else f"{index + 1}-{stem}"
        for index, stem in enumerate(stems)
    ]


@eval_app.command()
def speed(
    videos: Annotated[
        Path | None, typer.Option(help="Folder of the shared videos.")
    ] = None,
    max_frames: Annotated[
        int, typer.Option(min=0, help="Frames per path (0 = whole video).")
    ] = 0,
    cpu: Annotated[
        int | None, typer.Option(help="Core to pin each measurement to.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write speed.json here.")] = None,
    cameras: Annotated[
        int,
        typer.Option(
            min=0, help="Then run this many live camera workers side by side."
        ),
    ] = 0,
    cameras_duration_s: Annotated[
        float, typer.Option(min=5.0, help="How long the camera workers run.")
    ] = 180.0,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Frames per second per core of each path beside decode alone, and memory;
    with --cameras, CPU, lag and memory of that many cameras on this machine."""
    from eval.events import load_truth
    from eval.speed import default_jobs, render_speed_table, run_jobs

    def run() -> list[dict[str, Any]]:
        model_dir, mirror_dir, _ = _dirs()
        plaza = load_truth(REPO_ROOT / "eval/truth/plaza_parking.json")[0]
        jobs = default_jobs(
            videos or _shared_dir() / "data/videos",
            street_camera=plaza.camera.model_dump(mode="json"),
            model_dir=model_dir,
            mirror_dir=mirror_dir,
            max_frames=max_frames,
        )
        core = cpu if cpu is not None else max(os.sched_getaffinity(0))
        return run_jobs(jobs, cpu=core, progress=progress and sys.stderr.isatty())

    results = _guarded(run)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "speed.json").write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    typer.echo(render_speed_table(results))
    if cameras:
        from eval import bench_cameras

        fleet = _guarded(lambda: bench_cameras.run(cameras, cameras_duration_s))
        if out is not None:
            (out / "cameras.json").write_text(json.dumps(fleet, indent=2) + "\n")
        typer.echo(bench_cameras.render_cameras_table(fleet))


@eval_app.command("throw-sweep")
def throw_sweep(
    out: Annotated[
        Path, typer.Option(help="Report folder (README.md, report.json, plots).")
    ] = Path("runs/eval/throw-sweep"),
    seeds: Annotated[
        int | None,
        typer.Option(min=1, help="Placements per swept value (default 10; 2 quick)."),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(help="Few falls and two minutes per distractor, for CI."),
    ] = False,
    processes: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 2,
    shared: Annotated[
        Path | None, typer.Option(help="Shared data folder; default ../shared.")
    ] = None,
    second_stage: Annotated[
        str | None,
        typer.Option(
            help="Run the throw analyzer's second stage with this detector "
            "(catalog name or ONNX file)."
        ),
    ] = None,
    veto_class: Annotated[
        list[str] | None,
        typer.Option(
            help="A class the second stage vetoes (repeatable; default bird, kite)."
        ),
    ] = None,
    verticals: Annotated[
        bool,
        typer.Option(
            help="Give each synthetic camera the vanishing point of its "
            "facade's verticals, as a steep view's camera file should."
        ),
    ] = True,
) -> None:
    """Throw recall vs size, height, tilt and fps; false alarms per distractor."""
    from eval.throw_sweep import (
        DEFAULT_VETO_CLASSES,
        StageSpec,
        SweepPlan,
        describe_machine,
        run_sweep,
        write_report,
    )

    def run() -> dict[str, Path]:
        if quick:
            plan = SweepPlan.quick(
                seeds=seeds or 2, processes=processes, verticals=verticals
            )
        else:
            plan = SweepPlan(
                seeds=seeds or 10, processes=processes, verticals=verticals
            )
        stage = None
        if second_stage is not None:
            model_dir, mirror_dir, _ = _dirs()
            stage = StageSpec.resolve(
                second_stage,
                tuple(veto_class or DEFAULT_VETO_CLASSES),
                model_dir=model_dir,
                mirror_dir=mirror_dir,
            )
        elif veto_class:
            raise ValueError("--veto-class: needs --second-stage MODEL")
        report = run_sweep(
            shared or _shared_dir(),
            plan,
            stage=stage,
            on_progress=lambda done, total: typer.echo(
                f"throw-sweep: {done}/{total}", err=True
            ),
        )
        return write_report(report, out, machine=describe_machine())

    paths = _guarded(run)
    typer.echo(paths["markdown"].read_text(encoding="utf-8"))
    typer.echo(f"report: {paths['markdown']} (JSON {paths['json']})")


@eval_app.command()
def compare(
    model: Annotated[
        list[str], typer.Option(help="Catalog name or ONNX file (repeat).")
    ],
    data: DataOption,
    split: SplitOption = "test",
    imgsz: ImgszOption = None,
    conf: ConfOption = 0.001,
    iou: IouOption = 0.7,
    max_det: MaxDetOption = 300,
    threshold: Annotated[
        list[float] | None,
        typer.Option(help="Operating threshold (repeat to compare thresholds)."),
    ] = None,
    letterbox: LetterboxOption = "minimal",
    class_map: ClassMapOption = None,
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path(
        "runs/eval/compare"
    ),
    pr_png: Annotated[
        Path | None, typer.Option(help="Also write the PR overlay here.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Models (or thresholds) side by side on one set, with overlaid PR curves."""
    from eval.compare import compare_runs, plan_runs, write_comparison
    from eval.datasets import load_labelled_set
    from eval.detection import DetectionSettings

    def run() -> dict[str, Path]:
        thresholds = threshold or [0.25]
        base = DetectionSettings(
            min_score=conf,
            nms_iou=iou,
            max_det=max_det,
            operating_score=min(thresholds),
            input_size_px=imgsz,
            letterbox=letterbox,
        )
        if len(model) * len(thresholds) < 2:
            raise ValueError("compare needs two models or two thresholds")
        labelled_set = load_labelled_set(data, split=split)
        reports = compare_runs(
            labelled_set,
            plan_runs(model, thresholds, base),
            _eval_loader(),
            class_map=_class_map(class_map),
            progress=progress and sys.stderr.isatty(),
        )
        return write_comparison(reports, out, pr_png=pr_png)

    paths = _guarded(run)
    typer.echo(paths["markdown"].read_text(encoding="utf-8"))
    typer.echo(f"comparison: {paths['markdown']}")


@eval_app.command()
def gate(
    update: Annotated[
        bool, typer.Option(help="Write the measured figures as the new baseline.")
    ] = False,
    shared: Annotated[
        Path | None, typer.Option(help="Shared data folder; default ../shared.")
    ] = None,
) -> None:
    """Check key figures against eval/baseline.json; exit 1 when one falls."""
    from eval.gate import render_gate_table, run_gate

    results = _guarded(
        lambda: run_gate(
            shared or _shared_dir(), _eval_loader(), _street_loader(), update=update
        )
    )
    typer.echo(render_gate_table(results))
    if not all(result.passed for result in results):
        raise typer.Exit(code=1)


if __name__ == "__main__":
    eval_app()
