"""Alembic environment: runs migrations against the URL ``api.db`` passes in.

There is no ``alembic.ini``; ``api.db.alembic_config`` sets the script location
and hands the database URL over as ``config.attributes["database_url"]``. A
caller may pass an open connection as ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from api.db import make_engine
from api.tables import Base

# Any constant: processes that start together (API and camera workers) take
# this PostgreSQL lock so only one of them migrates at a time.
_PG_MIGRATION_LOCK_ID = 0x63697479  # "city"

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError("alembic needs a database URL; call api.db.upgrade(url)")
    return str(url)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode copies the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _run_on(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        # Batch mode rebuilds a table by copying and dropping it; with foreign
        # keys on, dropping the old tickets table would cascade-delete every
        # ticket's evidence and history. Only settable outside a transaction,
        # which pysqlite has not begun yet for a PRAGMA.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:lock_id)"),
            {"lock_id": _PG_MIGRATION_LOCK_ID},
        )
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    engine = make_engine(_database_url())
    try:
        with engine.begin() as connection:
            _run_on(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
