"""A repeated event of the same place attaches to the open ticket; another
place, another camera, a closed ticket or a stale one files anew."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from api.duplicates import iou
from tests.api.builders import STARTED_AT, make_event
from vision.types import Category

BOX = (100.0, 100.0, 200.0, 180.0)


def _post(client: TestClient, **fields: object) -> dict:
    response = client.post(
        "/api/events", json=make_event(**fields).model_dump(mode="json")
    )
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (BOX, BOX, 1.0),
        (BOX, (150.0, 100.0, 250.0, 180.0), 1 / 3),
        (BOX, (200.0, 100.0, 300.0, 180.0), 0.0),  # side by side, touching
        (BOX, (500.0, 500.0, 600.0, 600.0), 0.0),
    ],
)
def test_iou(a: tuple, b: tuple, expected: float) -> None:
    assert iou(a, b) == pytest.approx(expected)


def test_same_place_attaches_and_side_by_side_files_two(client: TestClient) -> None:
    first = _post(client, bbox_xyxy=BOX, track_id=1)
    # The same car seen again 20 minutes later, slightly shifted, new track.
    again = _post(
        client,
        bbox_xyxy=(110.0, 104.0, 208.0, 184.0),
        track_id=2,
        detected_at=STARTED_AT + timedelta(minutes=20),
    )
    # The same track, box moved away (a car creeping forward).
    same_track = _post(client, bbox_xyxy=(400.0, 100.0, 500.0, 180.0), track_id=1)
    # The car parked right beside it: boxes touch but do not overlap.
    beside = _post(client, bbox_xyxy=(200.0, 100.0, 300.0, 180.0), track_id=3)

    assert first["created"] and beside["created"]
    assert beside["ticket_id"] != first["ticket_id"]
    for repeat in (again, same_track):
        assert repeat == {
            "ticket_id": first["ticket_id"],
            "created": False,
            "attached": True,
            "evidence_state": "stored",
        }
    ticket = client.get(f"/api/tickets/{first['ticket_id']}").json()
    assert ticket["duplicate_count"] == 2
    assert len(ticket["attachments"]) == 2
    assert ticket["last_seen_at"].startswith("2026-05-04T08:50:00")
    assert client.get("/api/tickets").json()["total"] == 2


@pytest.mark.parametrize(
    "other",
    [
        {"camera_id": "market-east"},
        {"category": Category.GARBAGE},
        {"detected_at": STARTED_AT + timedelta(hours=2)},  # past the 1 h window
    ],
    ids=["other-camera", "other-category", "outside-window"],
)
def test_other_camera_category_or_time_files_anew(
    client: TestClient, other: dict
) -> None:
    first = _post(client, bbox_xyxy=BOX, track_id=1)
    second = _post(client, bbox_xyxy=BOX, track_id=1, **other)
    assert second["created"] and second["ticket_id"] != first["ticket_id"]


def test_a_closed_ticket_takes_no_attachments(client: TestClient) -> None:
    first = _post(client, bbox_xyxy=BOX, track_id=1)
    client.post(
        f"/api/tickets/{first['ticket_id']}/review",
        json={"decision": "reject", "reason": "false_detection"},
    )
    second = _post(client, bbox_xyxy=BOX, track_id=1)
    assert second["created"]


def test_an_attached_event_retried_is_still_one_attachment(client: TestClient) -> None:
    first = _post(client, bbox_xyxy=BOX, track_id=1)
    repeat = make_event(bbox_xyxy=BOX, track_id=1)
    answers = [
        client.post("/api/events", json=repeat.model_dump(mode="json")).json()
        for _ in range(3)
    ]
    assert all(a["ticket_id"] == first["ticket_id"] for a in answers)
    ticket = client.get(f"/api/tickets/{first['ticket_id']}").json()
    assert ticket["duplicate_count"] == 1
