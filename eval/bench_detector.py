"""Detector speed: ours against ultralytics' PyTorch predict on the same frames.

Run ``python -m eval.bench_detector``. Frames of the street footage are decoded
once beforehand (decoding is not timed); each timing covers the whole
per-image cost of a predict call, letterbox and box decoding included. Both
sides run in the same process and their rounds alternate, so a busy machine
slows both alike. The compute floor is the model's FLOPs over the machine's
measured float32 matmul peak.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort

from vision.detect.detector import Detector

logger = logging.getLogger(__name__)

SHARED_DIR = Path(
    os.environ.get(
        "CITYWATCH_SHARED_DIR", Path(__file__).resolve().parents[1].parent / "shared"
    )
)
VIDEO = SHARED_DIR / "data/videos/street_plaza_vtest_part1_f000-399.avi"
ONNX_MODEL = SHARED_DIR / "models/yolo11n_coco_deq_fp32_dynamic.onnx"
TORCH_MODEL = SHARED_DIR / "models/yolo11n_coco_deq_fp32.pt"
MIN_SCORE, NMS_IOU = 0.25, 0.45


def read_frames(path: Path, count: int) -> list[np.ndarray]:
    """``count`` frames spread over the video, decoded once."""
    capture = cv2.VideoCapture(str(path))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or count
    frames = []
    for index in np.linspace(0, total - 1, count).astype(int):
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, frame = capture.read()
        if ok:
            frames.append(frame)
    capture.release()
    if not frames:
        raise SystemExit(f"no frames could be read from {path}")
    return frames


def matmul_peak_gflops(size: int = 1536, repeats: int = 8) -> float:
    """Best float32 matmul rate numpy reaches on this machine, in GFLOP/s."""
    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    a @ b  # warm-up: thread pool and caches
    best = min(timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def model_gflops(model_path: Path, input_hw: tuple[int, int]) -> float:
    """Multiply-add work of Conv and MatMul nodes for one input of ``input_hw``.

    Shapes are taken from one real run (every Conv/MatMul output exposed), so
    dynamic reshapes inside attention blocks are measured, not guessed.
    """
    model = onnx.load(str(model_path))
    weights = {init.name: tuple(init.dims) for init in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type in ("Conv", "MatMul", "Gemm")]
    exposed = {o.name for o in model.graph.output}
    for node in nodes:
        for name in (*node.input[:1], node.output[0]):
            if name not in exposed and name not in weights:
                model.graph.output.append(onnx.ValueInfoProto(name=name))
                exposed.add(name)
    session = ort.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    feed = {session.get_inputs()[0].name: np.zeros((1, 3, *input_hw), np.float32)}
    shapes = dict(zip(names, (v.shape for v in session.run(names, feed)), strict=True))
    flops = 0.0
    for node in nodes:
        out = float(np.prod(shapes[node.output[0]]))
        if node.op_type == "Conv":
            kernel = weights[node.input[1]]
            flops += 2 * out * float(np.prod(kernel[1:]))
        else:
            inner = (
                shapes[node.input[0]][-1]
                if node.input[0] in shapes
                else weights[node.input[0]][-1]
            )
            flops += 2 * out * inner
    return flops / 1e9


def _emit(line: str) -> None:
    """Write one line of the report to standard output."""
    sys.stdout.write(line + "\n")


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _chunks(frames: Sequence[np.ndarray], size: int) -> list[Sequence[np.ndarray]]:
    return [frames[i : i + size] for i in range(0, len(frames), size)]


def _ours(detector: Detector, batch: int) -> Callable[[Sequence[np.ndarray]], None]:
    def run(frames: Sequence[np.ndarray]) -> None:
        for chunk in _chunks(frames, batch):
            detector.detect_batch(chunk, min_score=MIN_SCORE, nms_iou=NMS_IOU)

    return run


def ultralytics_runner(
    model: object, size_px: int, batch: int
) -> Callable[[Sequence[np.ndarray]], None]:
    def run(frames: Sequence[np.ndarray]) -> None:
        for chunk in _chunks(frames, batch):
            model.predict(  # type: ignore[attr-defined]
                list(chunk),
                imgsz=size_px,
                conf=MIN_SCORE,
                iou=NMS_IOU,
                batch=batch,
                device="cpu",
                verbose=False,
            )

    return run


def bench_pair(
    runners: dict[str, Callable[[Sequence[np.ndarray]], None]],
    frames: Sequence[np.ndarray],
    rounds: int,
) -> dict[str, float]:
    """Best milliseconds per image for each runner over interleaved rounds.

    The best round is the least disturbed by other processes on a shared
    machine; the same rule applies to both sides.
    """
    for run in runners.values():
        run(frames[:4])  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            samples[name].append(
                timed(lambda run=run: run(frames)) * 1000 / len(frames)
            )
    for name, values in samples.items():
        logger.debug("%s: median %.1f ms/img", name, statistics.median(values))
    return {name: min(values) for name, values in samples.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24, help="frames per round")
    parser.add_argument(
        "--rounds", type=int, default=3, help="timed rounds per setting"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="onnxruntime intra-op threads"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[640, 320])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--no-ultralytics", action="store_true", help="time ours only")
    args = parser.parse_args(argv)

    frames = read_frames(VIDEO, args.frames)
    reference = None if args.no_ultralytics else load_ultralytics()
    height, width = frames[0].shape[:2]
    _emit(f"frames: {len(frames)} of {VIDEO.name} ({width}x{height})")
    _emit(
        f"{'size':>5} {'batch':>5} {'ours ms/img':>12} {'ours ms/call':>13} "
        f"{'ours img/s':>11} {'ultra ms/img':>13} {'ultra img/s':>12} {'ratio':>6}"
    )
    ratios: dict[tuple[int, int], float] = {}
    for size_px in args.sizes:
        detector = Detector.from_file(
            ONNX_MODEL, input_size_px=size_px, intra_op_threads=args.threads
        )
        for batch in args.batches:
            runners = {"ours": _ours(detector, batch)}
            if reference is not None:
                runners["ultralytics"] = ultralytics_runner(reference, size_px, batch)
            result = bench_pair(runners, frames, args.rounds)
            ours = result["ours"]
            theirs = result.get("ultralytics", float("nan"))
            ratios[(size_px, batch)] = theirs / ours
            _emit(
                f"{size_px:>5} {batch:>5} {ours:>12.1f} {ours * batch:>13.1f} "
                f"{1000 / ours:>11.1f} "
                f"{theirs:>13.1f} {1000 / theirs:>12.1f} {theirs / ours:>6.2f}"
            )

    if (640, 1) in ratios:
        ratio = ratios[(640, 1)]
        _emit(
            f"speed ratio ours/ultralytics at 640 batch 1: {ratio:.2f} (target >= 1.5)"
        )
    _print_floor(frames[0].shape[:2], args.sizes)
    return 0


def _print_floor(frame_hw: tuple[int, int], sizes: Sequence[int]) -> None:
    peak = matmul_peak_gflops()
    _emit(f"machine float32 matmul peak (numpy): {peak:.0f} GFLOP/s")
    for size_px in sizes:
        input_hw = (
            Detector.from_file(ONNX_MODEL, input_size_px=size_px)
            .plan(frame_hw)
            .input_hw
        )
        work = model_gflops(ONNX_MODEL, input_hw)
        _emit(
            f"compute floor at {size_px} (input {input_hw[0]}x{input_hw[1]}): "
            f"{work:.2f} GFLOP -> {work / peak * 1000:.1f} ms/img"
        )


def load_ultralytics() -> object | None:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    try:
        from ultralytics import YOLO
    except ImportError:
        sys.stderr.write("ultralytics is not importable: timing ours only\n")
        return None
    return YOLO(str(TORCH_MODEL))


if __name__ == "__main__":
    raise SystemExit(main())
