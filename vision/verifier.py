"""A camera worker's side of verifying fixes.

When a ticket is resolved, the service records a verification request for
the camera that filed it. ``CameraVerifier`` is a frame hook: every
``poll_s`` seconds of stream time it asks the service for the camera's open
requests, hands each to the analyzer that runs the ticket's rule, and when
the analyzer has an answer (gone, or still there) writes fresh evidence after
the post-roll and reports it. The service then verifies or reopens the
ticket.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from vision.errors import CitywatchError
from vision.sink import (
    VerificationChannel,
    VerificationRequest,
    VerificationResult,
)
from vision.types import Event, Frame
from vision.worker import CameraWorker

if TYPE_CHECKING:
    # The street re-check and its tracking libraries load only with street
    # rules; a camera that watches for throws alone never needs them.
    from vision.analyze.verify import CheckOutcome

logger = logging.getLogger(__name__)


class VerifyingAnalyzer(Protocol):
    def start_verification(self, request: VerificationRequest) -> bool: ...

    def take_verification_outcomes(self) -> list[CheckOutcome]: ...


# Longest pause, in stream seconds, between questions to a service that is away.
_MAX_WAIT_S = 60.0


class CameraVerifier:
    def __init__(
        self,
        worker: CameraWorker,
        channel: VerificationChannel,
        *,
        poll_s: float = 1.0,
    ) -> None:
        self._worker = worker
        self._channel = channel
        self._poll_s = poll_s
        self._wait_s = poll_s  # grows while the service does not answer
        self._last_poll_ts_s: float | None = None
        self._started: set[str] = set()
        self._analyzers: list[VerifyingAnalyzer] = [
            a  # type: ignore[misc]  # narrowed by the hasattr test
            for a in worker.analyzers
            if hasattr(a, "start_verification")
        ]
        self.log = logger.getChild(worker.camera.camera_id)

    def __call__(self, frame: Frame) -> None:
        if not self._analyzers:
            return
        if self._due(frame.ts_s):
            self._start_new_checks()
        for analyzer in self._analyzers:
            for outcome in analyzer.take_verification_outcomes():
                self._answer(outcome)

    def _due(self, ts_s: float) -> bool:
        if (
            self._last_poll_ts_s is not None
            and ts_s - self._last_poll_ts_s < self._wait_s
        ):
            return False
        self._last_poll_ts_s = ts_s
        return True

    def _start_new_checks(self) -> None:
        try:
            requests = self._channel.pending_verifications(
                self._worker.camera.camera_id
            )
        except CitywatchError as exc:
            # Asked on the analysis thread: a service that is away must not
            # be waited for every second, nor fill the log.
            if self._wait_s == self._poll_s:
                self.log.warning(
                    "cannot ask the service for fixes to verify: %s; asking "
                    "less often until it answers",
                    exc,
                )
            self._wait_s = min(self._wait_s * 2, _MAX_WAIT_S)
            return
        if self._wait_s != self._poll_s:
            self.log.info("the service answers again; fixes are verified as usual")
            self._wait_s = self._poll_s
        for request in requests:
            if request.ticket_id in self._started:
                continue
            if any(a.start_verification(request) for a in self._analyzers):
                self._started.add(request.ticket_id)
                self.log.info(
                    "camera %s: re-checking the place of resolved ticket %s",
                    self._worker.camera.camera_id,
                    request.ticket_id,
                )

    def _answer(self, outcome: CheckOutcome) -> None:
        def report(event: Event) -> None:
            result = VerificationResult(
                ticket_id=outcome.request.ticket_id,
                outcome=outcome.outcome,
                evidence_event=event,
            )
            try:
                self._channel.report_verification(result)
            except CitywatchError as exc:
                self.log.error(
                    "camera %s: verification of ticket %s could not be reported: %s",
                    self._worker.camera.camera_id,
                    outcome.request.ticket_id,
                    exc,
                )
                self._started.discard(outcome.request.ticket_id)  # ask again
                return
            self.log.info(
                "camera %s: ticket %s re-checked: %s",
                self._worker.camera.camera_id,
                outcome.request.ticket_id,
                outcome.outcome.value,
            )

        self._worker.hold_for_delivery(outcome.event, report)
