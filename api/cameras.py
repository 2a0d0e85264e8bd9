"""Cameras run beside the API: ``citywatch serve --cameras DIR``.

Each camera file in the folder becomes a camera of the service:

- a camera with a ``source`` (a stream URL or a recording) gets its own worker
  process, supervised and restarted if it crashes;
- every camera accepts pushed frames and clips over HTTP; a camera without a
  ``source`` is analysed from pushed frames only.

Workers file tickets straight into the settings' database (the embedded
default: no API keys needed between processes on one machine) and report
their health to a status board that ``/metrics`` and
``/api/health/cameras`` read.
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from pathlib import Path

from api.db import make_engine, make_session_factory
from api.settings import Settings
from api.sinks import DatabaseSink
from api.storage import build_store
from api.watch import load_detector
from vision.config import CameraConfig, load_camera_file
from vision.errors import ConfigError
from vision.evidence.objects import ObjectStore
from vision.evidence.writer import EvidenceWriter
from vision.ingest.push import PushHub
from vision.metrics import StatusBoard
from vision.pipeline import build_analyzers, run_source
from vision.supervisor import SupervisorSettings, serve_cameras
from vision.worker import CameraWorker, live_session_key

logger = logging.getLogger(__name__)

CAMERA_FILE_SUFFIXES = (".yaml", ".yml", ".json")


def camera_files_in(folder: Path) -> list[Path]:
    """The camera files of a folder, each checked now (a typo fails at start)."""
    if not folder.is_dir():
        raise ConfigError(f"camera folder {folder}: not a directory")
    files = sorted(p for p in folder.iterdir() if p.suffix in CAMERA_FILE_SUFFIXES)
    if not files:
        raise ConfigError(f"camera folder {folder}: holds no camera files (.yaml)")
    cameras = [load_camera_file(path) for path in files]
    ids = [camera.camera_id for camera in cameras]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"camera folder {folder}: two files share a camera_id")
    return files


def make_sink(settings: Settings) -> DatabaseSink:
    """A ticket sink over the settings' database, for a worker process."""
    assert settings.database_url is not None  # derived by Settings
    return DatabaseSink(
        make_session_factory(make_engine(settings.database_url)),
        duplicate_window_s=settings.duplicate_window_s,
        duplicate_iou=settings.duplicate_iou,
        rejected_retention_s=settings.rejected_retention_days * 86400.0,
    )


def make_store(settings: Settings) -> ObjectStore:
    """The store of a camera worker, behind its spool."""
    return build_store(settings, spooled=True)


class CameraFleet:
    """The cameras of one service: supervised workers and pushed frames."""

    def __init__(self, settings: Settings, camera_files: list[Path]) -> None:
        self.settings = settings
        self.cameras = {
            camera.camera_id: camera
            for camera in (load_camera_file(path) for path in camera_files)
        }
        self._streamed = [
            path for path in camera_files if load_camera_file(path).source
        ]
        self.board = StatusBoard()
        self.hub = PushHub(self._push_worker, self._run_clip)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sink: DatabaseSink | None = None

    def start(self) -> None:
        if not self._streamed:
            return
        assert self.settings.spool_dir is not None  # derived by Settings
        supervisor = SupervisorSettings(spool_root=self.settings.spool_dir)
        self._thread = threading.Thread(
            target=serve_cameras,
            args=(
                self._streamed,
                partial(make_sink, self.settings),
                partial(make_store, self.settings),
                supervisor,
            ),
            kwargs={
                "load_detector": partial(load_detector, settings=self.settings),
                "board": self.board,
                "stop": self._stop,
                "install_signal_handlers": False,
            },
            name="camera-supervisor",
            daemon=True,
        )
        self._thread.start()
        logger.info("started %d camera worker(s)", len(self._streamed))

    def stop(self, timeout_s: float = 90.0) -> None:
        """Stop every worker; each files what it holds before it exits."""
        self._stop.set()
        self.hub.close()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _shared_sink(self) -> DatabaseSink:
        if self._sink is None:
            self._sink = make_sink(self.settings)
        return self._sink

    def _push_worker(self, camera_id: str) -> CameraWorker | None:
        camera = self.cameras.get(camera_id)
        if camera is None:
            return None
        return CameraWorker(
            camera,
            self._analyzers(camera),
            EvidenceWriter(make_store(self.settings)),
            self._shared_sink(),
            session_key=live_session_key(),
        )

    def _run_clip(self, camera_id: str, path: Path) -> None:
        camera = self.cameras[camera_id]
        run_source(
            str(path),
            camera,
            analyzers=self._analyzers(camera),
            writer=EvidenceWriter(make_store(self.settings)),
            sink=self._shared_sink(),
        )

    def _analyzers(self, camera: CameraConfig):
        return build_analyzers(camera, partial(load_detector, settings=self.settings))
