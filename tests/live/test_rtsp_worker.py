"""A camera worker on a real RTSP stream: reconnects, bounded waits, health."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest

from eval.streams import RtspServer, wait_until
from tests.s3server import free_port
from vision.config import CameraConfig
from vision.evidence.store import LocalDirStore
from vision.evidence.writer import EvidenceWriter
from vision.health import CameraHealth, HealthSettings, HealthState
from vision.ingest.live import LiveSettings
from vision.pipeline import run_live
from vision.sink import MemorySink
from vision.types import Category, Event, EvidenceKind, Frame

FAST = LiveSettings(
    open_timeout_s=3.0,
    read_timeout_s=3.0,
    stall_timeout_s=5.0,
    backoff_initial_s=0.5,
    backoff_max_s=2.0,
    backoff_jitter_s=0.2,
)


class _States:
    """Records every health state change of a camera."""

    def __init__(self, health: CameraHealth) -> None:
        self.seen: list[HealthState] = []
        self.health = health

    def poll(self) -> None:
        state = self.health.state
        if not self.seen or self.seen[-1] is not state:
            self.seen.append(state)


@contextmanager
def _running(
    uri: str,
    tmp_path: Path,
    *,
    health_settings=None,
    analyzers=(),
    camera=None,
    live=FAST,
) -> Iterator[dict]:
    camera = camera or CameraConfig(camera_id="plaza", throw={"enabled": False})
    health = CameraHealth(camera.camera_id, health_settings or HealthSettings())
    sink = MemorySink()
    stop = threading.Event()
    box: dict = {
        "health": health,
        "sink": sink,
        "stop": stop,
        "states": _States(health),
    }

    def on_status(worker, reader) -> None:
        box["worker"], box["reader"] = worker, reader
        box["states"].poll()

    def target() -> None:
        box["run"] = run_live(
            uri,
            camera,
            analyzers=list(analyzers),
            writer=EvidenceWriter(LocalDirStore(tmp_path / "evidence")),
            sink=sink,
            stop=stop,
            live_settings=live,
            health=health,
            on_status=on_status,
        )

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    box["thread"] = thread
    try:
        yield box
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "the worker did not stop"


def _poll_states(box: dict, predicate, timeout_s: float) -> bool:
    def check() -> bool:
        box["states"].poll()
        return predicate()

    return wait_until(check, timeout_s, step_s=0.05)


def test_worker_reconnects_after_the_server_restarts(
    rtsp_ready, street_h264: Path, tmp_path: Path
) -> None:
    server = RtspServer(street_h264).start()
    try:
        settings = HealthSettings(offline_fault_s=1.0)
        with _running(server.url, tmp_path, health_settings=settings) as box:
            health = box["health"]
            assert _poll_states(box, lambda: health.state is HealthState.ONLINE, 15)

            server.kill()
            assert _poll_states(box, lambda: health.state is HealthState.OFFLINE, 10)
            assert "rtsp://127.0.0.1" in (health.reason or "")
            time.sleep(3.0)  # offline past the fault time: a fault is filed
            killed_at = time.monotonic()
            server.start()
            assert _poll_states(box, lambda: health.state is HealthState.ONLINE, 15)
            back_s = time.monotonic() - killed_at
            reconnects = box["reader"].reconnects
            seen = list(box["states"].seen)
    finally:
        server.kill()

    # Reconnected within the backoff ceiling (2 s + jitter) plus connection set-up.
    assert back_s < FAST.backoff_max_s + FAST.backoff_jitter_s + 4.0
    assert reconnects >= 2
    assert seen[-3:] == [
        HealthState.ONLINE,
        HealthState.OFFLINE,
        HealthState.ONLINE,
    ]
    faults = [e for e in box["sink"].events if e.category is Category.CAMERA_FAULT]
    assert [e.rule for e in faults] == ["camera_offline"]  # once per episode


def test_stream_that_stalls_mid_way_is_dropped_and_picked_up_again(
    rtsp_ready, street_h264: Path, tmp_path: Path
) -> None:
    with RtspServer(street_h264) as server:
        with _running(server.url, tmp_path) as box:
            health = box["health"]
            assert _poll_states(box, lambda: health.state is HealthState.ONLINE, 15)

            server.pause()  # the connection stays open; no frame comes
            paused_at = time.monotonic()
            went_offline = _poll_states(
                box, lambda: health.state is HealthState.OFFLINE, 15
            )
            offline_s = time.monotonic() - paused_at
            reason = health.reason or ""
            time.sleep(2.0)
            server.resume()
            back = _poll_states(box, lambda: health.state is HealthState.ONLINE, 20)
            thread_alive = box["thread"].is_alive()
            reconnects = box["reader"].reconnects

    assert went_offline and back and thread_alive
    # Dropped once a read timed out and closing the stalled connection (its
    # TEARDOWN gets no answer either) timed out too: bounded, never stuck.
    assert offline_s < 2 * FAST.read_timeout_s + 2.0
    assert "no data for 3 s" in reason  # the health says why
    assert reconnects >= 1


def _silent_server(stop: threading.Event, port: int) -> None:
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        listener.settimeout(0.2)
        held = []
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])  # accept, then say nothing
            except TimeoutError:
                continue
        for conn in held:
            conn.close()


def _garbage_server(stop: threading.Event, port: int) -> None:
    rng = random.Random(7)
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                try:
                    for _ in range(50):
                        conn.sendall(rng.randbytes(4096))
                        time.sleep(0.01)
                except OSError:
                    pass


@pytest.mark.parametrize(
    ("serve", "scheme"),
    [
        (_silent_server, "rtsp"),
        (_garbage_server, "rtsp"),
        (_silent_server, "http"),
        (_garbage_server, "http"),
    ],
)
def test_silent_or_garbage_server_neither_hangs_nor_crashes(
    serve, scheme: str, tmp_path: Path
) -> None:
    port = free_port()
    stop_server = threading.Event()
    threading.Thread(target=serve, args=(stop_server, port), daemon=True).start()
    time.sleep(0.2)
    uri = f"{scheme}://viewer:secret@127.0.0.1:{port}/stream"
    try:
        with _running(uri, tmp_path) as box:
            health = box["health"]
            assert wait_until(lambda: health.state is HealthState.OFFLINE, 12)
            time.sleep(4.0)  # a few attempts, each bounded by its timeout
            assert box["thread"].is_alive()
            reason = health.reason or ""
            stopped_at = time.monotonic()
        stop_s = time.monotonic() - stopped_at
    finally:
        stop_server.set()

    assert "cannot open" in reason or "no frame" in reason
    assert "secret" not in reason  # credentials never reach a message
    assert stop_s < FAST.open_timeout_s + 3.0


class _EventAt:
    """Fires one event when the stream reaches ``at_s``."""

    name = "event-at"

    def __init__(self, at_s: float) -> None:
        self.at_s = at_s
        self.fired = False

    def process(self, frame: Frame) -> list[Event]:
        if self.fired or frame.ts_s < self.at_s:
            return []
        self.fired = True
        return [
            Event(
                camera_id="plaza",
                category=Category.ILLEGAL_PARKING,
                rule="test",
                started_ts_s=frame.ts_s,
                ended_ts_s=frame.ts_s,
                detected_ts_s=frame.ts_s,
                started_at=datetime.now(UTC),
            )
        ]

    def finish(self) -> list[Event]:
        return []


@pytest.mark.slow
def test_stream_with_10s_keyframe_interval_keeps_full_preroll_untouched(
    rtsp_ready, street_h264_gop10: Path, tmp_path: Path
) -> None:
    camera = CameraConfig(
        camera_id="plaza",
        throw={"enabled": False},
        clip={"preroll_s": 5.0, "postroll_s": 2.0},
    )
    received = []
    with RtspServer(street_h264_gop10) as server:
        with _running(
            server.url, tmp_path, analyzers=[_EventAt(17.0)], camera=camera
        ) as box:
            assert wait_until(lambda: box["sink"].events, 40)
            ring = box["worker"].packet_ring
            held = ring.clip(0.0, 1e9)
            received = [bytes(p.data) for p in held.packets] if held else []

    event = box["sink"].events[0]
    clip_item = next(i for i in event.evidence if i.kind is EvidenceKind.CLIP)
    clip_path = tmp_path / "evidence" / clip_item.key
    with av.open(str(clip_path)) as clip:
        stream = clip.streams.video[0]
        assert stream.codec_context.name == "h264"
        packets = [bytes(p) for p in clip.demux(stream) if p.size]
        clip.seek(0)
        frames = list(clip.decode(video=0))

    preroll_s = event.started_ts_s - (event.clip_start_ts_s or 0.0)
    assert preroll_s >= 5.0  # back to the keyframe at 10 s, not cut at 12 s
    assert event.clip_start_ts_s == pytest.approx(10.0, abs=0.15)
    assert len(frames) == len(packets) >= 90
    # Byte for byte the packets the stream delivered: no re-encoding.
    first = received.index(packets[0])
    assert received[first : first + len(packets)] == packets


def test_stopping_files_the_event_in_flight_with_its_evidence(
    rtsp_ready, street_h264: Path, tmp_path: Path
) -> None:
    camera = CameraConfig(
        camera_id="plaza",
        throw={"enabled": False},
        clip={"preroll_s": 2.0, "postroll_s": 60.0, "max_clip_s": 80.0},
    )
    with RtspServer(street_h264) as server:
        with _running(
            server.url, tmp_path, analyzers=[_EventAt(2.0)], camera=camera
        ) as box:
            assert wait_until(
                lambda: box.get("worker") and box["worker"].stats.events, 20
            )
            assert box["sink"].events == []  # waiting for its post-roll
    # Stopped: the held event was filed with the footage there was.
    (event,) = box["sink"].events
    assert {i.kind for i in event.evidence} >= {
        EvidenceKind.CLIP,
        EvidenceKind.SNAPSHOT,
    }
    assert all(i.state.value == "stored" for i in event.evidence)
