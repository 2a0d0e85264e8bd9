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
    Boolean,
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
    text,
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
# What a piece of evidence shows: the filing event, or a camera's re-check.
EVIDENCE_ROLES = ("original", "verification")
ROLES = (
    "reviewer",
    "dispatcher",
    "grid_worker",
    "area_admin",
    "engineer",
    "read_only",
)
VERIFICATION_STATES = ("open", "done")
VERIFICATION_OUTCOMES = ("gone", "still_there")


def utc_now() -> datetime:
    return datetime.now(UTC)


def _in_list(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


# The states of two partial indexes, written as api.tickets.state_in writes
# them in queries (sorted), so that the databases match the two.
WAITING_FOR_REVIEW = _in_list("state", ("pending_review", "reopened"))
IS_OPEN = _in_list(
    "state", ("confirmed", "dispatched", "pending_review", "reopened", "resolved")
)


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
        # A reviewer's or dispatcher's queue: one state, their areas, newest.
        Index(
            "ix_tickets_state_area_path_created_at", "state", "area_path", "created_at"
        ),
        Index("ix_tickets_due_at", "due_at"),
        # The review queue (api.review_queue), oldest first: only the tickets
        # waiting for review, so a page reads as many index entries as it shows.
        Index(
            "ix_tickets_review_queue",
            "created_at",
            "id",
            sqlite_where=text(WAITING_FOR_REVIEW),
            postgresql_where=text(WAITING_FOR_REVIEW),
        ),
        # The area overview (api.overview): an area's tickets by camera; on
        # PostgreSQL its counts come from the index without reading the rows.
        Index(
            "ix_tickets_area_path_camera_id",
            "area_path",
            "camera_id",
            "state",
            postgresql_ops={"area_path": "text_pattern_ops"},
            postgresql_include=["category", "due_at", "detected_at"],
        ),
        # The area overview's open tickets by deadline or, without one, age.
        Index(
            "ix_tickets_open_by_deadline",
            "due_at",
            "created_at",
            "id",
            sqlite_where=text(IS_OPEN),
            postgresql_where=text(IS_OPEN),
        ),
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
    assignee: Mapped[str | None] = mapped_column(String(255))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    overdue_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duplicate_count: Mapped[int] = mapped_column(Integer, default=0)

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
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="ticket",
        cascade="all, delete-orphan",
        order_by="Attachment.id",
        lazy="selectin",
    )
    verifications: Mapped[list[Verification]] = relationship(
        back_populates="ticket",
        cascade="all, delete-orphan",
        order_by="Verification.id",
        lazy="selectin",
    )


class Evidence(Base):
    """One stored object of a ticket; at most one per kind and round.

    Round 0 is the evidence the ticket was filed with (role ``original``);
    round n is what the camera saw at the n-th verification (role
    ``verification``). Original evidence is never replaced.
    """

    __tablename__ = "evidence"
    __table_args__ = (
        UniqueConstraint(
            "ticket_id", "round", "kind", name="uq_evidence_ticket_id_round_kind"
        ),
        CheckConstraint(_in_list("state", EVIDENCE_STATES), name="state"),
        CheckConstraint(_in_list("role", EVIDENCE_ROLES), name="role"),
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
    role: Mapped[str] = mapped_column(String(16), default="original")
    round: Mapped[int] = mapped_column(Integer, default=0)

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


class Attachment(Base):
    """A later event of the same place attached to an open ticket instead of
    filing another one (same camera and category, overlapping box or same
    track, within the duplicate window)."""

    __tablename__ = "attachments"
    __table_args__ = (Index("ix_attachments_ticket_id", "ticket_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    track_id: Mapped[int | None] = mapped_column(BigInteger)
    bbox: Mapped[list[float] | None] = mapped_column(JSONDocument)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime)
    event: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)

    ticket: Mapped[Ticket] = relationship(back_populates="attachments")


class Verification(Base):
    """The service's request that a camera re-check a resolved ticket's place,
    and the camera's answer once it comes."""

    __tablename__ = "verifications"
    __table_args__ = (
        CheckConstraint(_in_list("state", VERIFICATION_STATES), name="state"),
        Index("ix_verifications_camera_id_state", "camera_id", "state"),
        Index("ix_verifications_ticket_id", "ticket_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    camera_id: Mapped[str] = mapped_column(String(255))
    round: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="open")
    clear_s: Mapped[float] = mapped_column(Float)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    outcome: Mapped[str | None] = mapped_column(String(16))
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    evidence_event_id: Mapped[str | None] = mapped_column(String(128))

    ticket: Mapped[Ticket] = relationship(back_populates="verifications")


class User(Base):
    """A person who signs in; what they may do is in their grants."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)

    grants: Mapped[list[Grant]] = relationship(
        back_populates="user",
        cascade="all, delete-orphan",
        order_by="Grant.id",
        lazy="selectin",
    )


class Grant(Base):
    """One role on one area (and every area below it)."""

    __tablename__ = "grants"
    __table_args__ = (
        UniqueConstraint(
            "user_id", "role", "area_path", name="uq_grants_user_id_role_area_path"
        ),
        CheckConstraint(_in_list("role", ROLES), name="role"),
        Index("ix_grants_area_path", "area_path"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(32))
    area_path: Mapped[str] = mapped_column(Text)

    user: Mapped[User] = relationship(back_populates="grants")


class ApiKey(Base):
    """A key for a camera worker or an integration; only its hash is kept.

    A camera key (``camera_id`` set) files that camera's events and answers
    its verifications; an integration key (``user_id`` set) acts as its user.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    camera_id: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
