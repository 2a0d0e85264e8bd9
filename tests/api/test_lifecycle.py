"""A ticket's whole life over HTTP, each step by the role that owns it:
filed by the camera, confirmed by a reviewer, dispatched by the rules,
resolved by a grid worker, verified (or reopened) by the camera, closed by a
dispatcher; the audit trail read back at the end."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.dispatch import DispatchConfig, DispatchRule
from api.notify import MemoryNotifier, NoticeKind
from api.sinks import DatabaseSink
from api.tables import utc_now
from tests.api.builders import make_event, store_evidence
from vision.evidence.local import LocalDirStore
from vision.sink import VerificationChannel, VerificationOutcome, VerificationResult

GRID = "old-town/riverside/grid-07"
RULES = DispatchConfig(
    rules=[
        DispatchRule(category="*", area="old-town", assignee="old-town-office"),
        DispatchRule(
            category="illegal_parking", area="old-town/riverside", assignee="traffic"
        ),
    ],
    deadlines_h={"illegal_parking": 2, "*": 48},
    clear_s={"illegal_parking": 90},
)


@pytest.fixture
def people(
    app: FastAPI,
    user_headers: Callable[..., dict[str, str]],
    camera_headers: Callable[[str], dict[str, str]],
) -> dict[str, dict[str, str]]:
    app.state.dispatch_config = RULES
    return {
        "camera": camera_headers("plaza-north"),
        "reviewer": user_headers("rita", [("reviewer", "old-town")]),
        "dispatcher": user_headers("dan", [("dispatcher", "old-town/riverside")]),
        "worker": user_headers("wu", [("grid_worker", GRID)]),
        "reader": user_headers("rory", [("read_only", GRID)]),
        "admin": user_headers("ada", [("area_admin", "old-town/riverside")]),
        "engineer": user_headers("eng", [("engineer", "old-town")]),
    }


def _signed_in_worker(client: TestClient, admin: dict[str, str]) -> dict[str, str]:
    """The area admin adds a grid worker, who signs in with a password."""
    created = client.post(
        "/api/users",
        json={
            "username": "gwen",
            "password": "a long passphrase",
            "grants": [{"role": "grid_worker", "area_path": GRID}],
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    token = client.post(
        "/api/auth/token",
        data={"username": "gwen", "password": "a long passphrase"},
    )
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def _file(
    client: TestClient,
    headers: dict[str, str],
    store: LocalDirStore,
    clip: Path,
    photo: Path,
) -> int:
    event = make_event(camera_id="plaza-north", area_path=GRID)
    event.evidence = store_evidence(store, event.event_id, clip, photo)
    response = client.post(
        "/api/events", json=event.model_dump(mode="json"), headers=headers
    )
    assert response.status_code == 201, response.text
    return int(response.json()["ticket_id"])


def _act(
    client: TestClient, headers: dict[str, str], ticket_id: int, action: str, **body
) -> dict:
    response = client.post(
        f"/api/tickets/{ticket_id}/{action}", json=body, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def _verify(
    client: TestClient,
    headers: dict[str, str],
    store: LocalDirStore,
    photo: Path,
    outcome: str,
) -> dict:
    (request,) = client.get(
        "/api/cameras/plaza-north/verifications", headers=headers
    ).json()
    assert request["clear_s"] == 90.0
    assert request["event"]["camera_id"] == "plaza-north"
    recheck = make_event(camera_id="plaza-north", area_path=GRID)
    recheck.evidence = store_evidence(store, recheck.event_id, photo, photo)[1:]
    response = client.post(
        f"/api/verifications/{request['ticket_id']}/result",
        json={"outcome": outcome, "evidence_event": recheck.model_dump(mode="json")},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_a_ticket_goes_from_camera_to_closed(
    anonymous: TestClient,
    people: dict[str, dict[str, str]],
    store: LocalDirStore,
    throw_clip: Path,
    street_photo: Path,
    notifier: MemoryNotifier,
) -> None:
    client = anonymous
    ticket_id = _file(client, people["camera"], store, throw_clip, street_photo)

    # A reviewer confirms; the rules send it to traffic with a 2 h deadline.
    confirmed = _act(
        client, people["reviewer"], ticket_id, "review", decision="confirm"
    )
    assert confirmed["state"] == "dispatched"
    assert confirmed["assignee"] == "traffic"
    due_at = datetime.fromisoformat(confirmed["due_at"])
    assert abs(due_at - (utc_now() + timedelta(hours=2))) < timedelta(minutes=1)
    assert confirmed["overdue"] is False

    # The dispatcher moves it to the grid team; the grid worker fixes it.
    reassigned = _act(
        client, people["dispatcher"], ticket_id, "assign", assignee="grid-07-team"
    )
    assert reassigned["assignee"] == "grid-07-team"
    resolved = _act(client, people["worker"], ticket_id, "resolve", note="towed")
    assert resolved["state"] == "resolved"
    assert resolved["verifications"][0]["state"] == "open"

    # The camera looks again: the car is gone.
    verified = _verify(client, people["camera"], store, street_photo, "gone")
    assert verified["state"] == "verified"
    roles = [(e["role"], e["round"], e["kind"]) for e in verified["evidence"]]
    assert ("original", 0, "clip") in roles
    assert ("verification", 1, "snapshot") in roles
    closed = _act(client, people["dispatcher"], ticket_id, "close")
    assert closed["state"] == "closed"

    # Everybody in the grid can read the whole story back.
    history = client.get(f"/api/tickets/{ticket_id}", headers=people["reader"]).json()
    trail = [
        (t["from_state"], t["to_state"], t["actor"]) for t in history["transitions"]
    ]
    assert trail == [
        (None, "pending_review", "camera:plaza-north"),
        ("pending_review", "confirmed", "rita"),
        ("confirmed", "dispatched", "system:dispatch-rules"),
        ("dispatched", "dispatched", "dan"),
        ("dispatched", "resolved", "wu"),
        ("resolved", "verified", "camera:plaza-north"),
        ("verified", "closed", "dan"),
    ]
    assert all(t["at"].endswith(("Z", "+00:00")) for t in history["transitions"])
    assert history["transitions"][3]["reason"] == "reassigned"
    assert history["transitions"][3]["note"] == "from traffic to grid-07-team"
    kinds = [n.notice for n in notifier.notices if n.ticket_id == ticket_id]
    assert kinds == [NoticeKind.FILED, NoticeKind.DISPATCHED, NoticeKind.DISPATCHED]
    assert notifier.notices[0].area_path == GRID


def test_a_fix_that_did_not_hold_reopens_with_new_evidence(
    anonymous: TestClient,
    people: dict[str, dict[str, str]],
    store: LocalDirStore,
    throw_clip: Path,
    street_photo: Path,
    notifier: MemoryNotifier,
) -> None:
    client = anonymous
    worker = _signed_in_worker(client, people["admin"])
    ticket_id = _file(client, people["camera"], store, throw_clip, street_photo)
    _act(client, people["reviewer"], ticket_id, "review", decision="confirm")
    _act(client, worker, ticket_id, "resolve")

    reopened = _verify(client, people["camera"], store, street_photo, "still_there")

    assert reopened["state"] == "reopened"
    assert reopened["transitions"][-1]["reason"] == "verification_still_there"
    assert reopened["verifications"][0]["outcome"] == "still_there"
    by_role = {(e["role"], e["kind"]): e for e in reopened["evidence"]}
    assert by_role[("original", "clip")]["url"].endswith("/evidence/clip")
    new_snapshot = by_role[("verification", "snapshot")]["url"]
    assert new_snapshot.endswith("/evidence/snapshot?round=1")
    served = client.get(new_snapshot, headers=people["reader"])
    assert served.status_code == 200
    assert served.content == street_photo.read_bytes()
    assert notifier.notices[-1].notice is NoticeKind.REOPENED
    assert (
        client.get(
            "/api/cameras/plaza-north/verifications", headers=people["camera"]
        ).json()
        == []
    )

    # Sent out again, fixed again, and this time it holds.
    _act(client, people["dispatcher"], ticket_id, "dispatch")
    _act(client, worker, ticket_id, "resolve")
    verified = _verify(client, people["camera"], store, street_photo, "gone")
    assert verified["state"] == "verified"
    assert [v["round"] for v in verified["verifications"]] == [1, 2]
    _act(client, people["dispatcher"], ticket_id, "close")

    # An engineer of the street office reads the whole story back.
    history = client.get(f"/api/tickets/{ticket_id}", headers=people["engineer"]).json()
    trail = [
        (t["from_state"], t["to_state"], t["actor"], t["reason"])
        for t in history["transitions"]
    ]
    assert trail == [
        (None, "pending_review", "camera:plaza-north", None),
        ("pending_review", "confirmed", "rita", None),
        ("confirmed", "dispatched", "system:dispatch-rules", None),
        ("dispatched", "resolved", "gwen", None),
        ("resolved", "reopened", "camera:plaza-north", "verification_still_there"),
        ("reopened", "dispatched", "dan", None),
        ("dispatched", "resolved", "gwen", None),
        ("resolved", "verified", "camera:plaza-north", "verification_gone"),
        ("verified", "closed", "dan", None),
    ]


@pytest.mark.parametrize(
    ("who", "action", "body"),
    [
        ("reader", "review", {"decision": "confirm"}),
        ("worker", "review", {"decision": "confirm"}),
        ("reviewer", "resolve", {}),
        ("worker", "dispatch", {"assignee": "x"}),
        ("reviewer", "close", {}),
    ],
)
def test_a_role_does_only_its_own_steps(
    anonymous: TestClient,
    people: dict[str, dict[str, str]],
    store: LocalDirStore,
    throw_clip: Path,
    street_photo: Path,
    who: str,
    action: str,
    body: dict,
) -> None:
    ticket_id = _file(anonymous, people["camera"], store, throw_clip, street_photo)

    response = anonymous.post(
        f"/api/tickets/{ticket_id}/{action}", json=body, headers=people[who]
    )

    assert response.status_code == 403
    assert response.json()["detail"] == "forbidden"


def test_overdue_tickets_are_flagged_listed_and_notified_once(
    client: TestClient,
    app: FastAPI,
    session_factory: sessionmaker[Session],
    notifier: MemoryNotifier,
) -> None:
    from api.tables import Ticket
    from api.workflow import notify_overdue

    app.state.dispatch_config = RULES
    ids = []
    for _ in range(2):
        event = make_event(area_path=GRID)
        filed = client.post("/api/events", json=event.model_dump(mode="json")).json()
        ids.append(filed["ticket_id"])
        client.post(f"/api/tickets/{ids[-1]}/review", json={"decision": "confirm"})
    with session_factory() as session:
        late = session.get(Ticket, ids[0])
        assert late is not None
        late.due_at = utc_now() - timedelta(minutes=5)
        session.commit()

    overdue = client.get("/api/tickets", params={"overdue": True}).json()
    on_time = client.get("/api/tickets", params={"overdue": False}).json()
    with session_factory() as session:
        first = notify_overdue(session, notifier)
        second = notify_overdue(session, notifier)

    assert [t["id"] for t in overdue["items"]] == [ids[0]]
    assert overdue["items"][0]["overdue"] is True
    assert [t["id"] for t in on_time["items"]] == [ids[1]]
    assert (list(first), list(second)) == ([ids[0]], [])
    assert notifier.notices[-1].notice is NoticeKind.OVERDUE


def test_dispatch_without_a_rule_needs_an_assignee(client: TestClient) -> None:
    event = make_event(area_path="new-town/grid-01")
    ticket_id = client.post("/api/events", json=event.model_dump(mode="json")).json()[
        "ticket_id"
    ]
    confirmed = client.post(
        f"/api/tickets/{ticket_id}/review", json={"decision": "confirm"}
    ).json()
    assert confirmed["state"] == "confirmed"  # no rule: waits for a dispatcher

    refused = client.post(f"/api/tickets/{ticket_id}/dispatch", json={})
    sent = client.post(
        f"/api/tickets/{ticket_id}/dispatch", json={"assignee": "new-town-office"}
    )

    assert refused.status_code == 422
    assert refused.json()["detail"] == "no_assignee"
    assert sent.json()["assignee"] == "new-town-office"
    again = client.post(f"/api/tickets/{ticket_id}/dispatch", json={"assignee": "x"})
    assert again.status_code == 409


def test_database_sink_is_the_cameras_verification_channel(
    session_factory: sessionmaker[Session], client: TestClient
) -> None:
    sink = DatabaseSink(session_factory)
    channel: VerificationChannel = sink
    filed = sink.file(make_event(area_path=GRID))
    ticket_id = filed.ticket_id
    client.post(f"/api/tickets/{ticket_id}/review", json={"decision": "confirm"})
    client.post(f"/api/tickets/{ticket_id}/dispatch", json={"assignee": "team"})
    assert channel.pending_verifications("plaza-north") == []
    client.post(f"/api/tickets/{ticket_id}/resolve", json={})

    (request,) = channel.pending_verifications("plaza-north")
    assert request.ticket_id == ticket_id
    assert request.clear_s == 60.0  # the settings' default
    assert channel.pending_verifications("market-east") == []
    channel.report_verification(
        VerificationResult(
            ticket_id=ticket_id,
            outcome=VerificationOutcome.GONE,
            evidence_event=make_event(area_path=GRID),
        )
    )

    assert channel.pending_verifications("plaza-north") == []
    state = client.get(f"/api/tickets/{ticket_id}").json()["state"]
    assert state == "verified"
