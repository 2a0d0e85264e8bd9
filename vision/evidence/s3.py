"""Evidence kept in an S3-protocol store (MinIO, S3) through the minio client.

Every upload passes its media type and an inline Content-Disposition, on the
single-request and the multipart path alike, so browsers play a clip or show a
snapshot in place instead of downloading it. Uploads that meet a busy or
flaky store (503 SlowDown, a reset connection) are retried with capped
exponential backoff and full jitter under the same key; an S3 PUT replaces the
whole object, so a retry never leaves a duplicate or half an object.

The bucket is ensured at start-up; "already exists" and "already owned by
you" count as success, so several workers may start at once.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, TypeVar

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from vision.errors import ClipUploadError, StoreError
from vision.evidence.objects import (
    CHUNK_SIZE_BYTES,
    Chunks,
    ObjectInfo,
    StoredObject,
    inline_disposition,
    sha256_of_file,
    validate_content_type,
    validate_key,
    validate_range,
)

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
_T = TypeVar("_T")

_BUCKET_PRESENT_CODES = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "OperationAborted",
        "XMinioServerNotInitialized",
    }
)
_ABSENT_CODES = frozenset({"NoSuchKey", "NoSuchObject", "NoSuchBucket"})
_UNREACHABLE_ERRORS = (
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.ConnectTimeoutError,
    ConnectionRefusedError,
)
# A dead store must fail fast enough for the caller to spool the evidence;
# a slow part upload of a large clip still has a minute per request.
_CONNECT_TIMEOUT_S = 5.0
_READ_TIMEOUT_S = 60.0
_RETRY_WAIT_BASE_S = 0.5
_RETRY_WAIT_CAP_S = 8.0


class S3Store:
    """An object store in one bucket of an S3-protocol server.

    ``endpoint`` is ``host:port``; ``secure`` selects HTTPS. Objects larger
    than ``part_size_bytes`` (at least 5 MiB) go up in parts. An upload is
    tried at most ``retries`` times and no new try starts after
    ``max_retry_s``. The bucket is ensured here unless ``ensure_bucket`` is
    False; with ``tolerate_unreachable`` a store that does not answer yet is
    only logged (put a spool in front), while a refusal always raises.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str | None = None,
        part_size_bytes: int = 16 * MIB,
        retries: int = 5,
        max_retry_s: float = 30.0,
        ensure_bucket: bool = True,
        tolerate_unreachable: bool = False,
    ) -> None:
        if part_size_bytes < 5 * MIB:
            raise ValueError(
                f"part_size_bytes: expected at least 5 MiB (the S3 minimum), "
                f"got {part_size_bytes}"
            )
        if retries < 1:
            raise ValueError(f"retries: expected at least 1, got {retries}")
        self.endpoint = endpoint
        self.bucket = bucket
        self.part_size_bytes = part_size_bytes
        self.retries = retries
        self.max_retry_s = max_retry_s
        self._bucket_ready = False
        # urllib3's own retries are off: this class retries with backoff, and
        # a hidden second retry layer would stretch the time a dead store
        # takes to be noticed.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=_CONNECT_TIMEOUT_S, read=_READ_TIMEOUT_S),
            maxsize=10,
            retries=False,
        )
        self._client = Minio(
            endpoint=endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )
        if ensure_bucket:
            self._ensure_at_start_up(tolerate_unreachable)

    def _ensure_at_start_up(self, tolerate_unreachable: bool) -> None:
        try:
            self._ensure_bucket_once()
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            if not tolerate_unreachable:
                raise self._store_error("is unreachable or busy", exc) from exc
            # A spool in front keeps evidence meanwhile; the bucket is ensured
            # before the first upload. A refusal above still fails start-up.
            logger.warning(
                "%s is unreachable at start-up (%s); evidence will be spooled",
                self.where,
                _describe(exc),
            )

    @property
    def where(self) -> str:
        """The endpoint and bucket, for messages (never the credentials)."""
        return f"object store {self.endpoint} bucket {self.bucket!r}"

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists.

        Raises StoreError naming the endpoint and bucket when the store is
        unreachable or busy, or refuses the bucket to these credentials.
        """
        try:
            self._ensure_bucket_once()
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._store_error("is unreachable or busy", exc) from exc

    def _ensure_bucket_once(self) -> None:
        """Ensure the bucket; transient failures come out raw, for retrying."""
        try:
            present = self._client.bucket_exists(bucket_name=self.bucket)
        except S3Error as exc:
            if _is_transient(exc):
                raise
            if exc.code != "AccessDenied":
                raise self._store_error("cannot check the bucket", exc) from exc
            # Credentials that may not look at buckets may still own this one.
            present = False
        if not present:
            self._make_bucket()
        self._bucket_ready = True
        logger.info("evidence bucket ready", extra={"bucket": self.bucket})

    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        validate_key(key)
        validate_content_type(content_type)
        digest = hashlib.sha256(data).hexdigest()
        self._upload(key, lambda: io.BytesIO(data), len(data), content_type)
        return StoredObject(key, digest, len(data), content_type)

    def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        validate_key(key)
        validate_content_type(content_type)
        path = Path(path)
        digest, size_bytes = sha256_of_file(path)
        with path.open("rb") as handle:

            def rewind() -> BinaryIO:
                handle.seek(0)
                return handle

            self._upload(key, rewind, size_bytes, content_type)
        return StoredObject(key, digest, size_bytes, content_type)

    def open(self, key: str) -> tuple[Iterator[bytes], ObjectInfo]:
        validate_key(key)
        client, bucket = self._client, self.bucket
        stat = self._call(
            key, lambda: client.stat_object(bucket_name=bucket, object_name=key)
        )
        info = ObjectInfo(int(stat.size or 0), stat.content_type or "")
        response = self._call(
            key, lambda: client.get_object(bucket_name=bucket, object_name=key)
        )
        return _stream(response, self.where), info

    def open_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        validate_key(key)
        validate_range(start, end)
        response = self._call(
            key,
            lambda: self._client.get_object(
                bucket_name=self.bucket,
                object_name=key,
                offset=start,
                length=end - start + 1,
            ),
        )
        return _stream(response, self.where)

    def exists(self, key: str) -> bool:
        validate_key(key)
        client, bucket = self._client, self.bucket
        try:
            self._call(
                key, lambda: client.stat_object(bucket_name=bucket, object_name=key)
            )
        except KeyError:
            return False
        return True

    def delete(self, key: str) -> None:
        validate_key(key)
        client, bucket = self._client, self.bucket
        self._call(
            key, lambda: client.remove_object(bucket_name=bucket, object_name=key)
        )

    def url_for(self, key: str, expires_s: int = 3600) -> str | None:
        validate_key(key)
        return self._call(
            key,
            lambda: self._client.presigned_get_object(
                bucket_name=self.bucket,
                object_name=key,
                expires=timedelta(seconds=expires_s),
            ),
        )

    def _upload(
        self,
        key: str,
        open_data: Callable[[], BinaryIO],
        size_bytes: int,
        content_type: str,
    ) -> None:
        """Put one object, retrying transient failures under the same key."""
        retrying = Retrying(
            stop=stop_after_attempt(self.retries) | stop_before_delay(self.max_retry_s),
            wait=wait_random_exponential(
                multiplier=_RETRY_WAIT_BASE_S, max=_RETRY_WAIT_CAP_S
            ),
            retry=retry_if_exception(_is_transient),
            before_sleep=self._log_retry(key),
            reraise=True,
        )
        try:
            retrying(self._put_once, key, open_data, size_bytes, content_type)
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            cause = _describe(exc)
            if isinstance(exc, _UNREACHABLE_ERRORS):
                cause = f"store unreachable ({cause})"
            raise ClipUploadError(
                f"{self.where}: upload of {key!r} failed after {attempts} "
                f"attempt(s): {cause}"
            ) from exc

    def _put_once(
        self,
        key: str,
        open_data: Callable[[], BinaryIO],
        size_bytes: int,
        content_type: str,
    ) -> None:
        if not self._bucket_ready:
            self._ensure_bucket_once()
        try:
            self._client.put_object(
                bucket_name=self.bucket,
                object_name=key,
                data=open_data(),
                length=size_bytes,
                content_type=content_type,
                metadata={"Content-Disposition": inline_disposition(key)},
                part_size=self.part_size_bytes,
                num_parallel_uploads=1,
            )
        except S3Error as exc:
            if exc.code == "NoSuchBucket":
                # The bucket went away (a store restarted without its data):
                # make it again before the next try.
                self._bucket_ready = False
            raise

    def _make_bucket(self) -> None:
        try:
            self._client.make_bucket(bucket_name=self.bucket)
        except S3Error as exc:
            if exc.code in _BUCKET_PRESENT_CODES:
                return
            if _is_transient(exc):
                raise
            if exc.code in ("AccessDenied", "InvalidAccessKeyId"):
                raise self._store_error(
                    "refused to create the bucket for these credentials", exc
                ) from exc
            raise self._store_error("cannot create the bucket", exc) from exc

    def _call(self, key: str, request: Callable[[], _T]) -> _T:
        """Run one read/delete request; KeyError if absent, else StoreError."""
        try:
            return request()
        except S3Error as exc:
            if exc.code in _ABSENT_CODES:
                raise KeyError(key) from None
            if exc.code == "InvalidRange":
                raise ValueError(f"byte range outside object {key!r}") from exc
            raise self._store_error(f"refused a request for {key!r}", exc) from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._store_error("is unreachable", exc) from exc

    def _store_error(self, problem: str, exc: BaseException) -> StoreError:
        return StoreError(f"{self.where} {problem}: {_describe(exc)}")

    def _log_retry(self, key: str) -> Callable[[RetryCallState], None]:
        def log(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            logger.warning(
                "upload of %s to %s failed (%s); retrying in %.1f s",
                key,
                self.where,
                _describe(exc) if exc else "?",
                state.upcoming_sleep,
                extra={"bucket": self.bucket, "attempt": state.attempt_number},
            )

        return log


def _is_transient(exc: BaseException) -> bool:
    """Whether another try of the same request may succeed."""
    if isinstance(exc, S3Error):
        status = getattr(exc.response, "status", 0) or 0
        return (
            exc.code in _TRANSIENT_CODES
            or exc.code == "NoSuchBucket"
            or status >= 500
            or status == 429
        )
    if isinstance(exc, ServerError | InvalidResponseError):
        return True
    if isinstance(exc, urllib3.exceptions.HTTPError):
        return True
    return isinstance(exc, ConnectionError | TimeoutError)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, S3Error):
        return f"{exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def _stream(response: urllib3.BaseHTTPResponse, where: str) -> Chunks:
    def release() -> None:
        response.close()
        response.release_conn()

    return Chunks(_read_response(response, where), release)


def _read_response(response: urllib3.BaseHTTPResponse, where: str) -> Iterator[bytes]:
    try:
        yield from response.stream(CHUNK_SIZE_BYTES)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise StoreError(f"{where} broke off a download: {_describe(exc)}") from exc
