"""Events kept on disk while the ticket service cannot be reached.

A camera worker files each event as soon as its evidence is written. When
the sink says the service (or its database) is unavailable, the event would
be lost with the worker's memory: ``KeepingSink`` writes it to an outbox
directory instead, one JSON file per event, and files it when the service
answers again — on the next filing, every ``retry_s`` from a background
thread, and when a worker starts over the same outbox after a restart.
Filing is idempotent on the event id, so an event filed twice (a retry whose
answer was lost) still makes one ticket.

Evidence that reaches the store while its event waits in the outbox is
marked stored in the kept file, so the ticket is filed with it stored.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from pathlib import Path

from pydantic import ValidationError

from vision.errors import SinkError, SinkUnavailable
from vision.sink import FiledTicket, TicketSink
from vision.types import Event, EvidenceState

logger = logging.getLogger(__name__)


class EventKept(SinkUnavailable):
    """The sink was unavailable; the event waits in the outbox."""


class Outbox:
    """A directory of events not yet filed, oldest first."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        # Kept up to date by every change made here, and counted again at
        # each listing, so that asking "anything waiting?" on every filing
        # and status tick reads no directory.
        self._count_lock = threading.Lock()
        self._count = 0
        self.kept()

    @property
    def count(self) -> int:
        """Events waiting."""
        return self._count

    def keep(self, event: Event) -> Path:
        """Write the event, whole or not at all (a crash leaves no half file)."""
        path = self.path_of(event.event_id)
        partial = path.with_suffix(".part")
        partial.write_text(event.model_dump_json(), encoding="utf-8")
        with self._count_lock:
            known = path.exists()
            os.replace(partial, path)
            if not known:
                self._count += 1
        return path

    def kept(self) -> list[Path]:
        """The waiting events' files, oldest first."""
        with self._count_lock:
            files = [p for p in self.directory.glob("*.json") if p.is_file()]
            self._count = len(files)
        return sorted(files, key=lambda p: p.stat().st_mtime_ns)

    def holds(self, event_id: str) -> bool:
        return self.path_of(event_id).exists()

    def load(self, path: Path) -> Event | None:
        """The kept event, or None for a damaged file (set aside, logged)."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None  # filed meanwhile
        try:
            return Event.model_validate_json(text)
        except (ValidationError, ValueError) as exc:
            aside = self.set_aside(path, ".damaged")
            logger.error(
                "outbox %s: %s cannot be read and was set aside as %s: %s",
                self.directory,
                path.name,
                aside.name,
                exc,
            )
            return None

    def remove(self, event_id: str) -> None:
        self._take_out(self.path_of(event_id), None)

    def set_aside(self, path: Path, suffix: str) -> Path:
        """Move a kept file out of the way (damaged, refused) for a person
        to look at; it is not tried again."""
        aside = path.with_suffix(suffix)
        self._take_out(path, aside)
        return aside

    def _take_out(self, path: Path, aside: Path | None) -> None:
        with self._count_lock:
            try:
                if aside is None:
                    path.unlink()
                else:
                    os.replace(path, aside)
            except FileNotFoundError:
                return
            self._count -= 1

    def path_of(self, event_id: str) -> Path:
        # Event ids are hex or uuid-like; anything else is made safe.
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in event_id)
        return self.directory / f"{safe}.json"


class KeepingSink:
    """A ticket sink that keeps what ``inner`` cannot file now, and files it
    when ``inner`` answers again. Other questions go to ``inner`` as they are.
    """

    def __init__(
        self, inner: TicketSink, outbox: Outbox, *, retry_s: float = 30.0
    ) -> None:
        self.inner = inner
        self.outbox = outbox
        self.retry_s = retry_s
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # The latest refilings, for a report; a worker that runs for months
        # keeps only a count of the rest.
        self.refiled: deque[tuple[Event, FiledTicket]] = deque(maxlen=1000)
        self.refiled_count = 0

    @property
    def kept_count(self) -> int:
        return self.outbox.count

    def file(self, event: Event) -> FiledTicket:
        try:
            filed = self.inner.file(event)
        except SinkUnavailable as exc:
            try:
                path = self.keep(event)
            except OSError as disk:  # a full or broken disk: say so, go on
                raise SinkError(
                    f"{exc}; the event could not be kept either "
                    f"({self.outbox.directory}: {disk.strerror or disk}); it is lost"
                ) from exc
            raise EventKept(
                f"{exc}; the event is kept in {path} and will be filed when "
                "the service answers"
            ) from exc
        self.refile()  # the service answers: what waited goes now
        return filed

    def keep(self, event: Event) -> Path:
        """Keep an event for a later filing without trying the service now
        (the camera is being stopped)."""
        with self._lock:
            return self.outbox.keep(event)

    def refile(self) -> int:
        """File what the outbox holds, oldest first, until the sink fails;
        returns how many were filed."""
        filed_now = 0
        if not self.outbox.count:
            return 0
        with self._lock:
            for path in self.outbox.kept():
                event = self.outbox.load(path)
                if event is None:
                    continue
                try:
                    filed = self.inner.file(event)
                except SinkUnavailable:
                    break  # still down: keep it all for the next try
                except Exception as exc:  # refused for good: set aside, logged
                    self._set_aside(path, exc)
                    continue
                self.outbox.remove(event.event_id)
                self.refiled.append((event, filed))
                self.refiled_count += 1
                filed_now += 1
                logger.info(
                    "camera %s: kept event %s filed as ticket %s",
                    event.camera_id,
                    event.event_id,
                    filed.ticket_id,
                )
        return filed_now

    def filed_before(self, event_id: str) -> FiledTicket | None:
        ask = getattr(self.inner, "filed_before", None)
        return None if ask is None else ask(event_id)

    def evidence_stored(self, event_id: str, key: str) -> None:
        """Evidence reached the store: mark it in a kept event, or tell the
        sink as usual."""
        with self._lock:
            if self.outbox.holds(event_id):
                self._mark_kept_stored(event_id, key)
                return
        update = getattr(self.inner, "evidence_stored", None)
        if update is not None:
            update(event_id, key)

    def evidence_purgeable(self, event_id: str) -> bool:
        if self.outbox.holds(event_id):
            return False  # its ticket is not even filed yet
        ask = getattr(self.inner, "evidence_purgeable", None)
        return False if ask is None else bool(ask(event_id))

    def start(self) -> None:
        """File what an earlier run kept, then keep trying in the background."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop retrying (what is kept stays on disk) and close ``inner``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.retry_s + 60.0)
            self._thread = None
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def _run(self) -> None:
        while True:
            if self.kept_count:
                try:
                    self.refile()
                except Exception:  # never let the retry thread die
                    logger.exception(
                        "outbox %s: refiling failed", self.outbox.directory
                    )
            if self._stop.wait(self.retry_s):
                return

    def _mark_kept_stored(self, event_id: str, key: str) -> None:
        path = self.outbox.path_of(event_id)
        event = self.outbox.load(path)
        if event is None:
            return
        for item in event.evidence:
            if item.key == key:
                item.state = EvidenceState.STORED
                item.reason = None
        self.outbox.keep(event)

    def _set_aside(self, path: Path, exc: Exception) -> None:
        aside = self.outbox.set_aside(path, ".refused")
        logger.error(
            "outbox %s: the service refused kept event %s; set aside as %s: %s",
            self.outbox.directory,
            path.stem,
            aside.name,
            exc,
        )
