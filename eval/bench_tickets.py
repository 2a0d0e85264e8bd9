"""Ticket service benchmark on PostgreSQL: a reviewer's queue page and filing.

Creates a scratch database (dropped at the end) on the server named by
``--server-url``, fills it with ``--tickets`` tickets spread over 100 grids
of a three-level area tree, then reports:

- filing throughput: events filed one by one through ``api.filing`` (the
  path a camera worker takes, duplicate check included), tickets per second;
- the 50th/95th-percentile time to fetch a reviewer's queue page (first 50
  pending tickets of their community, newest first, with the total) through
  the HTTP API, signed in with a bearer token;
- the time the review page takes to load its whole queue as it does in the
  browser (every ticket waiting for review in the reviewer's areas, 500 per
  request), and how many tickets that is.

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
# What the review page asks for (api/web/static/queue.js): each state
# waiting for review, read whole, this many tickets a request.
QUEUE_STATES = ("pending_review", "reopened")
QUEUE_PAGE_SIZE = 500


@dataclass(frozen=True)
class TicketBench:
    tickets: int  # in the database when measured
    fill_s: float
    filing_per_s: float
    page_ms: list[float]  # one 50-ticket page of the queue, each request
    queue_load_ms: list[float]  # the whole queue as the page loads it
    queue_tickets: int


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
        rows.append(
            {
                "event_id": event.event_id,
                "camera_id": event.camera_id,
                "area_path": area,
                "category": str(event.category),
                "state": rng.choice(STATES),
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


def _measure_queue(
    url: str, pages: int, rng: random.Random
) -> tuple[list[float], list[float], int]:
    """Page latencies, whole-queue load times, and the queue's length."""
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
    with factory() as session:
        user = users.create_user(
            session, "bench-reviewer", [("reviewer", REVIEWER_AREA)]
        )
        token = auth.issue_token(user, app.state.token_secret, 3600)
    headers = {"Authorization": f"Bearer {token}"}
    latencies = []
    loads = []
    with TestClient(app, headers=headers) as client:
        for index in range(pages + 10):
            offset = rng.choice([0, 0, 0, 50, 100])
            began = time.perf_counter()
            response = client.get(
                "/api/tickets",
                params={"state": "pending_review", "limit": 50, "offset": offset},
            )
            elapsed_ms = (time.perf_counter() - began) * 1000
            response.raise_for_status()
            if index >= 10:  # the first requests warm caches and the pool
                latencies.append(elapsed_ms)
        for _ in range(max(3, pages // 20)):
            began = time.perf_counter()
            queue_tickets = len(_load_queue(client))
            loads.append((time.perf_counter() - began) * 1000)
    engine.dispose()
    return latencies, loads, queue_tickets


def _load_queue(client: Any) -> list[dict[str, Any]]:
    """Every ticket waiting for review, requested as the review page does."""
    items: list[dict[str, Any]] = []
    for state in QUEUE_STATES:
        offset = 0
        while True:
            response = client.get(
                "/api/tickets",
                params={"state": state, "limit": QUEUE_PAGE_SIZE, "offset": offset},
            )
            response.raise_for_status()
            page = response.json()
            items += page["items"]
            offset += QUEUE_PAGE_SIZE
            if offset >= page["total"] or not page["items"]:
                break
    return items


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
    pages: int = 200,
) -> TicketBench:
    """Fill a scratch database with ``tickets`` tickets (the last ``filed`` of
    them filed one by one) and measure; the database is dropped after."""
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
        page_ms, queue_load_ms, queue_tickets = _measure_queue(url, pages, rng)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return TicketBench(count, fill_s, rate, page_ms, queue_load_ms, queue_tickets)


def report(bench: TicketBench) -> str:
    pages, loads = bench.page_ms, bench.queue_load_ms
    return "\n".join(
        [
            f"tickets in database:        {bench.tickets}",
            f"fill time:                  {bench.fill_s:.1f} s",
            f"filing throughput:          {bench.filing_per_s:.0f} tickets/s "
            "(one by one)",
            f"reviewer queue page (HTTP): p50 {_percentile(pages, 50):.1f} ms, "
            f"p95 {_percentile(pages, 95):.1f} ms over {len(pages)} pages",
            f"review page's whole queue:  {bench.queue_tickets} tickets, median "
            f"{statistics.median(loads):.0f} ms, worst {max(loads):.0f} ms "
            f"over {len(loads)} loads",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-url", default=SERVER_URL)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--filed", type=int, default=2_000)
    parser.add_argument("--pages", type=int, default=200)
    args = parser.parse_args()
    bench = run(
        args.server_url, tickets=args.tickets, filed=args.filed, pages=args.pages
    )
    print(report(bench))  # noqa: T201


if __name__ == "__main__":
    main()
