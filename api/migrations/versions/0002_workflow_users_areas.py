"""Dispatch, duplicates, verification by the camera, users, grants, API keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-10

Adds to tickets: assignee, due_at, overdue_notified_at, last_seen_at and
duplicate_count (filled for existing rows), and the queue index by state,
area and time. Evidence gets a role and a round so a camera's verification
evidence sits beside, never over, the original. New tables: attachments,
verifications, users, grants and api_keys.

Frozen copy of the schema: this file must not import the models.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROLES = (
    "'reviewer', 'dispatcher', 'grid_worker', 'area_admin', 'engineer', 'read_only'"
)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    _extend_tickets()
    _extend_evidence()
    _create_attachments()
    _create_verifications()
    _create_users()


def _extend_tickets() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("assignee", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("due_at", _utc(), nullable=True))
        batch.add_column(sa.Column("overdue_notified_at", _utc(), nullable=True))
        batch.add_column(sa.Column("last_seen_at", _utc(), nullable=True))
        batch.add_column(
            sa.Column(
                "duplicate_count", sa.Integer(), nullable=False, server_default="0"
            )
        )
    op.execute("UPDATE tickets SET last_seen_at = detected_at")
    with op.batch_alter_table("tickets") as batch:
        batch.alter_column("last_seen_at", existing_type=_utc(), nullable=False)
        batch.alter_column(
            "duplicate_count", existing_type=sa.Integer(), server_default=None
        )
    op.create_index(
        "ix_tickets_state_area_path_created_at",
        "tickets",
        ["state", "area_path", "created_at"],
        postgresql_ops={"area_path": "text_pattern_ops"},
    )
    op.create_index("ix_tickets_due_at", "tickets", ["due_at"])


def _extend_evidence() -> None:
    with op.batch_alter_table("evidence") as batch:
        batch.add_column(
            sa.Column(
                "role", sa.String(length=16), nullable=False, server_default="original"
            )
        )
        batch.add_column(
            sa.Column("round", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("evidence") as batch:
        batch.alter_column("role", existing_type=sa.String(16), server_default=None)
        batch.alter_column("round", existing_type=sa.Integer(), server_default=None)
        batch.drop_constraint("uq_evidence_ticket_id_kind", type_="unique")
        batch.create_unique_constraint(
            "uq_evidence_ticket_id_round_kind", ["ticket_id", "round", "kind"]
        )
        batch.create_check_constraint(
            "ck_evidence_role", "role IN ('original', 'verification')"
        )


def _ticket_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["ticket_id"],
        ["tickets.id"],
        name=f"fk_{table}_ticket_id_tickets",
        ondelete="CASCADE",
    )


def _create_attachments() -> None:
    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("track_id", sa.BigInteger(), nullable=True),
        sa.Column("bbox", _json(), nullable=True),
        sa.Column("detected_at", _utc(), nullable=False),
        sa.Column("event", _json(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        _ticket_fk("attachments"),
        sa.PrimaryKeyConstraint("id", name="pk_attachments"),
        sa.UniqueConstraint("event_id", name="uq_attachments_event_id"),
    )
    op.create_index("ix_attachments_ticket_id", "attachments", ["ticket_id"])


def _create_verifications() -> None:
    op.create_table(
        "verifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("camera_id", sa.String(length=255), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("clear_s", sa.Float(), nullable=False),
        sa.Column("requested_at", _utc(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("reported_at", _utc(), nullable=True),
        sa.Column("evidence_event_id", sa.String(length=128), nullable=True),
        sa.CheckConstraint("state IN ('open', 'done')", name="ck_verifications_state"),
        _ticket_fk("verifications"),
        sa.PrimaryKeyConstraint("id", name="pk_verifications"),
    )
    op.create_index(
        "ix_verifications_camera_id_state", "verifications", ["camera_id", "state"]
    )
    op.create_index("ix_verifications_ticket_id", "verifications", ["ticket_id"])


def _create_users() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )
    op.create_table(
        "grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("area_path", sa.Text(), nullable=False),
        sa.CheckConstraint(f"role IN ({_ROLES})", name="ck_grants_role"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_grants_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_grants"),
        sa.UniqueConstraint(
            "user_id", "role", "area_path", name="uq_grants_user_id_role_area_path"
        ),
    )
    op.create_index("ix_grants_area_path", "grants", ["area_path"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("camera_id", sa.String(length=255), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("revoked_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_api_keys_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_id", name="uq_api_keys_key_id"),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("grants")
    op.drop_table("users")
    op.drop_table("verifications")
    op.drop_table("attachments")
    with op.batch_alter_table("evidence") as batch:
        batch.drop_constraint("ck_evidence_role", type_="check")
        batch.drop_constraint("uq_evidence_ticket_id_round_kind", type_="unique")
        batch.create_unique_constraint(
            "uq_evidence_ticket_id_kind", ["ticket_id", "kind"]
        )
        batch.drop_column("round")
        batch.drop_column("role")
    op.drop_index("ix_tickets_due_at", table_name="tickets")
    op.drop_index("ix_tickets_state_area_path_created_at", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        for column in (
            "duplicate_count",
            "last_seen_at",
            "overdue_notified_at",
            "due_at",
            "assignee",
        ):
            batch.drop_column(column)
