"""Reading an ONNX detector file: session, input, class names, output layout.

Everything is taken from the session and the export's metadata; nothing about
the input name, size, element type or class count is assumed.
"""

from __future__ import annotations

import ast
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]

from vision.detect.layouts import (
    LayoutError,
    OutputLayout,
    anchor_count,
    recognise_layout,
)
from vision.errors import ModelLoadError

logger = logging.getLogger(__name__)

DEFAULT_INPUT_SIZE_PX = 640
_GRAPH_OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_ONNX_FLOAT_TYPES: dict[str, np.dtype[Any]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
}


@dataclass(frozen=True)
class ModelInput:
    """The model's image input as the session declares it (None = free)."""

    name: str
    batch: int | None
    height: int | None
    width: int | None
    dtype: np.dtype

    @property
    def fixed_hw(self) -> bool:
        return self.height is not None and self.width is not None


def open_session(
    path: Path,
    intra_op_threads: int | None,
    graph_optimization: str,
    allow_spinning: bool,
) -> ort.InferenceSession:
    if graph_optimization not in _GRAPH_OPTIMIZATION:
        raise ValueError(
            f"graph_optimization: expected one of {sorted(_GRAPH_OPTIMIZATION)}, "
            f"got {graph_optimization!r}"
        )
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file not found")
    options = ort.SessionOptions()
    options.graph_optimization_level = _GRAPH_OPTIMIZATION[graph_optimization]
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
    options.add_session_config_entry(
        "session.intra_op.allow_spinning", "1" if allow_spinning else "0"
    )
    try:
        return ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own unrelated types
        raise ModelLoadError(
            f"{path}: onnxruntime cannot load the model: {exc}"
        ) from exc


def read_input(session: ort.InferenceSession, path: Path) -> ModelInput:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        listed = [(i.name, i.shape, i.type) for i in inputs]
        raise ModelLoadError(f"{path}: expected one image input, found {listed}")
    spec = inputs[0]
    found = f"input {spec.name!r} {spec.type} {spec.shape}"
    dims = [d if isinstance(d, int) and d > 0 else None for d in spec.shape]
    if spec.type not in _ONNX_FLOAT_TYPES or len(dims) != 4:
        raise ModelLoadError(
            f"{path}: expected an image input float32/float16 [N, 3, H, W], "
            f"found {found}"
        )
    if dims[1] not in (3, None):
        raise ModelLoadError(
            f"{path}: expected 3 colour channels (NCHW), found {found}"
        )
    return ModelInput(
        spec.name, dims[0], dims[2], dims[3], _ONNX_FLOAT_TYPES[spec.type]
    )


def class_names_of(
    metadata: dict[str, str], class_names: list[str] | None, path: Path
) -> list[str] | None:
    from_model = _parse_names(metadata.get("names"), path)
    if from_model is None:
        return list(class_names) if class_names is not None else None
    if class_names is not None and len(class_names) != len(from_model):
        raise ModelLoadError(
            f"{path}: the model declares {len(from_model)} classes, the caller "
            f"gave {len(class_names)} class names"
        )
    return list(class_names) if class_names is not None else from_model


def _parse_names(raw: str | None, path: Path) -> list[str] | None:
    if raw is None:
        return None
    try:
        parsed = ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise ModelLoadError(
            f"{path}: unreadable 'names' metadata {raw[:80]!r}"
        ) from exc
    if isinstance(parsed, dict):
        return [str(parsed[k]) for k in sorted(parsed)]
    if isinstance(parsed, list | tuple):
        return [str(n) for n in parsed]
    raise ModelLoadError(f"{path}: 'names' metadata is neither a dict nor a list")


def target_size(
    model_input: ModelInput,
    metadata: dict[str, str],
    input_size_px: int | None,
    stride: int,
    path: Path,
) -> tuple[int, int]:
    if model_input.fixed_hw:
        fixed = (model_input.height, model_input.width)
        if input_size_px is not None and (input_size_px, input_size_px) != fixed:
            logger.warning(
                "%s has a fixed input of %sx%s; ignoring input_size_px=%s",
                path.name,
                *fixed,
                input_size_px,
                extra={"model": path.name},
            )
        return fixed  # type: ignore[return-value]
    if input_size_px is not None:
        size: tuple[int, int] = (input_size_px, input_size_px)
    elif "imgsz" in metadata:
        imgsz = ast.literal_eval(metadata["imgsz"])
        size = (
            (int(imgsz[0]), int(imgsz[-1]))
            if isinstance(imgsz, list | tuple)
            else (
                int(imgsz),
                int(imgsz),
            )
        )
    else:
        size = (DEFAULT_INPUT_SIZE_PX, DEFAULT_INPUT_SIZE_PX)
    # A free-size model still needs stride multiples, as ultralytics enforces.
    size = (model_input.height or size[0], model_input.width or size[1])
    return tuple(max(stride, math.ceil(s / stride) * stride) for s in size)  # type: ignore[return-value]


def probe_layout(
    session: ort.InferenceSession,
    model_input: ModelInput,
    target_hw: tuple[int, int],
    names: list[str] | None,
    metadata: dict[str, str],
    path: Path,
) -> tuple[OutputLayout, list[str]]:
    """Run one blank input to learn the real output shape, then its layout."""
    probe = np.zeros((model_input.batch or 1, 3, *target_hw), dtype=model_input.dtype)
    try:
        output = session.run(None, {model_input.name: probe})[0]
    except Exception as exc:  # onnxruntime raises its own unrelated types
        raise ModelLoadError(
            f"{path}: a blank input of shape {list(probe.shape)} fails: {exc}"
        ) from exc
    end_to_end = _end_to_end_flag(metadata)
    shape = tuple(int(d) for d in np.shape(output))
    if names is None:
        names = [f"class{i}" for i in range(_guess_class_count(shape, target_hw, path))]
    try:
        layout = recognise_layout(shape, len(names), target_hw, end_to_end=end_to_end)
    except LayoutError as exc:
        raise ModelLoadError(f"{path}: {exc}") from exc
    return layout, names


def _end_to_end_flag(metadata: dict[str, str]) -> bool | None:
    if "end2end" in metadata and metadata["end2end"] == "True":
        return True
    args = metadata.get("args")
    if args:
        try:
            if ast.literal_eval(args).get("nms"):
                return True
        except (ValueError, SyntaxError, AttributeError):
            pass
    return False if "end2end" in metadata else None


def _guess_class_count(
    shape: tuple[int, ...], target_hw: tuple[int, int], path: Path
) -> int:
    """Class count of a model without names metadata, from its anchor count."""
    anchors = anchor_count(target_hw)
    if len(shape) == 3:
        if shape[2] == anchors and shape[1] > 4:
            return shape[1] - 4
        if shape[1] == anchors and shape[2] > 4:
            return shape[2] - 4
        if shape[1] == 3 * anchors and shape[2] > 5:
            return shape[2] - 5
    raise ModelLoadError(
        f"{path}: no 'names' metadata and no class_names given, and output shape "
        f"{list(shape)} for input {target_hw[0]}x{target_hw[1]} does not tell the "
        "class count"
    )
