"""Evidence spooled while the store was down reaches it later: the ticket it
was filed with stops showing it pending, in-process and over HTTP."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.sinks import DatabaseSink, HttpSink
from tests.api.builders import make_event
from vision.errors import ClipUploadError
from vision.evidence.local import LocalDirStore
from vision.evidence.spool import SpoolingStore
from vision.pipeline import evidence_listener
from vision.sink import VerificationOutcome, VerificationResult
from vision.types import Event, EvidenceItem, EvidenceKind, EvidenceState

Headers = dict[str, str]
CAMERA = "plaza-north"
NAMES = {EvidenceKind.CLIP: "clip.mp4", EvidenceKind.SNAPSHOT: "snapshot.jpg"}
TYPES = {EvidenceKind.CLIP: "video/mp4", EvidenceKind.SNAPSHOT: "image/jpeg"}


def key_of(event: Event, kind: EvidenceKind) -> str:
    return f"{CAMERA}/{event.event_id}/{NAMES[kind]}"


def event_with(**states: str) -> Event:
    """An event whose evidence items (clip=..., snapshot=...) are in these
    states, as a camera files it while the store is down."""
    event = make_event(camera_id=CAMERA)
    event.evidence = [
        EvidenceItem(
            kind=EvidenceKind(kind),
            key=key_of(event, EvidenceKind(kind)),
            content_type=TYPES[EvidenceKind(kind)],
            state=EvidenceState(state),
            reason=None if state == "stored" else "object store unavailable",
        )
        for kind, state in states.items()
    ]
    return event


def ticket_json(client: TestClient, ticket_id: int | str) -> dict[str, Any]:
    response = client.get(f"/api/tickets/{ticket_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def evidence_states(ticket: dict[str, Any]) -> dict[tuple[str, int], str]:
    return {(e["kind"], e["round"]): e["state"] for e in ticket["evidence"]}


@pytest.mark.parametrize(
    ("filed", "arrives", "expected"),
    [
        ({"clip": "pending"}, "clip", "stored"),
        ({"clip": "pending", "snapshot": "pending"}, "clip", "pending"),
        ({"clip": "pending", "snapshot": "missing"}, "clip", "missing"),
        ({"clip": "stored", "snapshot": "pending"}, "snapshot", "stored"),
    ],
    ids=["only-item", "another-pending", "another-missing", "last-pending"],
)
def test_database_sink_marks_evidence_stored(
    session_factory: sessionmaker[Session],
    client: TestClient,
    filed: dict[str, str],
    arrives: str,
    expected: str,
) -> None:
    sink = DatabaseSink(session_factory)
    event = event_with(**filed)
    ticket_id = sink.file(event).ticket_id
    assert ticket_json(client, ticket_id)["evidence_state"] == event.evidence_state

    sink.evidence_stored(event.event_id, key_of(event, EvidenceKind(arrives)))

    ticket = ticket_json(client, ticket_id)
    assert ticket["evidence_state"] == expected
    (item,) = [e for e in ticket["evidence"] if e["kind"] == arrives]
    assert (item["state"], item["reason"]) == ("stored", None)
    assert item["url"] == f"/api/tickets/{ticket_id}/evidence/{arrives}"


def test_marking_twice_changes_nothing(
    session_factory: sessionmaker[Session], client: TestClient
) -> None:
    sink = DatabaseSink(session_factory)
    event = event_with(clip="pending")
    ticket_id = sink.file(event).ticket_id

    sink.evidence_stored(event.event_id, key_of(event, EvidenceKind.CLIP))
    once = ticket_json(client, ticket_id)
    sink.evidence_stored(event.event_id, key_of(event, EvidenceKind.CLIP))

    assert ticket_json(client, ticket_id) == once
    assert once["evidence_state"] == "stored"


class _SwitchableStore(LocalDirStore):
    """A local store that refuses writes while ``down``, like an unreachable
    object store."""

    down = True

    def put_file(self, key: str, path: Path, content_type: str) -> Any:
        if self.down:
            raise ClipUploadError(f"object store down, cannot write {key!r}")
        return super().put_file(key, path, content_type)


def test_spooled_evidence_reaching_the_store_updates_the_ticket(
    session_factory: sessionmaker[Session],
    client: TestClient,
    tmp_path: Path,
    throw_clip: Path,
    street_photo: Path,
) -> None:
    sink = DatabaseSink(session_factory)
    inner = _SwitchableStore(tmp_path / "store")
    spool = SpoolingStore(
        inner,
        tmp_path / "spool",
        10**8,
        on_stored=evidence_listener(sink),
        probe_after_s=0.0,
    )
    event = make_event(camera_id=CAMERA)
    files = {EvidenceKind.CLIP: throw_clip, EvidenceKind.SNAPSHOT: street_photo}
    event.evidence = [
        spool.put_file(key_of(event, kind), path, TYPES[kind]).to_evidence_item(kind)
        for kind, path in files.items()
    ]
    ticket_id = sink.file(event).ticket_id
    assert ticket_json(client, ticket_id)["evidence_state"] == "pending"

    inner.down = False
    assert spool.drain_once() == 2

    ticket = ticket_json(client, ticket_id)
    assert ticket["evidence_state"] == "stored"
    assert evidence_states(ticket) == {("clip", 0): "stored", ("snapshot", 0): "stored"}
    assert inner.exists(key_of(event, EvidenceKind.CLIP))


def test_full_spool_still_files_the_ticket_with_evidence_missing(
    session_factory: sessionmaker[Session],
    client: TestClient,
    tmp_path: Path,
    throw_clip: Path,
    street_photo: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The store is down and the spool's cap is smaller than one clip, so
    # nothing can be kept: tickets must still be filed, saying so.
    sink = DatabaseSink(session_factory)
    spool = SpoolingStore(
        _SwitchableStore(tmp_path / "store"), tmp_path / "spool", 1000
    )
    files = {EvidenceKind.CLIP: throw_clip, EvidenceKind.SNAPSHOT: street_photo}

    ticket_ids = []
    with caplog.at_level(logging.ERROR, logger="vision.evidence.spool"):
        for _ in range(2):
            event = make_event(camera_id=CAMERA)
            event.evidence = [
                spool.put_file(key_of(event, kind), path, TYPES[kind]).to_evidence_item(
                    kind
                )
                for kind, path in files.items()
            ]
            ticket_ids.append(sink.file(event).ticket_id)

    assert len(set(ticket_ids)) == 2
    for ticket_id in ticket_ids:
        ticket = ticket_json(client, ticket_id)
        assert ticket["evidence_state"] == "missing"
        assert all(
            "local spool full" in (e["reason"] or "") for e in ticket["evidence"]
        )
    alarms = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(alarms) == 4 and all("storage alarm" in a for a in alarms)
    assert spool.missing_count == 4


def test_verification_evidence_is_marked_without_touching_the_original(
    session_factory: sessionmaker[Session], client: TestClient
) -> None:
    sink = DatabaseSink(session_factory)
    ticket_id = sink.file(event_with(clip="missing")).ticket_id
    for action, body in [
        ("review", {"decision": "confirm"}),
        ("dispatch", {"assignee": "team"}),
        ("resolve", {}),
    ]:
        assert client.post(f"/api/tickets/{ticket_id}/{action}", json=body).is_success
    seen = event_with(clip="pending")
    sink.report_verification(
        VerificationResult(
            ticket_id=ticket_id, outcome=VerificationOutcome.GONE, evidence_event=seen
        )
    )

    sink.evidence_stored(seen.event_id, key_of(seen, EvidenceKind.CLIP))

    ticket = ticket_json(client, ticket_id)
    assert evidence_states(ticket) == {("clip", 0): "missing", ("clip", 1): "stored"}
    assert ticket["evidence_state"] == "missing"  # the original round's


def test_unknown_evidence_is_logged_and_harmless(
    session_factory: sessionmaker[Session],
    client: TestClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = DatabaseSink(session_factory)
    event = event_with(clip="pending")
    ticket_id = sink.file(event).ticket_id
    before = ticket_json(client, ticket_id)

    with caplog.at_level(logging.WARNING, logger="api.sinks"):
        sink.evidence_stored(event.event_id, f"{CAMERA}/{event.event_id}/other.mp4")
        sink.evidence_stored("no-such-event", f"{CAMERA}/no-such-event/clip.mp4")

    assert ticket_json(client, ticket_id) == before
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "no-such-event" in warnings[1].getMessage()


def test_evidence_of_an_attached_event_is_quietly_accepted(
    session_factory: sessionmaker[Session],
    client: TestClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = DatabaseSink(session_factory)
    first = event_with(clip="stored")
    ticket_id = sink.file(first).ticket_id
    again = event_with(clip="pending")
    again.bbox_xyxy, again.track_id = first.bbox_xyxy, first.track_id
    assert sink.file(again).ticket_id == ticket_id  # attached: same place
    before = ticket_json(client, ticket_id)

    with caplog.at_level(logging.WARNING):
        sink.evidence_stored(again.event_id, key_of(again, EvidenceKind.CLIP))

    assert ticket_json(client, ticket_id) == before
    assert not caplog.records


# --- over HTTP -----------------------------------------------------------------


def _stored_url(event: Event) -> str:
    return f"/api/events/{event.event_id}/evidence-stored"


def test_route_marks_the_cameras_evidence_stored(
    client: TestClient,
    anonymous: TestClient,
    camera_headers: Callable[[str], Headers],
) -> None:
    event = event_with(clip="pending")
    ticket_id = client.post("/api/events", json=event.model_dump(mode="json")).json()[
        "ticket_id"
    ]
    body = {"key": key_of(event, EvidenceKind.CLIP)}

    own = anonymous.post(_stored_url(event), json=body, headers=camera_headers(CAMERA))
    again = anonymous.post(
        _stored_url(event), json=body, headers=camera_headers(CAMERA)
    )

    assert (own.status_code, again.status_code) == (204, 204)
    assert own.content == b""
    assert ticket_json(client, ticket_id)["evidence_state"] == "stored"


def test_route_refuses_other_cameras_and_anonymous_callers(
    client: TestClient,
    anonymous: TestClient,
    camera_headers: Callable[[str], Headers],
) -> None:
    event = event_with(clip="pending")
    ticket_id = client.post("/api/events", json=event.model_dump(mode="json")).json()[
        "ticket_id"
    ]
    url, body = _stored_url(event), {"key": key_of(event, EvidenceKind.CLIP)}

    other = anonymous.post(url, json=body, headers=camera_headers("market-east"))
    nobody = anonymous.post(url, json=body)
    user = client.post(url, json=body)
    unknown = anonymous.post(
        url, json={"key": "plaza-north/x/clip.mp4"}, headers=camera_headers(CAMERA)
    )

    assert other.status_code == 404
    assert other.json()["detail"] == "evidence_not_found"
    assert nobody.status_code == 401
    assert user.status_code == 403
    assert unknown.status_code == 404
    assert ticket_json(client, ticket_id)["evidence_state"] == "pending"


def test_http_sink_marks_evidence_stored_through_the_api(
    client: TestClient,
    anonymous: TestClient,
    camera_headers: Callable[[str], Headers],
) -> None:
    event = event_with(clip="pending", snapshot="pending")
    key = camera_headers(CAMERA)["X-API-Key"]
    sink = HttpSink(str(anonymous.base_url), api_key=key, client=anonymous)
    ticket_id = sink.file(event).ticket_id

    listen = evidence_listener(sink)
    assert listen is not None
    for kind in (EvidenceKind.CLIP, EvidenceKind.SNAPSHOT):
        listen(key_of(event, kind))
    sink.evidence_stored("no-such-event", "plaza-north/no-such-event/clip.mp4")

    assert ticket_json(client, ticket_id)["evidence_state"] == "stored"


def _sink_answering(*statuses: int) -> tuple[HttpSink, list[httpx.Request]]:
    requests: list[httpx.Request] = []
    replies = list(statuses)

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        status = replies.pop(0) if len(replies) > 1 else replies[0]
        body = None if status == 204 else {"detail": "evidence_not_found"}
        return httpx.Response(status, json=body)

    client = httpx.Client(transport=httpx.MockTransport(handle))
    sink = HttpSink("http://api.test", retries=3, backoff_s=0.0, client=client)
    return sink, requests


def test_http_sink_retries_then_reports() -> None:
    sink, requests = _sink_answering(503, 502, 204)

    sink.evidence_stored("ev1", "plaza-north/ev1/clip.mp4")

    assert len(requests) == 3
    assert requests[0].url.path == "/api/events/ev1/evidence-stored"
    assert requests[0].content == b'{"key": "plaza-north/ev1/clip.mp4"}'


@pytest.mark.parametrize(
    ("statuses", "calls"), [((404,), 1), ((503,), 4)], ids=["refused", "down"]
)
def test_http_sink_logs_failures_without_raising(
    caplog: pytest.LogCaptureFixture, statuses: tuple[int, ...], calls: int
) -> None:
    sink, requests = _sink_answering(*statuses)

    with caplog.at_level(logging.WARNING, logger="api.sinks"):
        sink.evidence_stored("ev1", "plaza-north/ev1/clip.mp4")

    assert len(requests) == calls
    assert f"HTTP {statuses[0]}" in caplog.records[-1].getMessage()
