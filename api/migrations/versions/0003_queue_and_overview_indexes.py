"""Indexes for the review queue and the area overview.

Revision ID: 0003
Revises: 0002
Create Date: 2027-01-14

The review queue reads the tickets waiting for review oldest first, a page
at a time: a partial index holds only those tickets, in queue order. The
area overview counts an area's tickets by camera, category and state: an
index by area and camera serves its range scans, and on PostgreSQL carries
the counted columns so the counts come from the index alone. Its list of
open tickets to look at first (by deadline, or age without one) reads a
partial index of the open tickets in that order.

Frozen copy of the schema: this file must not import the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WAITING_FOR_REVIEW = "state IN ('pending_review', 'reopened')"
_IS_OPEN = (
    "state IN ('confirmed', 'dispatched', 'pending_review', 'reopened', 'resolved')"
)


def upgrade() -> None:
    op.create_index(
        "ix_tickets_review_queue",
        "tickets",
        ["created_at", "id"],
        sqlite_where=sa.text(_WAITING_FOR_REVIEW),
        postgresql_where=sa.text(_WAITING_FOR_REVIEW),
    )
    op.create_index(
        "ix_tickets_area_path_camera_id",
        "tickets",
        ["area_path", "camera_id", "state"],
        postgresql_ops={"area_path": "text_pattern_ops"},
        postgresql_include=["category", "due_at", "detected_at"],
    )
    op.create_index(
        "ix_tickets_open_by_deadline",
        "tickets",
        ["due_at", "created_at", "id"],
        sqlite_where=sa.text(_IS_OPEN),
        postgresql_where=sa.text(_IS_OPEN),
    )


def downgrade() -> None:
    op.drop_index("ix_tickets_open_by_deadline", table_name="tickets")
    op.drop_index("ix_tickets_area_path_camera_id", table_name="tickets")
    op.drop_index("ix_tickets_review_queue", table_name="tickets")
