"""`citywatch watch` on a live stream ends cleanly when a service manager
stops it (SIGTERM), as it does on Ctrl-C: it prints its report and exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from eval.streams import RtspServer
from tests.test_main_job import CITYWATCH, REPO_ROOT


@pytest.mark.slow
@pytest.mark.parametrize(
    "stop_with", [signal.SIGTERM, signal.SIGINT], ids=["term", "int"]
)
def test_watch_on_a_stream_stops_cleanly(
    rtsp_ready: None, street_h264: Path, tmp_path: Path, stop_with: signal.Signals
) -> None:
    env = {**os.environ, "CITYWATCH_DATA_DIR": str(tmp_path)}
    env.pop("CITYWATCH_DATABASE_URL", None)
    with RtspServer(street_h264) as server:
        watching = subprocess.Popen(
            [*CITYWATCH, "watch", server.url],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(8.0)  # connected and analysing
            watching.send_signal(stop_with)
            out, err = watching.communicate(timeout=60)
        finally:
            if watching.poll() is None:
                watching.kill()

    assert watching.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    assert "frames" in out and "from camera camera" in out
