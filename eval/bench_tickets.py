"""Ticket service benchmark on PostgreSQL: what the review pages ask for,
and filing.

Creates a scratch database (dropped at the end) on the server named by
``--server-url``, fills it with ``--tickets`` tickets spread over 100 grids
of a three-level area tree, then reports:

- filing throughput: events filed one by one through ``api.filing`` (the
  path a camera worker takes, duplicate check included), tickets per second;
- the 50th/95th-percentile time of the review page's first load (the first
  50 tickets of a reviewer's queue with the count of all that wait, for a
  reviewer of one community) and of reading on behind a cursor;
- the 50th/95th-percentile time of the area overview's counts, for that
  community and for a user of the whole city.

Every request goes through the HTTP API, signed in with a bearer token.

Run: ``python -m eval.bench_tickets`` (PostgreSQL at 127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert, select, text

from api import auth, users
from api.db import make_engine, make_session_factory, upgrade
from api.dispatch import DispatchConfig
from api.filing import file_event
from api.main import create_app
from api.notify import MemoryNotifier
from api.settings import Settings
from api.tables import Ticket, Transition, utc_now
from vision.types import Category, Event

SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
STATES = (
    ["pending_review"] * 3 + ["confirmed", "dispatched", "resolved"] + ["closed"] * 4
)
CATEGORIES = [Category.ILLEGAL_PARKING, Category.GARBAGE, Category.STREET_VENDING]
GRIDS = [
    f"office-{o}/community-{c}/grid-{g:02d}"
    for o in range(5)
    for c in range(4)
    for g in range(5)
]
REVIEWER_AREA = "office-2/community-1"
# Tickets a read of the review queue asks for (api/web/static/queue.js).
QUEUE_PAGE_SIZE = 50
# Deadlines of tickets past review, after detection: some have passed.
DEADLINES = [timedelta(hours=1), timedelta(hours=12), timedelta(days=3)]
WARM_UP_REQUESTS = 10  # not timed: they fill caches and the pool


@dataclass(frozen=True)
class TicketBench:
    tickets: int  # in the database when measured
    fill_s: float
    filing_per_s: float
    queue_first_ms: list[float]  # the review page's first load, each request
    queue_next_ms: list[float]  # reading on behind a cursor, each request
    queue_tickets: int  # waiting for the reviewer
    overview_ms: list[float]  # the overview of the reviewer's community
    city_overview_ms: list[float]  # the overview of a whole-city user


def _event(n: int, area_path: str) -> Event:
    at = utc_now() - timedelta(seconds=n)
    return Event(
        event_id=f"bench-{n}-{uuid.uuid4().hex[:8]}",
        camera_id=f"cam-{area_path.replace('/', '-')}",
        area_path=area_path,
        category=CATEGORIES[n % len(CATEGORIES)],
        rule="bench",
        track_id=n,  # every event its own place: no attachments
        started_ts_s=0.0,
        ended_ts_s=10.0,
        detected_ts_s=10.0,
        started_at=at,
        detected_at=at,
    )


def _bulk_rows(start: int, count: int, rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for n in range(start, start + count):
        area = rng.choice(GRIDS)
        event = _event(n, area)
        state = rng.choice(STATES)
        reviewed = state != "pending_review"
        rows.append(
            {
                "event_id": event.event_id,
                "camera_id": event.camera_id,
                "area_path": area,
                "category": str(event.category),
                "state": state,
                "rule": "bench",
                "track_id": n,
                "score": 1.0,
                "started_at": event.started_at,
                "detected_at": event.detected_at,
                "started_ts_s": 0.0,
                "ended_ts_s": 10.0,
                "event": event.model_dump(mode="json"),
                "evidence_state": "stored",
                "created_at": event.detected_at,
                "updated_at": event.detected_at,
                "last_seen_at": event.detected_at,
                "duplicate_count": 0,
                "due_at": event.detected_at + rng.choice(DEADLINES)
                if reviewed
                else None,
            }
        )
    return rows


def _fill(url: str, total: int, filed: int, rng: random.Random) -> float:
    """Bulk-insert ``total - filed`` tickets, then file ``filed`` one by one;
    the filing rate in tickets per second."""
    engine = make_engine(url)
    batch = 5000
    with engine.begin() as connection:
        for start in range(filed, total, batch):
            rows = _bulk_rows(start, min(batch, total - start), rng)
            ids = connection.execute(
                insert(Ticket).returning(Ticket.id), rows
            ).scalars()
            connection.execute(
                insert(Transition),
                [
                    {
                        "ticket_id": ticket_id,
                        "from_state": None,
                        "to_state": "pending_review",
                        "actor": "bench",
                        "at": utc_now(),
                    }
                    for ticket_id in ids
                ],
            )
        connection.execute(text("ANALYZE"))
    factory = make_session_factory(engine)
    began = time.perf_counter()
    with factory() as session:
        for n in range(filed):
            file_event(session, _event(total + n, rng.choice(GRIDS)))
    elapsed_s = time.perf_counter() - began
    engine.dispose()
    return filed / elapsed_s


def _measure_pages(url: str, requests: int) -> dict[str, Any]:
    """Request times (ms) of what the review pages ask for, and the length
    of the reviewer's queue."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    engine = make_engine(url)
    factory = make_session_factory(engine)
    settings = Settings(database_url=url, token_secret="bench-" + "x" * 40)
    app = create_app(
        settings,
        session_factory=factory,
        notifier=MemoryNotifier(),
        dispatch_config=DispatchConfig(),
    )
    reviewer = _sign_in(app, factory, "bench-reviewer", "reviewer", REVIEWER_AREA)
    city = _sign_in(app, factory, "bench-city", "read_only", "")
    first_page = {"limit": str(QUEUE_PAGE_SIZE)}
    with TestClient(app) as client:
        first = _get(client, reviewer, "/api/review-queue", first_page)
        pages_on = [first_page | {"after": item["cursor"]} for item in first["items"]]
        figures = {
            "queue_first_ms": _time(
                client, reviewer, "/api/review-queue", requests, [first_page]
            ),
            "queue_next_ms": _time(
                client, reviewer, "/api/review-queue", requests, pages_on
            ),
            "queue_tickets": int(first["total"]),
            "overview_ms": _time(client, reviewer, "/api/overview", requests),
            "city_overview_ms": _time(client, city, "/api/overview", requests),
        }
    engine.dispose()
    return figures


def _sign_in(
    app: Any, factory: Any, username: str, role: str, area_path: str
) -> dict[str, str]:
    with factory() as session:
        user = users.create_user(session, username, [(role, area_path)])
        token = auth.issue_token(user, app.state.token_secret, 3600)
    return {"Authorization": f"Bearer {token}"}


def _get(
    client: Any, headers: dict[str, str], path: str, params: dict[str, str]
) -> dict[str, Any]:
    response = client.get(path, params=params, headers=headers)
    response.raise_for_status()
    return dict(response.json())


def _time(
    client: Any,
    headers: dict[str, str],
    path: str,
    requests: int,
    variants: list[dict[str, str]] | None = None,
) -> list[float]:
    """Milliseconds of each of ``requests`` timed requests, cycling through
    the query ``variants``, after a few untimed ones."""
    variants = variants or [{}]
    times_ms = []
    for index in range(WARM_UP_REQUESTS + requests):
        began = time.perf_counter()
        _get(client, headers, path, variants[index % len(variants)])
        if index >= WARM_UP_REQUESTS:
            times_ms.append((time.perf_counter() - began) * 1000)
    return times_ms


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _count_tickets(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as connection:
        count = connection.scalar(select(func.count(Ticket.id))) or 0
    engine.dispose()
    return count


def run(
    server_url: str = SERVER_URL,
    *,
    tickets: int = 100_000,
    filed: int = 2_000,
    requests: int = 200,
) -> TicketBench:
    """Fill a scratch database with ``tickets`` tickets (the last ``filed`` of
    them filed one by one) and time ``requests`` requests of each kind; the
    database is dropped after."""
    if not 0 < filed <= tickets:
        raise ValueError(f"filed: expected 1 to tickets ({tickets}), got {filed}")
    import psycopg

    name = f"citywatch_bench_{uuid.uuid4().hex[:8]}"
    admin = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = server_url.rsplit("/", 1)[0] + f"/{name}"
    rng = random.Random(7)
    try:
        upgrade(url)
        began = time.perf_counter()
        rate = _fill(url, tickets, filed, rng)
        fill_s = time.perf_counter() - began
        count = _count_tickets(url)
        figures = _measure_pages(url, requests)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return TicketBench(tickets=count, fill_s=fill_s, filing_per_s=rate, **figures)


def report(bench: TicketBench) -> str:
    return "\n".join(
        [
            f"tickets in database:        {bench.tickets}",
            f"fill time:                  {bench.fill_s:.1f} s",
            f"filing throughput:          {bench.filing_per_s:.0f} tickets/s "
            "(one by one)",
            f"review queue, first page:   {_spread(bench.queue_first_ms)} "
            f"({bench.queue_tickets} tickets waiting, {QUEUE_PAGE_SIZE} a page)",
            f"review queue, next page:    {_spread(bench.queue_next_ms)}",
            f"overview, one community:    {_spread(bench.overview_ms)}",
            f"overview, whole city:       {_spread(bench.city_overview_ms)}",
        ]
    )


def _spread(times_ms: list[float]) -> str:
    return (
        f"p50 {_percentile(times_ms, 50):.1f} ms, "
        f"p95 {_percentile(times_ms, 95):.1f} ms over {len(times_ms)} requests"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-url", default=SERVER_URL)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--filed", type=int, default=2_000)
    parser.add_argument(
        "--requests", type=int, default=200, help="timed requests of each kind"
    )
    args = parser.parse_args()
    bench = run(
        args.server_url, tickets=args.tickets, filed=args.filed, requests=args.requests
    )
    print(report(bench))  # noqa: T201


if __name__ == "__main__":
    main()
