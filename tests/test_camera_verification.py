"""Camera verification on the shared street footage, end to end: tickets
filed by the camera are confirmed, dispatched and resolved while the camera
keeps watching; the camera re-checks each place and the service verifies or
reopens the ticket with the fresh evidence."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from api import tickets, workflow
from api.db import make_engine, make_session_factory, upgrade
from api.dispatch import DispatchConfig
from api.sinks import DatabaseSink
from api.tables import Evidence, Ticket
from models.catalog import resolve_model
from vision.config import CameraConfig, load_camera_file
from vision.detect.detector import Detector
from vision.evidence.store import LocalDirStore
from vision.evidence.writer import EvidenceWriter
from vision.ingest.sources import VideoSource
from vision.pipeline import build_analyzers
from vision.types import Frame
from vision.verifier import CameraVerifier
from vision.worker import CameraWorker

REPO_ROOT = Path(__file__).resolve().parents[1]
RESOLVED_AT_FRAME = 180  # the group by the lamp post left at frame 160
CLEAR_S = 15.0


@pytest.fixture(scope="module")
def outcome(tmp_path_factory, videos_dir: Path, models_mirror: Path) -> dict:
    tmp = tmp_path_factory.mktemp("verification")
    database_url = f"sqlite:///{tmp / 'citywatch.db'}"
    upgrade(database_url)
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    sink = DatabaseSink(sessions)

    camera: CameraConfig = load_camera_file(
        REPO_ROOT / "examples/plaza-no-parking.yaml"
    )
    spec = resolve_model(
        "yolo11n-coco", model_dir=tmp / "models", mirror_dir=models_mirror
    )
    detector = Detector.from_file(spec.path, class_names=spec.class_names)
    worker = CameraWorker(
        camera,
        build_analyzers(camera, lambda _name: detector),
        EvidenceWriter(LocalDirStore(tmp / "evidence")),
        sink,
        session_key="verification-test",
    )
    worker.frame_hooks.append(CameraVerifier(worker, sink))
    worker.frame_hooks.append(_work_the_tickets_at(RESOLVED_AT_FRAME, sessions))

    video = videos_dir / "street_plaza_vtest_part1_f000-399.avi"
    with VideoSource(str(video)) as source:
        worker.run_chunks(source.read(started_at=datetime(2026, 5, 1, tzinfo=UTC)))

    with sessions() as session:
        rows = session.scalars(select(Ticket)).all()
        result = {
            ticket.id: {
                "category": ticket.category,
                "state": ticket.state,
                "history": [t.to_state for t in ticket.transitions],
                "verification_evidence": session.scalars(
                    select(Evidence.kind).where(
                        Evidence.ticket_id == ticket.id, Evidence.role == "verification"
                    )
                ).all(),
            }
            for ticket in rows
        }
    engine.dispose()
    return result


def _work_the_tickets_at(frame_index: int, sessions):
    """A reviewer confirms, a dispatcher dispatches and a grid worker resolves
    every ticket filed so far, while the camera keeps watching."""

    def hook(frame: Frame) -> None:
        if frame.index != frame_index:
            return
        with sessions() as session:
            for ticket_id in session.scalars(select(Ticket.id)).all():
                tickets.review(
                    session, ticket_id, tickets.ReviewDecision.CONFIRM, actor="rita"
                )
                workflow.dispatch(
                    session, ticket_id, DispatchConfig(), actor="dan", assignee="gus"
                )
                workflow.resolve(session, ticket_id, actor="gus", clear_s=CLEAR_S)

    return hook


@pytest.mark.slow
def test_loitering_that_ended_is_verified_by_the_camera(outcome: dict) -> None:
    loitering = [t for t in outcome.values() if t["category"] == "loitering"]

    assert len(loitering) == 2  # two people stood there; a third only passed
    for ticket in loitering:
        assert ticket["state"] == "verified"
        assert ticket["history"][-2:] == ["resolved", "verified"]
        assert "clip" in ticket["verification_evidence"]


@pytest.mark.slow
def test_a_parked_vehicle_still_there_reopens_with_new_evidence(outcome: dict) -> None:
    parked = [t for t in outcome.values() if t["category"] == "illegal_parking"]

    assert len(parked) == 2
    for ticket in parked:
        assert ticket["state"] == "reopened"
        assert ticket["history"][-2:] == ["resolved", "reopened"]
        assert {"clip", "snapshot"} <= set(ticket["verification_evidence"])
