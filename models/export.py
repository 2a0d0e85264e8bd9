"""Export an ultralytics checkpoint to the ONNX file the service runs.

Needs the train extra (torch, ultralytics). The export has a free batch and
input size, as the catalog's models do, so the detector letterboxes each frame
to the smallest stride multiple exactly as ultralytics' own predict does; the
class names, stride and ``imgsz`` travel in the file's metadata.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from vision.detect.detector import Detector
from vision.errors import ModelLoadError

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17


def export_onnx(
    weights: Path,
    out: Path,
    *,
    input_size_px: int = 640,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Write ``weights`` (an ultralytics ``.pt``) to ``out`` as dynamic ONNX.

    The written file is loaded back with the service's detector before this
    returns, so a model whose layout it cannot run is refused here, not on a
    camera. Raises ModelLoadError naming the file on any failure.
    """
    if not weights.is_file():
        raise ModelLoadError(f"{weights}: no such checkpoint file")
    try:
        from ultralytics import YOLO
    except ImportError:
        raise ModelLoadError(
            "exporting needs ultralytics and torch; install the train extra: "
            "pip install 'citywatch[train]'"
        ) from None

    # ultralytics writes the export beside the checkpoint, which may sit in a
    # read-only mirror: work on a copy.
    with tempfile.TemporaryDirectory(prefix="citywatch-export-") as work:
        copy = Path(shutil.copy(weights, Path(work) / weights.name))
        try:
            exported = YOLO(str(copy)).export(
                format="onnx",
                dynamic=True,
                simplify=True,
                opset=opset,
                imgsz=input_size_px,
                verbose=False,
            )
        except Exception as exc:  # ultralytics and torch raise many unrelated types
            raise ModelLoadError(
                f"{weights}: ultralytics cannot export it: {exc}"
            ) from exc
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(exported, out)

    detector = Detector.from_file(out)
    logger.info(
        "exported %s to %s: layout %s, %d classes",
        weights.name,
        out,
        detector.layout.value,
        len(detector.names),
    )
    return out
