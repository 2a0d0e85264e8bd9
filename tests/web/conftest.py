"""The review pages in a real browser: Debian's headless Chromium driven by
Playwright, against the service run by uvicorn on a loopback port, with a
temporary SQLite database and a local evidence directory holding tickets
filed from the shared footage.

The footage is analysed once per session (the CLI's ``watch`` command, as an
operator runs it); each test works on its own copy of the database and the
evidence, so the tests can change tickets without seeing each other's work.
"""

from __future__ import annotations

import gc
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from api import users
from api.db import make_engine, make_session_factory, upgrade
from api.dispatch import DispatchConfig
from api.main import create_app
from api.notify import MemoryNotifier
from api.settings import Settings
from api.web import pages
from tests.web.support import DESKTOP, PASSWORD, REPO_ROOT, Service
from vision.evidence.local import LocalDirStore

CHROMIUM = Path(os.environ.get("CITYWATCH_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STREET_CLIP = "street_plaza_vtest_part1_f000-399.avi"
THROW_CLIP = "throw_facade_ball_720p30.mp4"

# The plaza camera: two parked vehicles in the no-parking bay, and two
# people who stay on the lawn path (the street footage files these four).
PLAZA_CAMERA = {
    "camera_id": "plaza-north",
    "name": "Plaza, north corner",
    "area_path": "old-town/riverside/grid-07",
    "model": "yolo11n-coco",
    "throw": {"enabled": False},
    "zones": [
        {
            "name": "no-parking",
            "polygon_xy": [[600, 75], [768, 55], [768, 104], [625, 122]],
        },
        {
            "name": "lawn-path",
            "polygon_xy": [[300, 150], [470, 150], [470, 320], [300, 320]],
        },
    ],
    "rules": [
        {
            "name": "no-parking",
            "kind": "dwell",
            "category": "illegal_parking",
            "zone": "no-parking",
            "classes": ["car", "truck", "bus", "motorcycle"],
            "dwell_s": 10,
        },
        {
            "name": "lawn-loitering",
            "kind": "dwell",
            "category": "loitering",
            "zone": "lawn-path",
            "classes": ["person"],
            "dwell_s": 10,
        },
    ],
}
FACADE_CAMERA = {"camera_id": "facade-east", "area_path": "old-town/market/grid-02"}


@dataclass(frozen=True)
class Footage:
    """A database and an evidence directory with the footage's tickets."""

    database: Path
    evidence: Path


def _watch(video: Path, camera: Path, data_dir: Path, models_mirror: Path) -> None:
    environment = {
        **os.environ,
        "CITYWATCH_DATA_DIR": str(data_dir),
        "CITYWATCH_MODEL_MIRROR_DIR": str(models_mirror),
    }
    environment.pop("CITYWATCH_DATABASE_URL", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "citywatch_cli",
            "watch",
            str(video),
            "--camera",
            str(camera),
        ],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="session")
def footage(
    tmp_path_factory: pytest.TempPathFactory, videos_dir: Path, models_mirror: Path
) -> Footage:
    """Tickets 1-4 from the street footage (plaza-north), ticket 5 from the
    throw clip (facade-east), filed by ``citywatch watch``."""
    root = tmp_path_factory.mktemp("footage")
    plaza = root / "plaza.yaml"
    plaza.write_text(yaml.safe_dump(PLAZA_CAMERA))
    facade = root / "facade.yaml"
    facade.write_text(yaml.safe_dump(FACADE_CAMERA))
    _watch(videos_dir / STREET_CLIP, plaza, root / "var", models_mirror)
    _watch(videos_dir / THROW_CLIP, facade, root / "var", models_mirror)
    return Footage(
        database=root / "var" / "citywatch.db", evidence=root / "var" / "evidence"
    )


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def service(footage: Footage, tmp_path: Path) -> Iterator[Service]:
    """The service over a copy of the footage's tickets, with two reviewers:
    ``rita`` (old town, also dispatcher) and ``otto`` (new town only)."""
    import uvicorn

    database = tmp_path / "citywatch.db"
    shutil.copyfile(footage.database, database)
    evidence_dir = tmp_path / "evidence"
    shutil.copytree(footage.evidence, evidence_dir)
    url = f"sqlite:///{database}"
    upgrade(url)  # a no-op when the footage was filed by this very schema
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with factory() as session:
        users.create_user(
            session,
            "rita",
            [("reviewer", "old-town"), ("dispatcher", "old-town")],
            password=PASSWORD,
        )
        users.create_user(
            session, "otto", [("reviewer", "new-town")], password=PASSWORD
        )
    store = LocalDirStore(evidence_dir)
    app = create_app(
        Settings(data_dir=tmp_path, database_url=url),
        store=store,
        session_factory=factory,
        notifier=MemoryNotifier(),
        dispatch_config=DispatchConfig(),
    )
    if not any(getattr(route, "path", "") == "/ui/queue" for route in app.routes):
        app.include_router(pages.router)

    sock = _free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, (
            "uvicorn did not start"
        )
        time.sleep(0.05)
    try:
        yield Service(f"http://127.0.0.1:{port}", factory, store, evidence_dir)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        engine.dispose()
        gc.collect()  # abandoned downloads are reported here, in this test


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip(
        "playwright.sync_api",
        reason="the browser tests need the 'playwright' package (its own "
        "browsers are not used: Debian's chromium is)",
    )
    if not CHROMIUM.is_file():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install Debian's 'chromium' package "
            "(scripts/ci-packages.sh does)"
        )
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser: Any, service: Service) -> Iterator[Callable[..., Any]]:
    """``open_page(viewport=DESKTOP)``: a new browser tab; page errors fail
    the test."""
    contexts = []
    errors: list[str] = []

    def make(viewport: dict[str, int] = DESKTOP) -> Any:
        context = browser.new_context(viewport=viewport, base_url=service.base_url)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    yield make
    for context in contexts:
        context.close()
    assert errors == [], f"errors in the page's scripts: {errors}"
