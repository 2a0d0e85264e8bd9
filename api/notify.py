"""Notifications when tickets are filed, dispatched, overdue or reopened.

Two channels, both optional and set by settings: webhooks (a JSON POST whose
body is signed with HMAC-SHA256 over ``"{timestamp}.{body}"``, the timestamp
in ``X-Citywatch-Timestamp`` and the signature in ``X-Citywatch-Signature:
sha256=<hex>``) and MQTT topics ``{prefix}/{area_path}/{notice}``.

Sending happens on a background thread fed by a queue, so a request never
waits on a slow receiver; each delivery is retried with exponential backoff
(tenacity) and given up with an ERROR log after the last try.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

import httpx
from tenacity import Retrying, stop_after_attempt, wait_exponential

from api.settings import Settings
from api.tables import Ticket, utc_now

logger = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-Citywatch-Timestamp"
SIGNATURE_HEADER = "X-Citywatch-Signature"


class NoticeKind(StrEnum):
    FILED = "filed"
    DISPATCHED = "dispatched"
    OVERDUE = "overdue"
    REOPENED = "reopened"


@dataclass(frozen=True, slots=True)
class Notice:
    notice: NoticeKind
    ticket_id: int
    area_path: str
    camera_id: str
    category: str
    state: str
    assignee: str | None
    at: datetime

    @classmethod
    def for_ticket(cls, kind: NoticeKind, ticket: Ticket) -> Notice:
        return cls(
            notice=kind,
            ticket_id=ticket.id,
            area_path=ticket.area_path,
            camera_id=ticket.camera_id,
            category=ticket.category,
            state=ticket.state,
            assignee=ticket.assignee,
            at=utc_now(),
        )

    def to_json(self) -> bytes:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return json.dumps(data, sort_keys=True).encode()


class Notifier(Protocol):
    def notify(self, notice: Notice) -> None: ...


class NullNotifier:
    def notify(self, notice: Notice) -> None:
        pass


class MemoryNotifier:
    """Keeps notices in a list: for tests."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    def notify(self, notice: Notice) -> None:
        self.notices.append(notice)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``timestamp.body``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def topic_for(prefix: str, notice: Notice) -> str:
    parts = [prefix.rstrip("/"), notice.area_path, str(notice.notice)]
    return "/".join(part for part in parts if part)


class BackgroundNotifier:
    """Delivers notices to webhooks and MQTT from one background thread."""

    def __init__(
        self,
        *,
        webhook_urls: list[str],
        webhook_secret: str | None,
        mqtt_host: str | None = None,
        mqtt_port: int = 1883,
        mqtt_topic_prefix: str = "citywatch/tickets",
        retries: int = 5,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
    ) -> None:
        if webhook_urls and not webhook_secret:
            raise ValueError("webhook_urls need a webhook_secret to sign with")
        self.webhook_urls = list(webhook_urls)
        self._secret = webhook_secret or ""
        self.mqtt_host = mqtt_host
        self.mqtt_port = mqtt_port
        self.mqtt_topic_prefix = mqtt_topic_prefix
        self.retries = retries
        self.backoff_s = backoff_s
        self._http = httpx.Client(timeout=timeout_s)
        self._mqtt: object | None = None
        self._queue: queue.Queue[Notice | None] = queue.Queue()
        self._thread = threading.Thread(
            target=self._run, name="citywatch-notify", daemon=True
        )
        self._thread.start()

    @classmethod
    def from_settings(cls, settings: Settings) -> BackgroundNotifier:
        secret = settings.webhook_secret
        return cls(
            webhook_urls=settings.webhook_urls,
            webhook_secret=secret.get_secret_value() if secret else None,
            mqtt_host=settings.mqtt_host,
            mqtt_port=settings.mqtt_port,
            mqtt_topic_prefix=settings.mqtt_topic_prefix,
            retries=settings.webhook_retries,
            timeout_s=settings.webhook_timeout_s,
        )

    def notify(self, notice: Notice) -> None:
        self._queue.put(notice)

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout_s``), then stop."""
        self._queue.put(None)
        self._thread.join(timeout_s)
        self._http.close()
        if self._mqtt is not None:
            client = self._mqtt
            client.loop_stop()  # type: ignore[attr-defined]
            client.disconnect()  # type: ignore[attr-defined]

    def _run(self) -> None:
        while True:
            notice = self._queue.get()
            if notice is None:
                return
            for url in self.webhook_urls:
                self._deliver(f"webhook {url}", self._post, url, notice)
            if self.mqtt_host:
                self._deliver("mqtt", self._publish, notice)

    def _deliver(self, channel: str, send: object, *args: object) -> None:
        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=self.backoff_s, max=60.0),
            reraise=True,
        )
        try:
            retrying(send, *args)  # type: ignore[arg-type]
        except Exception as exc:  # any failure of a receiver ends here
            notice = args[-1]
            assert isinstance(notice, Notice)
            logger.error(
                "could not deliver %s notice for ticket %s to %s: %s",
                notice.notice,
                notice.ticket_id,
                channel,
                exc,
                extra={"ticket_id": notice.ticket_id},
            )

    def _post(self, url: str, notice: Notice) -> None:
        body = notice.to_json()
        timestamp = str(int(time.time()))
        response = self._http.post(
            url,
            content=body,
            headers={
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            },
        )
        response.raise_for_status()

    def _publish(self, notice: Notice) -> None:
        client = self._mqtt_client()
        info = client.publish(  # type: ignore[attr-defined]
            topic_for(self.mqtt_topic_prefix, notice), notice.to_json(), qos=1
        )
        info.wait_for_publish(timeout=5.0)
        if not info.is_published():
            self._mqtt = None  # reconnect on the next try
            raise ConnectionError("the MQTT broker did not acknowledge")

    def _mqtt_client(self) -> object:
        if self._mqtt is not None:
            return self._mqtt
        import paho.mqtt.client as mqtt

        assert self.mqtt_host is not None
        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
        client.connect(self.mqtt_host, self.mqtt_port, keepalive=30)
        client.loop_start()
        self._mqtt = client
        return client
