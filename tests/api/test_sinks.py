"""The ticket sinks: in-process to the database, and over HTTP to the API."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.sinks import DatabaseSink, HttpSink, TicketFilingError
from api.tables import Ticket
from eval.streams import free_port
from tests.api.builders import make_event
from tests.serving import serving
from vision.errors import SinkUnavailable
from vision.sink import FiledTicket, TicketSink


def ticket_count(session_factory: sessionmaker[Session]) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count(Ticket.id))) or 0


@pytest.fixture
def api_url(app: FastAPI) -> Iterator[str]:
    with serving(app) as url:
        yield url


class _LateFirstAnswer:
    """Holds back the answer to the first filing until after the camera's
    timeout: the ticket is filed, but the camera never hears so."""

    def __init__(self, app: ASGIApp, delay_s: float) -> None:
        self.app = app
        self.delay_s = delay_s
        self.filings = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/api/events":
            await self.app(scope, receive, send)
            return
        self.filings += 1
        if self.filings > 1:
            await self.app(scope, receive, send)
            return

        async def send_late(message: Message) -> None:
            if message["type"] == "http.response.start":
                await asyncio.sleep(self.delay_s)
            await send(message)

        await self.app(scope, receive, send_late)


def test_database_sink_files_once_per_event(
    session_factory: sessionmaker[Session],
) -> None:
    sink: TicketSink = DatabaseSink(session_factory)
    event = make_event()

    first = sink.file(event)
    again = sink.file(event)

    assert first == FiledTicket(ticket_id=first.ticket_id, created=True)
    assert again == FiledTicket(ticket_id=first.ticket_id, created=False)
    assert ticket_count(session_factory) == 1


def test_a_database_that_does_not_answer_is_reported_unavailable() -> None:
    from api.db import make_engine, make_session_factory

    closed = f"postgresql+psycopg://citywatch@127.0.0.1:{free_port()}/citywatch"
    engine = make_engine(closed, connect_args={"connect_timeout": 2})
    sink = DatabaseSink(make_session_factory(engine))

    with pytest.raises(SinkUnavailable, match="the database is unavailable"):
        sink.file(make_event())
    engine.dispose()


def test_http_sink_files_through_a_running_api(
    api_url: str, session_factory: sessionmaker[Session], camera_headers
) -> None:
    event = make_event()
    key = camera_headers("plaza-north")["X-API-Key"]
    with HttpSink(api_url, api_key=key, timeout_s=5.0) as sink:
        first = sink.file(event)
        again = sink.file(event)
        # Elsewhere in the picture: a new place, a new ticket.
        other = sink.file(make_event(bbox_xyxy=(10.0, 10.0, 50.0, 50.0), track_id=99))

    assert first.created and not again.created and other.created
    assert again.ticket_id == first.ticket_id != other.ticket_id
    assert ticket_count(session_factory) == 2


def test_both_sinks_tell_an_event_filed_before(
    api_url: str, session_factory: sessionmaker[Session], client, camera_headers
) -> None:
    # A recording analysed again must find its tickets, reviewed or not.
    event = make_event()
    key = camera_headers("plaza-north")["X-API-Key"]
    other_camera = camera_headers("gate-south")["X-API-Key"]
    database = DatabaseSink(session_factory)
    with (
        HttpSink(api_url, api_key=key, timeout_s=5.0) as http,
        HttpSink(api_url, api_key=other_camera, timeout_s=5.0) as stranger,
    ):
        before = (
            database.filed_before(event.event_id),
            http.filed_before(event.event_id),
        )
        ticket_id = http.file(event).ticket_id
        review = {"decision": "reject", "reason": "other"}
        client.post(f"/api/tickets/{ticket_id}/review", json=review)
        after = [sink.filed_before(event.event_id) for sink in (database, http)]
        unseen = stranger.filed_before(event.event_id)

    assert before == (None, None)
    assert after == [FiledTicket(ticket_id, created=False, state="rejected")] * 2
    assert unseen is None  # another camera's event is not its business


def test_http_sink_posts_concurrently_without_duplicates(
    api_url: str, session_factory: sessionmaker[Session], camera_headers
) -> None:
    event = make_event()
    results: list[FiledTicket] = []
    key = camera_headers("plaza-north")["X-API-Key"]

    def post() -> None:
        with HttpSink(api_url, api_key=key, timeout_s=10.0) as sink:
            results.append(sink.file(event))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({filed.ticket_id for filed in results}) == 1
    assert sum(filed.created for filed in results) == 1
    assert ticket_count(session_factory) == 1


def test_a_retry_after_a_timeout_files_no_second_ticket(
    app: FastAPI, session_factory: sessionmaker[Session], camera_headers
) -> None:
    event = make_event()
    key = camera_headers("plaza-north")["X-API-Key"]
    late = _LateFirstAnswer(app, delay_s=2.0)

    with (
        serving(late) as url,
        HttpSink(url, api_key=key, timeout_s=0.5, retries=2, backoff_s=0.0) as sink,
    ):
        filed = sink.file(event)

    assert late.filings == 2  # the first try timed out, the retry was answered
    with session_factory() as session:
        (ticket_id,) = session.scalars(select(Ticket.id)).all()
    assert (filed.ticket_id, filed.created) == (str(ticket_id), False)


def _sink_answering(*answers: int | Exception) -> tuple[HttpSink, list[int]]:
    """An HttpSink whose requests get these answers in turn."""
    calls: list[int] = []
    replies = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if isinstance(reply, Exception):
            raise reply
        body = {"ticket_id": 7, "created": reply == 201}
        if reply >= 400:
            body = {"detail": "invalid_event"}
        return httpx.Response(reply, json=body)

    client = httpx.Client(transport=httpx.MockTransport(handle))
    sink = HttpSink("http://api.test", retries=3, backoff_s=0.0, client=client)
    return sink, calls


def test_http_sink_retries_unavailable_service() -> None:
    sink, calls = _sink_answering(503, httpx.ConnectError("refused"), 201)

    filed = sink.file(make_event())

    assert filed == FiledTicket(ticket_id="7", created=True)
    assert len(calls) == 3


def test_http_sink_gives_up_after_its_retries() -> None:
    sink, calls = _sink_answering(httpx.ConnectError("refused"))

    with pytest.raises(TicketFilingError, match=r"could not file .* ConnectError"):
        sink.file(make_event())

    assert len(calls) == 4  # the first try and three retries


def test_http_sink_does_not_retry_a_refused_event() -> None:
    sink, calls = _sink_answering(422)

    with pytest.raises(TicketFilingError, match=r"HTTP 422 \(invalid_event\)"):
        sink.file(make_event())

    assert len(calls) == 1


@pytest.mark.parametrize("status", [401, 403, 503])
def test_an_event_a_refused_key_or_a_down_service_cannot_file_may_wait(
    status: int,
) -> None:
    sink, _ = _sink_answering(status)

    with pytest.raises(SinkUnavailable, match=rf"HTTP {status}"):
        sink.file(make_event())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"retries": -1}, "retries"), ({"timeout_s": 0}, "timeout_s")],
)
def test_http_sink_refuses_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HttpSink("http://api.test", **kwargs)


@pytest.mark.slow
def test_full_spool_purges_only_evidence_of_tickets_rejected_long_ago(
    session_factory: sessionmaker[Session], tmp_path, caplog
) -> None:
    # A 200 MB spool while the store is down; 5 MB clips. An old backlog of
    # 30 clips: 20 of tickets rejected a month ago, 3 of open tickets, 7 of
    # tickets rejected yesterday (still within the week's retention). Then a
    # clip a second for two minutes, each of a newly filed ticket.
    from datetime import timedelta

    from api.tables import utc_now
    from vision.evidence.spool import SpoolingStore
    from vision.pipeline import purge_policy
    from vision.types import EvidenceState

    mb = 1000 * 1000
    sink = DatabaseSink(session_factory, rejected_retention_s=7 * 86400)
    ages = {"old": timedelta(days=30), "recent": timedelta(days=1)}
    backlog = ["old"] * 20 + ["open"] * 3 + ["recent"] * 7
    events = [make_event() for _ in backlog]
    for event, kind in zip(events, backlog, strict=True):
        ticket_id = int(sink.file(event).ticket_id)
        if kind in ages:
            with session_factory() as session:
                ticket = session.get(Ticket, ticket_id)
                assert ticket is not None
                ticket.state, ticket.updated_at = "rejected", utc_now() - ages[kind]
                session.commit()
    spool = SpoolingStore(
        _down_store(),
        tmp_path / "spool",
        cap_bytes=200 * mb,
        may_purge=purge_policy(sink),
    )
    clip = bytes(5 * mb)

    for event in events:
        spool.put_bytes(f"plaza-north/{event.event_id}/clip.mp4", clip, "video/mp4")
    new = [make_event() for _ in range(120)]
    states = []
    for event in new:
        sink.file(event)
        key = f"plaza-north/{event.event_id}/clip.mp4"
        states.append(spool.put_bytes(key, clip, "video/mp4").state)

    pending = {key.split("/")[1] for key in spool.pending_keys()}
    kept = {
        e.event_id for e, kind in zip(events, backlog, strict=True) if kind != "old"
    }
    assert kept <= pending  # open and recently rejected: never purged
    assert not {e.event_id for e in events[:20]} & pending  # purged, oldest first
    # 50 MB is kept from the backlog: room for 30 new clips, then alarms.
    assert states == [EvidenceState.PENDING] * 30 + [EvidenceState.MISSING] * 90
    assert {e.event_id for e in new[:30]} <= pending
    assert spool.spool_bytes == 200 * mb and spool.disk_pressure == 1.0
    assert sum("storage alarm" in r.getMessage() for r in caplog.records) == 90


def _down_store():
    from vision.evidence.s3 import S3Store

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        endpoint = f"127.0.0.1:{sock.getsockname()[1]}"  # bound, not listening
    return S3Store(
        endpoint=endpoint,
        access_key="a",
        secret_key="b",
        bucket="evidence-down",
        retries=1,
        ensure_bucket=False,
    )
