"""Tickets, their evidence and the audit trail of their transitions.

Revision ID: 0001
Revises:
Create Date: 2026-12-03

Frozen copy of the schema: this file must not import the models, so that it
keeps creating exactly this schema however the models change later.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TICKET_STATES = (
    "'pending_review', 'confirmed', 'rejected', 'dispatched', 'resolved', "
    "'verified', 'closed', 'reopened'"
)
_EVIDENCE_STATES = "'stored', 'pending', 'missing'"


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    _create_tickets()
    _create_evidence()
    _create_transitions()


def _create_tickets() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("camera_id", sa.String(length=255), nullable=False),
        sa.Column("area_path", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=255), nullable=False),
        sa.Column("zone", sa.String(length=255), nullable=True),
        sa.Column("class_name", sa.String(length=255), nullable=True),
        sa.Column("track_id", sa.BigInteger(), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("detected_at", _utc(), nullable=False),
        sa.Column("started_ts_s", sa.Float(), nullable=False),
        sa.Column("ended_ts_s", sa.Float(), nullable=False),
        sa.Column("bbox", _json(), nullable=True),
        sa.Column("event", _json(), nullable=False),
        sa.Column("evidence_state", sa.String(length=16), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.CheckConstraint(
            f"evidence_state IN ({_EVIDENCE_STATES})",
            name=op.f("ck_tickets_ev_state"),
        ),
        sa.CheckConstraint(
            f"state IN ({_TICKET_STATES})", name=op.f("ck_tickets_state")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
        sa.UniqueConstraint("event_id", name=op.f("uq_tickets_event_id")),
    )
    op.create_index("ix_tickets_created_at", "tickets", ["created_at"])
    op.create_index("ix_tickets_state_created_at", "tickets", ["state", "created_at"])
    op.create_index(
        "ix_tickets_category_created_at", "tickets", ["category", "created_at"]
    )
    op.create_index(
        "ix_tickets_camera_id_created_at", "tickets", ["camera_id", "created_at"]
    )


def _create_evidence() -> None:
    op.create_table(
        "evidence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            f"state IN ({_EVIDENCE_STATES})", name=op.f("ck_evidence_state")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_evidence_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence")),
        sa.UniqueConstraint("ticket_id", "kind", name="uq_evidence_ticket_id_kind"),
    )


def _create_transitions() -> None:
    op.create_table(
        "transitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("from_state", sa.String(length=32), nullable=True),
        sa.Column("to_state", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_transitions_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transitions")),
    )
    op.create_index("ix_transitions_ticket_id", "transitions", ["ticket_id"])


def downgrade() -> None:
    op.drop_table("transitions")
    op.drop_table("evidence")
    op.drop_index("ix_tickets_camera_id_created_at", table_name="tickets")
    op.drop_index("ix_tickets_category_created_at", table_name="tickets")
    op.drop_index("ix_tickets_state_created_at", table_name="tickets")
    op.drop_index("ix_tickets_created_at", table_name="tickets")
    op.drop_table("tickets")
