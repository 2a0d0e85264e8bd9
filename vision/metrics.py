"""Camera metrics for Prometheus, and the camera health summary.

Workers publish a ``CameraStatus`` snapshot about once a second: in-process
straight into a ``StatusBoard``, from worker processes through the
supervisor, which owns the board. A collector turns the board into metric
families at scrape time, so one ``/metrics`` endpoint covers every camera on
the machine however many processes run them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, make_asgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from vision.health import HealthState

_STATES = [state.value for state in HealthState]


@dataclass
class CameraStatus:
    """One camera's figures at one moment; counters count since its start."""

    camera_id: str
    state: str = HealthState.STARTING.value
    reason: str | None = None
    view_problems: list[str] = field(default_factory=list)
    view_similarity: float | None = None
    last_frame_at: str | None = None
    frames_in: int = 0  # frames decoded from the source
    frames_analysed: int = 0
    frames_skipped: int = 0
    lag_s: float = 0.0
    max_lag_s: float = 0.0
    reconnects: int = 0
    events: int = 0
    faults: int = 0
    tickets_filed: int = 0
    spool_bytes: int = 0
    spool_pending: int = 0
    spool_pressure: float = 0.0  # spooled bytes over the spool's byte cap
    events_kept: int = 0  # events waiting in the outbox for the ticket service
    restarts: int = 0  # worker process restarts by the supervisor
    pid: int | None = None  # the worker's process
    updated_monotonic: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("updated_monotonic")
        return data


class StatusBoard:
    """The latest status of every camera (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._statuses: dict[str, CameraStatus] = {}

    def publish(self, status: CameraStatus) -> None:
        with self._lock:
            known = self._statuses.get(status.camera_id)
            if known is not None:
                status.restarts = max(status.restarts, known.restarts)
            self._statuses[status.camera_id] = status

    def note_restart(self, camera_id: str) -> None:
        with self._lock:
            status = self._statuses.setdefault(camera_id, CameraStatus(camera_id))
            status.restarts += 1

    def mark_offline(self, camera_id: str, reason: str) -> None:
        with self._lock:
            status = self._statuses.setdefault(camera_id, CameraStatus(camera_id))
            status.state, status.reason = HealthState.OFFLINE.value, reason

    def statuses(self) -> list[CameraStatus]:
        with self._lock:
            return [self._statuses[key] for key in sorted(self._statuses)]


def health_summary(board: StatusBoard) -> list[dict[str, Any]]:
    """Every camera's health, for ``GET /api/health/cameras``."""
    return [status.as_dict() for status in board.statuses()]


_COUNTERS = {
    "frames_in": "Frames decoded from the camera's source.",
    "frames_analysed": "Frames given to the analyzers.",
    "frames_skipped": "Live frames skipped on purpose because analysis was busy.",
    "reconnects": "Reconnects to the camera's source.",
    "events": "Events the analyzers found.",
    "faults": "Camera fault events (offline, covered, moved, frozen).",
    "tickets_filed": "Tickets filed from the camera's events.",
    "restarts": "Restarts of the camera's worker process after a crash.",
}
_GAUGES = {
    "lag_s": "Stream seconds between the newest frame and the analysed one.",
    "max_lag_s": "Largest analysis lag seen, stream seconds.",
    "spool_bytes": "Bytes of evidence spooled locally, waiting for the store.",
    "spool_pending": "Evidence objects waiting in the spool for upload.",
    "spool_pressure": "Spooled bytes over the spool's byte cap (0..1).",
    "events_kept": "Events kept on disk because the ticket service was unavailable.",
}


class CameraCollector(Collector):
    """Metric families built from a status board at scrape time."""

    def __init__(self, board: StatusBoard) -> None:
        self.board = board

    def collect(self) -> Iterator[Any]:
        statuses = self.board.statuses()
        for name, doc in _COUNTERS.items():
            family = CounterMetricFamily(
                f"citywatch_camera_{name}", doc, labels=["camera_id"]
            )
            for status in statuses:
                family.add_metric([status.camera_id], getattr(status, name))
            yield family
        for name, doc in _GAUGES.items():
            family = GaugeMetricFamily(
                f"citywatch_camera_{name}", doc, labels=["camera_id"]
            )
            for status in statuses:
                family.add_metric([status.camera_id], getattr(status, name))
            yield family
        state = GaugeMetricFamily(
            "citywatch_camera_state",
            "1 for the camera's current health state.",
            labels=["camera_id", "state"],
        )
        for status in statuses:
            for value in _STATES:
                state.add_metric(
                    [status.camera_id, value], float(status.state == value)
                )
        yield state


def metrics_registry(board: StatusBoard) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CameraCollector(board))
    return registry


def metrics_app(board: StatusBoard) -> Callable[..., Any]:
    """An ASGI app serving the board in Prometheus' text format.

    Mount it with ``app.mount("/metrics", metrics_app(board))``.
    """
    return make_asgi_app(registry=metrics_registry(board))
