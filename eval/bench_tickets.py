"""Ticket service benchmark on PostgreSQL: a reviewer's queue page and filing.

Creates a scratch database (dropped at the end) on the server named by
``--server-url``, fills it with ``--tickets`` tickets spread over 100 grids
of a three-level area tree, then reports:

- filing throughput: events filed one by one through ``api.filing`` (the
  path a camera worker takes, duplicate check included), tickets per second;
- the 50th/95th-percentile time to fetch a reviewer's queue page (first 50
  pending tickets of their community, newest first, with the total) through
  the HTTP API, signed in with a bearer token.

Run: ``python -m eval.bench_tickets`` (PostgreSQL at 127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
import warnings
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, text

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


def _queue_latencies_ms(url: str, pages: int, rng: random.Random) -> list[float]:
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
    community = "office-2/community-1"
    with factory() as session:
        user = users.create_user(session, "bench-reviewer", [("reviewer", community)])
        token = auth.issue_token(user, app.state.token_secret, 3600)
    headers = {"Authorization": f"Bearer {token}"}
    latencies = []
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
    engine.dispose()
    return latencies


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-url", default=SERVER_URL)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--filed", type=int, default=2_000)
    parser.add_argument("--pages", type=int, default=200)
    args = parser.parse_args()

    import psycopg

    name = f"citywatch_bench_{uuid.uuid4().hex[:8]}"
    admin = args.server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = args.server_url.rsplit("/", 1)[0] + f"/{name}"
    rng = random.Random(7)
    try:
        upgrade(url)
        began = time.perf_counter()
        rate = _fill(url, args.tickets, args.filed, rng)
        fill_s = time.perf_counter() - began
        latencies = _queue_latencies_ms(url, args.pages, rng)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    print(f"tickets in database:        {args.tickets + args.filed}")  # noqa: T201
    print(f"fill time:                  {fill_s:.1f} s")  # noqa: T201
    print(f"filing throughput:          {rate:.0f} tickets/s (one by one)")  # noqa: T201
    print(  # noqa: T201
        f"reviewer queue page (HTTP): p50 {_percentile(latencies, 50):.1f} ms, "
        f"p95 {_percentile(latencies, 95):.1f} ms over {len(latencies)} pages"
    )


if __name__ == "__main__":
    main()
