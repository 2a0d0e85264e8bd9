"""The local spool: evidence outlives a store outage, within a byte cap."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest
from minio import Minio

from tests.s3server import S3Server
from vision.evidence.store import LocalDirStore, S3Store, SpoolingStore
from vision.types import EvidenceState

KB = 1000


def _closed_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def _unreachable_store() -> S3Store:
    return S3Store(
        endpoint=_closed_endpoint(),
        access_key="a",
        secret_key="b",
        bucket="evidence-down",
        retries=1,
        ensure_bucket=False,
    )


def _blob(index: int, size_bytes: int = 100 * KB) -> bytes:
    return index.to_bytes(4, "big") * (size_bytes // 4)


def _s3_objects(s3: S3Server, bucket: str) -> dict[str, str]:
    client = Minio(
        endpoint=s3.endpoint,
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        secure=False,
    )
    found = {}
    for obj in client.list_objects(bucket_name=bucket, recursive=True):
        response = client.get_object(bucket_name=bucket, object_name=obj.object_name)
        try:
            found[obj.object_name or ""] = hashlib.sha256(response.read()).hexdigest()
        finally:
            response.close()
            response.release_conn()
    return found


def _open_uploads(s3: S3Server, bucket: str) -> list[str]:
    client = boto3.client(
        "s3",
        endpoint_url=s3.url,
        region_name="us-east-1",
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
    )
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [upload["Key"] for upload in uploads]


def test_healthy_store_stores_directly(tmp_path: Path) -> None:
    spool = SpoolingStore(LocalDirStore(tmp_path / "store"), tmp_path / "spool", 10**6)

    put = spool.put_bytes("cam/ev/snap.jpg", b"jpeg", "image/jpeg")

    assert put.state is EvidenceState.STORED
    assert (spool.pending_count, spool.spool_bytes) == (0, 0)


def test_outage_spools_then_backlog_uploads_whole_and_once(
    s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = f"evidence-{uuid.uuid4().hex[:12]}"
    blobs = {f"cam-1/ev-{n}/snap.jpg": _blob(n) for n in range(4)}
    big = tmp_path / "clip.mp4"
    big.write_bytes(os.urandom(6 * 1024 * 1024))  # goes multipart
    stored_keys: list[str] = []

    s3_server.stop()
    try:
        inner = S3Store(
            endpoint=s3_server.endpoint,
            access_key=s3_server.access_key,
            secret_key=s3_server.secret_key,
            bucket=bucket,
            part_size_bytes=5 * 1024 * 1024,
            retries=2,
            max_retry_s=2,
            ensure_bucket=False,  # the service starts while the store is down
        )
        spool = SpoolingStore(
            inner, tmp_path / "spool", 50 * 1024**2, on_stored=stored_keys.append
        )
        puts = [spool.put_bytes(k, b, "image/jpeg") for k, b in blobs.items()]
        puts.append(spool.put_file("cam-1/ev-4/clip.mp4", big, "video/mp4"))
        drained_while_down = spool.drain_once()
        pending_while_down = spool.pending_count
    finally:
        s3_server.start()  # same port, empty: the bucket is gone too
    drained = spool.drain_once()

    expected = {k: hashlib.sha256(b).hexdigest() for k, b in blobs.items()}
    expected["cam-1/ev-4/clip.mp4"] = hashlib.sha256(big.read_bytes()).hexdigest()
    assert [p.state for p in puts] == [EvidenceState.PENDING] * 5
    assert all("unreachable" in (p.reason or "") for p in puts[:1])
    assert (drained_while_down, pending_while_down) == (0, 5)
    assert drained == 5
    assert sorted(stored_keys) == sorted(expected)
    assert _s3_objects(s3_server, bucket) == expected
    assert _open_uploads(s3_server, bucket) == []
    assert (spool.pending_count, spool.spool_bytes) == (0, 0)
    assert list((tmp_path / "spool").iterdir()) == []


def test_background_thread_uploads_backlog_when_store_returns(tmp_path: Path) -> None:
    down = _unreachable_store()
    stored_keys: list[str] = []
    spool = SpoolingStore(
        down,
        tmp_path / "spool",
        10**6,
        on_stored=stored_keys.append,
        retry_base_s=0.05,
        retry_max_s=0.2,
    )
    spool.put_bytes("cam/ev/snap.jpg", b"jpeg", "image/jpeg")
    spool.start()
    try:
        spool.inner = LocalDirStore(tmp_path / "store")  # the store is back
        deadline = time.monotonic() + 30
        while spool.pending_count and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        spool.stop()

    assert stored_keys == ["cam/ev/snap.jpg"]
    assert (tmp_path / "store" / "cam" / "ev" / "snap.jpg").read_bytes() == b"jpeg"


def test_pending_evidence_is_readable_from_the_spool(tmp_path: Path) -> None:
    spool = SpoolingStore(_unreachable_store(), tmp_path / "spool", 10**6)
    spool.put_bytes("cam/ev/clip.mp4", b"0123456789", "video/mp4")

    chunks, info = spool.open("cam/ev/clip.mp4")

    assert b"".join(chunks) == b"0123456789"
    assert (info.size_bytes, info.content_type) == (10, "video/mp4")
    assert b"".join(spool.open_range("cam/ev/clip.mp4", 2, 4)) == b"234"
    assert spool.exists("cam/ev/clip.mp4")
    assert spool.url_for("cam/ev/clip.mp4") is None


def test_spool_survives_a_restart_and_drops_partial_writes(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    first = SpoolingStore(_unreachable_store(), spool_dir, 10**6)
    first.put_bytes("cam/ev-1/snap.jpg", b"one", "image/jpeg")
    first.put_bytes("cam/ev-2/snap.jpg", b"two", "image/jpeg")
    (spool_dir / ".half-written.tmp").write_bytes(b"crash")  # a crash mid-write
    (spool_dir / f"{'0' * 64}.deadbeef.bin").write_bytes(b"no manifest")

    second = SpoolingStore(LocalDirStore(tmp_path / "store"), spool_dir, 10**6)
    drained = second.drain_once()

    assert second.pending_keys() == []
    assert drained == 2
    assert sorted(p.name for p in spool_dir.iterdir()) == []
    assert (tmp_path / "store" / "cam" / "ev-2" / "snap.jpg").read_bytes() == b"two"


def test_spool_cap_purges_only_what_policy_allows_then_reports_missing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A 2 MB spool, 100 kB clips; the store is unreachable the whole time.
    rejected = {f"cam/ev-{n}/clip.mp4" for n in (1, 2, 3, 4)}
    open_tickets = {f"cam/ev-{n}/clip.mp4" for n in (0, 5, 6)}
    spool = SpoolingStore(
        _unreachable_store(),
        tmp_path / "spool",
        cap_bytes=2000 * KB,
        low_water_bytes=1500 * KB,
        may_purge=rejected.__contains__,
    )

    results = {}
    for n in range(30):
        key = f"cam/ev-{n}/clip.mp4"
        results[key] = spool.put_bytes(key, _blob(n), "video/mp4")

    states = {key: put.state for key, put in results.items()}
    pending = spool.pending_keys()
    missing = [key for key, state in states.items() if state is EvidenceState.MISSING]
    alarms = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert not rejected & set(pending)  # purged to make room, oldest first
    assert open_tickets <= set(pending)  # never purged
    assert len(pending) == 20 and spool.spool_bytes == 2000 * KB
    assert spool.disk_pressure == pytest.approx(1.0)
    assert missing == [f"cam/ev-{n}/clip.mp4" for n in range(24, 30)]
    assert "local spool full" in (results[missing[0]].reason or "")
    assert results[missing[0]].sha256 == hashlib.sha256(_blob(24)).hexdigest()
    assert spool.missing_count == 6
    assert len(alarms) == 6 and "storage alarm" in alarms[0].getMessage()


def test_spool_reports_missing_when_disk_is_nearly_full(tmp_path: Path) -> None:
    spool = SpoolingStore(
        _unreachable_store(),
        tmp_path / "spool",
        cap_bytes=10**6,
        min_free_bytes=2**62,  # more than any disk has free
    )

    put = spool.put_bytes("cam/ev/clip.mp4", b"x" * 1000, "video/mp4")

    assert put.state is EvidenceState.MISSING
    assert "disk of the local spool nearly full" in (put.reason or "")
    assert spool.pending_count == 0


def test_spool_pressure_figure_and_low_water_validation(tmp_path: Path) -> None:
    spool = SpoolingStore(_unreachable_store(), tmp_path / "spool", cap_bytes=1000)
    spool.put_bytes("cam/ev/a.jpg", b"x" * 250, "image/jpeg")

    assert spool.disk_pressure == pytest.approx(0.25)
    assert spool.disk_free_bytes > 0
    with pytest.raises(ValueError, match="low_water_bytes"):
        SpoolingStore(_unreachable_store(), tmp_path / "s2", 1000, low_water_bytes=2000)


def test_puts_during_a_flapping_outage_all_end_stored_exactly_once(
    tmp_path: Path,
) -> None:
    store = LocalDirStore(tmp_path / "store")
    down = _unreachable_store()
    stored_keys: list[str] = []
    spool = SpoolingStore(
        down,
        tmp_path / "spool",
        10**7,
        on_stored=stored_keys.append,
        retry_base_s=0.01,
        retry_max_s=0.05,
        probe_after_s=0.0,
    )
    keys = [f"cam-{t}/ev-{n}/snap.jpg" for t in range(2) for n in range(15)]

    def put_all(thread_keys: list[str]) -> None:
        for n, key in enumerate(thread_keys):
            spool.inner = store if n % 4 < 2 else down  # up, up, down, down...
            spool.put_bytes(key, key.encode(), "image/jpeg")

    spool.start()
    try:
        workers = [
            threading.Thread(target=put_all, args=(keys[:15],)),
            threading.Thread(target=put_all, args=(keys[15:],)),
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        spool.inner = store
        deadline = time.monotonic() + 30
        while spool.pending_count and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        spool.stop()

    assert spool.pending_count == 0
    assert len(stored_keys) == len(set(stored_keys))  # no key uploaded twice
    for key in keys:
        chunks, _ = store.open(key)
        assert b"".join(chunks) == key.encode()
