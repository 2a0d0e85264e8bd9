"""The evidence object store: one import for every kind of store.

- :class:`LocalDirStore` keeps evidence in a local directory (the default).
- :class:`S3Store` keeps it in a bucket of MinIO or S3.
- :class:`SpoolingStore` wraps either and spools locally while it is down.

Every store follows :class:`ObjectStore`; ``put_*`` returns a
:class:`StoredObject` whose ``state`` says whether the evidence is ``stored``,
``pending`` (spooled, upload retrying) or ``missing`` (with the reason).
"""

from vision.evidence.local import LocalDirStore
from vision.evidence.objects import (
    ObjectInfo,
    ObjectStore,
    StoredObject,
    guess_content_type,
    validate_key,
)
from vision.evidence.s3 import S3Store
from vision.evidence.spool import SpoolingStore, never_purge

__all__ = [
    "LocalDirStore",
    "ObjectInfo",
    "ObjectStore",
    "S3Store",
    "SpoolingStore",
    "StoredObject",
    "guess_content_type",
    "never_purge",
    "validate_key",
]
