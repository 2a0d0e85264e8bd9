"""What every evidence object store promises, and the records it returns.

An object store keeps evidence (clips, snapshots, trajectory images) under a
key. Putting returns a :class:`StoredObject` that records the SHA-256 and the
size of what was kept, and the evidence state: ``stored`` once the store has
it, ``pending`` while a spool holds it for a later upload, ``missing`` when it
could not be kept at all (``reason`` says why).
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol, runtime_checkable

from vision.types import EvidenceItem, EvidenceKind, EvidenceState

CHUNK_SIZE_BYTES = 256 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class StoredObject:
    """One piece of evidence as the store recorded it."""

    key: str
    sha256: str
    size_bytes: int
    content_type: str
    state: EvidenceState = EvidenceState.STORED
    reason: str | None = None

    def to_evidence_item(self, kind: EvidenceKind) -> EvidenceItem:
        """The ticket's view of this object."""
        return EvidenceItem(
            kind=kind,
            key=self.key,
            content_type=self.content_type,
            sha256=self.sha256,
            size_bytes=self.size_bytes,
            state=self.state,
            reason=self.reason,
        )


@dataclass(frozen=True)
class ObjectInfo:
    """Size and media type of a stored object, for serving it over HTTP."""

    size_bytes: int
    content_type: str


@runtime_checkable
class ObjectStore(Protocol):
    """A place that keeps evidence objects under keys."""

    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Keep ``data`` under ``key``; replaces an object of the same key."""
        ...

    def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        """Keep the file at ``path`` under ``key``."""
        ...

    def open(self, key: str) -> tuple[Iterator[bytes], ObjectInfo]:
        """Chunks of the object and its info; ``KeyError`` if absent."""
        ...

    def open_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Chunks of bytes ``start``..``end`` inclusive, as HTTP Range has it."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is kept under ``key``."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; removing an absent key is not an error."""
        ...

    def url_for(self, key: str, expires_s: int = 3600) -> str | None:
        """A time-limited GET URL, or None when the store has no URLs."""
        ...


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key, else raise ValueError.

    Keys are slash-separated relative paths. Absolute paths, ``..`` or ``.``
    segments, empty segments, backslashes and segments starting with a dot are
    refused: a key must never name a file outside the store, nor one of the
    store's own hidden files.
    """
    if not isinstance(key, str):
        raise TypeError(f"key: expected str, got {type(key).__name__}")
    if not key or "\\" in key or "\x00" in key:
        raise ValueError(f"key: expected a non-empty relative path, got {key!r}")
    if key.startswith("/") or PurePosixPath(key).is_absolute():
        raise ValueError(f"key: expected a relative path, got absolute {key!r}")
    for segment in key.split("/"):
        if segment in ("", ".", "..") or segment.startswith("."):
            raise ValueError(
                f"key: segment {segment!r} is not allowed in {key!r} "
                "(no empty, '.', '..' or dot-prefixed segments)"
            )
    return key


def validate_content_type(content_type: str) -> str:
    """Return ``content_type`` if it looks like ``type/subtype``.

    Stores never fall back to a default type: evidence stored as generic
    binary is downloaded by browsers instead of shown.
    """
    if not isinstance(content_type, str) or "/" not in content_type.strip("/"):
        raise ValueError(
            "content_type: expected a media type like 'video/mp4', "
            f"got {content_type!r}"
        )
    return content_type


def validate_range(start: int, end: int) -> None:
    """Check an inclusive byte range as HTTP Range gives it."""
    if start < 0 or end < start:
        raise ValueError(
            f"byte range: expected 0 <= start <= end, got start={start} end={end}"
        )


def guess_content_type(key: str) -> str:
    """Media type from the key's extension; octet-stream when unknown."""
    guessed, _ = mimetypes.guess_type(key, strict=False)
    return guessed or DEFAULT_CONTENT_TYPE


def inline_disposition(key: str) -> str:
    """A Content-Disposition that lets browsers show evidence in place."""
    filename = key.rsplit("/", 1)[-1].replace('"', "")
    return f'inline; filename="{filename}"'


def sha256_of_file(path: Path) -> tuple[str, int]:
    """SHA-256 hex digest and size of a file, read in chunks."""
    digest = hashlib.sha256()
    size_bytes = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE_BYTES):
            digest.update(chunk)
            size_bytes += len(chunk)
    return digest.hexdigest(), size_bytes


class Chunks:
    """An iterator of byte chunks that releases its file or connection.

    It closes when exhausted, on ``close()``, at the end of a ``with`` block,
    or when garbage-collected, so a caller that stops reading early (a browser
    that cancels a download) never leaks the handle.
    """

    def __init__(self, chunks: Iterator[bytes], release: Callable[[], None]) -> None:
        self._chunks = chunks
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> Chunks:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def __enter__(self) -> Chunks:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def iter_file(path: Path, start: int = 0, length: int | None = None) -> Chunks:
    """Open the file now (so a missing file fails at once), read chunks later."""
    handle = path.open("rb")
    handle.seek(start)
    return Chunks(_read_chunks(handle, length), handle.close)


def _read_chunks(handle: BinaryIO, length: int | None) -> Iterator[bytes]:
    left = length
    while left is None or left > 0:
        size = CHUNK_SIZE_BYTES if left is None else min(CHUNK_SIZE_BYTES, left)
        chunk = handle.read(size)
        if not chunk:
            return
        if left is not None:
            left -= len(chunk)
        yield chunk
