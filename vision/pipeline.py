"""Assembling one camera's pipeline from its camera file.

The service (``api.watch``) and the eval harness both build camera workers
here, so a benchmark runs exactly the analyzers a camera runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vision.analyze import Analyzer
from vision.config import CameraConfig
from vision.evidence.writer import EvidenceWriter
from vision.ingest.sources import SourceInfo, VideoSource, check_file_readable
from vision.sink import TicketSink
from vision.worker import (
    CameraWorker,
    WorkerStats,
    live_session_key,
    recording_session_key,
)

logger = logging.getLogger(__name__)

DetectorLoader = Callable[[str], object]


def build_analyzers(
    camera: CameraConfig, load_detector: DetectorLoader
) -> list[Analyzer]:
    """The analyzers a camera file asks for; the detector loads only if needed."""
    from vision.analyze.street import StreetAnalyzer
    from vision.analyze.throw import ThrowAnalyzer

    analyzers: list[Analyzer] = []
    if camera.throw.enabled:
        analyzers.append(ThrowAnalyzer(camera))
    if camera.rules:
        assert camera.model is not None  # the camera file validator demands it
        analyzers.append(StreetAnalyzer(camera, load_detector(camera.model)))
    return analyzers


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
) -> SourceRun:
    """Open ``uri``, check it against the camera file, and run it to its end.

    A recording is demuxed once up front: a truncated or garbage file fails
    before anything is filed from its first half.
    """
    source = open_checked(uri, camera)
    with source:
        worker = CameraWorker(
            camera, analyzers, writer, sink, session_key=_session_key(source)
        )
        started_at = recording_start(uri, source.info) if not source.live else None
        worker.run(source.frames(started_at=started_at))
    return SourceRun(info=source.info, stats=worker.stats)


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
