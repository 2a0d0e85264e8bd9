"""Engines, sessions and schema migrations.

SQLite is the single-machine default; PostgreSQL is used when the database URL
says so (``postgresql+psycopg://...``). The schema is only ever created by
Alembic (``upgrade``), on both, so a deployed database and a test database
have the same tables, constraints and indexes.

Alembic is configured here from the URL; no ``alembic.ini`` is read, and the
migration scripts are found inside the installed package.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from vision.errors import ConfigError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Seconds a SQLite writer waits for another writer (a camera worker filing
# while a reviewer confirms) before giving up with "database is locked".
SQLITE_BUSY_TIMEOUT_S = 30.0


def make_engine(database_url: str, **kwargs: Any) -> Engine:
    """An engine for the URL; a SQLite file's folder is created if missing.

    A URL that cannot be used (unparsable, an unknown dialect, a driver that
    is not installed) is a ``ConfigError`` naming it, password hidden.
    """
    try:
        url = make_url(database_url)
    except ArgumentError:
        raise ConfigError(
            "database URL cannot be parsed (see CITYWATCH_DATABASE_URL)"
        ) from None
    try:
        return _engine_for(url, **kwargs)
    except NoSuchModuleError:
        shown = url.render_as_string(hide_password=True)
        raise ConfigError(f"database URL {shown}: unknown database kind") from None
    except ModuleNotFoundError as exc:
        shown = url.render_as_string(hide_password=True)
        hint = " (pip install 'citywatch[postgres]')" if exc.name == "psycopg" else ""
        raise ConfigError(
            f"database URL {shown}: its driver {exc.name} is not installed{hint}"
        ) from None


def _engine_for(url: URL, **kwargs: Any) -> Engine:
    if url.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)

    database = url.database or ""
    in_memory = database in {"", ":memory:"} or database.startswith("file::memory:")
    if not in_memory:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("check_same_thread", False)
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_S)
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    event.listen(engine, "connect", _sqlite_pragmas_for(in_memory))
    return engine


def _sqlite_pragmas_for(in_memory: bool) -> Any:
    def set_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        if not in_memory:
            # Readers (the API) never block the writer (a camera worker).
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    return set_pragmas


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(database_url: str) -> Config:
    """Alembic's configuration for one database, without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not a main option: the ini parser would read
    # a '%' in a password as interpolation.
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database's schema to ``revision`` (default: the newest).

    An unreachable database or a bad URL is a ``ConfigError`` naming it.
    """
    logger.debug("migrating database schema to %s", revision)
    make_engine(database_url).dispose()  # the URL's own errors, in one line
    try:
        command.upgrade(alembic_config(database_url), revision)
    except OperationalError as exc:
        shown = make_url(database_url).render_as_string(hide_password=True)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise ConfigError(f"database {shown}: cannot connect: {reason}") from None


def downgrade(database_url: str, revision: str) -> None:
    """Take the schema back to ``revision`` ("base": no tables at all)."""
    logger.warning("downgrading database schema to %s", revision)
    command.downgrade(alembic_config(database_url), revision)


def current_revision(database_url: str) -> str | None:
    """The schema revision the database is at; None when never migrated."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """The newest revision among the migration scripts."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return script.get_current_head()
