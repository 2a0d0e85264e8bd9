"""A local spool in front of an object store, so evidence outlives an outage.

``SpoolingStore`` tries the store first. When the store is unreachable or
refuses an object, the bytes are kept in a spool directory on local disk and
the object is reported ``pending``; a background thread uploads the backlog,
oldest first, with backoff once the store answers again, and tells the caller
through ``on_stored(key)``. The spool survives a restart: each item is a data
file plus a manifest, both written atomically, and the manifest is written
last, so an item is either whole or absent.

The spool has a byte cap. When an object would not fit, spooled items that the
``may_purge`` policy releases (evidence nobody needs any more) are deleted,
oldest first, down to a low-water mark. When nothing can be freed, the object
is reported ``missing`` with the reason and a storage alarm is logged at
ERROR; the caller keeps running.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from vision.errors import StoreError
from vision.evidence.local import copy_atomic, write_atomic
from vision.evidence.objects import (
    ObjectInfo,
    ObjectStore,
    StoredObject,
    iter_file,
    sha256_of_file,
    validate_content_type,
    validate_key,
    validate_range,
)
from vision.types import EvidenceState

logger = logging.getLogger(__name__)

_MANIFEST_SUFFIX = ".json"
_DATA_SUFFIX = ".bin"


def never_purge(key: str) -> bool:
    """The default purge policy: spooled evidence is never deleted for room."""
    return False


@dataclass(frozen=True)
class _Item:
    key: str
    content_type: str
    sha256: str
    size_bytes: int
    data_name: str
    spooled_at: float

    @property
    def name(self) -> str:
        return _item_name(self.key)


class SpoolingStore:
    """An object store that spools locally while its inner store is down."""

    def __init__(
        self,
        inner: ObjectStore,
        spool_dir: Path,
        cap_bytes: int,
        *,
        low_water_bytes: int | None = None,
        may_purge: Callable[[str], bool] = never_purge,
        on_stored: Callable[[str], None] | None = None,
        min_free_bytes: int = 0,
        retry_base_s: float = 1.0,
        retry_max_s: float = 60.0,
        probe_after_s: float = 30.0,
    ) -> None:
        low_water_bytes = (
            int(cap_bytes * 0.8) if low_water_bytes is None else low_water_bytes
        )
        if cap_bytes <= 0:
            raise ValueError(f"cap_bytes: expected > 0, got {cap_bytes}")
        if not 0 <= low_water_bytes <= cap_bytes:
            raise ValueError(
                f"low_water_bytes: expected 0..cap_bytes ({cap_bytes}), "
                f"got {low_water_bytes}"
            )
        self.inner = inner
        self.spool_dir = Path(spool_dir)
        self.cap_bytes = cap_bytes
        self.low_water_bytes = low_water_bytes
        self.may_purge = may_purge
        self.on_stored = on_stored
        self.min_free_bytes = min_free_bytes
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.probe_after_s = probe_after_s
        self.missing_count = 0
        self._items: dict[str, _Item] = {}
        self._lock = threading.RLock()
        self._drain_lock = threading.Lock()
        self._down_since: float | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._load()

    # -- metrics -----------------------------------------------------------

    @property
    def spool_bytes(self) -> int:
        """Bytes of evidence waiting in the spool."""
        with self._lock:
            return sum(item.size_bytes for item in self._items.values())

    @property
    def pending_count(self) -> int:
        """Objects waiting in the spool for upload."""
        return len(self._items)

    @property
    def disk_pressure(self) -> float:
        """How full the spool is: spooled bytes over the byte cap (0..1)."""
        return self.spool_bytes / self.cap_bytes

    @property
    def disk_free_bytes(self) -> int:
        """Free bytes on the spool's filesystem."""
        return shutil.disk_usage(self.spool_dir).free

    def pending_keys(self) -> list[str]:
        """Keys in the spool, oldest first."""
        return [item.key for item in self._oldest_first()]

    # -- the object store --------------------------------------------------

    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        validate_key(key)
        validate_content_type(content_type)
        reason = self._skip_reason(key)
        if reason is None:
            try:
                return self._stored(self.inner.put_bytes(key, data, content_type))
            except StoreError as exc:
                reason = self._note_down(exc)
        record = StoredObject(
            key, hashlib.sha256(data).hexdigest(), len(data), content_type
        )
        return self._spool(record, lambda target: write_atomic(target, data), reason)

    def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        validate_key(key)
        validate_content_type(content_type)
        reason = self._skip_reason(key)
        if reason is None:
            try:
                return self._stored(self.inner.put_file(key, path, content_type))
            except StoreError as exc:
                reason = self._note_down(exc)
        digest, size_bytes = sha256_of_file(Path(path))
        record = StoredObject(key, digest, size_bytes, content_type)
        return self._spool(
            record, lambda target: copy_atomic(Path(path), target), reason
        )

    def open(self, key: str) -> tuple[Iterator[bytes], ObjectInfo]:
        validate_key(key)
        with self._lock:
            item = self._items.get(_item_name(key))
            if item is not None:
                # Opened under the lock: an upload finishing now may unlink
                # the file, but an open handle keeps reading it.
                chunks = iter_file(self.spool_dir / item.data_name)
                return chunks, ObjectInfo(item.size_bytes, item.content_type)
        return self.inner.open(key)

    def open_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        validate_key(key)
        validate_range(start, end)
        with self._lock:
            item = self._items.get(_item_name(key))
            if item is not None:
                path = self.spool_dir / item.data_name
                return iter_file(path, start=start, length=end - start + 1)
        return self.inner.open_range(key, start, end)

    def exists(self, key: str) -> bool:
        validate_key(key)
        if _item_name(key) in self._items:
            return True
        return self.inner.exists(key)

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._lock:
            item = self._items.get(_item_name(key))
            if item is not None:
                self._remove(item)
        self.inner.delete(key)

    def url_for(self, key: str, expires_s: int = 3600) -> str | None:
        validate_key(key)
        if _item_name(key) in self._items:
            return None  # Not uploaded yet: serve it through open().
        return self.inner.url_for(key, expires_s)

    # -- the backlog -------------------------------------------------------

    def drain_once(self) -> int:
        """Upload the backlog, oldest first, until done or the store fails.

        Returns how many objects were stored.
        """
        stored_count = 0
        with self._drain_lock:
            for item in self._oldest_first():
                outcome = self._upload(item)
                if outcome is None:
                    break
                stored_count += int(outcome)
        return stored_count

    def start(self) -> None:
        """Start the background thread that uploads the backlog."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="evidence-spool", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the background thread; the backlog stays on disk."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            if not self._items:
                failures = 0
                self._wake.wait(self.retry_max_s)
                self._wake.clear()
                continue
            try:
                self.drain_once()
            except Exception:
                # The thread must outlive any surprise; the backlog is on disk.
                logger.exception("evidence spool drain failed unexpectedly")
            if not self._items:
                continue
            failures += 1
            ceiling_s = min(self.retry_max_s, self.retry_base_s * 2**failures)
            self._stop.wait(random.uniform(0, ceiling_s))

    def _upload(self, item: _Item) -> bool | None:
        """Upload one spooled item: True if stored, None if the store failed."""
        try:
            stored = self.inner.put_file(
                item.key, self.spool_dir / item.data_name, item.content_type
            )
        except StoreError as exc:
            self._note_down(exc)
            logger.warning(
                "evidence store still unavailable, %d object(s) pending: %s",
                self.pending_count,
                exc,
            )
            return None
        except FileNotFoundError:
            return False  # Replaced or deleted meanwhile; the newer one stays.
        if stored.sha256 != item.sha256:
            logger.error(
                "spooled copy of %s changed on disk (sha256 %s, expected %s)",
                item.key,
                stored.sha256,
                item.sha256,
                extra={"key": item.key},
            )
        with self._lock:
            if self._items.get(item.name) == item:
                self._remove(item)
        self._down_since = None
        logger.info("pending evidence %s stored", item.key, extra={"key": item.key})
        self._notify_stored(item.key)
        return True

    def _notify_stored(self, key: str) -> None:
        if self.on_stored is None:
            return
        try:
            self.on_stored(key)
        except Exception:
            logger.exception("on_stored callback failed for %s", key)

    # -- spooling ----------------------------------------------------------

    def _skip_reason(self, key: str) -> str | None:
        """Why the store is not tried for this put, or None to try it."""
        if _item_name(key) in self._items:
            # An older version waits in the spool; queue behind it so the
            # upload order keeps the newest version last.
            return "an earlier version of this object is still pending"
        down_since = self._down_since
        if down_since is not None:
            down_s = time.monotonic() - down_since
            if down_s < self.probe_after_s:
                return f"object store unavailable for {down_s:.0f} s"
        return None

    def _note_down(self, exc: StoreError) -> str:
        if self._down_since is None:
            self._down_since = time.monotonic()
            logger.warning("evidence store unavailable, spooling locally: %s", exc)
        return str(exc)

    def _stored(self, stored: StoredObject) -> StoredObject:
        self._down_since = None
        return stored

    def _spool(
        self,
        record: StoredObject,
        write: Callable[[Path], None],
        reason: str,
    ) -> StoredObject:
        name = _item_name(record.key)
        with self._lock:
            previous = self._items.get(name)
            room_reason = self._make_room(record, previous)
            if room_reason is not None:
                return self._missing(record, room_reason)
            item = _Item(
                key=record.key,
                content_type=record.content_type,
                sha256=record.sha256,
                size_bytes=record.size_bytes,
                data_name=f"{name}.{uuid.uuid4().hex}{_DATA_SUFFIX}",
                spooled_at=time.time(),
            )
            try:
                write(self.spool_dir / item.data_name)
                write_atomic(self.spool_dir / f"{name}{_MANIFEST_SUFFIX}", _dump(item))
            except OSError as exc:
                (self.spool_dir / item.data_name).unlink(missing_ok=True)
                return self._missing(record, f"cannot write the local spool: {exc}")
            if previous is not None:
                (self.spool_dir / previous.data_name).unlink(missing_ok=True)
            self._items[name] = item
        self._wake.set()
        logger.info(
            "evidence %s pending in the local spool",
            record.key,
            extra={"key": record.key},
        )
        return replace(record, state=EvidenceState.PENDING, reason=reason)

    def _make_room(self, record: StoredObject, previous: _Item | None) -> str | None:
        """Purge what policy allows until ``record`` fits; the reason if not."""
        replaced_bytes = previous.size_bytes if previous else 0
        if self.spool_bytes - replaced_bytes + record.size_bytes > self.cap_bytes:
            self._purge(target_bytes=self.low_water_bytes - record.size_bytes)
        used_bytes = self.spool_bytes - replaced_bytes
        if used_bytes + record.size_bytes > self.cap_bytes:
            return (
                f"local spool full: {used_bytes} of {self.cap_bytes} bytes used "
                f"and nothing may be purged; the object needs {record.size_bytes}"
            )
        free_bytes = self.disk_free_bytes
        if free_bytes - record.size_bytes < self.min_free_bytes:
            return (
                f"disk of the local spool nearly full: {free_bytes} bytes free, "
                f"the object needs {record.size_bytes}, "
                f"{self.min_free_bytes} must stay free"
            )
        return None

    def _purge(self, target_bytes: int) -> None:
        for item in self._oldest_first():
            if self.spool_bytes <= target_bytes:
                return
            if not self._may_purge(item.key):
                continue
            self._remove(item)
            logger.warning(
                "purged spooled evidence %s to make room (policy allows it)",
                item.key,
                extra={"key": item.key},
            )

    def _may_purge(self, key: str) -> bool:
        try:
            return bool(self.may_purge(key))
        except Exception:
            logger.exception("purge policy failed for %s; keeping it", key)
            return False

    def _missing(self, record: StoredObject, reason: str) -> StoredObject:
        self.missing_count += 1
        logger.error(
            "storage alarm: evidence %s could not be kept: %s",
            record.key,
            reason,
            extra={"key": record.key, "spool_bytes": self.spool_bytes},
        )
        return replace(record, state=EvidenceState.MISSING, reason=reason)

    def _remove(self, item: _Item) -> None:
        # Manifest first: a crash in between leaves an orphan data file,
        # which loading removes, never a manifest without data.
        (self.spool_dir / f"{item.name}{_MANIFEST_SUFFIX}").unlink(missing_ok=True)
        (self.spool_dir / item.data_name).unlink(missing_ok=True)
        self._items.pop(item.name, None)

    def _oldest_first(self) -> list[_Item]:
        with self._lock:
            return sorted(self._items.values(), key=lambda item: item.spooled_at)

    def _load(self) -> None:
        """Rebuild the backlog from disk; drop temp files and orphans."""
        for manifest in self.spool_dir.glob(f"*{_MANIFEST_SUFFIX}"):
            item = _read_manifest(manifest)
            data = self.spool_dir / item.data_name if item else None
            if item is None or data is None or not data.is_file():
                manifest.unlink(missing_ok=True)
                continue
            if data.stat().st_size != item.size_bytes:
                logger.error("spooled %s is truncated; dropping it", item.key)
                manifest.unlink(missing_ok=True)
                continue
            self._items[item.name] = item
        wanted = {item.data_name for item in self._items.values()}
        for path in self.spool_dir.iterdir():
            leftover = path.name.startswith(".") or (
                path.suffix == _DATA_SUFFIX and path.name not in wanted
            )
            if leftover and path.is_file():
                path.unlink(missing_ok=True)
        if self._items:
            logger.info("evidence spool holds %d pending object(s)", len(self._items))


def _item_name(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _dump(item: _Item) -> bytes:
    return json.dumps(
        {
            "key": item.key,
            "content_type": item.content_type,
            "sha256": item.sha256,
            "size_bytes": item.size_bytes,
            "data_name": item.data_name,
            "spooled_at": item.spooled_at,
        }
    ).encode()


def _read_manifest(path: Path) -> _Item | None:
    try:
        raw = json.loads(path.read_text())
        item = _Item(
            key=validate_key(str(raw["key"])),
            content_type=str(raw["content_type"]),
            sha256=str(raw["sha256"]),
            size_bytes=int(raw["size_bytes"]),
            data_name=str(raw["data_name"]),
            spooled_at=float(raw["spooled_at"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        logger.warning("unreadable spool manifest %s; dropping it", path.name)
        return None
    if "/" in item.data_name or item.data_name.startswith("."):
        return None
    return item
