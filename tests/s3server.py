"""A real S3-protocol server for tests: moto's standalone server process.

``s3_server`` (session scope) starts ``moto_server`` on a free loopback port
and yields an :class:`S3Server` with ``endpoint`` ("127.0.0.1:PORT"),
``access_key`` and ``secret_key``. ``stop()`` and ``start()`` let a test take
the store down and bring it back on the same port; moto keeps its data in
memory, so a restarted server starts empty (no buckets).

``start_s3_server(...)`` starts a separate one, e.g. with access control
enforced; use it as a context manager.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from eval.streams import free_port

_START_TIMEOUT_S = 30.0


def _moto_server_command() -> list[str]:
    beside_python = Path(sys.executable).with_name("moto_server")
    if beside_python.exists():
        return [str(beside_python)]
    return [sys.executable, "-m", "moto.server"]


class S3Server:
    """One moto server process on a fixed loopback port."""

    def __init__(self, port: int | None = None, env: dict[str, str] | None = None):
        self.port = port or free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.endpoint}"
        # moto accepts any key pair unless access control is enforced.
        self.access_key = "citywatch-test"
        self.secret_key = "citywatch-test-secret"
        self._env = {**os.environ, **(env or {})}
        self._process: subprocess.Popen[bytes] | None = None

    def store_env(self, bucket: str) -> dict[str, str]:
        """The service's settings for this server and ``bucket``, as
        environment variables (for a `citywatch` process)."""
        return {
            "CITYWATCH_STORE_KIND": "s3",
            "CITYWATCH_S3_ENDPOINT": self.endpoint,
            "CITYWATCH_S3_ACCESS_KEY": self.access_key,
            "CITYWATCH_S3_SECRET_KEY": self.secret_key,
            "CITYWATCH_S3_BUCKET": bucket,
            "CITYWATCH_S3_SECURE": "false",
        }

    def store_settings(self, bucket: str) -> dict[str, object]:
        """The same as ``Settings`` keyword arguments (for the service in
        the test's own process)."""
        return {
            "store_kind": "s3",
            "s3_endpoint": self.endpoint,
            "s3_access_key": self.access_key,
            "s3_secret_key": self.secret_key,
            "s3_bucket": bucket,
            "s3_secure": False,
        }

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (on the same port as before) and wait until it answers."""
        if self.running:
            return
        command = [*_moto_server_command(), "-H", "127.0.0.1", "-p", str(self.port)]
        self._process = subprocess.Popen(
            command,
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read() if self._process.stderr else b""
                raise RuntimeError(f"moto_server exited: {stderr.decode()[-2000:]}")
            if self._answers():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"moto_server did not answer on {self.endpoint}")

    def stop(self) -> None:
        """Stop the server and wait until its port is closed."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        if self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None

    def enforce_auth(self) -> None:
        """From now on, check signatures and IAM policies on every request."""
        request = urllib.request.Request(
            f"{self.url}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()

    def __enter__(self) -> S3Server:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"{self.url}/moto-api/data.json", timeout=1
            ) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False


def start_s3_server(env: dict[str, str] | None = None) -> S3Server:
    """A new, not yet started server; ``with start_s3_server() as s3: ...``."""
    return S3Server(env=env)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    server.start()
    try:
        yield server
    finally:
        server.stop()
