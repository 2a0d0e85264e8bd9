"""Static int8 quantization: a smaller model that still finds the same objects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from models.quantize import _decoding_tail, calibration_files, quantize_static_int8
from vision.detect.detector import Detector
from vision.ingest.images import read_image

POTHOLE_MODEL = "yolo11n_pothole_416_dynamic.onnx"


@pytest.fixture(scope="module")
def potholes(shared_dir: Path) -> Path:
    return shared_dir / "data/datasets/potholes/images"


@pytest.fixture(scope="module")
def quantized(shared_dir: Path, potholes: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("quant") / "pothole_int8.onnx"
    return quantize_static_int8(
        shared_dir / "models" / POTHOLE_MODEL,
        out,
        calibration_files(potholes / "train", 16),
        input_size_px=320,
    )


def test_quantized_model_is_int8_qdq_and_keeps_metadata(quantized, shared_dir):
    model = onnx.load(str(quantized))
    ops = {node.op_type for node in model.graph.node}
    metadata = {p.key: p.value for p in model.metadata_props}
    size_bytes = quantized.stat().st_size
    original_bytes = (shared_dir / "models" / POTHOLE_MODEL).stat().st_size

    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert metadata["names"] == "{0: 'pothole'}"
    assert size_bytes < original_bytes / 2


def test_quantized_model_finds_the_same_potholes(quantized, shared_dir, potholes):
    original = Detector.from_file(
        shared_dir / "models" / POTHOLE_MODEL, input_size_px=320
    )
    int8 = Detector.from_file(quantized, input_size_px=320)
    images = sorted((potholes / "test").glob("*.jpg"))[:12]

    matched = total = 0
    for path in images:
        frame = read_image(path)
        want = original.detect(frame, min_score=0.4)
        got = int8.detect(frame, min_score=0.25)
        total += len(want)
        for box in want.xyxy:
            if len(got) and _best_iou(box, got.xyxy) >= 0.7:
                matched += 1

    assert total >= 10
    assert matched >= 0.8 * total


def _best_iou(box: np.ndarray, others: np.ndarray) -> float:
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return float((inter / (area + areas - inter)).max())


def test_box_decoding_tail_of_the_head_stays_float(shared_dir):
    model = onnx.load(str(shared_dir / "models" / POTHOLE_MODEL))

    tail = set(_decoding_tail(model))

    assert "/model.23/dfl/conv/Conv" in tail
    assert any(name.startswith("/model.23/Concat") for name in tail)
    assert not any("/cv2." in name or "/cv3." in name for name in tail)


def test_no_usable_calibration_image_is_refused(shared_dir, tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not an image")

    with pytest.raises(ValueError, match="no usable image"):
        quantize_static_int8(
            shared_dir / "models" / POTHOLE_MODEL,
            tmp_path / "out.onnx",
            [tmp_path / "bad.jpg"],
            input_size_px=320,
        )
    assert not (tmp_path / "out.onnx").exists()


def test_unknown_calibration_method_is_refused(shared_dir, tmp_path):
    with pytest.raises(ValueError, match="calibration_method"):
        quantize_static_int8(
            shared_dir / "models" / POTHOLE_MODEL,
            tmp_path / "out.onnx",
            [],
            calibration_method="guess",
        )
