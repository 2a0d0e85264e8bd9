"""Notifications: signed webhooks retried with backoff, and MQTT topics on
the local Mosquitto broker (127.0.0.1:1883)."""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from api.notify import BackgroundNotifier, Notice, NoticeKind, sign, topic_for

NOTICE = Notice(
    notice=NoticeKind.DISPATCHED,
    ticket_id=7,
    area_path="old-town/riverside/grid-07",
    camera_id="plaza-north",
    category="illegal_parking",
    state="dispatched",
    assignee="traffic",
    at=datetime(2026, 5, 4, 9, 0, tzinfo=UTC),
)


@pytest.fixture
def receiver() -> Iterator[tuple[str, queue.Queue, list[int]]]:
    """A webhook receiver on loopback that fails its first answer with 503."""
    received: queue.Queue = queue.Queue()
    answers = [503]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = answers.pop(0) if answers else 204
            if status < 300:
                received.put((dict(self.headers), body))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received, answers
    server.shutdown()
    server.server_close()


def test_webhook_is_signed_and_retried(
    receiver: tuple[str, queue.Queue, list[int]],
) -> None:
    url, received, _ = receiver
    notifier = BackgroundNotifier(
        webhook_urls=[url], webhook_secret="hook-secret", retries=3, backoff_s=0.01
    )
    notifier.notify(NOTICE)  # returns at once; delivery is in the background
    headers, body = received.get(timeout=10)
    notifier.close()

    timestamp = headers["X-Citywatch-Timestamp"]
    expected = hmac.new(
        b"hook-secret", timestamp.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    assert headers["X-Citywatch-Signature"] == f"sha256={expected}"
    assert sign("hook-secret", timestamp, body) == f"sha256={expected}"
    assert json.loads(body)["notice"] == "dispatched"
    assert json.loads(body)["ticket_id"] == 7


def test_webhooks_need_a_secret() -> None:
    with pytest.raises(ValueError, match="webhook_secret"):
        BackgroundNotifier(webhook_urls=["http://127.0.0.1:9/x"], webhook_secret=None)


def test_topic_names_the_area_and_the_notice() -> None:
    assert topic_for("citywatch/tickets", NOTICE) == (
        "citywatch/tickets/old-town/riverside/grid-07/dispatched"
    )


def _broker_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _broker_up(), reason="no MQTT broker on 127.0.0.1:1883")
def test_mqtt_notice_reaches_a_subscriber_of_the_area() -> None:
    import paho.mqtt.client as mqtt

    got: queue.Queue = queue.Queue()
    subscribed = threading.Event()
    prefix = f"citywatch-test-{threading.get_ident()}/tickets"
    subscriber = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    subscriber.on_message = lambda _c, _u, message: got.put(message)
    subscriber.on_subscribe = lambda *_args: subscribed.set()
    subscriber.connect("127.0.0.1", 1883)
    subscriber.loop_start()
    subscriber.subscribe(f"{prefix}/old-town/#", qos=1)
    assert subscribed.wait(5)

    notifier = BackgroundNotifier(
        webhook_urls=[],
        webhook_secret=None,
        mqtt_host="127.0.0.1",
        mqtt_topic_prefix=prefix,
    )
    try:
        notifier.notify(NOTICE)
        message = got.get(timeout=10)
    finally:
        notifier.close()
        subscriber.loop_stop()
        subscriber.disconnect()

    assert message.topic == f"{prefix}/old-town/riverside/grid-07/dispatched"
    assert json.loads(message.payload)["assignee"] == "traffic"
