"""`citywatch models export`: an ultralytics checkpoint becomes the ONNX file
the catalog describes, and failures are one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.catalog import entry, sha256_of
from vision.detect.detector import Detector
from vision.ingest.images import read_image

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = "yolo11n_coco_deq_fp32.pt"


def run_export(
    args: list[str], *, block: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The command in its own process; ``block`` makes a module unimportable."""
    code = (
        "import sys; "
        + (f"sys.modules[{block!r}] = None; " if block else "")
        + "from citywatch_cli import main; "
        + f"sys.argv = ['citywatch', 'models', 'export', *{args!r}]; main()"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={**os.environ, "YOLO_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
@pytest.mark.ultralytics
def test_checkpoint_exports_to_the_catalog_model(
    tmp_path: Path, models_mirror: Path, shared_dir: Path
) -> None:
    out = tmp_path / "exported" / "yolo11n.onnx"

    # The mirror is read-only: the export must not write beside the checkpoint.
    result = run_export([str(models_mirror / CHECKPOINT), "--out", str(out)])

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == [str(out), f"sha256 {sha256_of(out)}"]
    exported = Detector.from_file(out)
    catalog = Detector.from_file(models_mirror / entry("yolo11n-coco").file)
    assert exported.model_input.height is None and exported.model_input.batch is None
    assert exported.names == catalog.names
    assert exported.layout is catalog.layout
    # The catalog's file was made from this very checkpoint the same way.
    for name in ("bus.jpg", "zidane.jpg"):
        image = read_image(shared_dir / "data" / "images" / name)
        ours, theirs = exported.detect(image), catalog.detect(image)
        assert len(ours) == len(theirs) > 0
        np.testing.assert_allclose(ours.xyxy, theirs.xyxy, atol=0.01)
        np.testing.assert_allclose(ours.confidence, theirs.confidence, atol=1e-4)


@pytest.mark.parametrize(
    ("case", "message"),
    [("no ultralytics", "install the train extra"), ("absent", "absent.pt")],
)
def test_export_failures_are_one_line_and_write_nothing(
    tmp_path: Path, models_mirror: Path, case: str, message: str
) -> None:
    out = tmp_path / "model.onnx"
    if case == "absent":
        result = run_export([str(tmp_path / "absent.pt"), "--out", str(out)])
    else:
        weights = str(models_mirror / CHECKPOINT)
        result = run_export([weights, "--out", str(out)], block="ultralytics")

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert not out.exists()
