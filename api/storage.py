"""The evidence object store the service uses, built from settings.

The store classes live with the evidence writer (``vision.evidence``); the
service reads through the same ``ObjectStore`` protocol, so a local directory
and an S3 bucket are served by one code path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from api.settings import Settings

if TYPE_CHECKING:
    from vision.evidence.objects import ObjectStore


def build_store(settings: Settings, *, spooled: bool = False) -> ObjectStore:
    """The store that ``settings.store_kind`` names, ready to use.

    ``spooled``: a spool will stand in front of it (a camera worker), so an
    S3 store that does not answer at start is tolerated, with a warning: the
    camera runs, its evidence waits in the spool, and the bucket is made
    before the first upload. A store that refuses the credentials still
    fails here."""
    if settings.store_kind == "local":
        from vision.evidence.local import LocalDirStore

        assert settings.store_dir is not None  # derived by Settings
        return LocalDirStore(settings.store_dir)

    # Imported here: the S3 client is only loaded when it is configured.
    from vision.evidence.s3 import S3Store

    access_key = settings.s3_access_key
    secret_key = settings.s3_secret_key
    assert settings.s3_endpoint and access_key and secret_key  # checked by Settings
    return S3Store(
        endpoint=settings.s3_endpoint,
        access_key=access_key.get_secret_value(),
        secret_key=secret_key.get_secret_value(),
        bucket=settings.s3_bucket,
        secure=settings.s3_secure,
        region=settings.s3_region,
        tolerate_unreachable=spooled,
    )


def describe_store(store: ObjectStore, key: str) -> str:
    """Where an object lies (or the store itself, for an empty key), for
    messages: a local path or ``s3://bucket/key at endpoint``; never a
    credential or a presigned URL. A spool is described by the store
    behind it."""
    while getattr(store, "inner", None) is not None:
        store = store.inner  # type: ignore[attr-defined]
    root = getattr(store, "root", None)
    if root is not None:
        return str(root / key) if key else str(root)
    bucket = getattr(store, "bucket", None)
    endpoint = getattr(store, "endpoint", None)
    if bucket is not None:
        return f"s3://{bucket}/{key} at {endpoint}"
    return f"{type(store).__name__}:{key}"
