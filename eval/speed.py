"""Pipeline speed on the real footage, each figure beside its reference.

Every measurement runs in its own subprocess pinned to one CPU core, with
onnxruntime and OpenCV limited to one thread, so "frames per second" is per
core and a camera worker's resident memory is its own:

- decode alone (the reference every path is read against);
- the throw path (motion analysis on every frame) at the throw clip's size;
- the street path (detector on frames sampled at the camera's rate, tracker,
  zone rules) at the street clip's size;
- a whole camera worker (``vision.pipeline.run_source`` with evidence written
  to a temporary local store): frames per second and peak resident memory,
  beside the memory of the same process before the worker starts;
- detector images per second on decoded frames, beside the compute floor of
  ``eval.bench_detector`` (model FLOPs over this machine's matmul peak) when
  that module is present;
- the same decode, throw and worker rows on a 1920x1080 25 fps H.264 clip
  (the throw clip upscaled and re-encoded at a camera's bitrate, made once in
  the temporary folder), summed up as the share of a core the throw analysis
  costs beside decode, the real-time factor of decode plus analysis for a
  1080p 25 fps stream, and the resident memory of a worker with its pre-roll.

Speed is reported, never gated: machines differ and share their cores.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HD_RESOLUTION_WH = (1920, 1080)
HD_FPS = 25
HD_BITRATE_BPS = 5_000_000
# The throw clip lasts 2.5 s; looping it gives a worker more than its 5 s
# pre-roll to hold.
HD_LOOPS = 4

ONE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


@dataclass(frozen=True)
class SpeedJob:
    """One measurement for a child process."""

    kind: str  # decode | throw | street | worker | detector
    video: str
    camera: dict[str, Any] | None = None
    model_dir: str | None = None
    mirror_dir: str | None = None
    max_frames: int = 0  # 0 = the whole video


def run_jobs(
    jobs: list[SpeedJob], *, cpu: int | None = None, progress: bool = False
) -> list[dict[str, Any]]:
    """Run each job in a fresh single-core subprocess; one result per job."""
    # Imported here: the measuring child imports this module, and its memory
    # is measured.
    from eval.progress import ProgressBar

    results = []
    with ProgressBar("speed", len(jobs), unit="runs", enabled=progress) as bar:
        for job in jobs:
            results.append(_run_child(job, cpu))
            bar.advance()
    return results


def _run_child(job: SpeedJob, cpu: int | None) -> dict[str, Any]:
    env = {**os.environ, **ONE_THREAD_ENV}
    command = [sys.executable, "-m", "eval.speed", json.dumps(job.__dict__)]
    if cpu is not None:
        command.append(str(cpu))
    repo_root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=repo_root, check=False
    )
    if done.returncode != 0:
        # The last line: the refusal's message, or a crash's exception.
        lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
        return {"kind": job.kind, "video": Path(job.video).name, "error": lines[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(job: SpeedJob) -> dict[str, Any]:
    """The measurement itself; runs inside the child process."""
    import cv2

    cv2.setNumThreads(1)
    rss_before_kib = _rss_kib()
    if job.kind == "decode":
        started = time.perf_counter()
        frames = _decode_count(job)
        elapsed_s, extra = time.perf_counter() - started, {}
    elif job.kind in {"throw", "street"}:
        frames, elapsed_s, extra = _analyze(job)
    elif job.kind == "worker":
        frames, elapsed_s, extra = _worker(job)
    elif job.kind == "detector":
        return _detector(job)
    else:
        raise ValueError(
            f"kind: expected decode/throw/street/worker/detector, got {job.kind}"
        )
    return {
        "kind": job.kind,
        "video": Path(job.video).name,
        "frames": frames,
        "seconds": round(elapsed_s, 3),
        "fps_per_core": round(frames / elapsed_s, 2) if elapsed_s else None,
        "rss_before_mib": round(rss_before_kib / 1024, 1),
        "rss_peak_mib": round(_peak_rss_kib() / 1024, 1),
        **extra,
    }


def _frames(job: SpeedJob):  # type: ignore[no-untyped-def]
    from vision.ingest.sources import VideoSource

    with VideoSource(job.video) as source:
        for count, frame in enumerate(source.frames(), start=1):
            yield frame
            if job.max_frames and count >= job.max_frames:
                break


def _decode_count(job: SpeedJob) -> int:
    return sum(1 for _ in _frames(job))


def _camera(job: SpeedJob):  # type: ignore[no-untyped-def]
    from vision.config import CameraConfig

    if job.camera:
        return CameraConfig.model_validate(job.camera)
    return CameraConfig.default_for(job.video)


def _load_detector(job: SpeedJob):  # type: ignore[no-untyped-def]
    def load(name: str) -> Any:
        # Imported on first use, as in the service: a worker that runs no
        # detector does not carry onnxruntime in its resident memory.
        from models.catalog import resolve_model
        from vision.detect.detector import Detector

        spec = resolve_model(
            name,
            model_dir=Path(job.model_dir or tempfile.gettempdir()),
            mirror_dir=Path(job.mirror_dir) if job.mirror_dir else None,
        )
        return Detector.from_file(
            spec.path,
            class_names=spec.class_names,
            input_size_px=spec.input_size_px,
            intra_op_threads=1,
        )

    return load


def _analyze(job: SpeedJob) -> tuple[int, float, dict[str, Any]]:
    """Decode and analyse every frame; the time covers the loop only."""
    from vision.analyze.street import StreetAnalyzer
    from vision.analyze.throw import ThrowAnalyzer

    camera = _camera(job)
    if job.kind == "throw":
        analyzer: Any = ThrowAnalyzer(camera)
    else:
        assert camera.model is not None
        analyzer = StreetAnalyzer(camera, _load_detector(job)(camera.model))
    frames, events, analysis_s = 0, 0, 0.0
    loop_started = time.perf_counter()
    for frame in _frames(job):
        started = time.perf_counter()
        events += len(analyzer.process(frame))
        analysis_s += time.perf_counter() - started
        frames += 1
    events += len(analyzer.finish())
    loop_s = time.perf_counter() - loop_started
    return (
        frames,
        loop_s,
        {
            "events": events,
            "analysis_only_fps": round(frames / analysis_s, 2) if analysis_s else None,
            "resolution_wh": list(frame.resolution_wh) if frames else None,
        },
    )


def _worker(job: SpeedJob) -> tuple[int, float, dict[str, Any]]:
    """A whole camera worker over the video; the time covers ``run_source``."""
    from vision.evidence.local import LocalDirStore
    from vision.evidence.writer import EvidenceWriter
    from vision.pipeline import build_analyzers, run_source
    from vision.sink import MemorySink

    camera = _camera(job)
    analyzers = build_analyzers(camera, _load_detector(job))
    with tempfile.TemporaryDirectory(prefix="citywatch-speed-") as scratch:
        started = time.perf_counter()
        run = run_source(
            job.video,
            camera,
            analyzers=analyzers,
            writer=EvidenceWriter(LocalDirStore(Path(scratch))),
            sink=MemorySink(),
        )
        elapsed_s = time.perf_counter() - started
    return run.stats.frames_in, elapsed_s, {"events": len(run.stats.filed)}


def _detector(job: SpeedJob) -> dict[str, Any]:
    """Images per second of Detector.detect on decoded frames (1 thread)."""
    camera = _camera(job)
    model = camera.model or "yolo11n-coco"
    detector = _load_detector(job)(model)
    images = [frame.image for frame in _frames(job)]
    detector.detect(images[0])  # warm-up: session allocations
    started = time.perf_counter()
    for image in images:
        detector.detect(image)
    elapsed_s = time.perf_counter() - started
    result = {
        "kind": "detector",
        "video": Path(job.video).name,
        "model": model,
        "input_hw": list(detector.plan(images[0].shape[:2]).input_hw),
        "frames": len(images),
        "seconds": round(elapsed_s, 3),
        "images_per_s": round(len(images) / elapsed_s, 2),
    }
    result.update(_compute_floor(detector, images[0].shape[:2]))
    result.update(_ultralytics_reference(images, elapsed_s))
    return result


def _ultralytics_reference(images: list[Any], ours_s: float) -> dict[str, Any]:
    """ultralytics' own PyTorch predict on the same images in this process,
    when the train extra is installed: the reference the detector must beat."""
    from eval.bench_detector import load_ultralytics, timed, ultralytics_runner

    model = load_ultralytics()
    if model is None:
        return {}
    run = ultralytics_runner(model, 640, 1)
    run(images[:2])  # warm-up
    theirs_s = timed(lambda: run(images))
    return {
        "ultralytics_images_per_s": round(len(images) / theirs_s, 2),
        "ratio_to_ultralytics": round(theirs_s / ours_s, 2),
    }


def _compute_floor(detector: Any, frame_hw: tuple[int, int]) -> dict[str, Any]:
    """The best the machine could do, from the detector benchmark's tools."""
    try:
        from eval.bench_detector import matmul_peak_gflops, model_gflops
    except ImportError:
        return {}
    input_hw = detector.plan(frame_hw).input_hw
    work = model_gflops(Path(detector.path), input_hw)
    peak = matmul_peak_gflops()
    return {
        "model_gflop": round(work, 2),
        "matmul_peak_gflops_1_thread": round(peak, 1),
        "floor_images_per_s": round(peak / work, 1),
    }


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _peak_rss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def default_jobs(
    videos_dir: Path,
    *,
    street_camera: dict[str, Any],
    model_dir: Path,
    mirror_dir: Path | None,
    max_frames: int = 0,
) -> list[SpeedJob]:
    """The standard set: both real clips, each path beside decode alone."""
    throw_video = str(videos_dir / "throw_facade_ball_720p30.mp4")
    street_video = str(videos_dir / "street_plaza_vtest_part1_f000-399.avi")
    hd_video = str(make_hd_clip(Path(throw_video)))
    dirs = {
        "model_dir": str(model_dir),
        "mirror_dir": str(mirror_dir) if mirror_dir else None,
        "max_frames": max_frames,
    }
    return [
        SpeedJob("decode", throw_video, **dirs),
        SpeedJob("throw", throw_video, **dirs),
        SpeedJob("worker", throw_video, **dirs),
        SpeedJob("decode", street_video, **dirs),
        SpeedJob("street", street_video, camera=street_camera, **dirs),
        SpeedJob("worker", street_video, camera=street_camera, **dirs),
        SpeedJob(
            "detector", street_video, camera=street_camera, **{**dirs, "max_frames": 20}
        ),
        SpeedJob("decode", hd_video, **dirs),
        SpeedJob("throw", hd_video, **dirs),
        SpeedJob("worker", hd_video, **dirs),
    ]


def make_hd_clip(source: Path, target: Path | None = None) -> Path:
    """A 1080p 25 fps H.264 clip of ``source``, made once and then reused.

    Frames are upscaled and written with libx264 at a camera's bitrate, the
    clip looped ``HD_LOOPS`` times; a 2 s keyframe interval like a camera's.
    The encoding runs in a child process: a peak resident size is inherited
    by the measuring processes this one starts later, so it must stay small.
    """
    # The name drops the source's own size ("_720p30") to keep the table narrow.
    target = target or Path(tempfile.gettempdir()) / (
        f"citywatch-speed-{HD_BITRATE_BPS // 1000}k/"
        f"{source.stem.rsplit('_', 1)[0]}_{HD_RESOLUTION_WH[1]}p{HD_FPS}.mp4"
    )
    if target.is_file() and target.stat().st_size > 0:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part.mp4")
    code = "import sys; from eval.speed import _encode_hd; _encode_hd(*sys.argv[1:])"
    subprocess.run(
        [sys.executable, "-c", code, str(source), str(partial)],
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    partial.replace(target)
    return target


def _encode_hd(source: str, target: str) -> None:
    import av
    import cv2

    from vision.ingest.sources import VideoSource

    with av.open(target, "w") as container:
        stream = container.add_stream("libx264", rate=HD_FPS)
        stream.width, stream.height = HD_RESOLUTION_WH
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = HD_BITRATE_BPS
        stream.codec_context.gop_size = 2 * HD_FPS
        stream.options = {"preset": "veryfast", "profile": "main"}
        for _ in range(HD_LOOPS):
            with VideoSource(source) as video:
                for decoded in video.frames():
                    image = cv2.resize(
                        decoded.image, HD_RESOLUTION_WH, interpolation=cv2.INTER_LINEAR
                    )
                    frame = av.VideoFrame.from_ndarray(image, format="bgr24")
                    container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def hd_summary(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The 1080p figures: analysis beside decode, real-time factor, memory."""
    rows = {
        row["kind"]: row
        for row in results
        if "error" not in row and f"_{HD_RESOLUTION_WH[1]}p" in row.get("video", "")
    }
    if not {"decode", "throw"} <= rows.keys():
        return None
    decode_fps = rows["decode"]["fps_per_core"]
    analysis_fps = rows["throw"]["analysis_only_fps"]
    both_fps = rows["throw"]["fps_per_core"]
    return {
        "decode_fps": decode_fps,
        "analysis_fps": analysis_fps,
        "analysis_over_decode": round(decode_fps / analysis_fps, 2),
        "realtime_factor_25fps": round(both_fps / HD_FPS, 2),
        "worker_rss_peak_mib": rows.get("worker", {}).get("rss_peak_mib"),
    }


def render_speed_table(results: list[dict[str, Any]]) -> str:
    """A plain-text table: one row per measurement."""
    header = (
        f"{'what':<10} {'video':<38} {'frames':>6} {'fps/core':>9} "
        f"{'analysis fps':>12} {'RSS peak MiB':>12} {'RSS start MiB':>13}  note"
    )
    lines = [header, "-" * len(header)]
    for row in results:
        if "error" in row:
            lines.append(f"{row['kind']:<10} {row['video']:<38} failed: {row['error']}")
            continue
        if row["kind"] == "detector":
            floor = row.get("floor_images_per_s")
            note = f"{row['model']} input {'x'.join(map(str, row['input_hw']))}" + (
                f"; compute floor {floor} img/s" if floor else ""
            )
            if "ultralytics_images_per_s" in row:
                note += (
                    f"; ultralytics predict {row['ultralytics_images_per_s']} img/s"
                    f" (ours {row['ratio_to_ultralytics']}x)"
                )
            lines.append(
                f"{'detector':<10} {row['video']:<38} {row['frames']:>6} "
                f"{row['images_per_s']:>9} {'':>12} {'':>12} {'':>13}  img/s; {note}"
            )
            continue
        note = {"decode": "reference", "worker": "whole camera worker"}.get(
            row["kind"], ""
        )
        if "events" in row:
            note = f"{note}{'; ' if note else ''}{row['events']} event(s)"
        lines.append(
            f"{row['kind']:<10} {row['video']:<38} {row['frames']:>6} "
            f"{row['fps_per_core']:>9} {row.get('analysis_only_fps') or '':>12} "
            f"{row['rss_peak_mib']:>12} {row['rss_before_mib']:>13}  {note}"
        )
    hd = hd_summary(results)
    if hd is not None:
        lines += [
            "",
            f"1080p: decode {hd['decode_fps']} fps, throw analysis "
            f"{hd['analysis_fps']} fps per core; analysis/decode time "
            f"{hd['analysis_over_decode']} (target < 1); decode + analysis "
            f"{hd['realtime_factor_25fps']}x real time at {HD_FPS} fps; worker "
            f"RSS peak {hd['worker_rss_peak_mib']} MiB (target < 300).",
        ]
    return "\n".join(lines)


def _child_main(argv: list[str]) -> int:
    from vision.errors import CitywatchError

    job = SpeedJob(**json.loads(argv[0]))
    if len(argv) > 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(argv[1])})
    try:
        result = measure(job)
    except CitywatchError as exc:
        # A missing model or video is the reader's to fix: say it in one
        # line, which the parent shows in the row of this run.
        print(str(exc), file=sys.stderr)  # noqa: T201
        return 2
    print(json.dumps(result))  # noqa: T201  (the parent reads stdout)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
