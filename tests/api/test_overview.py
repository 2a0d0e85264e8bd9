"""The area overview's counts over HTTP, on SQLite and PostgreSQL, checked
against the ticket list they summarise."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from api.overview import ATTENTION_LIMIT
from api.tables import Ticket, utc_now
from tests.api.builders import make_event
from vision.types import Category

GRID_A = "old-town/riverside/grid-07"
GRID_B = "old-town/riverside/grid-08"
OPEN = {"pending_review", "reopened", "confirmed", "dispatched", "resolved"}
Headers = dict[str, str]


def file(client: TestClient, camera_id: str, area_path: str, category: str) -> int:
    event = make_event(camera_id=camera_id, area_path=area_path, category=category)
    response = client.post("/api/events", json=event.model_dump(mode="json"))
    assert response.status_code == 201, response.text
    return int(response.json()["ticket_id"])


def act(client: TestClient, ticket_id: int, *steps: str) -> None:
    bodies = {
        "confirm": ("review", {"decision": "confirm"}),
        "reject": ("review", {"decision": "reject", "reason": "other"}),
        "dispatch": ("dispatch", {"assignee": "grid-team"}),
        "resolve": ("resolve", {}),
        "close": ("close", {}),
    }
    for step in steps:
        action, body = bodies[step]
        response = client.post(f"/api/tickets/{ticket_id}/{action}", json=body)
        assert response.status_code == 200, response.text


def set_due(session_factory: sessionmaker[Session], due: dict[int, datetime]) -> None:
    with session_factory() as session:
        for ticket_id, due_at in due.items():
            session.execute(
                update(Ticket).where(Ticket.id == ticket_id).values(due_at=due_at)
            )
        session.commit()


@pytest.fixture
def city(client: TestClient, session_factory: sessionmaker[Session]) -> list[int]:
    """Tickets of three cameras in three grids, in most states; two overdue."""
    parking, garbage = Category.ILLEGAL_PARKING, Category.GARBAGE
    plaza = [file(client, "plaza-north", GRID_A, parking) for _ in range(5)]
    market = [file(client, "market-east", GRID_B, garbage) for _ in range(4)]
    far = [file(client, "far-west", "new-town/grid-01", garbage) for _ in range(2)]
    act(client, plaza[1], "confirm")
    act(client, plaza[2], "confirm", "dispatch")
    act(client, plaza[3], "confirm", "dispatch")
    act(client, plaza[4], "confirm", "close")
    act(client, market[1], "reject")
    act(client, market[2], "confirm", "dispatch", "resolve")
    act(client, market[3], "confirm", "dispatch")
    act(client, far[1], "confirm", "dispatch")
    now = utc_now()
    set_due(
        session_factory,
        {
            plaza[2]: now - timedelta(hours=1),  # overdue
            plaza[3]: now + timedelta(hours=3),
            market[2]: now - timedelta(hours=5),  # resolved: nobody owes work
            market[3]: now - timedelta(hours=2),  # overdue, the longer
            far[1]: now + timedelta(hours=1),
        },
    )
    return [*plaza, *market, *far]


def summarise(tickets: list[dict[str, Any]]) -> dict[str, Any]:
    """What the overview should say about these tickets, from the list."""
    open_ = [t for t in tickets if t["state"] in OPEN]
    categories: dict[str, Any] = {}
    for t in open_:
        row = categories.setdefault(
            t["category"],
            {"category": t["category"], "by_state": Counter(), "overdue": 0, "open": 0},
        )
        row["by_state"][t["state"]] += 1
        row["overdue"] += t["overdue"]
        row["open"] += 1
    cameras: dict[str, Any] = {}
    for t in tickets:
        row = cameras.setdefault(
            t["camera_id"],
            {
                "camera_id": t["camera_id"],
                "area_path": t["area_path"],
                "waiting_for_review": 0,
                "open": 0,
                "overdue": 0,
                "tickets": 0,
                "last_detected_at": t["detected_at"],
            },
        )
        row["waiting_for_review"] += t["state"] == "pending_review"
        row["open"] += t["state"] in OPEN
        row["overdue"] += t["overdue"]
        row["tickets"] += 1
        row["last_detected_at"] = max(row["last_detected_at"], t["detected_at"])

    def first(t: dict[str, Any]) -> tuple[Any, ...]:
        created_at = datetime.fromisoformat(t["created_at"])
        due_at = datetime.fromisoformat(t["due_at"]) if t["due_at"] else None
        return (not t["overdue"], due_at or created_at, created_at, t["id"])

    return {
        "overdue": sum(t["overdue"] for t in tickets),
        "waiting_for_review": sum(t["state"] == "pending_review" for t in tickets),
        "open": len(open_),
        "tickets": len(tickets),
        "categories": [
            row | {"by_state": dict(row["by_state"])}
            for _, row in sorted(categories.items())
        ],
        "cameras": sorted(
            cameras.values(),
            key=lambda r: (-r["overdue"], -r["open"], r["camera_id"]),
        ),
        "attention": [t["id"] for t in sorted(open_, key=first)][:ATTENTION_LIMIT],
    }


def overview(
    client: TestClient, headers: Headers | None = None, **params: str
) -> dict[str, Any]:
    response = client.get("/api/overview", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body = dict(response.json())
    body["attention"] = [t["id"] for t in body["attention"]]
    return body


def listed(
    client: TestClient, headers: Headers | None = None, **params: str
) -> list[dict[str, Any]]:
    response = client.get(
        "/api/tickets", params={"limit": 500, **params}, headers=headers
    )
    return list(response.json()["items"])


def test_the_overview_counts_what_the_list_shows(
    client: TestClient, city: list[int]
) -> None:
    counted = overview(client)

    assert counted == {"area": None, **summarise(listed(client))}
    assert (counted["tickets"], counted["open"], counted["overdue"]) == (11, 9, 2)
    plaza, market = city[0:5], city[5:9]
    assert counted["attention"][:2] == [market[3], plaza[2]]  # overdue, longest first
    assert [c["camera_id"] for c in counted["cameras"]] == [
        "plaza-north",  # 1 overdue, 4 open
        "market-east",  # 1 overdue, 3 open
        "far-west",
    ]


def test_an_area_narrows_every_count(client: TestClient, city: list[int]) -> None:
    counted = overview(client, area="old-town")

    assert counted == {"area": "old-town", **summarise(listed(client, area="old-town"))}
    assert {c["camera_id"] for c in counted["cameras"]} == {
        "plaza-north",
        "market-east",
    }


def test_a_user_sees_the_counts_of_their_areas_only(
    client: TestClient, city: list[int], user_headers: Callable[..., Headers]
) -> None:
    grid_a = user_headers("amy", [("grid_worker", GRID_A)])

    counted = overview(client, grid_a)
    outside = overview(client, grid_a, area=GRID_B)

    assert counted == {"area": None, **summarise(listed(client, area=GRID_A))}
    assert [c["camera_id"] for c in counted["cameras"]] == ["plaza-north"]
    assert outside == {"area": GRID_B, **summarise([])}


def test_the_first_tickets_to_look_at_stop_at_the_limit(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    ids = [
        file(client, "plaza-north", GRID_A, Category.GARBAGE)
        for _ in range(ATTENTION_LIMIT + 5)
    ]
    now = utc_now()
    for ticket_id in ids[::3]:
        act(client, ticket_id, "confirm", "dispatch")
    # Deadlines past and to come, out of filing order; some before the
    # tickets without one were filed.
    set_due(
        session_factory,
        {
            ticket_id: now + timedelta(minutes=(-1) ** n * (10 + 7 * n))
            for n, ticket_id in enumerate(ids[::3])
        }
        | {ids[6]: now - timedelta(days=2), ids[9]: now + timedelta(days=2)},
    )

    counted = overview(client)

    assert counted == {"area": None, **summarise(listed(client))}
    assert len(counted["attention"]) == ATTENTION_LIMIT
