"""Where a camera worker hands its events.

The worker knows nothing of HTTP or the database: it calls ``file`` on a
``TicketSink``. The service provides two (``api.sinks``): one that writes to
the database in the same process, and one that posts to the API of a service
running elsewhere. Filing is idempotent on ``event.event_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from vision.types import Event


@dataclass(frozen=True, slots=True)
class FiledTicket:
    ticket_id: str
    created: bool  # False when the event was already filed (a retry)
    # The ticket's state, where the sink says (a recording analysed again
    # finds its tickets already reviewed).
    state: str | None = None
    # The event repeated an open ticket's place and was attached to it: the
    # ticket keeps its own evidence.
    attached: bool = False
    # The ticket's evidence state as the service filed it, where it says.
    evidence_state: str | None = None


class VerificationOutcome(StrEnum):
    GONE = "gone"  # the problem stayed away for the required time: verified
    STILL_THERE = "still_there"  # the rule fired again at the same place: reopen


@dataclass(frozen=True, slots=True)
class VerificationRequest:
    """The service asks a camera to look at a resolved ticket's place again.

    ``event`` is the event the ticket was filed from: its rule, zone and
    boxes say which place to re-check. ``clear_s`` is how long the place must
    stay clear, in stream seconds, to count as fixed.
    """

    ticket_id: str
    event: Event
    clear_s: float


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """The camera's answer, with fresh evidence of what it saw."""

    ticket_id: str
    outcome: VerificationOutcome
    evidence_event: Event


class TicketSink(Protocol):
    def file(self, event: Event) -> FiledTicket:
        """File ``event``; a retry of the same event id files nothing new.

        Raises ``vision.errors.SinkError`` when the ticket cannot be filed.
        """
        ...


class MemorySink:
    """Keeps filed events in a list: for tests and the eval harness."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def file(self, event: Event) -> FiledTicket:
        for index, known in enumerate(self.events):
            if known.event_id == event.event_id:
                return FiledTicket(ticket_id=str(index), created=False)
        self.events.append(event)
        return FiledTicket(ticket_id=str(len(self.events) - 1), created=True)


class VerificationChannel(Protocol):
    """How a camera worker learns of fixes to check and reports what it saw."""

    def pending_verifications(self, camera_id: str) -> list[VerificationRequest]: ...

    def report_verification(self, result: VerificationResult) -> None: ...
