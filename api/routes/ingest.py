"""Push sources over HTTP: single JPEG or PNG frames and recorded clips.

Uploads are untrusted and may be huge. Sizes are checked from the headers
before the body is read (Content-Length, then the image's own header for
its pixel count), bodies stream to a temporary file in chunks and are never
held whole in memory, a disk without room answers 507 with a message saying
so, and temporary files are always removed.

Mount with ``app.include_router(ingest_router(hub, IngestLimits(...)))``;
add the service's auth with ``dependencies=[...]`` on ``include_router``.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import cv2
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from vision.errors import FrameError
from vision.ingest.images import check_pixel_count, image_size_from_header
from vision.ingest.push import FrameOutcome, PushHub
from vision.types import plausible_time

logger = logging.getLogger(__name__)

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class IngestLimits:
    max_frame_bytes: int = 20 << 20
    max_pixels: int = 50_000_000
    max_clip_bytes: int = 2 << 30
    temp_dir: Path | None = None  # default: the system's temporary directory
    min_free_bytes: int = 256 << 20  # room the temp disk keeps after an upload
    inference_long_side_px: int = 1920  # larger frames are decoded downscaled
    chunk_bytes: int = 1 << 20

    @property
    def directory(self) -> Path:
        return Path(self.temp_dir or tempfile.gettempdir())


CapturedAt = Annotated[
    datetime | None, Query(description="Capture time, ISO 8601 with zone.")
]


class _TooLarge(Exception):
    pass


def ingest_router(hub: PushHub, limits: IngestLimits | None = None) -> APIRouter:
    """The push routes, bound to ``hub`` (where frames and clips go)."""
    limits = limits or IngestLimits()
    router = APIRouter(tags=["cameras"])

    @router.post("/api/cameras/{camera_id}/frames", status_code=202)
    async def post_frame(
        camera_id: str,
        request: Request,
        captured_at: CapturedAt = None,
    ) -> JSONResponse:
        """One JPEG or PNG frame with its capture time (query or X-Captured-At).

        A PNG's alpha channel is dropped: the analyzers see colour only.
        """
        when = _capture_time(captured_at, request)
        pushed = hub.camera(camera_id)
        if pushed is None:
            raise HTTPException(404, f"camera {camera_id} takes no pushed frames")
        _check_length(request, limits.max_frame_bytes, "frame")
        path = await _receive(request, limits, limits.max_frame_bytes, ".jpg")
        try:
            image = await run_in_threadpool(_decode_frame, path, limits)
            outcome = await run_in_threadpool(pushed.accept, image, when)
        finally:
            path.unlink(missing_ok=True)
        # Dropped frames (duplicates, late ones) are not an error: 200, saying so.
        code = 202 if outcome is FrameOutcome.ACCEPTED else 200
        body = {"camera_id": camera_id, "outcome": outcome.value}
        return JSONResponse(body, status_code=code)

    @router.post("/api/cameras/{camera_id}/clips", status_code=202)
    async def post_clip(camera_id: str, request: Request) -> dict[str, object]:
        """A recorded clip, analysed in the background like any recording."""
        if hub.camera(camera_id) is None:
            raise HTTPException(404, f"camera {camera_id} takes no pushed clips")
        length = _check_length(request, limits.max_clip_bytes, "clip")
        _check_room(limits, length or 0)
        path = await _receive(request, limits, limits.max_clip_bytes, ".video")
        clip_id = hub.submit_clip(camera_id, path)  # the hub removes the file
        return {"camera_id": camera_id, "clip_id": clip_id, "size_bytes": length}

    return router


def _capture_time(captured_at: datetime | None, request: Request) -> datetime:
    header = request.headers.get("x-captured-at")
    if captured_at is None and header:
        try:
            captured_at = datetime.fromisoformat(header)
        except ValueError:
            raise HTTPException(
                422, f"X-Captured-At: not an ISO 8601 time: {header!r}"
            ) from None
    if captured_at is None:
        raise HTTPException(
            422, "a pushed frame needs its capture time: captured_at or X-Captured-At"
        )
    if captured_at.tzinfo is None:
        raise HTTPException(422, "the capture time needs a zone, e.g. 'Z' for UTC")
    try:
        return plausible_time(captured_at.astimezone(UTC))
    except ValueError as exc:
        raise HTTPException(
            422, f"capture time: {exc}; is the camera's clock set?"
        ) from None


def _check_length(request: Request, max_bytes: int, what: str) -> int | None:
    header = request.headers.get("content-length")
    if header is None:
        return None  # chunked: the limit is enforced while reading
    try:
        length = int(header)
    except ValueError:
        raise HTTPException(
            400, f"Content-Length is not a number: {header!r}"
        ) from None
    if length > max_bytes:
        raise HTTPException(
            413, f"{what} of {length} bytes is over the limit of {max_bytes} bytes"
        )
    return length


def _check_room(limits: IngestLimits, length: int) -> None:
    limits.directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(limits.directory).free
    if free - length < limits.min_free_bytes:
        raise HTTPException(
            507,
            f"not enough disk space for the upload: {free} bytes free in the "
            f"upload directory, {length} needed plus a {limits.min_free_bytes}-byte "
            "reserve",
        )


async def _receive(
    request: Request, limits: IngestLimits, max_bytes: int, suffix: str
) -> Path:
    """Stream the body to a temporary file; remove it on any failure."""
    limits.directory.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(
        prefix="upload-", suffix=suffix, dir=limits.directory
    )
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            size = 0
            async for chunk in _chunks(request):
                size += len(chunk)
                if size > max_bytes:
                    raise _TooLarge
                out.write(chunk)
    except _TooLarge:
        path.unlink(missing_ok=True)
        raise HTTPException(
            413, f"upload is over the limit of {max_bytes} bytes"
        ) from None
    except OSError as exc:
        path.unlink(missing_ok=True)
        if exc.errno in _NO_SPACE:
            logger.error("upload refused: the upload directory is full: %s", exc)
            raise HTTPException(
                507,
                "not enough disk space for the upload: the upload directory is full",
            ) from None
        raise
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


async def _chunks(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


def _decode_frame(path: Path, limits: IngestLimits):
    """Decode a JPEG or PNG after checking its declared size; large ones
    come out smaller."""
    try:
        width, height = image_size_from_header(path)
    except FrameError as exc:
        raise HTTPException(422, str(exc)) from None
    try:
        check_pixel_count(width, height, limits.max_pixels, name="frame")
    except FrameError as exc:
        raise HTTPException(413, str(exc)) from None
    # JPEG decodes at 1/2, 1/4 or 1/8 scale directly: a large frame never
    # exists at full size in memory.
    reduction = 1
    while (
        max(width, height) / reduction > limits.inference_long_side_px and reduction < 8
    ):
        reduction *= 2
    flags = {
        1: cv2.IMREAD_COLOR,
        2: cv2.IMREAD_REDUCED_COLOR_2,
        4: cv2.IMREAD_REDUCED_COLOR_4,
        8: cv2.IMREAD_REDUCED_COLOR_8,
    }[reduction]
    image = cv2.imread(str(path), flags)
    if image is None:
        raise HTTPException(422, "frame: the image data cannot be decoded")
    return image
