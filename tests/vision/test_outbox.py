"""The outbox: events the ticket service cannot take now wait on disk and are
filed, once each, when it answers again."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from eval.streams import wait_until
from tests.api.builders import make_event
from vision.errors import SinkError, SinkUnavailable
from vision.outbox import EventKept, KeepingSink, Outbox
from vision.sink import FiledTicket, MemorySink
from vision.types import Event, EvidenceItem, EvidenceKind, EvidenceState


class _FlakyService(MemorySink):
    """A sink that is down while ``down`` is set, and refuses ``refused`` ids."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.refused: set[str] = set()
        self.told: list[tuple[str, str]] = []

    def file(self, event: Event) -> FiledTicket:
        if self.down:
            raise SinkUnavailable("the service at http://tickets.test did not answer")
        if event.event_id in self.refused:
            raise SinkError(f"event {event.event_id}: HTTP 422 (invalid_event)")
        return super().file(event)

    def evidence_stored(self, event_id: str, key: str) -> None:
        self.told.append((event_id, key))


def _event_with_pending_clip() -> Event:
    event = make_event(camera_id="gate-east")
    event.evidence = [
        EvidenceItem(
            kind=EvidenceKind.CLIP,
            key=f"gate-east/{event.event_id}/clip.mp4",
            content_type="video/mp4",
            state=EvidenceState.PENDING,
            reason="object store unavailable",
        )
    ]
    return event


def test_an_event_the_service_cannot_take_waits_and_is_filed_once(
    tmp_path: Path,
) -> None:
    service = _FlakyService()
    sink = KeepingSink(service, Outbox(tmp_path / "outbox"))
    kept = _event_with_pending_clip()

    service.down = True
    with pytest.raises(
        EventKept, match=r"did not answer; the event is kept in .*outbox"
    ):
        sink.file(kept)
    sink.evidence_stored(kept.event_id, kept.evidence[0].key)  # upload went on
    service.down = False
    later = sink.file(make_event(camera_id="gate-east"))

    assert later.created
    assert [e.event_id for e in service.events] == [
        service.events[0].event_id,
        kept.event_id,
    ]
    assert service.events[1].evidence_state is EvidenceState.STORED
    assert service.told == []  # told through the kept file, not the service
    assert sink.kept_count == 0
    assert [(e.event_id, f.created) for e, f in sink.refiled] == [(kept.event_id, True)]
    assert sink.refile() == 0  # nothing twice


def test_a_restarted_worker_files_what_the_last_one_kept(tmp_path: Path) -> None:
    service = _FlakyService()
    service.down = True
    first = KeepingSink(service, Outbox(tmp_path / "outbox"))
    events = [make_event(camera_id="gate-east") for _ in range(3)]
    for event in events:
        with pytest.raises(EventKept):
            first.file(event)
    first.close()
    assert first.kept_count == 3

    service.down = False
    second = KeepingSink(service, Outbox(tmp_path / "outbox"), retry_s=0.05)
    second.start()
    try:
        assert wait_until(lambda: second.kept_count == 0, timeout_s=10)
    finally:
        second.close()

    assert [e.event_id for e in service.events] == [e.event_id for e in events]


def test_the_retry_thread_waits_out_an_outage(tmp_path: Path) -> None:
    service = _FlakyService()
    service.down = True
    sink = KeepingSink(service, Outbox(tmp_path / "outbox"), retry_s=0.05)
    sink.start()
    try:
        with pytest.raises(EventKept):
            sink.file(make_event(camera_id="gate-east"))
        assert not wait_until(lambda: sink.kept_count == 0, timeout_s=0.3)
        service.down = False
        assert wait_until(lambda: sink.kept_count == 0, timeout_s=10)
    finally:
        sink.close()
    assert len(service.events) == 1


def test_damaged_and_refused_events_are_set_aside_not_retried_forever(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = _FlakyService()
    outbox = Outbox(tmp_path / "outbox")
    sink = KeepingSink(service, outbox)
    refused, fine = make_event(camera_id="gate-east"), make_event(camera_id="gate-east")
    outbox.keep(refused)
    outbox.keep(fine)
    (outbox.directory / "torn.json").write_text('{"event_id": "torn", "camer')
    service.refused.add(refused.event_id)

    with caplog.at_level(logging.ERROR, logger="vision.outbox"):
        assert sink.refile() == 1

    assert [e.event_id for e in service.events] == [fine.event_id]
    left = sorted(p.name for p in outbox.directory.iterdir())
    assert left == [f"{refused.event_id}.refused", "torn.damaged"]
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "refused kept event" in messages and "cannot be read" in messages


def test_evidence_of_a_kept_event_is_never_purged(tmp_path: Path) -> None:
    service = _FlakyService()
    service.down = True
    sink = KeepingSink(service, Outbox(tmp_path / "outbox"))
    kept = make_event(camera_id="gate-east")
    with pytest.raises(EventKept):
        sink.file(kept)

    assert sink.evidence_purgeable(kept.event_id) is False


class _WriterStoppedMidway:
    """An evidence writer interrupted (Ctrl-C) while it uploads the clip."""

    def write(self, event: Event, frames, camera) -> Event:  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt


def test_an_event_being_filed_when_the_camera_is_stopped_is_kept(
    tmp_path: Path,
) -> None:
    from datetime import UTC, datetime

    import numpy as np

    from vision.config import CameraConfig
    from vision.types import Category, Frame
    from vision.worker import CameraWorker

    class _FindsOne:
        name = "finds-one"

        def process(self, frame: Frame) -> list[Event]:
            return []

        def finish(self) -> list[Event]:
            return [
                Event(
                    camera_id="gate-east",
                    category=Category.GARBAGE,
                    rule="finds-one",
                    started_ts_s=0.0,
                    ended_ts_s=0.0,
                    detected_ts_s=0.0,
                    started_at=datetime(2026, 5, 1, tzinfo=UTC),
                )
            ]

    service = _FlakyService()
    sink = KeepingSink(service, Outbox(tmp_path / "outbox"))
    worker = CameraWorker(
        CameraConfig(camera_id="gate-east", throw={"enabled": False}),
        [_FindsOne()],
        _WriterStoppedMidway(),  # type: ignore[arg-type]
        sink,
        session_key="test",
    )
    frame = Frame(
        image=np.zeros((48, 64, 3), np.uint8),
        ts_s=0.0,
        index=0,
        captured_at=datetime(2026, 5, 1, tzinfo=UTC),
    )

    with pytest.raises(KeyboardInterrupt):
        worker.run([frame])

    assert service.events == []
    assert sink.refile() == 1  # the next run files it
    (filed,) = service.events
    assert filed.evidence_state is EvidenceState.MISSING
    assert "stopped while its evidence was written" in (filed.evidence[0].reason or "")


def test_an_outbox_on_a_full_disk_says_the_event_is_lost_without_crashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    service = _FlakyService()
    service.down = True
    outbox = Outbox(tmp_path / "outbox")
    sink = KeepingSink(service, outbox)

    def full(event: Event) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outbox, "keep", full)

    with pytest.raises(SinkError, match=r"could not be kept either.*No space left"):
        sink.file(make_event(camera_id="gate-east"))
    assert outbox.count == 0
