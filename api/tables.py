"""Database tables of the service (SQLAlchemy 2.0 declarative models).

Every change to these models comes with an Alembic migration in
``api/migrations/versions``; a test compares the migrated schema with these
models on SQLite and PostgreSQL.

Times are stored as UTC. SQLite keeps no time zone, so ``UTCDateTime``
normalises on the way in and marks values as UTC on the way out; every
datetime read from either database is timezone-aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Named constraints let later migrations drop or alter them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TICKET_STATES = (
    "pending_review",
    "confirmed",
    "rejected",
    "dispatched",
    "resolved",
    "verified",
    "closed",
    "reopened",
)
EVIDENCE_STATES = ("stored", "pending", "missing")


def utc_now() -> datetime:
    return datetime.now(UTC)


def _in_list(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC on every database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # naive times in this service are UTC
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Ticket(Base):
    """The case people work on: one event, its evidence and its workflow."""

    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(_in_list("state", TICKET_STATES), name="state"),
        CheckConstraint(_in_list("evidence_state", EVIDENCE_STATES), name="ev_state"),
        Index("ix_tickets_created_at", "created_at"),
        Index("ix_tickets_state_created_at", "state", "created_at"),
        Index("ix_tickets_category_created_at", "category", "created_at"),
        Index("ix_tickets_camera_id_created_at", "camera_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    camera_id: Mapped[str] = mapped_column(String(255))
    area_path: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(32))
    rule: Mapped[str] = mapped_column(String(255))
    zone: Mapped[str | None] = mapped_column(String(255))
    class_name: Mapped[str | None] = mapped_column(String(255))
    track_id: Mapped[int | None] = mapped_column(BigInteger)
    score: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_ts_s: Mapped[float] = mapped_column(Float)
    ended_ts_s: Mapped[float] = mapped_column(Float)
    bbox: Mapped[list[float] | None] = mapped_column(JSONDocument)
    event: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    evidence_state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)

    evidence: Mapped[list[Evidence]] = relationship(
        back_populates="ticket",
        cascade="all, delete-orphan",
        order_by="Evidence.id",
        lazy="selectin",
    )
    transitions: Mapped[list[Transition]] = relationship(
        back_populates="ticket",
        cascade="all, delete-orphan",
        order_by="Transition.id",
        lazy="selectin",
    )


class Evidence(Base):
    """One stored object of a ticket; at most one per kind."""

    __tablename__ = "evidence"
    __table_args__ = (
        UniqueConstraint("ticket_id", "kind", name="uq_evidence_ticket_id_kind"),
        CheckConstraint(_in_list("state", EVIDENCE_STATES), name="state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)

    ticket: Mapped[Ticket] = relationship(back_populates="evidence")


class Transition(Base):
    """Audit record of one state change: who, when, from which state, why."""

    __tablename__ = "transitions"
    __table_args__ = (Index("ix_transitions_ticket_id", "ticket_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    reason: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)

    ticket: Mapped[Ticket] = relationship(back_populates="transitions")
