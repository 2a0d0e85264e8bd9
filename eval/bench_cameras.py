"""Many cameras on one machine: CPU per camera, lag and memory over time.

Runs ``cameras`` live camera workers in one process each (the supervisor's
own code path), all reading the shared street footage as RTSP streams from a
loopback GStreamer server, for ``duration_s`` seconds. Every few seconds it
samples each worker's CPU time, resident memory, analysis lag and skipped
frames, and prints a table and a JSON summary:

- CPU per camera (share of one core),
- lag (stream seconds between the newest frame and the analysed one): bounded,
- memory per worker at the start, half-way and the end of the run: flat once
  the pre-roll is full (the second half adds nothing),
- backlog: none by construction; the skipped-frame count says what was dropped.

Usage: ``citywatch eval speed --cameras 8 --cameras-duration-s 180`` (after
the per-path figures), or ``python -m eval.bench_cameras --cameras 8
--duration-s 180`` alone.
Needs Debian's GStreamer RTSP server (``scripts/ci-packages.sh``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import psutil
import yaml

from eval.streams import RtspServer, encode_h264, gstreamer_available
from vision.evidence.store import LocalDirStore
from vision.ingest.live import LiveSettings
from vision.metrics import StatusBoard
from vision.sink import MemorySink
from vision.supervisor import SupervisorSettings, serve_cameras

REPO = Path(__file__).resolve().parents[1]
STREET = (
    REPO.parent / "shared" / "data" / "videos" / "street_plaza_vtest_part1_f000-399.avi"
)


def _camera_files(directory: Path, url: str, cameras: int) -> list[Path]:
    files = []
    for n in range(cameras):
        path = directory / f"bench-{n}.yaml"
        # Throw analysis on the whole frame: the full-frame-rate analyzer.
        path.write_text(yaml.safe_dump({"camera_id": f"bench-{n}", "source": url}))
        files.append(path)
    return files


def _sample(board: StatusBoard, cpu: dict[int, float], t_s: float) -> list[dict]:
    rows = []
    for status in board.statuses():
        if status.pid is None:
            continue
        try:
            times = psutil.Process(status.pid).cpu_times()
            rss = psutil.Process(status.pid).memory_info().rss
        except psutil.Error:
            continue
        used_s = times.user + times.system
        rows.append(
            {
                "t_s": round(t_s, 1),
                "camera_id": status.camera_id,
                "cpu_s": used_s,
                "rss_mb": rss / 2**20,
                "lag_s": status.lag_s,
                "frames_in": status.frames_in,
                "frames_analysed": status.frames_analysed,
                "frames_skipped": status.frames_skipped,
            }
        )
        cpu[status.pid] = used_s
    return rows


def run(cameras: int, duration_s: float, sample_s: float = 5.0) -> dict:
    if not gstreamer_available():
        raise SystemExit(
            "GStreamer's RTSP server is missing: run scripts/ci-packages.sh"
        )
    with tempfile.TemporaryDirectory(prefix="citywatch-bench-") as tmp:
        work = Path(tmp)
        media = encode_h264(STREET, work / "street.mp4", keyframe_interval_s=2.0)
        board, stop = StatusBoard(), threading.Event()
        samples: list[dict] = []
        with RtspServer(media) as server:
            settings = SupervisorSettings(
                spool_root=work / "spool",
                live=LiveSettings(backoff_initial_s=0.5, backoff_max_s=2.0),
            )
            thread = threading.Thread(
                target=serve_cameras,
                args=(
                    _camera_files(work, server.url, cameras),
                    MemorySink,
                    partial(LocalDirStore, work / "store"),
                    settings,
                ),
                kwargs={"board": board, "stop": stop, "install_signal_handlers": False},
            )
            thread.start()
            started = time.monotonic()
            cpu: dict[int, float] = {}
            try:
                while time.monotonic() - started < duration_s:
                    time.sleep(sample_s)
                    samples.extend(_sample(board, cpu, time.monotonic() - started))
            finally:
                stop.set()
                thread.join(120)
    return _summarise(samples, cameras, duration_s)


def _summarise(samples: list[dict], cameras: int, duration_s: float) -> dict:
    per_camera: dict[str, list[dict]] = {}
    for row in samples:
        per_camera.setdefault(row["camera_id"], []).append(row)
    summary = {"cameras": cameras, "duration_s": duration_s, "per_camera": {}}
    for camera_id, rows in sorted(per_camera.items()):
        first, last = rows[0], rows[-1]
        middle = min(rows, key=lambda r: abs(r["t_s"] - duration_s / 2))
        span_s = max(1e-6, last["t_s"] - first["t_s"])
        summary["per_camera"][camera_id] = {
            "cpu_share": round((last["cpu_s"] - first["cpu_s"]) / span_s, 3),
            "lag_p50_s": round(statistics.median(r["lag_s"] for r in rows), 3),
            "lag_max_s": round(max(r["lag_s"] for r in rows), 3),
            "rss_start_mb": round(first["rss_mb"], 1),
            "rss_mid_mb": round(middle["rss_mb"], 1),
            "rss_end_mb": round(last["rss_mb"], 1),
            "frames_in": last["frames_in"],
            "frames_analysed": last["frames_analysed"],
            "frames_skipped": last["frames_skipped"],
        }
    summary["samples"] = samples
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--duration-s", type=float, default=180.0)
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--json", type=Path, help="Write the summary here too.")
    args = parser.parse_args(argv)

    summary = run(args.cameras, args.duration_s, args.sample_s)
    sys.stdout.write(render_cameras_table(summary) + "\n")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


def render_cameras_table(summary: dict) -> str:
    """One line per camera: CPU share, lag, memory at start and end, frames."""
    lines = [
        f"{summary['cameras']} camera(s) for {summary['duration_s']:.0f} s",
        f"{'camera':<10} {'cpu':>6} {'lag p50':>8} {'lag max':>8} "
        f"{'rss start':>10} {'rss mid':>8} {'rss end':>8} {'analysed':>9} "
        f"{'skipped':>8}",
    ]
    for camera_id, row in summary["per_camera"].items():
        lines.append(
            f"{camera_id:<10} {row['cpu_share']:>6.2f} {row['lag_p50_s']:>7.2f}s "
            f"{row['lag_max_s']:>7.2f}s {row['rss_start_mb']:>8.0f}MB "
            f"{row['rss_mid_mb']:>6.0f}MB {row['rss_end_mb']:>6.0f}MB "
            f"{row['frames_analysed']:>9} "
            f"{row['frames_skipped']:>8}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
