"""The S3 store against a real S3-protocol server (moto's standalone server).

Covers media types on the single-part and multipart paths (stat and presigned
GET), bucket start-up by several workers at once and with refused
permissions, and uploads through a faulty front that answers SlowDown, resets
a connection mid-body, or always fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import boto3
import numpy as np
import pytest
from minio import Minio
from minio.error import S3Error

from tests.s3server import S3Server, start_s3_server
from vision.errors import ClipUploadError, StoreError
from vision.evidence.store import S3Store, SpoolingStore
from vision.types import EvidenceState

MIB = 1024 * 1024
REPO_ROOT = Path(__file__).resolve().parents[3]


def _bucket() -> str:
    return f"evidence-{uuid.uuid4().hex[:12]}"


def _store(s3: S3Server, bucket: str, endpoint: str | None = None, **kw) -> S3Store:  # type: ignore[no-untyped-def]
    return S3Store(
        endpoint=endpoint or s3.endpoint,
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        bucket=bucket,
        part_size_bytes=5 * MIB,
        **kw,
    )


def _client(s3: S3Server) -> Minio:
    return Minio(
        endpoint=s3.endpoint,
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        secure=False,
    )


def _boto(s3: S3Server, service: str = "s3"):  # type: ignore[no-untyped-def]
    return boto3.client(
        service,
        endpoint_url=s3.url,
        region_name="us-east-1",
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
    )


def _objects(s3: S3Server, bucket: str) -> dict[str, int]:
    listed = _client(s3).list_objects(bucket_name=bucket, recursive=True)
    return {obj.object_name or "": obj.size or 0 for obj in listed}


def _open_uploads(s3: S3Server, bucket: str) -> list[str]:
    answer = _boto(s3).list_multipart_uploads(Bucket=bucket)
    return [upload["Key"] for upload in answer.get("Uploads", [])]


# -- media types on both upload paths ----------------------------------------


@pytest.fixture
def big_clip(tmp_path: Path) -> Path:
    """A real H.264 MP4 of about 12 MB: in 5 MiB parts it goes multipart."""
    clip = tmp_path / "clip.mp4"
    rng = np.random.default_rng(7)
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.bit_rate = 12_000_000
        stream.options = {"preset": "ultrafast"}
        for _ in range(200):
            # Noise keeps the encoder at its bit rate: 8 s, about 12 MB.
            image = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    assert clip.stat().st_size > 10 * MIB
    return clip


@pytest.mark.parametrize(
    ("source", "key", "content_type", "multipart"),
    [
        ("big_clip", "cam-1/ev/clip.mp4", "video/mp4", True),
        (
            "videos/throw_facade_ball_720p30.mp4",
            "cam-1/ev/short.mp4",
            "video/mp4",
            False,
        ),
        ("images/zidane.jpg", "cam-1/ev/snapshot.jpg", "image/jpeg", False),
    ],
)
def test_media_type_and_inline_disposition_survive_stat_and_presigned_get(
    s3_server: S3Server,
    shared_dir: Path,
    request: pytest.FixtureRequest,
    source: str,
    key: str,
    content_type: str,
    multipart: bool,
) -> None:
    if source == "big_clip":
        path = request.getfixturevalue("big_clip")
    else:
        path = shared_dir / "data" / source
    bucket = _bucket()
    store = _store(s3_server, bucket)

    stored = store.put_file(key, path, content_type)
    stat = _client(s3_server).stat_object(bucket_name=bucket, object_name=key)
    url = store.url_for(key, expires_s=300)
    assert url is not None
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
        headers = response.headers

    assert stat.content_type == content_type
    assert stat.metadata["content-disposition"].startswith("inline")
    assert ("-" in (stat.etag or "")) is multipart  # multipart ETags end in -N
    assert headers["Content-Type"] == content_type
    assert headers["Content-Disposition"] == f'inline; filename="{Path(key).name}"'
    assert hashlib.sha256(body).hexdigest() == stored.sha256


def test_part_size_below_s3_minimum_is_refused(s3_server: S3Server) -> None:
    with pytest.raises(ValueError, match="part_size_bytes"):
        S3Store(
            endpoint=s3_server.endpoint,
            access_key="a",
            secret_key="b",
            bucket=_bucket(),
            part_size_bytes=MIB,
        )


# -- bucket at start-up -------------------------------------------------------

_WORKER = """
import sys, time
from pathlib import Path
from vision.evidence.store import S3Store
endpoint, access_key, secret_key, bucket, key, jpeg, start_at = sys.argv[1:8]
time.sleep(max(0.0, float(start_at) - time.time()))
store = S3Store(endpoint=endpoint, access_key=access_key, secret_key=secret_key,
                bucket=bucket)
print(store.put_file(key, Path(jpeg), "image/jpeg").sha256)
"""


def _run_workers(s3: S3Server, bucket: str, keys: list[str], jpeg: Path) -> None:
    start_at = time.time() + 2.0  # all start together, after interpreter start-up
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WORKER,
                s3.endpoint,
                s3.access_key,
                s3.secret_key,
                bucket,
                key,
                str(jpeg),
                str(start_at),
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for key in keys
    ]
    for worker in workers:
        _out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()[-2000:]


def test_four_workers_ensure_bucket_and_upload_at_once(
    s3_server: S3Server, shared_dir: Path
) -> None:
    jpeg = shared_dir / "data" / "images" / "zidane.jpg"
    bucket = _bucket()
    first = [f"cam-{n}/first.jpg" for n in range(4)]
    second = [f"cam-{n}/second.jpg" for n in range(4)]

    _run_workers(s3_server, bucket, first, jpeg)
    after_first = _objects(s3_server, bucket)
    _run_workers(s3_server, bucket, second, jpeg)  # bucket present now
    after_second = _objects(s3_server, bucket)

    size = jpeg.stat().st_size
    assert after_first == dict.fromkeys(first, size)
    assert after_second == dict.fromkeys(first + second, size)


def test_bucket_created_elsewhere_meanwhile_counts_as_ready(
    s3_server: S3Server,
) -> None:
    # Outside us-east-1, S3 answers a second create with BucketAlreadyOwnedByYou.
    bucket = _bucket()
    kw = {"access_key": s3_server.access_key, "secret_key": s3_server.secret_key}
    S3Store(endpoint=s3_server.endpoint, bucket=bucket, region="eu-west-1", **kw)
    late = S3Store(
        endpoint=s3_server.endpoint,
        bucket=bucket,
        region="eu-west-1",
        ensure_bucket=False,
        **kw,
    )

    late._make_bucket()  # the race: it was absent when this worker looked
    late.ensure_bucket()

    assert late.put_bytes("cam/a.jpg", b"jpeg", "image/jpeg").size_bytes == 4


def test_bucket_answered_already_exists_counts_as_ready(s3_server: S3Server) -> None:
    # Some S3 servers answer a racing create with BucketAlreadyExists even for
    # the same owner; here the server gives it because another account made it.
    bucket = _bucket()
    other_account = _boto(s3_server)

    def as_other_account(request, **_) -> None:  # type: ignore[no-untyped-def]
        request.headers["x-moto-account-id"] = "111122223333"

    other_account.meta.events.register("before-send.s3.CreateBucket", as_other_account)
    other_account.create_bucket(Bucket=bucket)
    late = _store(s3_server, bucket, ensure_bucket=False)

    with pytest.raises(S3Error, match="BucketAlreadyExists"):
        late._client.make_bucket(bucket_name=bucket)
    late._make_bucket()

    assert late.put_bytes("cam/a.jpg", b"jpeg", "image/jpeg").size_bytes == 4


@pytest.fixture(scope="module")
def strict_s3() -> Iterator[tuple[S3Server, dict[str, str]]]:
    """A server that enforces IAM, and keys of a user who may not create buckets."""
    with start_s3_server() as s3:
        iam = _boto(s3, "iam")
        iam.create_user(UserName="camera-worker")
        key = iam.create_access_key(UserName="camera-worker")["AccessKey"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:PutObject", "s3:GetObject", "s3:ListBucket"],
                    "Resource": "*",
                }
            ],
        }
        iam.put_user_policy(
            UserName="camera-worker",
            PolicyName="objects-only",
            PolicyDocument=json.dumps(policy),
        )
        s3.enforce_auth()
        yield (
            s3,
            {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]},
        )


def test_store_refusing_bucket_creation_fails_at_start_up(
    strict_s3: tuple[S3Server, dict[str, str]],
) -> None:
    s3, keys = strict_s3

    with pytest.raises(StoreError) as caught:
        S3Store(endpoint=s3.endpoint, bucket="evidence-absent", **keys)

    message = str(caught.value)
    assert s3.endpoint in message
    assert "evidence-absent" in message
    assert "refused to create the bucket" in message
    assert "AccessDenied" in message
    assert keys["secret_key"] not in message


def test_unreachable_store_fails_at_start_up_naming_endpoint() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        endpoint = f"127.0.0.1:{sock.getsockname()[1]}"  # bound, not listening

    with pytest.raises(
        StoreError, match=f"{endpoint} bucket 'evidence-x' is unreachable"
    ):
        S3Store(
            endpoint=endpoint, access_key="a", secret_key="s3cr3t", bucket="evidence-x"
        )


def test_unreachable_store_can_start_when_a_spool_will_keep_evidence(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        endpoint = f"127.0.0.1:{sock.getsockname()[1]}"

    store = S3Store(
        endpoint=endpoint,
        access_key="a",
        secret_key="s3cr3t",
        bucket="evidence-x",
        retries=1,
        tolerate_unreachable=True,
    )

    assert "unreachable at start-up" in caplog.text
    with pytest.raises(ClipUploadError, match="store unreachable"):
        store.put_bytes("cam/a.jpg", b"jpeg", "image/jpeg")


# -- a faulty front between the store and the server -------------------------

_SLOWDOWN_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class FaultyFront:
    """An HTTP relay in front of the S3 server that misbehaves on uploads.

    modes: ``slowdown`` answers the first ``faults`` PUT/POST with 503 SlowDown;
    ``reset`` resets the TCP connection halfway through the first upload body
    (the first part, for a multipart upload); ``fail`` answers every PUT/POST
    with 503; ``pass`` relays everything.
    """

    def __init__(self, upstream: S3Server, mode: str, faults: int = 2) -> None:
        self.upstream = upstream
        self.mode = mode
        self.faults_left = faults
        self.upload_paths: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _FrontHandler)
        self._server.daemon_threads = True
        self._server.front = self  # type: ignore[attr-defined]
        self.endpoint = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultyFront:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fault_for(self, method: str, path: str, length: int) -> str | None:
        if method not in ("PUT", "POST"):
            return None
        with self._lock:
            self.upload_paths.append(path.split("?")[0])
            if self.mode == "fail":
                return "slowdown"
            if self.mode == "slowdown" and self.faults_left > 0:
                self.faults_left -= 1
                return "slowdown"
            is_body = length > 0 and ("partNumber=" in path or "?" not in path)
            if self.mode == "reset" and self.faults_left > 0 and is_body:
                self.faults_left = 0
                return "reset"
        return None


class _FrontHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._relay()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _relay(self) -> None:
        front: FaultyFront = self.server.front  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        fault = front.fault_for(self.command, self.path, length)
        if fault == "reset":
            self.rfile.read(length // 2)
            self._reset()
            return
        body = self.rfile.read(length) if length else None
        if fault == "slowdown":
            self._answer(503, {"Content-Type": "application/xml"}, _SLOWDOWN_XML)
            return
        upstream = HTTPConnection("127.0.0.1", front.upstream.port, timeout=60)
        try:
            upstream.request(
                self.command, self.path, body=body, headers=dict(self.headers)
            )
            answer = upstream.getresponse()
            data = answer.read()
            skip = {"transfer-encoding", "connection", "content-length"}
            headers = {k: v for k, v in answer.getheaders() if k.lower() not in skip}
            self._answer(answer.status, headers, data)
        finally:
            upstream.close()

    def _answer(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _reset(self) -> None:
        # Linger 0 turns close into a TCP RST, as a crashing proxy would.
        self.connection.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        self.rfile.close()
        self.connection.close()
        self.close_connection = True


@pytest.mark.parametrize(
    ("mode", "size_bytes"),
    [
        ("slowdown", 200 * 1000),
        ("slowdown", 12 * 1000 * 1000),
        ("reset", 200 * 1000),
        ("reset", 12 * 1000 * 1000),
    ],
)
def test_upload_retries_through_slowdown_and_reset_to_one_whole_object(
    s3_server: S3Server,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    size_bytes: int,
) -> None:
    bucket = _bucket()
    _store(s3_server, bucket)  # the bucket exists before the front misbehaves
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(os.urandom(size_bytes))

    with FaultyFront(s3_server, mode) as front:
        store = _store(s3_server, bucket, endpoint=front.endpoint)
        stored = store.put_file("cam-1/ev-9/clip.mp4", clip, "video/mp4")
        chunks, info = store.open("cam-1/ev-9/clip.mp4")
        body = b"".join(chunks)

    retried = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert front.faults_left == 0
    assert len(retried) == {"slowdown": 2, "reset": 1}[mode]
    assert set(front.upload_paths) == {f"/{bucket}/cam-1/ev-9/clip.mp4"}
    assert _objects(s3_server, bucket) == {"cam-1/ev-9/clip.mp4": size_bytes}
    assert _open_uploads(s3_server, bucket) == []
    assert hashlib.sha256(body).hexdigest() == stored.sha256
    assert info.content_type == "video/mp4"


def test_upload_gives_up_after_bounded_retries(
    s3_server: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = _bucket()
    _store(s3_server, bucket)

    with FaultyFront(s3_server, "fail") as front:
        store = _store(s3_server, bucket, endpoint=front.endpoint, retries=3)
        with pytest.raises(ClipUploadError) as caught:
            store.put_bytes("cam-1/ev/snap.jpg", b"jpeg" * 1000, "image/jpeg")

    message = str(caught.value)
    assert "after 3 attempt(s)" in message
    assert "SlowDown" in message
    assert front.endpoint in message and bucket in message
    assert s3_server.secret_key not in message + caplog.text
    assert len(front.upload_paths) == 3
    assert _objects(s3_server, bucket) == {}


def test_retries_back_off_exponentially_with_jitter_under_a_cap(
    s3_server: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    """Five tries: waits drawn at random below 0.5, 1, 2 and 4 s (never above
    the 8 s cap), so many uploaders that failed together do not return
    together, and a dead store is given up well within 30 s."""
    bucket = _bucket()
    _store(s3_server, bucket)
    caplog.set_level("WARNING", logger="vision.evidence.s3")

    with FaultyFront(s3_server, "fail") as front:
        store = _store(s3_server, bucket, endpoint=front.endpoint, retries=5)
        started = time.monotonic()
        with pytest.raises(ClipUploadError, match="after 5 attempt"):
            store.put_bytes("cam-1/ev/snap.jpg", b"jpeg" * 1000, "image/jpeg")
        elapsed_s = time.monotonic() - started

    waits_s = [
        float(record.getMessage().rsplit("retrying in ", 1)[1].split()[0])
        for record in caplog.records
        if "retrying in" in record.getMessage()
    ]
    assert len(waits_s) == 4
    for attempt, wait_s in enumerate(waits_s):
        assert 0.0 <= wait_s <= min(0.5 * 2**attempt, 8.0) + 0.05
    # Jittered: not the envelope itself (all four near it: about 2e-6).
    assert any(w < min(0.5 * 2**a, 8.0) - 0.05 for a, w in enumerate(waits_s))
    assert elapsed_s < 30.0
    assert set(front.upload_paths) == {front.upload_paths[0]}  # one key


def test_given_up_upload_is_pending_then_stored_once_by_background_retry(
    s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = _bucket()
    _store(s3_server, bucket)
    stored_keys: list[str] = []

    with FaultyFront(s3_server, "fail") as front:
        inner = _store(s3_server, bucket, endpoint=front.endpoint, retries=2)
        spool = SpoolingStore(
            inner, tmp_path / "spool", cap_bytes=10 * MIB, on_stored=stored_keys.append
        )
        put = spool.put_bytes("cam-1/ev/snap.jpg", b"jpeg" * 1000, "image/jpeg")
        front.mode = "pass"
        drained = spool.drain_once()

    assert put.state is EvidenceState.PENDING
    assert "SlowDown" in (put.reason or "")
    assert drained == 1
    assert stored_keys == ["cam-1/ev/snap.jpg"]
    assert _objects(s3_server, bucket) == {"cam-1/ev/snap.jpg": 4000}
    assert spool.pending_count == 0
