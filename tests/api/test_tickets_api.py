"""The ticket API over real HTTP (TestClient), on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.db import make_engine, make_session_factory
from api.main import create_app
from api.settings import Settings
from api.tables import Ticket
from tests.api.builders import STARTED_AT, make_event, store_evidence
from vision.evidence.local import LocalDirStore
from vision.types import Category, EvidenceItem, EvidenceKind, EvidenceState


def post_event(client: TestClient, **overrides: object) -> int:
    event = make_event(**overrides)
    response = client.post("/api/events", json=event.model_dump(mode="json"))
    assert response.status_code == 201, response.text
    return int(response.json()["ticket_id"])


def review(client: TestClient, ticket_id: int, **body: object) -> object:
    return client.post(f"/api/tickets/{ticket_id}/review", json=body)


# --- listing ------------------------------------------------------------------


def test_list_filters_and_paginates_newest_first(client: TestClient) -> None:
    ids = [
        post_event(client, camera_id="plaza-north", category=Category.GARBAGE),
        post_event(client, camera_id="plaza-north", category=Category.ILLEGAL_PARKING),
        post_event(client, camera_id="market-east", category=Category.GARBAGE),
        post_event(client, camera_id="market-east", category=Category.THROW),
        post_event(client, camera_id="plaza-north", category=Category.GARBAGE),
    ]
    assert review(client, ids[0], decision="confirm").status_code == 200

    everything = client.get("/api/tickets").json()
    assert everything["total"] == 5
    assert [item["id"] for item in everything["items"]] == ids[::-1]

    pages = [
        client.get("/api/tickets", params={"limit": 2, "offset": offset}).json()
        for offset in (0, 2, 4)
    ]
    assert [len(page["items"]) for page in pages] == [2, 2, 1]
    assert [item["id"] for page in pages for item in page["items"]] == ids[::-1]
    assert pages[2] | {"items": []} == {
        "items": [],
        "total": 5,
        "limit": 2,
        "offset": 4,
    }

    def listed(**params: object) -> list[int]:
        response = client.get("/api/tickets", params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert listed(category="garbage") == [ids[4], ids[2], ids[0]]
    assert listed(camera_id="market-east") == [ids[3], ids[2]]
    assert listed(state="confirmed") == [ids[0]]
    assert listed(state="pending_review", category="garbage") == [ids[4], ids[2]]
    assert listed(camera_id="nowhere") == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 501},
        {"offset": -1},
        {"limit": "ten"},
        {"state": "lost"},
        {"category": "unicorns"},
    ],
)
def test_list_refuses_malformed_queries(client: TestClient, params: dict) -> None:
    assert client.get("/api/tickets", params=params).status_code == 422


# --- one ticket and its evidence ---------------------------------------------


@pytest.fixture
def ticket_with_evidence(
    client: TestClient, store: LocalDirStore, throw_clip: Path, street_photo: Path
) -> int:
    event = make_event(
        category=Category.THROW,
        rule="throw",
        event_id="evt-throw-1",
        bbox_xyxy=(652.0, 44.0, 724.0, 100.0),
    )
    event.evidence = store_evidence(store, event.event_id, throw_clip, street_photo)
    event.evidence.append(
        EvidenceItem(
            kind=EvidenceKind.TRAJECTORY,
            key=f"{event.event_id}/trajectory.jpg",
            content_type="image/jpeg",
            state=EvidenceState.PENDING,
            reason="store unreachable; spooled",
        )
    )
    response = client.post("/api/events", json=event.model_dump(mode="json"))
    assert response.status_code == 201
    return int(response.json()["ticket_id"])


def test_get_ticket_lists_evidence_links_and_history(
    client: TestClient, ticket_with_evidence: int, throw_clip: Path
) -> None:
    ticket_id = ticket_with_evidence

    body = client.get(f"/api/tickets/{ticket_id}").json()

    assert body["event_id"] == "evt-throw-1"
    assert body["state"] == "pending_review"
    assert body["evidence_state"] == "pending"
    assert body["bbox_xyxy"] == [652.0, 44.0, 724.0, 100.0]
    by_kind = {item["kind"]: item for item in body["evidence"]}
    assert set(by_kind) == {"clip", "snapshot", "metadata", "trajectory"}
    clip = by_kind["clip"]
    assert clip["url"] == f"/api/tickets/{ticket_id}/evidence/clip"
    assert clip["content_type"] == "video/mp4"
    assert clip["size_bytes"] == throw_clip.stat().st_size
    assert len(clip["sha256"]) == 64
    assert clip["state"] == "stored"
    assert by_kind["trajectory"]["url"] is None
    assert by_kind["trajectory"]["reason"] == "store unreachable; spooled"
    assert body["transitions"] == [
        {
            "from_state": None,
            "to_state": "pending_review",
            "actor": "camera:plaza-north",
            "at": body["created_at"],
            "reason": None,
            "note": None,
        }
    ]
    assert body["event"]["event_id"] == "evt-throw-1"
    assert body["event"]["started_at"].startswith("2026-05-04T08:30:00")


@pytest.mark.parametrize(
    ("kind", "content_type", "extension"),
    [
        ("clip", "video/mp4", "mp4"),
        ("snapshot", "image/jpeg", "jpg"),
        ("metadata", "application/json", "json"),
    ],
)
def test_evidence_is_served_with_its_content_type(
    client: TestClient,
    ticket_with_evidence: int,
    store: LocalDirStore,
    kind: str,
    content_type: str,
    extension: str,
) -> None:
    ticket_id = ticket_with_evidence
    key = f"evt-throw-1/{kind}.{extension}"
    expected = b"".join(store.open(key)[0])

    response = client.get(f"/api/tickets/{ticket_id}/evidence/{kind}")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(content_type)
    assert response.headers["content-length"] == str(len(expected))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-disposition"] == (
        f'inline; filename="ticket-{ticket_id}-{kind}.{extension}"'
    )
    assert response.content == expected


@pytest.mark.parametrize(
    ("range_header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, None),
        ("bytes=-500", -500, None),
        # Across the store's 256 KiB chunk boundary.
        ("bytes=262000-263000", 262000, 263000),
        ("bytes=300000-99999999", 300000, None),
    ],
)
def test_clip_byte_ranges_answer_206(
    client: TestClient,
    ticket_with_evidence: int,
    throw_clip: Path,
    range_header: str,
    first: int,
    last: int | None,
) -> None:
    data = throw_clip.read_bytes()
    size = len(data)
    start = first if first >= 0 else size + first
    end = size - 1 if last is None else last
    url = f"/api/tickets/{ticket_with_evidence}/evidence/clip"

    response = client.get(url, headers={"Range": range_header})

    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end}/{size}"
    assert response.headers["content-length"] == str(end - start + 1)
    assert response.headers["content-type"] == "video/mp4"
    assert response.content == data[start : end + 1]


def test_range_is_served_when_the_size_was_not_recorded(
    client: TestClient, store: LocalDirStore, throw_clip: Path
) -> None:
    clip = store.put_file("evt-nosize/clip.mp4", throw_clip, "video/mp4")
    item = EvidenceItem(kind=EvidenceKind.CLIP, key=clip.key, content_type="video/mp4")
    ticket_id = post_event(client, event_id="evt-nosize", evidence=[item])
    data = throw_clip.read_bytes()

    response = client.get(
        f"/api/tickets/{ticket_id}/evidence/clip",
        headers={"Range": "bytes=262100-262299"},
    )

    assert response.status_code == 206
    assert response.content == data[262100:262300]


@pytest.mark.parametrize("range_header", ["bytes=999999999-", "bytes=-0"])
def test_unsatisfiable_range_answers_416(
    client: TestClient, ticket_with_evidence: int, throw_clip: Path, range_header: str
) -> None:
    url = f"/api/tickets/{ticket_with_evidence}/evidence/clip"
    response = client.get(url, headers={"Range": range_header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{throw_clip.stat().st_size}"


@pytest.mark.parametrize(
    "range_header", ["bytes=0-10,20-30", "items=0-5", "bytes=9-2", "bytes=-", "junk"]
)
def test_ranges_not_understood_get_the_whole_object(
    client: TestClient, ticket_with_evidence: int, throw_clip: Path, range_header: str
) -> None:
    url = f"/api/tickets/{ticket_with_evidence}/evidence/clip"
    response = client.get(url, headers={"Range": range_header})
    assert response.status_code == 200
    assert response.content == throw_clip.read_bytes()


def test_absent_evidence_answers_404(
    client: TestClient, ticket_with_evidence: int, store: LocalDirStore
) -> None:
    ticket_id = ticket_with_evidence
    base = f"/api/tickets/{ticket_id}/evidence"
    bare_ticket = post_event(client)

    pending = client.get(f"{base}/trajectory")
    never_filed = client.get(f"/api/tickets/{bare_ticket}/evidence/clip")
    store.delete("evt-throw-1/snapshot.jpg")
    lost = client.get(f"{base}/snapshot")
    no_ticket = client.get("/api/tickets/424242/evidence/clip")

    for response in (pending, never_filed, lost):
        assert response.status_code == 404
        assert response.json()["detail"] == "evidence_not_found"
    assert no_ticket.status_code == 404
    assert no_ticket.json()["detail"] == "ticket_not_found"
    assert client.get(f"{base}/hologram").status_code == 422


# --- review ------------------------------------------------------------------


def test_confirm_and_reject_survive_a_restart(
    client: TestClient,
    settings: Settings,
    store: LocalDirStore,
    database_url: str,
    ops_headers: dict[str, str],
) -> None:
    confirmed_id = post_event(client)
    rejected_id = post_event(client)

    confirm = review(client, confirmed_id, decision="confirm")
    reject = review(
        client,
        rejected_id,
        decision="reject",
        reason="false_detection",
        note="a shadow, not a car",
    )

    assert confirm.status_code == 200, confirm.text
    assert confirm.json()["state"] == "confirmed"
    assert reject.status_code == 200, reject.text
    assert reject.json()["state"] == "rejected"

    # A new engine and a new app on the same database: a restarted service.
    engine = make_engine(database_url)
    try:
        app = create_app(
            settings, store=store, session_factory=make_session_factory(engine)
        )
        with TestClient(app, headers=ops_headers) as restarted:
            confirmed = restarted.get(f"/api/tickets/{confirmed_id}").json()
            rejected = restarted.get(f"/api/tickets/{rejected_id}").json()
    finally:
        engine.dispose()

    assert confirmed["state"] == "confirmed"
    assert rejected["state"] == "rejected"
    last_confirm = confirmed["transitions"][-1]
    last_reject = rejected["transitions"][-1]
    assert (last_confirm["from_state"], last_confirm["to_state"]) == (
        "pending_review",
        "confirmed",
    )
    assert (last_confirm["actor"], last_confirm["reason"]) == ("ops", None)
    assert last_reject["actor"] == "ops"
    assert last_reject["reason"] == "false_detection"
    assert last_reject["note"] == "a shadow, not a car"
    assert last_reject["at"].endswith(("Z", "+00:00"))
    assert rejected["updated_at"] == last_reject["at"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"decision": "confirm"}, {"decision": "confirm"}),
        ({"decision": "confirm"}, {"decision": "reject", "reason": "duplicate"}),
        ({"decision": "reject", "reason": "duplicate"}, {"decision": "confirm"}),
    ],
)
def test_a_second_review_is_an_illegal_transition(
    client: TestClient,
    caplog: pytest.LogCaptureFixture,
    first: dict,
    second: dict,
) -> None:
    ticket_id = post_event(client)
    assert review(client, ticket_id, **first).status_code == 200

    with caplog.at_level(logging.DEBUG):
        response = review(client, ticket_id, **second)

    assert response.status_code == 409
    assert response.json()["detail"] == "illegal_transition"
    assert "cannot become" in response.json()["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    history = client.get(f"/api/tickets/{ticket_id}").json()["transitions"]
    assert len(history) == 2


@pytest.mark.parametrize(
    "body",
    [
        {"decision": "reject"},
        {"decision": "reject", "reason": "ugly"},
        {"decision": "confirm", "reason": "duplicate"},
        {"decision": "approve"},
        {},
        # The actor is the signed-in user; a body cannot name another.
        {"decision": "confirm", "actor": "somebody-else"},
        {"decision": "confirm", "priority": "high"},
    ],
    ids=[
        "reject-without-reason",
        "unknown-reason",
        "confirm-with-reason",
        "unknown-decision",
        "no-decision",
        "actor-in-body",
        "unknown-field",
    ],
)
def test_malformed_reviews_answer_422(client: TestClient, body: dict) -> None:
    ticket_id = post_event(client)

    response = review(client, ticket_id, **body)

    assert response.status_code == 422
    assert client.get(f"/api/tickets/{ticket_id}").json()["state"] == "pending_review"


def test_a_review_body_that_is_not_json_is_named_in_one_line(
    client: TestClient,
) -> None:
    ticket_id = post_event(client)

    response = client.post(
        f"/api/tickets/{ticket_id}/review",
        content=b'{"decision": "confirm",',
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert "JSON decode error" in response.json()["message"]
    assert client.get(f"/api/tickets/{ticket_id}").json()["state"] == "pending_review"


def test_reviewing_an_unknown_ticket_answers_404(client: TestClient) -> None:
    response = review(client, 999, decision="confirm")
    assert response.status_code == 404
    assert response.json()["detail"] == "ticket_not_found"


@pytest.mark.parametrize(
    "path", ["/api/tickets/abc", "/api/tickets/0", "/api/tickets/99999999999999999"]
)
def test_malformed_ticket_ids_answer_422(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 422


# --- filing over HTTP ----------------------------------------------------------


def test_reposting_the_same_event_id_files_no_second_ticket(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    event = make_event(event_id="evt-parked-car")

    first = client.post("/api/events", json=event.model_dump(mode="json"))
    again = client.post("/api/events", json=event.model_dump(mode="json"))
    # A retry may carry a later detection time; the key is the event id.
    later = event.model_copy(update={"detected_at": STARTED_AT + timedelta(hours=1)})
    retried = client.post("/api/events", json=later.model_dump(mode="json"))

    assert first.status_code == 201
    assert first.json()["created"] is True
    assert again.status_code == 200
    assert retried.status_code == 200
    assert (
        again.json()
        == retried.json()
        == {
            "ticket_id": first.json()["ticket_id"],
            "created": False,
            "attached": False,
            "evidence_state": "stored",
        }
    )
    with session_factory() as session:
        assert session.scalar(select(func.count(Ticket.id))) == 1
    assert client.get("/api/tickets").json()["total"] == 1


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "not JSON"),
        ("[]", "not an object"),
        ('{"camera_id": "plaza-north"}', "fields missing"),
        (
            make_event().model_dump_json()[:-1] + ', "priority": 1}',
            "an unknown field",
        ),
        (
            make_event().model_dump_json().replace('"score":0.87', '"score":7'),
            "score above 1",
        ),
        (
            make_event().model_dump_json().replace(":4.0,", ":NaN,"),
            "a number that is not finite",
        ),
        (make_event(event_id="x" * 200).model_dump_json(), "an event id too long"),
        (
            make_event().model_dump_json()[:-1] + ', "track_id": 18446744073709551616}',
            "a track id no database column holds",
        ),
        (
            make_event().model_dump_json()[:-1]
            + ', "detected_at": "0001-01-01T00:00:00Z"}',
            "a camera clock set to year 1",
        ),
        (
            make_event().model_dump_json()[:-1]
            + ', "detected_at": "2026-05-01T10:00:00"}',
            "a time without its zone",
        ),
    ],
)
def test_malformed_events_answer_422(
    client: TestClient, content: str, why: str
) -> None:
    response = client.post(
        "/api/events", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, why
    assert client.get("/api/tickets").json()["total"] == 0


def test_health_and_docs(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/api/tickets",
        "/api/tickets/{ticket_id}",
        "/api/tickets/{ticket_id}/evidence/{kind}",
        "/api/tickets/{ticket_id}/review",
        "/api/events",
        "/healthz",
    } <= set(paths)
