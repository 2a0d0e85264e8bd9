"""YOLO-family ONNX detector run with onnxruntime.

``Detector.from_file`` loads any detection model exported by ultralytics to
ONNX and reads everything it needs from the session and the export's metadata:
input name, shape and element type, class names, output layout. Frames are
prepared and boxes decoded exactly as ultralytics' predict does for the same
file, so both give the same boxes. One session is shared by all threads;
``detect`` keeps no state between calls.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
import supervision as sv

from vision.detect.layouts import (
    LayoutError,
    OutputLayout,
    RawDetections,
    check_output,
    decode,
)
from vision.detect.model_file import (
    ModelInput,
    class_names_of,
    open_session,
    probe_layout,
    read_input,
    target_size,
)
from vision.detect.preprocess import (
    ULTRALYTICS_CONTRACT,
    InputContract,
    Letterbox,
    apply_letterbox,
    canvases_to_tensor,
    check_ready_tensor,
    plan_letterbox,
)
from vision.errors import FrameError, ModelLoadError
from vision.ingest.images import read_image, to_bgr8

logger = logging.getLogger(__name__)

# Frames sent to a free-batch model in one run; bounds the tensor's memory.
MAX_RUN_BATCH = 16


class Detector:
    """Runs one ONNX detection model on BGR frames; see ``from_file``."""

    def __init__(
        self,
        session: ort.InferenceSession,
        *,
        path: Path,
        names: list[str],
        model_input: ModelInput,
        target_hw: tuple[int, int],
        stride: int,
        layout: OutputLayout,
        contract: InputContract = ULTRALYTICS_CONTRACT,
        full_size_input: bool = False,
    ) -> None:
        self._session = session
        self.path = path
        self.names = names
        self.model_input = model_input
        self.target_hw = target_hw
        self.stride = stride
        self.layout = layout
        self.contract = contract
        # ultralytics pads a free-size model's input only up to the next stride
        # multiple; a fixed-size model always gets its full size.
        self.minimal_letterbox = not (model_input.fixed_hw or full_size_input)
        self._output_name = session.get_outputs()[0].name

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        class_names: list[str] | None = None,
        input_size_px: int | None = None,
        intra_op_threads: int | None = None,
        graph_optimization: str = "all",
        contract: InputContract = ULTRALYTICS_CONTRACT,
        full_size_input: bool = False,
        allow_spinning: bool = False,
    ) -> Detector:
        """Load a model and recognise its input and output layout.

        ``input_size_px`` is the letterbox size for a model with free input
        size (default: the export's ``imgsz``, else 640); a model with a fixed
        input always gets its own size. ``full_size_input`` pads every frame
        to that whole size even when the model would take a smaller one (the
        classic YOLOv5 tools did so). ``allow_spinning`` lets onnxruntime's
        idle threads busy-wait: slightly faster on an idle machine, much slower
        when camera workers share the cores. ``contract`` says how frames are scaled
        and ordered for this model. Raises ModelLoadError naming the file
        and what was found when the model cannot be used.
        """
        path = Path(path)
        session = open_session(
            path, intra_op_threads, graph_optimization, allow_spinning
        )
        metadata = session.get_modelmeta().custom_metadata_map
        model_input = read_input(session, path)
        names = class_names_of(metadata, class_names, path)
        stride = int(metadata.get("stride", 32))
        target_hw = target_size(model_input, metadata, input_size_px, stride, path)
        layout, names = probe_layout(
            session, model_input, target_hw, names, metadata, path
        )
        logger.info(
            "loaded detector %s: input %s %s, layout %s, %d classes",
            path.name,
            model_input.name,
            "x".join(map(str, target_hw)),
            layout.value,
            len(names),
            extra={"model": path.name},
        )
        return cls(
            session,
            path=path,
            names=names,
            model_input=model_input,
            target_hw=target_hw,
            stride=stride,
            layout=layout,
            contract=contract,
            full_size_input=full_size_input,
        )

    def detect(
        self,
        image_bgr: np.ndarray,
        *,
        min_score: float = 0.25,
        nms_iou: float = 0.45,
        max_det: int = 300,
    ) -> sv.Detections:
        """Detections in one frame, boxes in the frame's own pixels."""
        return self.detect_batch(
            [image_bgr], min_score=min_score, nms_iou=nms_iou, max_det=max_det
        )[0]

    def detect_batch(
        self,
        images: Sequence[np.ndarray],
        *,
        min_score: float = 0.25,
        nms_iou: float = 0.45,
        max_det: int = 300,
    ) -> list[sv.Detections]:
        """Detections for several frames, possibly of different sizes.

        Frames that letterbox to the same input size go through the session
        together; each result is mapped back to its own frame.
        """
        _check_thresholds(min_score, nms_iou, max_det)
        frames = [to_bgr8(image) for image in images]
        boxes = [self.plan(frame.shape[:2]) for frame in frames]
        results: list[sv.Detections | None] = [None] * len(frames)
        for group in _group_by_input_size(boxes, self._run_batch_limit()):
            canvases = [
                apply_letterbox(frames[i], boxes[i], self.contract.pad_value)
                for i in group
            ]
            outputs = self._run_canvases(canvases)
            for row, index in enumerate(group):
                raw = decode(
                    outputs[row],
                    self.layout,
                    len(self.names),
                    min_score=min_score,
                    nms_iou=nms_iou,
                    max_det=max_det,
                )
                results[index] = self._to_detections(raw, boxes[index])
        return [r for r in results if r is not None]

    @property
    def session_options(self) -> ort.SessionOptions:
        """The options the session was opened with (threads, optimisation)."""
        return self._session.get_session_options()

    def plan(self, frame_hw: tuple[int, int]) -> Letterbox:
        """The letterbox a frame of ``frame_hw`` gets for this model."""
        return plan_letterbox(
            frame_hw,
            self.target_hw,
            minimal=self.minimal_letterbox,
            stride=self.stride,
        )

    def prepare(self, image_bgr: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """The input tensor (batch of one) for a frame, and its letterbox."""
        frame = to_bgr8(image_bgr)
        box = self.plan(frame.shape[:2])
        canvas = apply_letterbox(frame, box, self.contract.pad_value)
        tensor = canvases_to_tensor([canvas], self.contract, self.model_input.dtype)
        return tensor, box

    def run_tensor(self, tensor: np.ndarray) -> np.ndarray:
        """Raw float32 output for a tensor already prepared to this model's contract.

        Raises FrameError when its dtype, shape or value range does not match.
        """
        expected = [
            self.model_input.batch,
            3,
            self.model_input.height,
            self.model_input.width,
        ]
        check_ready_tensor(tensor, self.contract, self.model_input.dtype, expected)
        return self._run(tensor)

    def _run_canvases(self, canvases: list[np.ndarray]) -> np.ndarray:
        batch = self.model_input.batch
        tensor = canvases_to_tensor(
            canvases, self.contract, self.model_input.dtype, batch
        )
        return self._run(tensor)[: len(canvases)]

    def _run(self, tensor: np.ndarray) -> np.ndarray:
        try:
            output = self._session.run(
                [self._output_name], {self.model_input.name: tensor}
            )[0]
        except Exception as exc:  # onnxruntime raises its own unrelated types
            raise FrameError(
                f"{self.path.name}: inference failed on input "
                f"{list(tensor.shape)}: {exc}"
            ) from exc
        try:
            check_output(output.shape, self.layout, len(self.names))
        except LayoutError as exc:
            raise ModelLoadError(f"{self.path}: {exc}") from exc
        return np.asarray(output, dtype=np.float32)

    def _run_batch_limit(self) -> int:
        return self.model_input.batch or MAX_RUN_BATCH

    def _to_detections(self, raw: RawDetections, box: Letterbox) -> sv.Detections:
        class_id = raw.class_id.clip(0, len(self.names) - 1)
        return sv.Detections(
            xyxy=box.boxes_to_frame(raw.bbox_xyxy),
            confidence=raw.score.astype(np.float32),
            class_id=class_id.astype(int),
            data={"class_name": np.array([self.names[c] for c in class_id], dtype=str)},
        )


def detect_files(
    detector: Detector,
    paths: Iterable[str | Path],
    *,
    min_score: float = 0.25,
) -> Iterator[dict[str, Any]]:
    """One record per detection in each image file, for printing as JSON lines."""
    for path in paths:
        detections = detector.detect(read_image(path), min_score=min_score)
        scores = np.asarray(detections.confidence, dtype=np.float32)
        for (x1, y1, x2, y2), score, name in zip(
            detections.xyxy,
            scores,
            detections.data["class_name"],
            strict=True,
        ):
            yield {
                "image": str(path),
                "class_name": str(name),
                "confidence": round(float(score), 4),
                "x1": round(float(x1), 1),
                "y1": round(float(y1), 1),
                "x2": round(float(x2), 1),
                "y2": round(float(y2), 1),
            }


def _check_thresholds(min_score: float, nms_iou: float, max_det: int) -> None:
    if not 0.0 <= min_score <= 1.0:
        raise ValueError(f"min_score: expected 0-1, got {min_score}")
    if not 0.0 <= nms_iou <= 1.0:
        raise ValueError(f"nms_iou: expected 0-1, got {nms_iou}")
    if max_det < 1:
        raise ValueError(f"max_det: expected at least 1, got {max_det}")


def _group_by_input_size(boxes: list[Letterbox], limit: int) -> Iterator[list[int]]:
    groups: dict[tuple[int, int], list[int]] = {}
    for index, box in enumerate(boxes):
        groups.setdefault(box.input_hw, []).append(index)
    for members in groups.values():
        for start in range(0, len(members), limit):
            yield members[start : start + limit]
