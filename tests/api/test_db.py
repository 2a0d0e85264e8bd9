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
from sqlalchemy import Dialect, inspect, select
from sqlalchemy.dialects import postgresql, sqlite

from api.db import current_revision, downgrade, head_revision, make_engine, upgrade
from api.review_queue import REVIEW_STATES
from api.settings import Settings
from api.storage import build_store, describe_store
from api.tables import IS_OPEN, WAITING_FOR_REVIEW, Base, Ticket
from api.tickets import OPEN_STATES, TicketState, state_in
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

    assert current_revision(empty_database_url) == head_revision() == "0003"
    engine = make_engine(empty_database_url)
    try:
        inspector = inspect(engine)
        assert {
            "tickets",
            "evidence",
            "transitions",
            "attachments",
            "verifications",
            "users",
            "grants",
            "api_keys",
        } <= set(inspector.get_table_names())
        uniques = inspector.get_unique_constraints("tickets")
        assert {"uq_tickets_event_id"} <= {u["name"] for u in uniques}
        indexes = {ix["name"] for ix in inspector.get_indexes("tickets")}
        assert {
            "ix_tickets_created_at",
            "ix_tickets_state_created_at",
            "ix_tickets_category_created_at",
            "ix_tickets_camera_id_created_at",
            "ix_tickets_state_area_path_created_at",
            "ix_tickets_due_at",
            "ix_tickets_review_queue",
            "ix_tickets_area_path_camera_id",
            "ix_tickets_open_by_deadline",
        } <= indexes
        with engine.connect() as connection:
            differences = compare_metadata(
                MigrationContext.configure(connection), Base.metadata
            )
        assert differences == [], "the models and the migrations disagree"
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("states", "index_condition"),
    [(REVIEW_STATES, WAITING_FOR_REVIEW), (OPEN_STATES, IS_OPEN)],
)
@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()])
def test_queries_name_the_states_of_a_partial_index_as_it_does(
    states: frozenset[TicketState], index_condition: str, dialect: Dialect
) -> None:
    query = select(Ticket.id).where(state_in(states))
    sql = str(
        query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    )

    assert index_condition in sql.replace("tickets.state", "state")


@backends
def test_downgrade_and_upgrade_again(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    downgrade(empty_database_url, "base")

    assert current_revision(empty_database_url) is None

    upgrade(empty_database_url)
    assert current_revision(empty_database_url) == "0003"


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
        "api/migrations/versions/0002_workflow_users_areas.py",
        "api/migrations/versions/0003_queue_and_overview_indexes.py",
    } <= names


@backends
def test_upgrade_from_0001_keeps_its_tickets(empty_database_url: str) -> None:
    """A database filed under the first schema, with tickets, evidence and
    history in it, moves to head with all of it intact and usable."""
    from sqlalchemy import text

    from api import filing, tickets
    from api.db import make_session_factory
    from tests.api.builders import make_event

    upgrade(empty_database_url, "0001")
    engine = make_engine(empty_database_url)
    event = make_event()
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO tickets (id, event_id, camera_id, area_path, category,"
                " state, rule, score, started_at, detected_at, started_ts_s,"
                " ended_ts_s, event, evidence_state, created_at, updated_at)"
                " VALUES (1, :event_id, 'plaza-north', 'old-town/grid-07',"
                " 'illegal_parking', 'confirmed', 'fire-lane', 0.9, :at, :at, 1.0,"
                " 2.0, :event, 'stored', :at, :at)"
            ),
            {
                "event_id": event.event_id,
                "at": event.started_at,
                "event": event.model_dump_json(),
            },
        )
        connection.execute(
            text(
                "INSERT INTO evidence (ticket_id, kind, key, content_type, state)"
                " VALUES (1, 'clip', 'e/clip.mp4', 'video/mp4', 'stored')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO transitions (ticket_id, from_state, to_state, actor, at)"
                " VALUES (1, NULL, 'pending_review', 'camera:plaza-north', :at)"
            ),
            {"at": event.started_at},
        )
    engine.dispose()

    upgrade(empty_database_url)

    engine = make_engine(empty_database_url)
    try:
        with make_session_factory(engine)() as session:
            ticket = tickets.get_ticket(session, 1)
            assert ticket.last_seen_at == event.started_at
            assert ticket.duplicate_count == 0
            assert [(e.role, e.round) for e in ticket.evidence] == [("original", 0)]
            assert len(ticket.transitions) == 1
            again, created = filing.file_event(session, event)
            assert (again.id, created) == (1, False)
            moved = tickets.transition(
                session, 1, tickets.TicketState.DISPATCHED, actor="dan"
            )
            assert moved.state == "dispatched"
    finally:
        engine.dispose()
