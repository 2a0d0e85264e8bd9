"""Alembic migrations of the service database; run them with ``api.db.upgrade``."""
