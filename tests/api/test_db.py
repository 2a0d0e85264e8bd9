"""Schema migrations on an empty SQLite and PostgreSQL database."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from api.db import current_revision, downgrade, head_revision, make_engine, upgrade
from api.settings import Settings
from api.storage import build_store, describe_store
from api.tables import Base
from vision.evidence.local import LocalDirStore

REPO_ROOT = Path(__file__).resolve().parents[2]
backends = pytest.mark.parametrize(
    "empty_database_url", ["sqlite", "postgresql"], indirect=True
)


@backends
def test_upgrade_creates_the_schema_on_an_empty_database(
    empty_database_url: str,
) -> None:
    assert current_revision(empty_database_url) is None

    upgrade(empty_database_url)
    upgrade(empty_database_url)  # a second run is a no-op

    assert current_revision(empty_database_url) == head_revision() == "0001"
    engine = make_engine(empty_database_url)
    try:
        inspector = inspect(engine)
        assert {"tickets", "evidence", "transitions"} <= set(
            inspector.get_table_names()
        )
        uniques = inspector.get_unique_constraints("tickets")
        assert {"uq_tickets_event_id"} <= {u["name"] for u in uniques}
        indexes = {ix["name"] for ix in inspector.get_indexes("tickets")}
        assert {
            "ix_tickets_created_at",
            "ix_tickets_state_created_at",
            "ix_tickets_category_created_at",
            "ix_tickets_camera_id_created_at",
        } <= indexes
        with engine.connect() as connection:
            differences = compare_metadata(
                MigrationContext.configure(connection), Base.metadata
            )
        assert differences == [], "the models and the migrations disagree"
    finally:
        engine.dispose()


@backends
def test_downgrade_and_upgrade_again(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    downgrade(empty_database_url, "base")

    assert current_revision(empty_database_url) is None

    upgrade(empty_database_url)
    assert current_revision(empty_database_url) == "0001"


def test_sqlite_database_folder_is_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'deeper' / 'citywatch.db'}"
    upgrade(url)
    assert (tmp_path / "new" / "deeper" / "citywatch.db").is_file()


def test_local_store_is_built_from_settings(tmp_path: Path) -> None:
    store = build_store(Settings(data_dir=tmp_path))

    assert isinstance(store, LocalDirStore)
    assert store.root == tmp_path / "evidence"
    assert describe_store(store, "e/clip.mp4") == str(tmp_path / "evidence/e/clip.mp4")


def test_installed_package_carries_the_migrations(tmp_path: Path) -> None:
    """The wheel has what Alembic needs to run without the source tree."""
    # Built from a copy: setuptools writes build/ and egg-info beside the source.
    source = tmp_path / "src"
    shutil.copytree(
        REPO_ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".venv",
            ".git",
            "var",
            "build",
            "dist",
            "*.egg-info",
            "__pycache__",
            "tests",
            "*.onnx",
            "*.pt",
            ".*_cache",
        ),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(tmp_path),
            str(source),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("citywatch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "api/migrations/env.py",
        "api/migrations/script.py.mako",
        "api/migrations/versions/0001_tickets_evidence_transitions.py",
    } <= names
