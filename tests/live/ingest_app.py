"""A minimal service with only the push routes, for upload tests in a subprocess.

    python -m uvicorn tests.live.ingest_app:app --port PORT

Environment: INGEST_TEMP_DIR (upload directory), INGEST_MAX_CLIP_BYTES.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from api.routes.ingest import IngestLimits, ingest_router
from vision.ingest.push import PushHub


def _clip_size(camera_id: str, path: Path) -> None:
    path.stat()  # the clip arrived whole; analysis is not what is measured here


hub = PushHub(lambda camera_id: None, _clip_size)
hub.camera = lambda camera_id: True  # type: ignore[method-assign,assignment] # every camera takes clips
limits = IngestLimits(
    temp_dir=Path(os.environ["INGEST_TEMP_DIR"]),
    max_clip_bytes=int(os.environ.get("INGEST_MAX_CLIP_BYTES", 256 << 20)),
    min_free_bytes=0,
)
app = FastAPI()
app.include_router(ingest_router(hub, limits))
