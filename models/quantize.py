"""Static int8 quantization (QDQ) of a detector with onnxruntime.

Activations are calibrated on real frames prepared by the detector's own
letterbox, so the ranges seen at calibration are those seen in service.
Weights are int8 per channel, activations uint8 (the fast pairing for x86
VNNI). The box decoding at the end of an ultralytics head (the DFL softmax,
anchor arithmetic and the final concatenation of pixel boxes with 0-1 scores)
stays in float: one uint8 scale cannot hold both 0-640 boxes and 0-1 scores.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

from vision.detect.detector import Detector
from vision.errors import FrameError, ModelLoadError
from vision.ingest.images import read_image

logger = logging.getLogger(__name__)

DEFAULT_CALIBRATION_IMAGES = 300
_CALIBRATION = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
_MODULE = re.compile(r"^/model\.(\d+)/")


class FrameCalibrationReader(CalibrationDataReader):
    """Feeds calibration frames, prepared as the detector prepares them."""

    def __init__(
        self, detector: Detector, images: Iterable[Path | np.ndarray], limit: int
    ):
        self._detector = detector
        self._images = iter(images)
        self._limit = limit
        self.count = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        while self.count < self._limit:
            source = next(self._images, None)
            if source is None:
                return None
            try:
                image = read_image(source) if isinstance(source, str | Path) else source
                tensor, _ = self._detector.prepare(image)
            except FrameError as exc:
                logger.warning("skipping calibration image: %s", exc)
                continue
            self.count += 1
            return {self._detector.model_input.name: tensor}
        return None


def quantize_static_int8(
    model_path: str | Path,
    out_path: str | Path,
    calibration_images: Iterable[Path | np.ndarray],
    *,
    max_images: int = DEFAULT_CALIBRATION_IMAGES,
    input_size_px: int | None = None,
    calibration_method: str = "minmax",
    per_channel: bool = True,
    keep_head_float: bool = True,
) -> Path:
    """Write an int8 QDQ copy of ``model_path`` to ``out_path`` and return it.

    ``calibration_images`` are image paths or BGR arrays; at most
    ``max_images`` are used, each letterboxed to the full ``input_size_px``
    square (default: the model's own size). With ``keep_head_float`` the box
    decoding tail of the head stays in float. The copy keeps the model's
    metadata (class names, stride, size). Raises ModelLoadError when the
    model cannot be loaded and ValueError when no calibration image is usable.
    """
    model_path, out_path = Path(model_path), Path(out_path)
    if calibration_method not in _CALIBRATION:
        raise ValueError(
            f"calibration_method: expected one of {sorted(_CALIBRATION)}, "
            f"got {calibration_method!r}"
        )
    detector = Detector.from_file(
        model_path, input_size_px=input_size_px, full_size_input=True
    )
    reader = FrameCalibrationReader(detector, calibration_images, max_images)
    model = onnx.load(str(model_path))
    excluded = _decoding_tail(model) if keep_head_float else []

    try:
        quantize_static(
            str(model_path),
            str(out_path),
            reader,
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            calibrate_method=_CALIBRATION[calibration_method],
            nodes_to_exclude=excluded,
            calibration_providers=["CPUExecutionProvider"],
        )
    except Exception as exc:  # onnxruntime's quantizer raises plain exceptions
        out_path.unlink(missing_ok=True)
        if reader.count == 0:
            raise ValueError("calibration_images: no usable image among them") from exc
        raise ModelLoadError(f"{model_path}: quantization failed: {exc}") from exc
    _copy_metadata(model, out_path)
    logger.info(
        "quantized %s to %s on %d calibration frames (%d head nodes kept in float)",
        model_path.name,
        out_path.name,
        reader.count,
        len(excluded),
        extra={"model": model_path.name},
    )
    return out_path


def _decoding_tail(model: onnx.ModelProto) -> list[str]:
    """Nodes of the last module that decode boxes rather than convolve.

    ultralytics names nodes by module path; the head is the highest
    ``/model.N/`` and its own convolution blocks sit one level deeper
    (``cv2.0/...``, ``m.0/...``), except the fixed DFL convolution.
    """
    modules = [
        int(m.group(1)) for n in model.graph.node if (m := _MODULE.match(n.name))
    ]
    if not modules:
        logger.warning("node names carry no module path; quantizing the whole graph")
        return []
    head = f"/model.{max(modules)}/"
    tail = []
    for node in model.graph.node:
        if not node.name.startswith(head):
            continue
        inner = node.name[len(head) :]
        if "/" not in inner or inner.startswith("dfl/"):
            tail.append(node.name)
    return tail


def _copy_metadata(source: onnx.ModelProto, out_path: Path) -> None:
    quantized = onnx.load(str(out_path))
    present = {p.key for p in quantized.metadata_props}
    for prop in source.metadata_props:
        if prop.key not in present:
            entry = quantized.metadata_props.add()
            entry.key, entry.value = prop.key, prop.value
    onnx.save(quantized, str(out_path))


def calibration_files(folder: str | Path, limit: int) -> Iterator[Path]:
    """The first ``limit`` JPEG/PNG files of ``folder`` in name order."""
    folder = Path(folder)
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
    )
    if not files:
        raise ModelLoadError(f"{folder}: no calibration images (.jpg, .png) found")
    yield from files[:limit]
