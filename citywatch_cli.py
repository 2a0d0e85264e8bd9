"""The ``citywatch`` command: wires settings to the pipeline, service and tools.

Every expected failure (a missing file, a camera file with a typo, a store
that refuses) ends as one line on stderr naming the problem, and exit code 2;
``--debug`` shows tracebacks for the unexpected ones.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from api.admin_cli import admin_app
from eval.cli import eval_app
from vision.errors import CitywatchError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Cameras that notice city problems, keep the evidence and file tickets.",
)
models_app = typer.Typer(no_args_is_help=True, help="The model catalog.")
app.add_typer(models_app, name="models")
app.add_typer(admin_app, name="admin")
app.add_typer(
    eval_app, name="eval", help="Benchmarks on eval sets: accuracy, events, speed."
)

logger = logging.getLogger("citywatch")
_debug = False

T = TypeVar("T")


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option(help="Show tracebacks and debug logs.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="Only warnings and errors.")] = False,
) -> None:
    global _debug
    _debug = debug
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not debug:
        # Migration chatter and a line per HTTP request (a remote camera
        # asks the service every few seconds) tell a camera operator nothing.
        for chatty in ("alembic", "httpx"):
            logging.getLogger(chatty).setLevel(logging.WARNING)


def _fail(message: str) -> None:
    typer.echo(f"citywatch: error: {message}", err=True)
    raise typer.Exit(code=2)


def _guarded(action: Callable[[], T]) -> T:
    """Run ``action``; expected failures become one line and exit code 2."""
    try:
        return action()
    except CitywatchError as exc:
        if _debug:
            raise
        _fail(str(exc))
    except KeyboardInterrupt:
        typer.echo("citywatch: stopped", err=True)
        raise typer.Exit(code=130) from None
    raise AssertionError("unreachable")


@app.command()
def watch(
    source: Annotated[str, typer.Argument(help="Video file, or a stream URL.")],
    camera: Annotated[
        Path | None,
        typer.Option(help="Camera file (YAML); without it, throws on the whole frame."),
    ] = None,
    remote: Annotated[
        bool,
        typer.Option(
            help="File tickets at the service at CITYWATCH_API_URL with the "
            "camera's key CITYWATCH_CAMERA_API_KEY, not into a database here; "
            "evidence goes to the object store the service reads."
        ),
    ] = False,
) -> None:
    """Analyse a video file to its end (a stream until stopped) and file tickets."""
    from api.settings import get_settings
    from api.watch import watch_source

    # A service manager stops with SIGTERM: end as Ctrl-C does, filing the
    # events that wait for their post-roll.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    report = _guarded(
        lambda: watch_source(source, camera, get_settings(), remote=remote)
    )
    _print_report(report)


def _print_report(report) -> None:
    typer.echo(
        f"{report.frames} frames, {report.duration_s:.1f} s of video from camera "
        f"{report.camera_id}: {len(report.tickets)} ticket(s)"
    )
    for ticket in report.tickets:
        notes = []
        if ticket.evidence_state is not None:
            notes.append(f"evidence {ticket.evidence_state}")
        if ticket.filed_before_as:
            notes.append(
                f"filed before, now {ticket.filed_before_as}; evidence left as it was"
            )
        if ticket.attached:
            notes.append("repeats this open ticket at the same place; attached to it")
        typer.echo(
            f"  ticket {ticket.ticket_id}  {ticket.category:<16} "
            f"{ticket.started_ts_s:6.1f}-{ticket.ended_ts_s:6.1f} s  "
            + "  ".join(notes)
        )
        for kind, location in ticket.evidence:
            typer.echo(f"      {kind:<10} {location}")
    if report.kept:
        typer.echo(
            f"  {len(report.kept)} event(s) not filed: the ticket service was "
            f"unavailable; kept in {Path(report.kept[0]).parent}, the next run "
            "files them"
        )
    if report.spooled:
        typer.echo(
            f"  {len(report.spooled)} evidence object(s) not yet in the store: "
            f"it was unavailable; kept in {report.spool_dir}, the next run "
            "uploads them"
        )
    typer.echo(report.filed_at)
    typer.echo(f"evidence: {report.store}")


@app.command()
def serve(
    cameras: Annotated[
        Path | None,
        typer.Option(help="Folder of camera files: run those cameras beside the API."),
    ] = None,
) -> None:
    """Run the HTTP API and review pages; with --cameras, the cameras too."""
    from api.main import run_server
    from api.settings import get_settings

    _guarded(lambda: run_server(get_settings(), camera_dir=cameras))


@app.command()
def detect(
    images: Annotated[list[Path], typer.Argument(help="Image files.")],
    model: Annotated[
        str, typer.Option(help="Catalog name or ONNX file.")
    ] = "yolo11n-coco",
    min_score: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.25,
) -> None:
    """Print each image's detections as JSON lines (pixel x1 y1 x2 y2)."""
    from api.settings import get_settings
    from api.watch import load_detector
    from vision.detect.detector import detect_files

    def run() -> None:
        detector = load_detector(model, get_settings())
        for row in detect_files(detector, images, min_score=min_score):
            typer.echo(json.dumps(row))

    _guarded(run)


@models_app.command("list")
def models_list() -> None:
    """The catalog: name, input size, classes, licence."""
    from models.catalog import load_catalog

    for entry in load_catalog().values():
        source = "download" if entry.url else "local build"
        typer.echo(
            f"{entry.name:<22} {entry.task:<6} {entry.input_size_px:>4}px "
            f"{len(entry.class_names):>3} classes  {source:<11} {entry.licence}"
        )


@models_app.command("pull")
def models_pull(name: Annotated[str, typer.Argument(help="Catalog name.")]) -> None:
    """Fetch a model from the mirror directory or its URL and check its hash."""
    from api.settings import get_settings
    from models.catalog import pull

    def run() -> Path:
        settings = get_settings()
        return pull(
            name, model_dir=settings.model_dir, mirror_dir=settings.model_mirror_dir
        )

    path = _guarded(run)
    typer.echo(str(path))


@models_app.command("export")
def models_export(
    weights: Annotated[Path, typer.Argument(help="An ultralytics .pt checkpoint.")],
    out: Annotated[
        Path | None,
        typer.Option(help="ONNX file to write; default the checkpoint's name here."),
    ] = None,
    input_size_px: Annotated[
        int, typer.Option(min=32, help="Input size recorded in the export.")
    ] = 640,
) -> None:
    """Export a checkpoint to ONNX with free batch and size, as in the catalog.

    Prints the file and its SHA-256 for a catalog entry. Needs the train
    extra (torch, ultralytics).
    """
    from models.catalog import sha256_of
    from models.export import export_onnx

    target = out or Path(weights.with_suffix(".onnx").name)
    path = _guarded(lambda: export_onnx(weights, target, input_size_px=input_size_px))
    typer.echo(str(path))
    typer.echo(f"sha256 {sha256_of(path)}")


@models_app.command("quantize")
def models_quantize(
    model: Annotated[str, typer.Argument(help="Catalog name or ONNX file.")],
    calibration: Annotated[
        Path, typer.Option(help="Folder of images like the camera's (a few hundred).")
    ],
    out: Annotated[Path, typer.Option(help="Where to write the int8 model.")],
    max_images: Annotated[int, typer.Option(min=1)] = 300,
) -> None:
    """Write a static int8 (QDQ) copy of a model, calibrated on sample images.

    Measure it with `citywatch eval compare` before deploying: on some CPUs
    and models int8 is slower, or loses more accuracy than it is worth.
    """
    from api.settings import get_settings
    from models.catalog import resolve_model

    def run() -> Path:
        try:
            from models.quantize import calibration_files, quantize_static_int8
        except ImportError as exc:
            raise CitywatchError(
                f"quantizing needs the onnx package ({exc.name} is missing); "
                "install the train extra: pip install 'citywatch[train]'"
            ) from None
        settings = get_settings()
        spec = resolve_model(
            model, model_dir=settings.model_dir, mirror_dir=settings.model_mirror_dir
        )
        return quantize_static_int8(
            spec.path,
            out,
            calibration_files(calibration, max_images),
            max_images=max_images,
            input_size_px=spec.input_size_px,
        )

    typer.echo(str(_guarded(run)))


def main() -> None:
    app(prog_name="citywatch")


if __name__ == "__main__":
    main()
