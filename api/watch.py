"""The main job: a video in, tickets with evidence out.

``watch_source`` runs one camera's pipeline over a recording (or a stream
until stopped) with the settings' object store. It files tickets into the
settings' database in-process, or, for a camera worker on another machine,
at the service's API with the camera's key. It is what ``citywatch watch``
runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.db import make_engine, make_session_factory, upgrade
from api.filing import worst_evidence_state
from api.settings import ENV_PREFIX, Settings
from api.sinks import DatabaseSink, HttpSink
from api.storage import build_store, describe_store
from api.tables import Evidence
from models.catalog import resolve_model
from vision.analyze import Analyzer
from vision.config import CameraConfig, load_camera_file
from vision.errors import ConfigError, SinkError
from vision.evidence.objects import ObjectStore
from vision.evidence.spool import SpoolingStore
from vision.evidence.writer import EvidenceWriter
from vision.outbox import KeepingSink, Outbox
from vision.pipeline import (
    SourceRun,
    build_analyzers,
    evidence_listener,
    open_checked,
    purge_policy,
    run_source,
    spooled,
)
from vision.sink import FiledTicket
from vision.types import Event, EvidenceState

if TYPE_CHECKING:
    from vision.detect.detector import Detector

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FiledTicketSummary:
    ticket_id: str
    category: str
    started_ts_s: float
    ended_ts_s: float
    evidence_state: str | None  # None: filed before, as the service knows
    evidence: list[tuple[str, str]]  # (kind, where it lies)
    # Filed by an earlier run of the same recording; its state then.
    filed_before_as: str | None = None
    # Attached to an open ticket at the same place, which keeps its evidence.
    attached: bool = False


@dataclass(frozen=True, slots=True)
class WatchReport:
    camera_id: str
    frames: int
    duration_s: float
    tickets: list[FiledTicketSummary]
    filed_at: str  # "database: URL" or "service: URL"
    store: str
    # Events the service could not take; the next run files them.
    kept: list[str] = field(default_factory=list)
    # Evidence the store could not take; the next run uploads it.
    spooled: list[str] = field(default_factory=list)
    spool_dir: str = ""


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
    source: str,
    camera_file: Path | None,
    settings: Settings,
    *,
    remote: bool = False,
) -> WatchReport:
    """Run the camera over ``source``; ``remote`` files at the service
    (``settings.api_url``) with ``settings.camera_api_key`` instead of into
    the database."""
    if remote and camera_file is None:
        raise ConfigError(
            "--remote needs --camera FILE: the service knows the camera by the "
            "camera_id in its file, and its key is made for that id"
        )
    camera = (
        load_camera_file(camera_file)
        if camera_file is not None
        else CameraConfig.default_for(source)
    )

    # Everything that can be refused is checked before the database or the
    # store is touched: a bad input leaves nothing half-written behind.
    open_checked(source, camera).close()
    analyzers = build_analyzers(camera, partial(load_detector, settings=settings))
    if remote:
        with _service_sink(camera, settings) as service:
            sink = _keeping(service, camera, settings)
            store = _spooled_store(
                build_store(settings, spooled=True), camera, settings, sink
            )
            run = _run(source, camera, analyzers, store, sink)
        waiting = set(store.pending_keys())
        tickets = [_remote_summary(e, f, store, waiting) for e, f in run.filed]
        filed_at = f"service: {service.base_url}"
        return _report(camera, run, tickets, filed_at, store, sink.outbox)
    inner_store = build_store(settings, spooled=True)

    assert settings.database_url is not None  # derived by Settings
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        session_factory = make_session_factory(engine)
        database = DatabaseSink(
            session_factory,
            duplicate_window_s=settings.duplicate_window_s,
            duplicate_iou=settings.duplicate_iou,
        )
        sink = _keeping(database, camera, settings)
        store = _spooled_store(inner_store, camera, settings, sink)
        run = _run(source, camera, analyzers, store, sink)
        tickets = [
            _summary(event, filed, store, session_factory) for event, filed in run.filed
        ]
    finally:
        engine.dispose()
    filed_at = f"database: {_redact(settings.database_url)}"
    return _report(camera, run, tickets, filed_at, store, sink.outbox)


def _keeping(
    sink: DatabaseSink | HttpSink, camera: CameraConfig, settings: Settings
) -> KeepingSink:
    """The sink behind the camera's outbox: events the service cannot take
    wait there for this run's retries or the next run."""
    assert settings.spool_dir is not None  # derived by Settings
    return KeepingSink(sink, Outbox(settings.spool_dir / camera.camera_id / "outbox"))


def _spooled_store(
    store: ObjectStore, camera: CameraConfig, settings: Settings, sink: KeepingSink
) -> SpoolingStore:
    """The store behind the camera's spool: evidence the store cannot take
    now waits on disk, and the ticket learns when it arrives."""
    assert settings.spool_dir is not None  # derived by Settings
    return spooled(
        store,
        settings.spool_dir / camera.camera_id,
        on_stored=evidence_listener(sink),
        may_purge=purge_policy(sink),
    )


def _service_sink(camera: CameraConfig, settings: Settings) -> HttpSink:
    """A sink to the service, checked before any frame is read: the service
    answers and takes this key for this camera."""
    key = settings.camera_api_key
    if key is None or not key.get_secret_value():
        raise ConfigError(
            f"--remote needs the camera's API key in {ENV_PREFIX}CAMERA_API_KEY "
            f"(on the service: citywatch admin apikey-create --camera "
            f"{camera.camera_id})"
        )
    assert settings.api_url is not None  # derived by Settings
    sink = HttpSink(settings.api_url, api_key=key.get_secret_value(), retries=2)
    try:
        sink.pending_verifications(camera.camera_id)
    except SinkError as exc:
        sink.close()
        raise ConfigError(
            f"camera {camera.camera_id}: {_refusal(exc, camera, sink.base_url)}"
        ) from exc
    return sink


def _refusal(exc: SinkError, camera: CameraConfig, url: str) -> str:
    """Why the service did not take the camera at start, in the words of
    the settings an operator can change."""
    cause = exc.__cause__
    if not isinstance(cause, httpx.HTTPStatusError):
        return f"cannot reach the service at {url} ({ENV_PREFIX}API_URL): {cause}"
    status = cause.response.status_code
    if status == 401:
        return (
            f"the service at {url} does not know the key in "
            f"{ENV_PREFIX}CAMERA_API_KEY (revoked, or made on another service?)"
        )
    if status == 403:
        return (
            f"the key in {ENV_PREFIX}CAMERA_API_KEY belongs to another camera; "
            f"this one is {camera.camera_id}, the camera_id of its camera file"
        )
    if status == 404:
        return f"no citywatch API at {url} (HTTP 404; check {ENV_PREFIX}API_URL)"
    return f"the service at {url} answered HTTP {status}"


@dataclass(frozen=True, slots=True)
class _Run:
    source: SourceRun
    # Tickets of this run, and of events earlier runs kept and this one filed.
    filed: list[tuple[Event, FiledTicket]]


def _run(
    source: str,
    camera: CameraConfig,
    analyzers: list[Analyzer],
    store: SpoolingStore,
    sink: KeepingSink,
) -> _Run:
    """The camera over the source. Events the service cannot take now wait
    in the sink's outbox; those an earlier run kept are filed first."""
    sink.start()
    try:
        run = run_source(
            source,
            camera,
            analyzers=analyzers,
            writer=EvidenceWriter(store),
            sink=sink,
            verification=sink.inner,
        )
        # The last word before the report: what still waits goes now if it can.
        store.drain_once()
        sink.refile()
    finally:
        store.stop(timeout_s=5.0)
        sink.close()
    # An event kept by an earlier run and found again in this one was
    # filed from the outbox first: list it once, with its evidence.
    refiled_ids = {event.event_id for event, _ in sink.refiled}
    this_run = [(e, f) for e, f in run.stats.filed if e.event_id not in refiled_ids]
    return _Run(run, [*sink.refiled, *this_run])


def _report(
    camera: CameraConfig,
    run: _Run,
    tickets: list[FiledTicketSummary],
    filed_at: str,
    store: SpoolingStore,
    outbox: Outbox,
) -> WatchReport:
    return WatchReport(
        camera_id=camera.camera_id,
        frames=run.source.stats.frames_in,
        duration_s=run.source.stats.last_ts_s,
        tickets=tickets,
        filed_at=filed_at,
        store=describe_store(store, ""),
        kept=[str(path) for path in outbox.kept()],
        spooled=store.pending_keys(),
        spool_dir=str(store.spool_dir),
    )


def _remote_summary(
    event: Event, filed: FiledTicket, store: ObjectStore, waiting: set[str]
) -> FiledTicketSummary:
    """One ticket filed at the service; one filed before keeps the evidence
    it was filed with, which only the service knows. Evidence spooled at the
    filing and uploaded since (not ``waiting`` in the spool) shows stored:
    the service was told."""
    state = event.evidence_state
    if state is EvidenceState.PENDING and not waiting & {i.key for i in event.evidence}:
        state = EvidenceState.STORED
    if filed.evidence_state == EvidenceState.MISSING:
        state = EvidenceState.MISSING  # the service could not find it
    # A ticket filed before, or the open ticket at the same place this event
    # was attached to, keeps its own evidence, which only the service knows.
    own = not (filed.state or filed.attached)
    return FiledTicketSummary(
        ticket_id=filed.ticket_id,
        category=event.category.value,
        started_ts_s=event.started_ts_s,
        ended_ts_s=event.ended_ts_s,
        evidence_state=state.value if own else None,
        evidence=[
            (item.kind.value, describe_store(store, item.key))
            for item in event.evidence
            if not filed.attached
        ],
        filed_before_as=filed.state,
        attached=filed.attached,
    )


def _summary(
    event: Event,
    filed: FiledTicket,
    store: ObjectStore,
    session_factory: sessionmaker[Session],
) -> FiledTicketSummary:
    """One filed ticket for the report, as the database has it now: a ticket
    filed by an earlier run (or one the event was attached to) shows the
    evidence it was filed with, and spooled evidence that reached the store
    since the filing shows stored."""
    with session_factory() as session:
        rows = session.scalars(
            select(Evidence)
            .where(Evidence.ticket_id == int(filed.ticket_id), Evidence.round == 0)
            .order_by(Evidence.id)
        ).all()
        evidence = [(row.kind, row.key) for row in rows]
        evidence_state = worst_evidence_state(row.state for row in rows).value
    return FiledTicketSummary(
        ticket_id=filed.ticket_id,
        category=event.category.value,
        started_ts_s=event.started_ts_s,
        ended_ts_s=event.ended_ts_s,
        evidence_state=evidence_state,
        evidence=[(kind, describe_store(store, key)) for kind, key in evidence],
        filed_before_as=filed.state,
        attached=filed.attached,
    )


def _redact(url: str) -> str:
    """Never print a database password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
