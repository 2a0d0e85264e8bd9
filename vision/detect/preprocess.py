"""Frame preparation for YOLO-family ONNX detectors.

The steps reproduce ultralytics' own predict path, so that the same model file
gives the same boxes here as in ultralytics: letterbox with INTER_LINEAR and
gray padding, BGR to RGB, scaling to 0-1, NCHW. Each model keeps its
preparation contract (scale, mean/std, channel order, pad value) in an
``InputContract``; a tensor handed over ready-made is checked against it and
refused on mismatch, never cast silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vision.errors import FrameError


@dataclass(frozen=True)
class InputContract:
    """How one model expects its input tensor to be prepared.

    value = (pixel * scale - mean) / std, channel by channel, in
    ``channel_order``; the letterbox border is filled with ``pad_value`` (0-255).
    """

    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channel_order: str = "RGB"
    pad_value: int = 114

    @property
    def is_plain_scaling(self) -> bool:
        return self.mean == (0.0, 0.0, 0.0) and self.std == (1.0, 1.0, 1.0)

    def value_range(self) -> tuple[float, float]:
        """Smallest and largest tensor value a prepared 8-bit frame can hold."""
        lows = [(0.0 - m) / s for m, s in zip(self.mean, self.std, strict=True)]
        highs = [
            (255.0 * self.scale - m) / s
            for m, s in zip(self.mean, self.std, strict=True)
        ]
        return min(lows), max(highs)


ULTRALYTICS_CONTRACT = InputContract()


@dataclass(frozen=True)
class Letterbox:
    """Where one frame lands inside the model input, and how to map boxes back."""

    frame_hw: tuple[int, int]
    input_hw: tuple[int, int]
    resized_wh: tuple[int, int]
    pad_left: int
    pad_top: int

    @property
    def gain_xy(self) -> tuple[float, float]:
        return (
            self.resized_wh[0] / self.frame_hw[1],
            self.resized_wh[1] / self.frame_hw[0],
        )

    def boxes_to_frame(self, bbox_xyxy: np.ndarray) -> np.ndarray:
        """Map boxes from model-input pixels to frame pixels, clipped to the frame."""
        gain_x, gain_y = self.gain_xy
        out = bbox_xyxy.astype(np.float32, copy=True)
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_left) / gain_x
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_top) / gain_y
        height, width = self.frame_hw
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
        return out


def plan_letterbox(
    frame_hw: tuple[int, int],
    target_hw: tuple[int, int],
    *,
    minimal: bool,
    stride: int = 32,
) -> Letterbox:
    """Compute the letterbox exactly as ultralytics' ``LetterBox`` does.

    ``minimal`` is ultralytics' ``auto``: for a model with free input size the
    padded side is only rounded up to the next multiple of ``stride``, so a 4:3
    frame at 640 becomes a 480x640 input instead of 640x640.
    """
    height, width = frame_hw
    ratio = min(target_hw[0] / height, target_hw[1] / width)
    resized_wh = (max(round(width * ratio), 1), max(round(height * ratio), 1))
    pad_w = target_hw[1] - resized_wh[0]
    pad_h = target_hw[0] - resized_wh[1]
    if minimal:
        pad_w, pad_h = pad_w % stride, pad_h % stride

    # ultralytics splits odd padding with round(x -/+ 0.1): the extra pixel
    # goes to the bottom and right.
    half_w, half_h = pad_w / 2, pad_h / 2
    pad_left, pad_right = round(half_w - 0.1), round(half_w + 0.1)
    pad_top, pad_bottom = round(half_h - 0.1), round(half_h + 0.1)
    input_hw = (
        resized_wh[1] + pad_top + pad_bottom,
        resized_wh[0] + pad_left + pad_right,
    )
    return Letterbox(frame_hw, input_hw, resized_wh, pad_left, pad_top)


def apply_letterbox(
    image_bgr: np.ndarray, box: Letterbox, pad_value: int
) -> np.ndarray:
    """Resize (INTER_LINEAR) and pad one BGR uint8 frame into its model input."""
    height, width = box.frame_hw
    resized = image_bgr
    if (width, height) != box.resized_wh:
        resized = cv2.resize(image_bgr, box.resized_wh, interpolation=cv2.INTER_LINEAR)
    canvas = np.full((*box.input_hw, 3), pad_value, dtype=np.uint8)
    rows = slice(box.pad_top, box.pad_top + box.resized_wh[1])
    cols = slice(box.pad_left, box.pad_left + box.resized_wh[0])
    canvas[rows, cols] = resized
    return canvas


def canvases_to_tensor(
    canvases: Sequence[np.ndarray],
    contract: InputContract,
    dtype: np.dtype,
    batch_size: int | None = None,
) -> np.ndarray:
    """Stack letterboxed BGR canvases into one NCHW tensor of ``dtype``.

    Rows beyond ``len(canvases)`` (a fixed-batch model fed a short batch) are
    zeros; their outputs are dropped by the caller.
    """
    rows = batch_size or len(canvases)
    height, width = canvases[0].shape[:2]
    tensor = np.zeros((rows, 3, height, width), dtype=np.float32)
    mean = np.asarray(contract.mean, np.float32)[:, None, None]
    std = np.asarray(contract.std, np.float32)[:, None, None]
    for row, canvas in enumerate(canvases):
        chw = canvas.transpose(2, 0, 1)
        if contract.channel_order == "RGB":
            chw = chw[::-1]
        if contract.scale == 1.0 / 255.0:
            # Division, as ultralytics does, so values are bit-identical.
            np.divide(chw, np.float32(255.0), out=tensor[row])
        else:
            np.multiply(chw, np.float32(contract.scale), out=tensor[row])
        if not contract.is_plain_scaling:
            tensor[row] -= mean
            tensor[row] /= std
    return tensor if tensor.dtype == dtype else tensor.astype(dtype)


def check_ready_tensor(
    tensor: np.ndarray,
    contract: InputContract,
    dtype: np.dtype,
    expected_shape: Sequence[int | None],
) -> None:
    """Refuse a ready-made tensor that does not follow the model's contract.

    Raises FrameError naming what was expected and what was found.
    """
    if not isinstance(tensor, np.ndarray):
        raise FrameError(f"tensor: expected a numpy array, got {type(tensor).__name__}")
    if tensor.dtype != dtype:
        raise FrameError(
            f"tensor: the model takes {np.dtype(dtype).name} prepared with "
            f"{contract}, got {tensor.dtype.name}; pass frames to detect() instead "
            "of casting"
        )
    if tensor.ndim != 4 or any(
        want is not None and want != got
        for want, got in zip(expected_shape, tensor.shape, strict=True)
    ):
        raise FrameError(
            f"tensor: expected shape {list(expected_shape)} (None = free), "
            f"got {list(tensor.shape)}"
        )
    low, high = contract.value_range()
    found_low, found_high = float(tensor.min()), float(tensor.max())
    slack = 1e-3 * max(1.0, high - low)
    if found_low < low - slack or found_high > high + slack:
        raise FrameError(
            f"tensor: values must lie in [{low:.3f}, {high:.3f}] for this model "
            f"({contract}), found [{found_low:.3f}, {found_high:.3f}]"
        )
