"""The main job on one machine: a video in, tickets with evidence out.

``watch_source`` runs one camera's pipeline over a recording (or a stream
until stopped) with the settings' object store and database, filing tickets
in-process. It is what ``citywatch watch`` runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from api.db import make_engine, make_session_factory, upgrade
from api.settings import Settings
from api.sinks import DatabaseSink
from api.storage import build_store, describe_store
from models.catalog import resolve_model
from vision.config import CameraConfig, load_camera_file
from vision.evidence.writer import EvidenceWriter
from vision.pipeline import build_analyzers, open_checked, run_source

if TYPE_CHECKING:
    from vision.detect.detector import Detector

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FiledTicketSummary:
    ticket_id: str
    category: str
    started_ts_s: float
    ended_ts_s: float
    evidence_state: str
    evidence: list[tuple[str, str]]  # (kind, where it lies)


@dataclass(frozen=True, slots=True)
class WatchReport:
    camera_id: str
    frames: int
    duration_s: float
    tickets: list[FiledTicketSummary]
    database: str
    store: str


def load_detector(name_or_path: str, settings: Settings) -> Detector:
    # Imported here: onnxruntime and the tracking libraries cost a camera
    # worker that never runs a detector (throws alone) some 100 MB.
    from vision.detect.detector import Detector

    spec = resolve_model(
        name_or_path,
        model_dir=settings.model_dir,
        mirror_dir=settings.model_mirror_dir,
    )
    return Detector.from_file(
        spec.path,
        class_names=spec.class_names,
        input_size_px=spec.input_size_px,
        intra_op_threads=settings.ort_intra_op_threads,
        graph_optimization=settings.ort_graph_optimization,
    )


def watch_source(
    source: str, camera_file: Path | None, settings: Settings
) -> WatchReport:
    camera = (
        load_camera_file(camera_file)
        if camera_file is not None
        else CameraConfig.default_for(source)
    )

    # Everything that can be refused is checked before the database or the
    # store is touched: a bad input leaves nothing half-written behind.
    open_checked(source, camera).close()
    analyzers = build_analyzers(camera, partial(load_detector, settings=settings))
    store = build_store(settings)

    assert settings.database_url is not None  # derived by Settings
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        sink = DatabaseSink(
            make_session_factory(engine),
            duplicate_window_s=settings.duplicate_window_s,
            duplicate_iou=settings.duplicate_iou,
        )
        run = run_source(
            source,
            camera,
            analyzers=analyzers,
            writer=EvidenceWriter(store),
            sink=sink,
            verification=sink,
        )
    finally:
        engine.dispose()

    tickets = [
        FiledTicketSummary(
            ticket_id=filed.ticket_id,
            category=event.category.value,
            started_ts_s=event.started_ts_s,
            ended_ts_s=event.ended_ts_s,
            evidence_state=event.evidence_state.value,
            evidence=[
                (item.kind.value, describe_store(store, item.key))
                for item in event.evidence
            ],
        )
        for event, filed in run.stats.filed
    ]
    return WatchReport(
        camera_id=camera.camera_id,
        frames=run.stats.frames_in,
        duration_s=run.stats.last_ts_s,
        tickets=tickets,
        database=_redact(settings.database_url),
        store=describe_store(store, ""),
    )


def _redact(url: str) -> str:
    """Never print a database password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
