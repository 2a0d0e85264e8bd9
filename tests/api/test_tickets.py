"""The ticket service: idempotent filing and the workflow table."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api import filing, tickets
from api.tables import Evidence, Ticket, Transition
from api.tickets import (
    ALLOWED_TRANSITIONS,
    IllegalTransition,
    InvalidReview,
    RejectionReason,
    ReviewDecision,
    TicketState,
)
from tests.api.builders import make_event
from vision.types import EvidenceItem, EvidenceKind, EvidenceState

S = TicketState
CLIP = EvidenceKind.CLIP
# A ticket's way from confirmation to closing, for the table below.
DONE = [S.CONFIRMED, S.DISPATCHED, S.RESOLVED, S.VERIFIED, S.CLOSED]


def count(session: Session, table: type) -> int:
    return session.scalar(select(func.count()).select_from(table)) or 0


def test_filing_writes_the_ticket_its_evidence_and_the_first_transition(
    session_factory: sessionmaker[Session],
) -> None:
    event = make_event(
        evidence=[
            EvidenceItem(kind=CLIP, key="e/clip.mp4", content_type="video/mp4"),
            EvidenceItem(
                kind=EvidenceKind.SNAPSHOT,
                key="e/snap.jpg",
                content_type="image/jpeg",
                state=EvidenceState.MISSING,
                reason="disk full",
            ),
            # A second item of a kind the ticket already has is not kept.
            EvidenceItem(kind=CLIP, key="e/b.mp4", content_type="video/mp4"),
        ]
    )
    with session_factory() as session:
        ticket, created = filing.file_event(session, event)

    assert created
    with session_factory() as session:
        stored = tickets.get_ticket(session, ticket.id)
        assert stored.state == "pending_review"
        assert stored.evidence_state == "missing"
        assert [(e.kind, e.key, e.state) for e in stored.evidence] == [
            ("clip", "e/clip.mp4", "stored"),
            ("snapshot", "e/snap.jpg", "missing"),
        ]
        (first,) = stored.transitions
        assert (first.from_state, first.to_state) == (None, "pending_review")
        assert first.actor == "camera:plaza-north"
        assert first.at.tzinfo is not None
        assert stored.started_at == event.started_at
        assert stored.event == event.model_dump(mode="json")


def test_filing_the_same_event_twice_keeps_one_ticket(
    session_factory: sessionmaker[Session],
) -> None:
    event = make_event()
    with session_factory() as session:
        first, created_first = filing.file_event(session, event)
        again, created_again = filing.file_event(session, event)

    assert (created_first, created_again) == (True, False)
    assert again.id == first.id
    with session_factory() as session:
        assert count(session, Ticket) == 1
        assert count(session, Transition) == 1


def test_concurrent_filings_of_one_event_make_one_ticket(
    session_factory: sessionmaker[Session],
) -> None:
    event = make_event()
    event.evidence = [
        EvidenceItem(kind=EvidenceKind.CLIP, key="c.mp4", content_type="video/mp4")
    ]
    threads = 8
    barrier = threading.Barrier(threads)

    def file_once(_: int) -> tuple[int, bool]:
        barrier.wait()  # all threads insert at the same moment
        with session_factory() as session:
            ticket, created = filing.file_event(session, event)
            return ticket.id, created

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(file_once, range(threads)))

    assert len({ticket_id for ticket_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    with session_factory() as session:
        assert count(session, Ticket) == 1
        assert count(session, Evidence) == 1
        assert count(session, Transition) == 1


def test_concurrent_reviews_of_one_ticket_let_one_win(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session:
        ticket, _ = filing.file_event(session, make_event())
    threads = 6
    barrier = threading.Barrier(threads)

    def review_once(index: int) -> str:
        decision = ReviewDecision.CONFIRM if index % 2 else ReviewDecision.REJECT
        reason = None if index % 2 else RejectionReason.DUPLICATE
        barrier.wait()
        with session_factory() as session:
            try:
                tickets.review(
                    session, ticket.id, decision, actor=f"r{index}", reason=reason
                )
            except IllegalTransition:
                return "refused"
            return "done"

    with ThreadPoolExecutor(threads) as pool:
        outcomes = list(pool.map(review_once, range(threads)))

    assert outcomes.count("done") == 1
    with session_factory() as session:
        assert count(session, Transition) == 2


def test_every_state_has_a_row_in_the_workflow_table() -> None:
    assert set(ALLOWED_TRANSITIONS) == {None, *TicketState}
    reachable = {s for targets in ALLOWED_TRANSITIONS.values() for s in targets}
    assert reachable == set(TicketState)


def _ticket_in(session_factory: sessionmaker[Session], path: list[TicketState]) -> int:
    with session_factory() as session:
        ticket, _ = filing.file_event(session, make_event())
        for state in path:
            tickets.transition(session, ticket.id, state, actor="ops")
    return ticket.id


@pytest.mark.parametrize(
    ("path", "to_state", "allowed"),
    [
        ([], S.CONFIRMED, True),
        ([], S.REJECTED, True),
        ([], S.DISPATCHED, False),
        ([], S.CLOSED, False),
        ([S.CONFIRMED], S.DISPATCHED, True),
        ([S.CONFIRMED], S.PENDING_REVIEW, False),
        ([S.CONFIRMED, S.DISPATCHED], S.RESOLVED, True),
        ([S.CONFIRMED, S.DISPATCHED], S.CLOSED, False),
        ([S.CONFIRMED, S.DISPATCHED, S.RESOLVED], S.VERIFIED, True),
        ([S.CONFIRMED, S.DISPATCHED, S.RESOLVED], S.REOPENED, True),
        ([S.CONFIRMED, S.DISPATCHED, S.RESOLVED, S.VERIFIED], S.CLOSED, True),
        (DONE, S.REOPENED, True),
        (DONE, S.CONFIRMED, False),
        ([S.REJECTED], S.REOPENED, True),
        ([S.REJECTED], S.CONFIRMED, False),
        ([S.REJECTED, S.REOPENED], S.CONFIRMED, True),
    ],
)
def test_transitions_follow_the_workflow_table(
    session_factory: sessionmaker[Session],
    path: list[TicketState],
    to_state: TicketState,
    allowed: bool,
) -> None:
    ticket_id = _ticket_in(session_factory, path)

    with session_factory() as session:
        if allowed:
            ticket = tickets.transition(session, ticket_id, to_state, actor="ops")
            assert ticket.state == to_state
            assert ticket.transitions[-1].to_state == to_state
        else:
            with pytest.raises(IllegalTransition, match="cannot become"):
                tickets.transition(session, ticket_id, to_state, actor="ops")
            assert tickets.get_ticket(session, ticket_id).state == (
                path[-1] if path else S.PENDING_REVIEW
            )
            assert len(tickets.get_ticket(session, ticket_id).transitions) == (
                len(path) + 1
            )


@pytest.mark.parametrize(
    ("decision", "reason", "actor", "message"),
    [
        (ReviewDecision.REJECT, None, "ana", "needs a reason"),
        (ReviewDecision.CONFIRM, RejectionReason.OTHER, "ana", "takes no"),
        (ReviewDecision.CONFIRM, None, " ", "needs an actor"),
    ],
)
def test_service_refuses_malformed_reviews(
    session_factory: sessionmaker[Session],
    decision: ReviewDecision,
    reason: RejectionReason | None,
    actor: str,
    message: str,
) -> None:
    ticket_id = _ticket_in(session_factory, [])
    with session_factory() as session, pytest.raises(InvalidReview, match=message):
        tickets.review(session, ticket_id, decision, actor=actor, reason=reason)


def test_rejection_reasons_are_the_fixed_vocabulary() -> None:
    assert [reason.value for reason in RejectionReason] == [
        "false_detection",
        "duplicate",
        "not_a_violation",
        "out_of_scope",
        "poor_evidence",
        "other",
    ]


def test_list_refuses_pages_out_of_range(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session:
        with pytest.raises(ValueError, match="limit"):
            tickets.list_tickets(session, limit=0)
        with pytest.raises(ValueError, match="offset"):
            tickets.list_tickets(session, offset=-1)
