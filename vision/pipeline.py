"""Assembling one camera's pipeline from its camera file.

The service (``api.watch``) and the eval harness both build camera workers
here, so a benchmark runs exactly the analyzers a camera runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from vision.analyze import Analyzer
from vision.config import CameraConfig
from vision.errors import ModelLoadError
from vision.evidence.objects import ObjectStore
from vision.evidence.spool import SpoolingStore, never_purge
from vision.evidence.writer import EvidenceWriter
from vision.health import CameraHealth
from vision.ingest.live import LiveReader, LiveSettings, SourcePolicy
from vision.ingest.sources import SourceInfo, VideoSource, check_file_readable
from vision.sink import TicketSink, VerificationChannel
from vision.verifier import CameraVerifier
from vision.worker import (
    CameraWorker,
    FrameHook,
    WorkerStats,
    live_session_key,
    recording_session_key,
)

logger = logging.getLogger(__name__)

DetectorLoader = Callable[[str], object]


def build_analyzers(
    camera: CameraConfig, load_detector: DetectorLoader
) -> list[Analyzer]:
    """The analyzers a camera file asks for; the detector loads only if needed.

    Each is imported only when asked for: the street analyzer's tracking
    libraries cost a camera that watches for throws alone some 60 MB.
    """
    analyzers: list[Analyzer] = []
    if camera.throw.enabled:
        from vision.analyze.throw import ThrowAnalyzer

        analyzers.append(
            ThrowAnalyzer(camera, second_stage=_second_stage(camera, load_detector))
        )
    if camera.rules:
        from vision.analyze.street import StreetAnalyzer

        assert camera.model is not None  # the camera file validator demands it
        analyzers.append(StreetAnalyzer(camera, load_detector(camera.model)))
    return analyzers


def _second_stage(camera: CameraConfig, load_detector: DetectorLoader) -> Any:
    """The detector of the throw analyzer's second stage, if the file asks.

    A model that cannot be loaded stops the camera at start, naming the
    camera and the block, rather than running it without the stage.
    """
    stage = camera.throw.second_stage
    if stage is None:
        return None
    try:
        return load_detector(stage.model)
    except ModelLoadError as exc:
        raise ModelLoadError(
            f"camera {camera.camera_id}: throw.second_stage.model: {exc}"
        ) from exc


@dataclass(frozen=True, slots=True)
class SourceRun:
    info: SourceInfo
    stats: WorkerStats


def run_source(
    uri: str,
    camera: CameraConfig,
    *,
    analyzers: list[Analyzer],
    writer: EvidenceWriter,
    sink: TicketSink,
    stop: threading.Event | None = None,
    live_settings: LiveSettings | None = None,
    health: CameraHealth | None = None,
    verification: VerificationChannel | None = None,
) -> SourceRun:
    """Open ``uri``, check it against the camera file, and run it to its end.

    A recording is demuxed once up front: a truncated or garbage file fails
    before anything is filed from its first half; then every frame is
    analysed. A live stream runs until ``stop`` is set (or Ctrl-C), analysing
    its newest frames and reconnecting whenever it drops. With a
    ``verification`` channel the camera also re-checks resolved tickets.
    """
    if SourcePolicy.for_uri(uri) is SourcePolicy.NEWEST_FRAME:
        return run_live(
            uri,
            camera,
            analyzers=analyzers,
            writer=writer,
            sink=sink,
            stop=stop or threading.Event(),
            live_settings=live_settings,
            health=health,
            verification=verification,
        )
    source = open_checked(uri, camera)
    with source:
        worker = CameraWorker(
            camera,
            analyzers,
            writer,
            sink,
            session_key=_session_key(source),
            health=health,
        )
        if verification is not None:
            worker.frame_hooks.append(CameraVerifier(worker, verification))
        started_at = recording_start(uri, source.info)
        worker.run_chunks(source.read(started_at=started_at), stop)
    return SourceRun(info=source.info, stats=worker.stats)


def run_live(
    uri: str,
    camera: CameraConfig,
    *,
    analyzers: list[Analyzer],
    writer: EvidenceWriter,
    sink: TicketSink,
    stop: threading.Event,
    live_settings: LiveSettings | None = None,
    health: CameraHealth | None = None,
    on_status: Callable[[CameraWorker, LiveReader], None] | None = None,
    frame_hooks: Sequence[FrameHook] = (),
    verification: VerificationChannel | None = None,
) -> SourceRun:
    """Run a live source until ``stop`` is set; events in flight are filed."""
    worker = CameraWorker(
        camera,
        analyzers,
        writer,
        sink,
        session_key=live_session_key(),
        health=health,
        frame_hooks=frame_hooks,
    )
    if verification is not None:
        worker.frame_hooks.append(CameraVerifier(worker, verification))
    reader = LiveReader(
        uri,
        live_settings,
        on_packets=worker.push_packets,
        on_state=_health_listener(health),
        name=camera.camera_id,
    )
    tick = (lambda: on_status(worker, reader)) if on_status else None
    reader.start()
    try:
        worker.run_live(reader, stop, on_tick=tick)
    except KeyboardInterrupt:
        stop.set()
    info = SourceInfo(
        uri=reader.shown_uri,
        codec=reader.codec or "",
        resolution_wh=reader.resolution_wh or (0, 0),
        nominal_fps=None,
        duration_s=worker.stats.last_ts_s,
        live=True,
    )
    if tick is not None:
        tick()
    return SourceRun(info=info, stats=worker.stats)


def _health_listener(
    health: CameraHealth | None,
) -> Callable[[bool, str | None], None] | None:
    if health is None:
        return None

    def listen(online: bool, reason: str | None) -> None:
        if online:
            health.source_online()
        else:
            health.source_offline(reason or "no frames")

    return listen


def evidence_listener(sink: TicketSink) -> Callable[[str], None] | None:
    """Tell the sink when spooled evidence reached the store, if it can hear it.

    A sink with ``evidence_stored(event_id, key)`` turns the ticket's
    ``pending`` evidence into ``stored``; object keys end in
    ``<event_id>/<name>``.
    """
    update = getattr(sink, "evidence_stored", None)
    if update is None:
        return None

    def listen(key: str) -> None:
        event_id = key.rsplit("/", 2)[-2]
        try:
            update(event_id, key)
        except Exception:  # the upload happened; a later poll can catch up
            logger.exception("evidence %s stored, but the ticket was not told", key)

    return listen


def purge_policy(sink: TicketSink) -> Callable[[str], bool]:
    """What a full spool may delete, as the sink's tickets say.

    A sink with ``evidence_purgeable(event_id)`` releases the evidence of
    tickets rejected long enough ago; any other sink releases nothing, so a
    full spool reports new evidence missing rather than guess.
    """
    ask = getattr(sink, "evidence_purgeable", None)
    if ask is None:
        return never_purge

    def may_purge(key: str) -> bool:
        return bool(ask(key.rsplit("/", 2)[-2]))

    return may_purge


def spooled(
    store: ObjectStore,
    spool_dir: Path,
    *,
    cap_bytes: int = 2 << 30,
    on_stored: Callable[[str], None] | None = None,
    **options: Any,
) -> SpoolingStore:
    """``store`` behind a local spool whose backlog uploads in the background.

    ``on_stored(key)`` hears each spooled object that reached the store.
    """
    spool = SpoolingStore(store, spool_dir, cap_bytes, on_stored=on_stored, **options)
    spool.start()
    return spool


def open_checked(uri: str, camera: CameraConfig) -> VideoSource:
    """Open a source and refuse it when the camera file does not fit it."""
    source = VideoSource(uri)
    try:
        if not source.live:
            check_file_readable(uri)
        camera.check_frame_size(source.info.resolution_wh)
    except Exception:
        source.close()
        raise
    return source


def _session_key(source: VideoSource) -> str:
    if source.live:
        return live_session_key()
    return recording_session_key(source.uri, Path(source.uri).stat().st_size)


def recording_start(uri: str, info: SourceInfo) -> datetime:
    """Wall-clock time of a recording's first frame.

    Recordings rarely say when they were made; the file's modification time
    minus its duration is the best estimate there is, and it is stable, so a
    recording analysed twice gives tickets the same times.
    """
    modified = datetime.fromtimestamp(Path(uri).stat().st_mtime, tz=UTC)
    return modified - timedelta(seconds=info.duration_s or 0.0)
