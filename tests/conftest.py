"""Fixtures shared by every test: where the shared footage and models lie."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("CITYWATCH_SHARED_DIR", REPO_ROOT.parent / "shared"))

pytest_plugins = ["tests.s3server"]

# Figures some tests measure and report (never assert: these machines are
# shared and noisy), printed together at the end of the run.
FIGURES = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[FIGURES] = []


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    figures = config.stash.get(FIGURES, [])
    if figures:
        terminalreporter.section("figures measured in this run")
        for line in figures:
            terminalreporter.write_line(line)


@pytest.fixture
def report_figure(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``report_figure(line)``: show a measured figure in the run's summary."""
    return request.config.stash[FIGURES].append


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared footage, labelled sets and model mirror (read-only)."""
    if not (SHARED_DIR / "data").is_dir():
        pytest.fail(f"shared data not found at {SHARED_DIR}; set CITYWATCH_SHARED_DIR")
    return SHARED_DIR


@pytest.fixture(scope="session")
def videos_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "videos"


@pytest.fixture(scope="session")
def models_mirror(shared_dir: Path) -> Path:
    return shared_dir / "models"
