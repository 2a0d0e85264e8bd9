"""Evidence kept in a local directory: the single-machine default store.

Each object is a file under the root at its key's path. Writes are atomic: the
bytes go to a hidden temporary file in the same directory, are flushed to disk,
and replace the target in one rename, so a reader never sees half an object.
The media type is kept in a sidecar under ``.meta/`` (keys may not start a
segment with a dot, so sidecars and temporary files never clash with keys).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from vision.errors import ClipUploadError, StoreError
from vision.evidence.objects import (
    CHUNK_SIZE_BYTES,
    ObjectInfo,
    StoredObject,
    guess_content_type,
    iter_file,
    validate_content_type,
    validate_key,
    validate_range,
)

logger = logging.getLogger(__name__)

_META_DIR = ".meta"


class LocalDirStore:
    """An object store in a directory on local disk."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        try:
            (self.root / _META_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"local evidence store {self.root}: cannot create it: {exc}"
            ) from exc

    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        target = self._path(key)
        validate_content_type(content_type)
        try:
            self._write_meta(key, content_type)
            with atomic_writer(target) as handle:
                handle.write(data)
        except OSError as exc:
            raise self._write_error(key, exc) from exc
        return StoredObject(
            key=key,
            sha256=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
            content_type=content_type,
        )

    def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        target = self._path(key)
        validate_content_type(content_type)
        digest = hashlib.sha256()
        size_bytes = 0
        with Path(path).open("rb") as source:
            try:
                self._write_meta(key, content_type)
                with atomic_writer(target) as handle:
                    while chunk := source.read(CHUNK_SIZE_BYTES):
                        digest.update(chunk)
                        size_bytes += len(chunk)
                        handle.write(chunk)
            except OSError as exc:
                raise self._write_error(key, exc) from exc
        return StoredObject(
            key=key,
            sha256=digest.hexdigest(),
            size_bytes=size_bytes,
            content_type=content_type,
        )

    def open(self, key: str) -> tuple[Iterator[bytes], ObjectInfo]:
        path = self._path(key)
        if not path.is_file():
            raise KeyError(key)
        try:
            chunks = iter_file(path)
        except FileNotFoundError:
            raise KeyError(key) from None
        size_bytes = path.stat().st_size
        return chunks, ObjectInfo(size_bytes, self._content_type(key))

    def open_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        validate_range(start, end)
        path = self._path(key)
        if not path.is_file():
            raise KeyError(key)
        size_bytes = path.stat().st_size
        if start >= size_bytes:
            raise ValueError(
                f"byte range starts at {start}, past the end of {key!r} "
                f"({size_bytes} bytes)"
            )
        return iter_file(path, start=start, length=end - start + 1)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_file():
            path.unlink(missing_ok=True)
        self._meta_path(key).unlink(missing_ok=True)

    def url_for(self, key: str, expires_s: int = 3600) -> str | None:
        validate_key(key)
        return None

    def _write_error(self, key: str, exc: OSError) -> ClipUploadError:
        # A full disk or a key that clashes with a directory: the caller
        # marks the evidence missing instead of crashing.
        return ClipUploadError(
            f"local evidence store {self.root}: cannot write {key!r}: {exc}"
        )

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def _meta_path(self, key: str) -> Path:
        return self.root / _META_DIR / f"{validate_key(key)}.json"

    def _write_meta(self, key: str, content_type: str) -> None:
        payload = json.dumps({"content_type": content_type}).encode()
        with atomic_writer(self._meta_path(key)) as handle:
            handle.write(payload)

    def _content_type(self, key: str) -> str:
        try:
            meta = json.loads(self._meta_path(key).read_text())
            return str(meta["content_type"])
        except (OSError, ValueError, KeyError):
            # An object written before its sidecar (or by hand): derive it.
            return guess_content_type(key)


@contextmanager
def atomic_writer(target: Path) -> Iterator[BinaryIO]:
    """Write to a temp file beside ``target``; fsync and rename on success.

    ``target`` is whole or untouched: a failure (or a full disk) midway leaves
    only the temporary file, which is removed.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    temp_path = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_path, target)
        _fsync_dir(target.parent)
    finally:
        temp_path.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_atomic(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` so that ``target`` is whole or absent."""
    with Path(source).open("rb") as handle, atomic_writer(target) as out:
        shutil.copyfileobj(handle, out, CHUNK_SIZE_BYTES)


def write_atomic(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` so that ``target`` is whole or absent."""
    with atomic_writer(target) as out:
        out.write(data)
