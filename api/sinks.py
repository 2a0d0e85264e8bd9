"""Ticket sinks the camera worker hands its events to.

``DatabaseSink`` files in the same process (the single-machine default);
``HttpSink`` posts to the API of a service running elsewhere with the
camera's API key. Both are idempotent on the event id, so a worker may retry
a filing whose answer it never saw without making a second ticket. Both are
also the camera's ``VerificationChannel``: they list the resolved tickets it
should re-check and report what it saw. And both hear when evidence that
was spooled while the store was down has reached it
(``evidence_stored``), so the ticket stops showing it as pending, and both
say which ticket an event went into on an earlier run (``filed_before``), so
a recording analysed again leaves that ticket's evidence alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from urllib.parse import quote

import httpx
from sqlalchemy.exc import DisconnectionError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from api import workflow
from api.filing import (
    StoredEvidenceNotFound,
    evidence_purgeable,
    file_event,
    mark_evidence_stored,
    ticket_of_event,
)
from api.notify import Notifier
from api.tables import utc_now
from vision.errors import SinkError, SinkUnavailable
from vision.sink import FiledTicket, VerificationRequest, VerificationResult
from vision.types import Event

logger = logging.getLogger(__name__)

# Answers worth retrying: the service is restarting, overloaded or its
# database is briefly unavailable.
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class TicketFilingError(SinkError):
    """An event could not be filed as a ticket."""


class TicketServiceUnavailable(TicketFilingError, SinkUnavailable):
    """The service or its database did not answer; filing later may work."""


class DatabaseSink:
    """Files tickets straight into the database, and serves the camera's
    verification requests from it."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        duplicate_window_s: float = 3600.0,
        duplicate_iou: float = 0.3,
        notifier: Notifier | None = None,
        rejected_retention_s: float = 7 * 86400.0,
    ) -> None:
        self._session_factory = session_factory
        self.duplicate_window_s = duplicate_window_s
        self.duplicate_iou = duplicate_iou
        self._notifier = notifier
        self.rejected_retention_s = rejected_retention_s

    def file(self, event: Event) -> FiledTicket:
        try:
            with self._session_factory() as session:
                ticket, created = file_event(
                    session,
                    event,
                    duplicate_window_s=self.duplicate_window_s,
                    duplicate_iou=self.duplicate_iou,
                    notifier=self._notifier,
                )
                attached = not created and ticket.event_id != event.event_id
                return FiledTicket(str(ticket.id), created=created, attached=attached)
        except (OperationalError, DisconnectionError) as exc:
            raise TicketServiceUnavailable(
                f"could not file event {event.event_id}: the database is "
                f"unavailable ({exc.__class__.__name__}: {_first_line(exc)})"
            ) from exc

    def filed_before(self, event_id: str) -> FiledTicket | None:
        """The ticket this event was filed into before, if any: the same
        recording analysed again finds its events filed, and their evidence
        (reviewed, perhaps) must stay as it was."""
        try:
            with self._session_factory() as session:
                ticket = ticket_of_event(session, event_id)
                if ticket is None:
                    return None
                return FiledTicket(str(ticket.id), created=False, state=ticket.state)
        except SQLAlchemyError as exc:
            raise TicketFilingError(f"database: {exc.__class__.__name__}") from exc

    def pending_verifications(self, camera_id: str) -> list[VerificationRequest]:
        with self._session_factory() as session:
            return workflow.pending_verifications(session, camera_id)

    def report_verification(self, result: VerificationResult) -> None:
        with self._session_factory() as session:
            workflow.report_verification(
                session, result, camera_id=None, notifier=self._notifier
            )

    def evidence_purgeable(self, event_id: str) -> bool:
        """The spool's question when it is full: may this event's evidence
        go? Yes only for a ticket rejected longer ago than the retention."""
        with self._session_factory() as session:
            return evidence_purgeable(
                session,
                event_id,
                retention_s=self.rejected_retention_s,
                now=utc_now(),
            )

    def evidence_stored(self, event_id: str, key: str) -> None:
        """Mark the ticket's evidence ``key`` stored; never raises, as the
        spool's upload thread calls it."""
        try:
            with self._session_factory() as session:
                mark_evidence_stored(session, event_id, key)
        except StoredEvidenceNotFound as exc:
            logger.warning("evidence reached the store, but %s", exc)
        except SQLAlchemyError:
            logger.exception(
                "evidence %s of event %s reached the store, but its ticket "
                "could not be updated",
                key,
                event_id,
            )


class HttpSink:
    """Posts events to ``{base_url}/api/events``, retrying with backoff.

    Network errors and 5xx answers are retried ``retries`` times, waiting
    ``backoff_s``, twice that, ... up to ``max_backoff_s``; a 4xx answer is
    final (the event itself is wrong) and raises at once.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        client: httpx.Client | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries: expected >= 0, got {retries}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s: expected > 0, got {timeout_s}")
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._client = client or httpx.Client(timeout=timeout_s)
        self._owns_client = client is None
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["X-API-Key"] = api_key

    def file(self, event: Event) -> FiledTicket:
        try:
            retrying = self._retrying(f"filing event {event.event_id}", event.camera_id)
            response = retrying(self._post, event)
        except httpx.HTTPError as exc:
            # A refused key (revoked, or rotated on the service first) is
            # fixed by an operator, not by the event: keep the event for later.
            later = _is_transient(exc) or _status_of(exc) in (401, 403)
            error = TicketServiceUnavailable if later else TicketFilingError
            raise error(
                f"could not file event {event.event_id} at {self.base_url}: "
                f"{_describe(exc)}"
            ) from exc
        body = response.json()
        return FiledTicket(
            ticket_id=str(body["ticket_id"]),
            created=response.status_code == httpx.codes.CREATED,
            attached=bool(body.get("attached", False)),
            evidence_state=body.get("evidence_state"),
        )

    def filed_before(self, event_id: str) -> FiledTicket | None:
        """The ticket this event went into on an earlier run, asked of the
        service once, without retries: when it cannot answer, the filing
        that follows retries and reports."""
        url = f"{self.base_url}/api/events/{quote(event_id, safe='')}"
        try:
            response = self._client.get(url, headers=self._headers)
            if response.status_code == httpx.codes.NOT_FOUND:
                return None
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise TicketFilingError(
                f"could not ask {self.base_url} about event {event_id}: "
                f"{_describe(exc)}"
            ) from exc
        body = response.json()
        return FiledTicket(str(body["ticket_id"]), created=False, state=body["state"])

    def pending_verifications(self, camera_id: str) -> list[VerificationRequest]:
        url = f"{self.base_url}/api/cameras/{camera_id}/verifications"
        try:
            response = self._client.get(url, headers=self._headers)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise TicketFilingError(
                f"could not read verifications of camera {camera_id} at "
                f"{self.base_url}: {_describe(exc)}"
            ) from exc
        return [
            VerificationRequest(
                ticket_id=str(item["ticket_id"]),
                event=Event.model_validate(item["event"]),
                clear_s=float(item["clear_s"]),
            )
            for item in response.json()
        ]

    def report_verification(self, result: VerificationResult) -> None:
        url = f"{self.base_url}/api/verifications/{result.ticket_id}/result"
        body = json.dumps(
            {
                "outcome": str(result.outcome),
                "evidence_event": result.evidence_event.model_dump(mode="json"),
            }
        )

        def post() -> httpx.Response:
            response = self._client.post(url, content=body, headers=self._headers)
            response.raise_for_status()
            return response

        what = f"reporting verification of ticket {result.ticket_id}"
        try:
            self._retrying(what, result.evidence_event.camera_id)(post)
        except httpx.HTTPError as exc:
            raise TicketFilingError(
                f"could not report verification of ticket {result.ticket_id} at "
                f"{self.base_url}: {_describe(exc)}"
            ) from exc

    def evidence_stored(self, event_id: str, key: str) -> None:
        """Tell the service that evidence ``key`` reached the store, retrying
        like a filing; failures are logged, never raised, as the spool's
        upload thread calls it."""
        url = f"{self.base_url}/api/events/{quote(event_id, safe='')}/evidence-stored"
        body = json.dumps({"key": key})

        def post() -> httpx.Response:
            response = self._client.post(url, content=body, headers=self._headers)
            response.raise_for_status()
            return response

        try:
            self._retrying(f"reporting stored evidence {key}")(post)
        except httpx.HTTPError as exc:
            logger.warning(
                "evidence %s of event %s reached the store, but %s was not told: %s",
                key,
                event_id,
                self.base_url,
                _describe(exc),
            )

    def _retrying(self, what: str, camera_id: str | None = None) -> Retrying:
        return Retrying(
            retry=retry_if_exception(_is_transient),
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=self.backoff_s, max=self.max_backoff_s),
            before_sleep=self._log_retry(what, camera_id),
            reraise=True,
        )

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> HttpSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _post(self, event: Event) -> httpx.Response:
        response = self._client.post(
            f"{self.base_url}/api/events",
            content=event.model_dump_json(),
            headers=self._headers,
        )
        response.raise_for_status()
        return response

    def _log_retry(
        self, what: str, camera_id: str | None
    ) -> Callable[[RetryCallState], None]:
        def log(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            logger.warning(
                "%s at %s failed (attempt %s of %s): %s; retrying",
                what,
                self.base_url,
                state.attempt_number,
                self.retries + 1,
                _describe(exc) if exc else "unknown error",
                extra={"camera_id": camera_id},
            )

        return log


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in _RETRY_STATUS
    return isinstance(exc, httpx.TransportError)


def _status_of(exc: BaseException) -> int | None:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code
    return None


def _first_line(exc: BaseException) -> str:
    """A driver's message without the SQL and the background link after it."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        try:
            body = response.json()
        except ValueError:
            body = None
        detail = body.get("detail") if isinstance(body, dict) else None
        return f"HTTP {response.status_code}" + (f" ({detail})" if detail else "")
    return f"{type(exc).__name__}: {exc}"
