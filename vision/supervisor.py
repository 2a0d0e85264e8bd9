"""Many cameras on one machine: one worker process per camera, supervised.

``serve_cameras`` starts a process per camera file (``spawn``: no state is
inherited from the parent), restarts a worker that crashes with backoff,
collects each worker's status into a ``StatusBoard`` for metrics and health,
and on SIGTERM/SIGINT stops them all cleanly: each worker stops reading,
files every event it holds (evidence written, or spooled when the store is
down) and exits.

The worker processes build their own sink and store from the factories they
are given, so this module knows nothing of the service: the caller passes
picklable factories (module-level functions or ``functools.partial`` of them).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vision.config import load_camera_file
from vision.evidence.objects import ObjectStore
from vision.evidence.writer import EvidenceWriter
from vision.health import CameraHealth, HealthSettings
from vision.ingest.live import LiveReader, LiveSettings
from vision.metrics import CameraStatus, StatusBoard
from vision.outbox import KeepingSink, Outbox
from vision.pipeline import (
    DetectorLoader,
    build_analyzers,
    evidence_listener,
    purge_policy,
    run_live,
    run_source,
    spooled,
)
from vision.sink import TicketSink
from vision.worker import CameraWorker

logger = logging.getLogger(__name__)

SinkFactory = Callable[[], TicketSink]
StoreFactory = Callable[[], ObjectStore]


@dataclass(frozen=True)
class SupervisorSettings:
    spool_root: Path
    spool_cap_bytes: int = 2 << 30
    live: LiveSettings = field(default_factory=LiveSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    restart_initial_s: float = 1.0
    restart_max_s: float = 60.0
    stop_timeout_s: float = 60.0  # for a worker to file what it holds


@dataclass
class _Child:
    camera_file: Path
    camera_id: str
    process: Any = None
    statuses: Any = None  # the read end of the worker's status pipe
    started_monotonic: float = 0.0
    failures: int = 0
    restart_at: float | None = None


def serve_cameras(
    camera_files: Sequence[Path],
    make_sink: SinkFactory,
    make_store: StoreFactory,
    settings: SupervisorSettings,
    *,
    load_detector: DetectorLoader | None = None,
    board: StatusBoard | None = None,
    stop: threading.Event | None = None,
    install_signal_handlers: bool = True,
) -> StatusBoard:
    """Run every camera until SIGTERM/SIGINT (or ``stop``); returns the board.

    Blocks. Camera files are checked before any process starts, so a typo
    fails at once with a ``ConfigError`` naming the file.
    """
    board = board or StatusBoard()
    stop = stop or threading.Event()
    children = [
        _Child(Path(path), load_camera_file(path).camera_id) for path in camera_files
    ]
    if (
        install_signal_handlers
        and threading.current_thread() is threading.main_thread()
    ):
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())

    context = mp.get_context("spawn")
    spawn = _spawner(context, make_sink, make_store, load_detector, settings)
    for child in children:
        spawn(child)
    try:
        while not stop.is_set():
            for child in children:
                _drain(child, board)
                _supervise(child, spawn, settings, board)
            stop.wait(0.5)
    finally:
        logger.info("stopping %d camera worker(s)", len(children))
        _stop_all(children, settings.stop_timeout_s, board)
    return board


def _spawner(context, make_sink, make_store, load_detector, settings):
    def spawn(child: _Child) -> None:
        # A pipe per process: a worker killed mid-write corrupts only its own.
        statuses, sender = context.Pipe(duplex=False)
        child.process = context.Process(
            target=run_camera_process,
            args=(
                child.camera_file,
                make_sink,
                make_store,
                load_detector,
                settings,
                sender,
            ),
            name=f"camera-{child.camera_id}",
        )
        child.process.start()
        sender.close()  # the worker holds the only write end: EOF when it dies
        child.statuses = statuses
        child.started_monotonic = time.monotonic()
        child.restart_at = None
        logger.info("camera %s: worker process %d", child.camera_id, child.process.pid)

    return spawn


def _supervise(child: _Child, spawn, settings: SupervisorSettings, board) -> None:
    process = child.process
    now = time.monotonic()
    if child.restart_at is not None:
        if now >= child.restart_at:
            board.note_restart(child.camera_id)
            spawn(child)
        return
    if process is None or process.is_alive() or process.exitcode == 0:
        return
    # Crashed: back off, more for a worker that keeps crashing soon after start.
    ran_s = now - child.started_monotonic
    child.failures = 1 if ran_s > settings.restart_max_s else child.failures + 1
    delay_s = min(
        settings.restart_max_s, settings.restart_initial_s * 2 ** (child.failures - 1)
    )
    child.restart_at = now + delay_s
    reason = f"worker exited with code {process.exitcode}; restart in {delay_s:.0f} s"
    board.mark_offline(child.camera_id, reason)
    logger.error("camera %s: %s", child.camera_id, reason)


def _stop_all(children, timeout_s: float, board) -> None:
    # SIGTERM asks each worker to stop; no shared lock is involved, so a
    # worker that was killed earlier cannot leave the others hanging.
    for child in children:
        if child.process is not None and child.process.is_alive():
            child.process.terminate()
    deadline = time.monotonic() + timeout_s
    for child in children:
        if child.process is None:
            continue
        while child.process.is_alive() and time.monotonic() < deadline:
            _drain(child, board)
            child.process.join(0.2)
        if child.process.is_alive():
            logger.error("camera %s: worker did not stop; killed", child.camera_id)
            child.process.kill()
            child.process.join(5)
        _drain(child, board)


def _drain(child: _Child, board: StatusBoard) -> None:
    connection = child.statuses
    if connection is None:
        return
    try:
        while connection.poll():
            board.publish(connection.recv())
    except (EOFError, OSError):
        connection.close()  # the worker is gone; a restart opens a new pipe
        child.statuses = None


# -- inside a worker process ------------------------------------------------------


def run_camera_process(
    camera_file: Path,
    make_sink: SinkFactory,
    make_store: StoreFactory,
    load_detector: DetectorLoader | None,
    settings: SupervisorSettings,
    statuses: Any,
) -> None:
    """One camera's worker process: runs until it receives SIGTERM."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The parent decides when to stop; a terminal's Ctrl-C must not cut an
    # event's filing short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    local_stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: local_stop.set())

    camera = load_camera_file(camera_file)
    # Events the service cannot take now wait on disk beside the evidence.
    outbox = Outbox(settings.spool_root / camera.camera_id / "outbox")
    sink = KeepingSink(make_sink(), outbox)
    sink.start()
    store = spooled(
        make_store(),
        settings.spool_root / camera.camera_id,
        cap_bytes=settings.spool_cap_bytes,
        on_stored=evidence_listener(sink),
        may_purge=purge_policy(sink),
    )
    health = CameraHealth(
        camera.camera_id, settings.health, reference_view=camera.reference_view
    )
    analyzers = build_analyzers(camera, load_detector or _no_detector)
    writer = EvidenceWriter(store)

    def publish(worker: CameraWorker, reader: LiveReader) -> None:
        statuses.send(
            camera_status(worker, health, reader=reader, store=store, sink=sink)
        )

    try:
        if camera.source is None:
            raise ValueError(f"camera {camera.camera_id}: its file names no source")
        if "://" in camera.source:
            run_live(
                camera.source,
                camera,
                analyzers=analyzers,
                writer=writer,
                sink=sink,
                stop=local_stop,
                live_settings=settings.live,
                health=health,
                on_status=publish,
            )
        else:
            run_source(
                camera.source,
                camera,
                analyzers=analyzers,
                writer=writer,
                sink=sink,
                stop=local_stop,  # a recording too stops, filing what it holds
            )
    finally:
        # What could not be uploaded stays in the spool on disk; the next
        # start uploads it.
        store.stop(timeout_s=5.0)
        sink.close()


def camera_status(
    worker: CameraWorker,
    health: CameraHealth | None,
    *,
    reader: LiveReader | None = None,
    store: Any = None,
    sink: Any = None,
) -> CameraStatus:
    """A snapshot of one camera's figures."""
    stats = worker.stats
    status = CameraStatus(
        camera_id=worker.camera.camera_id,
        frames_in=reader.frames_in if reader is not None else stats.frames_in,
        frames_analysed=stats.frames_in,
        frames_skipped=stats.frames_skipped,
        lag_s=stats.lag_s,
        max_lag_s=stats.max_lag_s,
        reconnects=reader.reconnects if reader is not None else 0,
        events=stats.events,
        faults=stats.faults,
        tickets_filed=len(stats.filed),
        pid=os.getpid(),
    )
    if health is not None:
        summary = health.summary()
        status.state, status.reason = summary.state.value, summary.reason
        status.view_problems = [p.value for p in summary.view_problems]
        status.view_similarity = summary.view_similarity
        if summary.last_frame_at is not None:
            status.last_frame_at = summary.last_frame_at.isoformat()
    if store is not None and hasattr(store, "spool_bytes"):
        status.spool_bytes = store.spool_bytes
        status.spool_pending = store.pending_count
        status.spool_pressure = store.disk_pressure
    if isinstance(sink, KeepingSink):
        status.events_kept = sink.kept_count
        status.tickets_filed += sink.refiled_count
    return status


def _no_detector(name: str) -> object:
    raise ValueError(
        f"model {name!r}: no detector loader was given to the camera supervisor"
    )
