"""The review queue over HTTP, on SQLite and PostgreSQL: oldest first, a page
at a time, stable while the reviewer decides, only where the caller reviews,
and read from its own index."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from api.review_queue import read_queue
from tests.api.builders import make_event

GRID_A = "old-town/riverside/grid-07"
GRID_B = "old-town/riverside/grid-08"
Headers = dict[str, str]


def file(client: TestClient, count: int, area_path: str = GRID_A) -> list[int]:
    ids = []
    for _ in range(count):
        event = make_event(area_path=area_path)
        response = client.post("/api/events", json=event.model_dump(mode="json"))
        assert response.status_code == 201, response.text
        ids.append(int(response.json()["ticket_id"]))
    return ids


def read(client: TestClient, headers: Headers | None = None, **params: object) -> dict:
    response = client.get("/api/review-queue", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def ids_of(page: dict) -> list[int]:
    return [item["id"] for item in page["items"]]


def decide(client: TestClient, ticket_id: int, **body: object) -> None:
    body = body or {"decision": "confirm"}
    response = client.post(f"/api/tickets/{ticket_id}/review", json=body)
    assert response.status_code == 200, response.text


def test_the_queue_is_read_oldest_first_a_page_at_a_time(client: TestClient) -> None:
    ids = file(client, 5)

    first = read(client, limit=2)
    second = read(client, limit=2, after=first["next"])
    last = read(client, limit=2, after=second["next"])

    assert [ids_of(p) for p in (first, second, last)] == [ids[:2], ids[2:4], ids[4:]]
    assert [p["total"] for p in (first, second, last)] == [5, 5, 5]
    assert first["next"] == first["items"][-1]["cursor"]
    assert last["next"] is None
    cursors = [item["cursor"] for p in (first, second, last) for item in p["items"]]
    assert cursors == sorted(cursors)  # as text, in queue order


def test_deciding_tickets_moves_none_of_the_tickets_behind(client: TestClient) -> None:
    ids = file(client, 7)
    first = read(client, limit=3)

    for ticket_id in [*ids_of(first), ids[4]]:  # the page, and one of the next
        decide(client, ticket_id)
    second = read(client, limit=3, after=first["next"])

    assert ids_of(second) == [ids[3], ids[5], ids[6]]
    assert second["total"] == 3
    assert second["next"] is None
    assert ids_of(read(client)) == [ids[3], ids[5], ids[6]]


def test_a_reopened_ticket_returns_to_its_place(client: TestClient) -> None:
    ids = file(client, 3)
    decide(client, ids[0], decision="reject", reason="other")
    assert ids_of(read(client)) == ids[1:]

    reopened = client.post(f"/api/tickets/{ids[0]}/reopen", json={})
    assert reopened.status_code == 200, reopened.text

    page = read(client)
    assert ids_of(page) == ids
    assert [item["state"] for item in page["items"]] == [
        "reopened",
        "pending_review",
        "pending_review",
    ]


def test_only_tickets_where_the_caller_reviews(
    client: TestClient, user_headers: Callable[..., Headers]
) -> None:
    in_a = file(client, 2, GRID_A)
    in_b = file(client, 2, GRID_B)
    # Amy may look at grid A but reviews only in grid B; Rob reviews nowhere.
    amy = user_headers("amy", [("read_only", GRID_A), ("reviewer", GRID_B)])
    rob = user_headers("rob", [("dispatcher", "")])

    assert ids_of(read(client)) == [*in_a, *in_b]
    assert read(client, amy) | {"items": []} == {"items": [], "total": 2, "next": None}
    assert ids_of(read(client, amy)) == in_b
    assert read(client, rob) == {"items": [], "total": 0, "next": None}


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"limit": 0}, None),
        ({"limit": 201}, None),
        ({"after": "17"}, None),
        ({"after": "2026-05-04T08:30:00Z_0000000017"}, None),
        ({"after": "2026-13-04T08:30:00.000000Z_0000000017"}, "invalid_cursor"),
    ],
)
def test_malformed_pages_are_refused(
    client: TestClient, params: dict[str, object], detail: str | None
) -> None:
    response = client.get("/api/review-queue", params=params)

    assert response.status_code == 422
    if detail is not None:
        assert response.json()["detail"] == detail


def _plan(engine: Engine, session_factory: sessionmaker[Session]) -> str:
    """How the database runs the queue's first page, as EXPLAIN says it."""
    statements: list[tuple[str, Any]] = []

    def keep(*args: Any) -> None:  # (connection, cursor, statement, parameters, ...)
        statements.append((args[2], args[3]))

    event.listen(engine, "before_cursor_execute", keep)
    with session_factory() as session:
        read_queue(session, areas=None)
    event.remove(engine, "before_cursor_execute", keep)
    (statement, parameters), *_ = statements
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as connection:
        # Statistics, as a live database has them (PostgreSQL's autovacuum,
        # SQLite's PRAGMA optimize); without them SQLite guesses.
        connection.execute(text("ANALYZE"))
        if engine.dialect.name == "postgresql":
            connection.execute(text("SET enable_seqscan = off"))
            connection.execute(text("SET enable_bitmapscan = off"))
        rows = connection.exec_driver_sql(explain + statement, parameters).all()
    return "\n".join(str(row[-1]) for row in rows)


def test_the_first_page_is_read_from_the_queues_own_index(
    client: TestClient, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """The partial index can serve the query only if the query names its
    states exactly as the index does (written out, not bound)."""
    file(client, 3)

    assert "ix_tickets_review_queue" in _plan(engine, session_factory)
