"""Evidence while the object store is down: tickets end with evidence stored,
none partial, none duplicated."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from minio import Minio

from tests.s3server import S3Server
from tests.vision.evidence.test_store_spool import _open_uploads
from vision.config import CameraConfig
from vision.evidence.s3 import S3Store
from vision.evidence.writer import EvidenceWriter
from vision.pipeline import evidence_listener, run_source, spooled
from vision.sink import FiledTicket, MemorySink
from vision.types import Category, Event, EvidenceState, Frame

STREET = "street_plaza_vtest_part1_f000-399.avi"


class _TrackingSink(MemorySink):
    """A sink that hears when pending evidence reached the store."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.states_at_filing: list[EvidenceState] = []

    def file(self, event: Event) -> FiledTicket:
        with self.lock:
            self.states_at_filing.append(event.evidence_state)
            return super().file(event)

    def evidence_stored(self, event_id: str, key: str) -> None:
        with self.lock:
            for n, event in enumerate(self.events):
                if event.event_id != event_id:
                    continue
                items = [
                    item.model_copy(update={"state": EvidenceState.STORED})
                    if item.key == key
                    else item
                    for item in event.evidence
                ]
                self.events[n] = event.model_copy(update={"evidence": items})


class _Every:
    """An event every ``every_s`` of stream time, at a paced analysis speed."""

    name = "every"

    def __init__(self, every_s: float, delay_s: float) -> None:
        self.every_s, self.delay_s, self.next_s = every_s, delay_s, every_s

    def process(self, frame: Frame) -> list[Event]:
        time.sleep(self.delay_s)
        if frame.ts_s < self.next_s:
            return []
        self.next_s += self.every_s
        return [
            Event(
                camera_id="plaza",
                category=Category.GARBAGE,
                rule="every",
                started_ts_s=frame.ts_s,
                ended_ts_s=frame.ts_s,
                detected_ts_s=frame.ts_s,
                started_at=datetime(2026, 5, 1, tzinfo=UTC),
                event_id=f"every-{frame.index}",
            )
        ]

    def finish(self) -> list[Event]:
        return []


@pytest.mark.slow
def test_store_outage_during_filing_ends_with_every_evidence_stored_once(
    s3_server: S3Server, videos_dir: Path, tmp_path: Path
) -> None:
    bucket = f"evidence-{uuid.uuid4().hex[:12]}"
    sink = _TrackingSink()
    s3_server.stop()  # down from the start, for a minute
    inner = S3Store(
        endpoint=s3_server.endpoint,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        bucket=bucket,
        retries=2,
        max_retry_s=1,
        ensure_bucket=False,
    )
    store = spooled(
        inner,
        tmp_path / "spool",
        cap_bytes=500 << 20,
        on_stored=evidence_listener(sink),
        retry_base_s=0.2,
        retry_max_s=1.0,
        probe_after_s=1.0,
    )
    restart = threading.Timer(60.0, s3_server.start)
    restart.start()
    try:
        run_source(
            str(videos_dir / STREET),
            CameraConfig(
                camera_id="plaza",
                throw={"enabled": False},
                clip={"preroll_s": 2.0, "postroll_s": 1.0},
            ),
            # 400 frames in about 70 s: events are filed all through the outage.
            analyzers=[_Every(every_s=4.0, delay_s=0.175)],
            writer=EvidenceWriter(store),
            sink=sink,
        )
        restart.join()
        deadline = time.monotonic() + 30
        while store.pending_count and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)  # the last on_stored call
    finally:
        restart.cancel()
        store.stop()
        s3_server.start()

    events = sink.events
    assert len(events) == 9  # at 4, 8, ..., 36 s
    assert store.pending_count == 0
    # Filed while the store was down: pending at first, stored once uploaded.
    assert EvidenceState.PENDING in sink.states_at_filing
    assert EvidenceState.STORED in sink.states_at_filing
    assert all(e.evidence_state is EvidenceState.STORED for e in events)

    client = Minio(
        s3_server.endpoint,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        secure=False,
    )
    objects = {o.object_name: o for o in client.list_objects(bucket, recursive=True)}
    items = [item for e in events for item in e.evidence]
    assert sorted(objects) == sorted(item.key for item in items)  # none twice
    for item in items:
        data = client.get_object(bucket, item.key).read()
        assert hashlib.sha256(data).hexdigest() == item.sha256  # none partial
    assert _open_uploads(s3_server, bucket) == []
