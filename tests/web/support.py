"""What the browser tests share: the service under test, signing in, and
saving screenshots."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from vision.evidence.local import LocalDirStore

REPO_ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse-battery"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Test runs keep their screenshots out of the tree; set
# CITYWATCH_UPDATE_SCREENSHOTS=1 to refresh the README's copies in docs/.
SCREENSHOTS_DIR = (
    REPO_ROOT / "docs" / "screenshots"
    if os.environ.get("CITYWATCH_UPDATE_SCREENSHOTS") == "1"
    else REPO_ROOT / "test-artifacts" / "screenshots"
)


@dataclass
class Service:
    """The API and the pages, served on a loopback port."""

    base_url: str
    session_factory: sessionmaker[Session]
    store: LocalDirStore
    evidence_dir: Path

    def token(self, username: str) -> str:
        response = httpx.post(
            f"{self.base_url}/api/auth/token",
            data={"username": username, "password": PASSWORD},
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def api(self, username: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.token(username)}"},
        )


def sign_in(page: Any, username: str, next_path: str = "/ui/queue") -> None:
    """Sign in with the keyboard alone and wait for the page to be ready."""
    page.goto(f"/ui/signin?next={next_path}")
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{next_path}")
    page.wait_for_selector("body[data-ready]")


def screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    return path
