"""The detector: model loading, frame preparation, batches and bad inputs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from vision.detect.detector import Detector, detect_files
from vision.detect.preprocess import InputContract, plan_letterbox
from vision.errors import FrameError, ModelLoadError
from vision.ingest.images import read_image

DYNAMIC_MODEL = "yolo11n_coco_deq_fp32_dynamic.onnx"


@pytest.fixture(scope="module")
def dynamic_320(models_dir: Path) -> Detector:
    return Detector.from_file(models_dir / DYNAMIC_MODEL, input_size_px=320)


def street_frame(shared_dir: Path, index: int = 200) -> np.ndarray:
    capture = cv2.VideoCapture(
        str(shared_dir / "data/videos/street_plaza_vtest_part1_f000-399.avi")
    )
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    capture.release()
    assert ok
    return frame


# --- input taken from the session -------------------------------------------


@pytest.mark.parametrize("input_name", ["images", "input_0"])
@pytest.mark.parametrize("frame_wh", [(640, 480), (1280, 720)])
def test_fixed_size_model_gets_frames_letterboxed_to_its_own_size(
    tmp_path, build_pooling_detector, input_name, frame_wh
):
    path = build_pooling_detector(
        tmp_path / "m.onnx", size_px=320, input_name=input_name
    )
    # The configured size disagrees with the graph: the graph wins.
    detector = Detector.from_file(path, input_size_px=640)
    frame = np.zeros((frame_wh[1], frame_wh[0], 3), np.uint8)
    frame[50:150, 50:250] = (0, 0, 255)

    tensor, box = detector.prepare(frame)
    detections = detector.detect(frame)

    assert detector.model_input.name == input_name
    assert tensor.shape == (1, 3, 320, 320)
    assert box.input_hw == (320, 320)
    assert set(detections.data["class_name"]) == {"red"}


@pytest.mark.parametrize(
    ("frame_hw", "size_px", "expected_hw"),
    [
        ((480, 640), 640, (480, 640)),
        ((720, 1280), 640, (384, 640)),
        ((576, 768), 320, (256, 320)),
        ((1080, 810), 640, (640, 480)),
        ((300, 456), 640, (448, 640)),
        ((640, 640), 320, (320, 320)),
    ],
)
def test_free_size_model_gets_the_smallest_stride_multiple(
    models_dir, frame_hw, size_px, expected_hw
):
    detector = Detector.from_file(models_dir / DYNAMIC_MODEL, input_size_px=size_px)

    tensor, _ = detector.prepare(np.zeros((*frame_hw, 3), np.uint8))

    assert tensor.shape == (1, 3, *expected_hw)


def test_letterbox_splits_odd_padding_like_ultralytics():
    box = plan_letterbox((300, 456), (640, 640), minimal=False)

    assert box.resized_wh == (640, 421)
    assert (box.pad_top, box.input_hw) == (109, (640, 640))


# --- model files that cannot be used ---------------------------------------


def test_model_input_that_is_not_an_image_is_refused(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Identity", ["features"], ["scores"])],
        "vector",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 10])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 10])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "vector.onnx")

    with pytest.raises(ModelLoadError, match=r"vector\.onnx.*'features'.*\[1, 10\]"):
        Detector.from_file(tmp_path / "vector.onnx")


@pytest.mark.parametrize("content", [b"", b"not an onnx model at all"])
def test_unloadable_model_file_is_named_at_startup(tmp_path, content):
    path = tmp_path / "broken_model.onnx"
    path.write_bytes(content)

    with pytest.raises(ModelLoadError, match=r"broken_model\.onnx"):
        Detector.from_file(path)


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(ModelLoadError, match=r"absent\.onnx"):
        Detector.from_file(tmp_path / "absent.onnx")


def test_class_names_of_the_wrong_length_are_refused(models_dir):
    with pytest.raises(ModelLoadError, match=r"80 classes.*2 class names"):
        Detector.from_file(models_dir / DYNAMIC_MODEL, class_names=["a", "b"])


# --- half precision ---------------------------------------------------------


def test_float16_model_gets_float16_input_and_agrees_with_float32(
    tmp_path, build_pooling_detector
):
    float16 = pytest.importorskip("onnxconverter_common.float16")
    fp32_path = build_pooling_detector(tmp_path / "fp32.onnx", size_px=640)
    model16 = float16.convert_float_to_float16(
        onnx.load(fp32_path), keep_io_types=False
    )
    onnx.save(model16, tmp_path / "fp16.onnx")
    frame = np.zeros((640, 640, 3), np.uint8)
    frame[100:260, 200:330] = (0, 0, 255)
    frame[400:520, 380:600] = (255, 0, 0)

    fp32 = Detector.from_file(fp32_path).detect(frame)
    fp16_detector = Detector.from_file(tmp_path / "fp16.onnx")
    fp16 = fp16_detector.detect(frame)

    assert fp16_detector.model_input.dtype == np.float16
    assert fp16_detector.prepare(frame)[0].dtype == np.float16
    assert fp16.xyxy.dtype == np.float32 and fp16.confidence.dtype == np.float32
    assert len(fp16) == len(fp32) > 0
    for box, score, name in zip(
        fp32.xyxy, fp32.confidence, fp32.data["class_name"], strict=True
    ):
        iou = _iou(box, fp16.xyxy)
        best = int(iou.argmax())
        assert iou[best] >= 0.95
        assert abs(fp16.confidence[best] - score) <= 0.02
        assert fp16.data["class_name"][best] == name


def test_half_converted_graph_is_named_at_startup(tmp_path):
    # A partial FP16 conversion leaves a float input meeting a float16
    # constant at a Concat: onnxruntime refuses the graph when it loads.
    half = helper.make_tensor(
        "half", TensorProto.FLOAT16, [1, 1, 640, 640], [0] * 640 * 640
    )
    graph = helper.make_graph(
        [helper.make_node("Concat", ["images", "half"], ["joined"], axis=1)],
        "half_converted",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("joined", TensorProto.FLOAT, [1, 4, 640, 640])],
        initializer=[half],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "half_converted.onnx")

    with pytest.raises(ModelLoadError, match=r"half_converted\.onnx.*cannot load"):
        Detector.from_file(tmp_path / "half_converted.onnx")


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / (area + areas - inter)


# --- preparation contract ---------------------------------------------------


def test_red_left_and_blue_right_land_in_rgb_channels(models_dir):
    detector = Detector.from_file(models_dir / DYNAMIC_MODEL, input_size_px=640)
    frame = np.zeros((640, 640, 3), np.uint8)
    frame[:, :320] = (0, 0, 255)  # red in BGR
    frame[:, 320:] = (255, 0, 0)  # blue in BGR

    tensor, _ = detector.prepare(frame)

    assert tensor.shape == (1, 3, 640, 640) and tensor.dtype == np.float32
    red, blue = tensor[0, 0], tensor[0, 2]
    assert red[:, :320].min() == 1.0 and red[:, 320:].max() == 0.0
    assert blue[:, :320].max() == 0.0 and blue[:, 320:].min() == 1.0
    assert tensor[0, 1].max() == 0.0


@pytest.fixture
def fixed_640(tmp_path, build_pooling_detector) -> Detector:
    return Detector.from_file(build_pooling_detector(tmp_path / "f.onnx", size_px=640))


def test_white_and_black_frames_scale_to_0_1_with_gray_border(fixed_640):
    white, box = fixed_640.prepare(np.full((300, 500, 3), 255, np.uint8))
    black, _ = fixed_640.prepare(np.zeros((300, 500, 3), np.uint8))

    inside = (slice(None), slice(box.pad_top, box.pad_top + box.resized_wh[1]))
    assert box.pad_top == 128
    assert white.max() == 1.0 and white[0][inside].min() == 1.0
    assert black.min() == 0.0 and black[0][inside].max() == 0.0
    np.testing.assert_allclose(white[0, :, :128], 114 / 255, rtol=1e-6)
    np.testing.assert_allclose(black[0, :, -128:], 114 / 255, rtol=1e-6)


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (np.full((1, 3, 640, 640), 200, np.uint8), "float32.*got uint8"),
        (
            np.full((1, 3, 640, 640), 200.0, np.float32),
            r"values must lie in \[0.000, 1.000\]",
        ),
        (np.zeros((1, 3, 320, 320), np.float32), "expected shape"),
        (np.zeros((1, 3, 640, 640), np.float16), "got float16"),
    ],
    ids=["raw-uint8", "unscaled-float", "wrong-size", "half-to-float-model"],
)
def test_ready_tensor_off_contract_is_refused_not_cast(fixed_640, tensor, message):
    with pytest.raises(FrameError, match=message):
        fixed_640.run_tensor(tensor)


def test_ready_tensor_on_contract_runs(fixed_640):
    tensor, _ = fixed_640.prepare(np.zeros((640, 640, 3), np.uint8))

    output = fixed_640.run_tensor(tensor)

    assert output.dtype == np.float32 and output.shape == (1, 7, 8400)


def test_contract_is_kept_per_model(tmp_path, build_pooling_detector):
    contract = InputContract(
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), pad_value=0
    )
    detector = Detector.from_file(
        build_pooling_detector(tmp_path / "m.onnx"), contract=contract
    )

    tensor, _ = detector.prepare(np.full((320, 320, 3), 255, np.uint8))

    assert detector.contract == contract
    np.testing.assert_allclose(tensor[0, 0, 0, 0], (1 - 0.485) / 0.229, rtol=1e-5)
    with pytest.raises(FrameError, match="values must lie"):
        detector.run_tensor(np.full((1, 3, 320, 320), 5.0, np.float32))


# --- frames of every kind -----------------------------------------------------


def test_grayscale_frames_become_bgr_by_every_path(dynamic_320, tmp_path):
    gray = np.random.default_rng(0).integers(0, 256, (480, 640), np.uint8)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    inputs = [gray, gray[..., None], read_image(tmp_path / "gray.png")]

    tensors = [dynamic_320.prepare(image)[0] for image in inputs]
    results = [dynamic_320.detect(image) for image in inputs]

    for tensor in tensors:
        np.testing.assert_array_equal(tensor, tensors[0])
        np.testing.assert_array_equal(tensor[0, 0], tensor[0, 1])
    assert all(len(r) == len(results[0]) for r in results)


def test_alpha_is_dropped_and_opaque_content_detected_alike(
    shared_dir, tmp_path, dynamic_320
):
    frame = cv2.resize(street_frame(shared_dir), (339, 416))
    alpha = np.tile(np.linspace(0, 255, 339).astype(np.uint8), (416, 1))
    cv2.imwrite(str(tmp_path / "rgba.png"), np.dstack([frame, alpha]))
    cv2.imwrite(str(tmp_path / "rgb.png"), frame)

    with_alpha = dynamic_320.detect(read_image(tmp_path / "rgba.png"))
    without = dynamic_320.detect(read_image(tmp_path / "rgb.png"))
    raw_array = dynamic_320.detect(np.dstack([frame, alpha]))

    assert len(without) > 0
    for result in (with_alpha, raw_array):
        np.testing.assert_array_equal(result.xyxy, without.xyxy)
        np.testing.assert_array_equal(result.confidence, without.confidence)


def test_16_bit_png_follows_its_depth_not_a_fixed_divisor(tmp_path, dynamic_320):
    image16 = np.tile(np.linspace(0, 65535, 640).astype(np.uint16), (480, 1))
    image16[100:200, 100:200] = 10000
    image16[250:350, 400:500] = 50000
    cv2.imwrite(str(tmp_path / "deep.png"), image16)
    image8 = np.round(image16 / 257).astype(np.uint8)

    read16 = read_image(tmp_path / "deep.png")
    tensor16, _ = dynamic_320.prepare(read16)
    tensor8, _ = dynamic_320.prepare(image8)

    assert read16.dtype == np.uint8 and read16.shape == (480, 640, 3)
    assert np.abs(read16[..., 0].astype(int) - image8).max() <= 1
    assert read16[150, 150, 0] == 10000 >> 8 and read16[300, 450, 0] == 50000 >> 8
    assert 0.0 <= tensor16.min() and tensor16.max() <= 1.0
    assert np.abs(tensor16 - tensor8).max() <= 1 / 255 + 1e-6
    assert len(dynamic_320.detect(image16)) == len(dynamic_320.detect(image8))


def test_16_bit_photo_gives_the_detections_of_its_8_bit_version(
    tmp_path, shared_dir, dynamic_320
):
    # The gradient above holds no objects; a photo does, and a fixed divisor
    # of 255 would turn it white and lose them.
    image8 = read_image(shared_dir / "data/images/bus.jpg")
    image16 = image8.astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "bus16.png"), image16)

    expected = dynamic_320.detect(image8)
    assert len(expected) >= 4
    for frame in (image16, read_image(tmp_path / "bus16.png")):
        found = dynamic_320.detect(frame)
        np.testing.assert_allclose(found.xyxy, expected.xyxy, atol=0.5)
        np.testing.assert_allclose(found.confidence, expected.confidence, atol=0.01)
        assert list(found.data["class_name"]) == list(expected.data["class_name"])


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((0, 0, 3), np.uint8), "empty"),
        (np.zeros((480, 0), np.uint8), "empty"),
        (np.zeros((48, 64, 3), np.float32), "float32"),
        (np.zeros((48, 64, 5), np.uint8), "shape"),
        (np.zeros((2, 48, 64, 3), np.uint8), "shape"),
    ],
    ids=["empty", "empty-gray", "float", "5-channel", "4-D"],
)
def test_unusable_frames_raise_frame_error(dynamic_320, image, message):
    with pytest.raises(FrameError, match=message):
        dynamic_320.detect(image)


# --- batches and threads ----------------------------------------------------


def test_batch_of_mixed_sizes_equals_frames_run_alone(shared_dir, dynamic_320):
    street = street_frame(shared_dir)
    frames = [street, street[:, :400], cv2.resize(street, (1280, 720)), street[::-1]]

    batch = dynamic_320.detect_batch(frames)
    alone = [dynamic_320.detect(frame) for frame in frames]

    assert len(batch) == len(frames)
    for together, single, frame in zip(batch, alone, frames, strict=True):
        np.testing.assert_allclose(together.xyxy, single.xyxy, atol=1e-3)
        np.testing.assert_allclose(together.confidence, single.confidence, atol=1e-5)
        assert (together.xyxy[:, 2] <= frame.shape[1]).all()
        assert (together.xyxy[:, 3] <= frame.shape[0]).all()


def test_fixed_batch_model_takes_longer_batches_in_runs(shared_dir, models_dir):
    detector = Detector.from_file(models_dir / "yolo11n_coco_int8dyn_320.onnx")
    frames = [street_frame(shared_dir, i) for i in (0, 100, 200)]

    batch = detector.detect_batch(frames)

    assert detector.model_input.batch == 1
    assert [len(r) for r in batch] == [len(detector.detect(f)) for f in frames]


def test_one_detector_serves_several_threads(shared_dir, dynamic_320):
    frames = [street_frame(shared_dir, i) for i in (0, 150, 300, 399)]
    expected = [dynamic_320.detect(frame) for frame in frames]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(dynamic_320.detect, frames * 2))

    for result, want in zip(results, expected * 2, strict=True):
        np.testing.assert_array_equal(result.xyxy, want.xyxy)


def test_detect_files_yields_one_record_per_detection(shared_dir, dynamic_320):
    bus = shared_dir / "data/images/bus.jpg"

    records = list(detect_files(dynamic_320, [bus], min_score=0.5))

    assert records and {r["image"] for r in records} == {str(bus)}
    assert set(records[0]) == {
        "image",
        "class_name",
        "confidence",
        "x1",
        "y1",
        "x2",
        "y2",
    }
    assert all(r["confidence"] > 0.5 for r in records)
    assert "bus" in {r["class_name"] for r in records}
