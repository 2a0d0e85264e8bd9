"""The object-store contract, on the local-directory store and on a real S3 server."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from vision.errors import ClipUploadError
from vision.evidence.store import LocalDirStore, ObjectStore, S3Store, StoredObject
from vision.types import EvidenceKind, EvidenceState


def _bucket() -> str:
    return f"evidence-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalDirStore(tmp_path / "store")
    s3 = request.getfixturevalue("s3_server")
    return S3Store(
        endpoint=s3.endpoint,
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        bucket=_bucket(),
        part_size_bytes=5 * 1024 * 1024,
    )


def _read(chunks: Iterator[bytes]) -> bytes:
    return b"".join(chunks)


def test_put_bytes_then_open_returns_same_bytes_and_type(
    store: ObjectStore, shared_dir: Path
) -> None:
    data = (shared_dir / "data" / "images" / "zidane.jpg").read_bytes()

    stored = store.put_bytes("cam-1/ev-1/snapshot.jpg", data, "image/jpeg")
    chunks, info = store.open("cam-1/ev-1/snapshot.jpg")

    assert stored == StoredObject(
        key="cam-1/ev-1/snapshot.jpg",
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        content_type="image/jpeg",
    )
    assert stored.state is EvidenceState.STORED
    assert _read(chunks) == data
    assert (info.size_bytes, info.content_type) == (len(data), "image/jpeg")


@pytest.mark.parametrize("size_bytes", [0, 1000, 12 * 1024 * 1024])
def test_put_file_keeps_video_type_single_and_multipart(
    store: ObjectStore, tmp_path: Path, size_bytes: int
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(os.urandom(size_bytes))

    stored = store.put_file("cam-1/ev-2/clip.mp4", clip, "video/mp4")
    chunks, info = store.open("cam-1/ev-2/clip.mp4")

    assert stored.size_bytes == size_bytes
    assert stored.sha256 == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert hashlib.sha256(_read(chunks)).hexdigest() == stored.sha256
    assert info.content_type == "video/mp4"


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, 0, b"0"),
        (0, 9, b"0123456789"),
        (3, 5, b"345"),
        (8, 100, b"89"),  # past the end: up to the last byte, as HTTP does
    ],
)
def test_open_range_is_inclusive(
    store: ObjectStore, start: int, end: int, expected: bytes
) -> None:
    store.put_bytes("range/data.bin", b"0123456789", "application/octet-stream")

    assert _read(store.open_range("range/data.bin", start, end)) == expected


@pytest.mark.parametrize(("start", "end"), [(-1, 3), (5, 4)])
def test_open_range_refuses_bad_range(store: ObjectStore, start: int, end: int) -> None:
    store.put_bytes("range/data.bin", b"0123456789", "application/octet-stream")

    with pytest.raises(ValueError, match="byte range"):
        store.open_range("range/data.bin", start, end)


def test_exists_delete_and_absent_keys(store: ObjectStore) -> None:
    store.put_bytes("a/b.jpg", b"jpeg", "image/jpeg")

    assert store.exists("a/b.jpg")
    store.delete("a/b.jpg")
    store.delete("a/b.jpg")  # deleting twice is fine

    assert not store.exists("a/b.jpg")
    with pytest.raises(KeyError):
        store.open("a/b.jpg")
    with pytest.raises(KeyError):
        store.open_range("a/b.jpg", 0, 1)


def test_put_replaces_object_under_same_key(store: ObjectStore) -> None:
    store.put_bytes("same/key.jpg", b"first", "image/jpeg")
    store.put_bytes("same/key.jpg", b"second version", "image/png")

    chunks, info = store.open("same/key.jpg")

    assert _read(chunks) == b"second version"
    assert info == type(info)(size_bytes=14, content_type="image/png")


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "../outside.jpg",
        "a/../../b.jpg",
        "a//b.jpg",
        "./a.jpg",
        ".meta/x.json",
        "a\\b.jpg",
        "a/.hidden",
    ],
)
def test_unsafe_keys_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError, match="key"):
        store.put_bytes(key, b"x", "image/jpeg")
    with pytest.raises(ValueError, match="key"):
        store.exists(key)


def test_stored_object_becomes_evidence_item() -> None:
    stored = StoredObject("k/clip.mp4", "ab" * 32, 10, "video/mp4")

    item = stored.to_evidence_item(EvidenceKind.CLIP)

    assert (item.key, item.state, item.size_bytes) == ("k/clip.mp4", "stored", 10)


def test_local_store_has_no_urls_and_writes_atomically(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    store.put_bytes("cam/ev/clip.mp4", b"x" * 1000, "video/mp4")

    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]

    assert store.url_for("cam/ev/clip.mp4") is None
    assert leftovers == []
    assert (tmp_path / "cam" / "ev" / "clip.mp4").read_bytes() == b"x" * 1000


def test_local_store_derives_type_when_sidecar_is_gone(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    store.put_bytes("cam/ev/snap.jpg", b"jpeg", "image/jpeg")
    for sidecar in (tmp_path / ".meta").rglob("*.json"):
        sidecar.unlink()

    _, info = store.open("cam/ev/snap.jpg")

    assert info.content_type == "image/jpeg"


def test_local_store_failed_write_leaves_old_object(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    store.put_bytes("cam/clip.mp4", b"old", "video/mp4")

    with pytest.raises(FileNotFoundError):
        store.put_file("cam/clip.mp4", tmp_path / "no-such-file.mp4", "video/mp4")

    chunks, _ = store.open("cam/clip.mp4")
    assert _read(chunks) == b"old"


def test_open_range_past_the_end_is_refused(store: ObjectStore) -> None:
    store.put_bytes("range/data.bin", b"0123456789", "application/octet-stream")

    with pytest.raises(ValueError, match="byte range"):
        store.open_range("range/data.bin", 10, 20)


@pytest.mark.parametrize("content_type", ["", "mp4", "/"])
def test_put_without_a_media_type_is_refused(
    store: ObjectStore, content_type: str
) -> None:
    with pytest.raises(ValueError, match="content_type"):
        store.put_bytes("cam/ev/clip.mp4", b"x", content_type)


def test_local_store_write_failure_is_an_upload_error(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    store.put_bytes("cam/ev", b"a file where a folder is wanted", "image/jpeg")

    with pytest.raises(ClipUploadError, match=r"cannot write 'cam/ev/snap\.jpg'"):
        store.put_bytes("cam/ev/snap.jpg", b"jpeg", "image/jpeg")
    with pytest.raises(KeyError):
        store.open("cam")
