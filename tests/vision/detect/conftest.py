"""Fixtures for detector tests: shared models and tiny generated ONNX graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


@pytest.fixture(scope="session")
def models_dir(shared_dir: Path) -> Path:
    return shared_dir / "models"


def save_model(
    graph: onnx.GraphProto, path: Path, names: dict[int, str] | None
) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if names is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = "names", repr(names)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def make_pooling_detector(
    path: Path,
    *,
    size_px: int = 320,
    input_name: str = "images",
    names: dict[int, str] | None = None,
) -> Path:
    """A 3-class anchor-free model (1, 7, A) that really looks at the frame.

    Anchors are the cells of 8/16/32-pixel average pools, as in a YOLO head.
    Class c scores sigmoid(20 * (mean of input channel c in the cell - 0.6)),
    so a red area yields class 0 (channel 0 = R); each box is a constant
    square four strides wide centred on its cell.
    """
    names = names if names is not None else {0: "red", 1: "green", 2: "blue"}
    nodes, pooled, centres = [], [], []
    for stride in (8, 16, 32):
        cells = size_px // stride
        nodes += [
            helper.make_node(
                "AveragePool",
                [input_name],
                [f"pool{stride}"],
                kernel_shape=[stride, stride],
                strides=[stride, stride],
            ),
            helper.make_node(
                "Reshape", [f"pool{stride}", "flat_shape"], [f"flat{stride}"]
            ),
        ]
        pooled.append(f"flat{stride}")
        grid_y, grid_x = np.mgrid[0:cells, 0:cells]
        side = np.full(cells * cells, 4.0 * stride)
        centres.append(
            np.stack(
                [
                    (grid_x.ravel() + 0.5) * stride,
                    (grid_y.ravel() + 0.5) * stride,
                    side,
                    side,
                ]
            )
        )
    boxes = np.concatenate(centres, axis=1)[None].astype(np.float32)
    nodes += [
        helper.make_node("Concat", pooled, ["means"], axis=2),
        helper.make_node("Sub", ["means", "half"], ["centred"]),
        helper.make_node("Mul", ["centred", "gain"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["scores"]),
        helper.make_node("Concat", ["boxes", "scores"], ["output0"], axis=1),
    ]
    initializers = [
        numpy_helper.from_array(np.array([1, 3, -1], np.int64), "flat_shape"),
        numpy_helper.from_array(np.array(0.6, np.float32), "half"),
        numpy_helper.from_array(np.array(20.0, np.float32), "gain"),
        numpy_helper.from_array(boxes, "boxes"),
    ]
    graph = helper.make_graph(
        nodes,
        "pooling_detector",
        [
            helper.make_tensor_value_info(
                input_name, TensorProto.FLOAT, [1, 3, size_px, size_px]
            )
        ],
        [
            helper.make_tensor_value_info(
                "output0", TensorProto.FLOAT, [1, 4 + len(names), boxes.shape[2]]
            )
        ],
        initializers,
    )
    return save_model(graph, path, names)


def make_constant_output_model(
    path: Path,
    output: np.ndarray,
    *,
    size_px: int = 640,
    names: dict[int, str] | None = None,
) -> Path:
    """A model whose output is ``output`` whatever the frame (it still reads it)."""
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["constant", "nothing"], ["output0"]),
    ]
    initializers = [
        numpy_helper.from_array(output.astype(np.float32), "constant"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
    ]
    graph = helper.make_graph(
        nodes,
        "constant_output",
        [
            helper.make_tensor_value_info(
                "images", TensorProto.FLOAT, [1, 3, size_px, size_px]
            )
        ],
        [
            helper.make_tensor_value_info(
                "output0", TensorProto.FLOAT, list(output.shape)
            )
        ],
        initializers,
    )
    return save_model(graph, path, names)


@pytest.fixture
def pooling_detector_path(tmp_path: Path) -> Path:
    return make_pooling_detector(tmp_path / "pooling_320.onnx")


@pytest.fixture
def build_pooling_detector():
    """The builder of the 3-class pooling model, for tests that vary it."""
    return make_pooling_detector


@pytest.fixture
def build_constant_model():
    """The builder of models with a fixed output tensor."""
    return make_constant_output_model
