"""Users and their grants (a role on an area and everything below it)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.access import Role
from api.areas import check_area_path, within
from api.auth import hash_password
from api.tables import Grant, User
from vision.errors import CitywatchError


class UserError(CitywatchError):
    """Base of the user service's refusals."""


class UserExists(UserError):
    def __init__(self, username: str) -> None:
        super().__init__(f"user {username} already exists")


class UserNotFound(UserError, LookupError):
    def __init__(self, username: str) -> None:
        super().__init__(f"user {username} does not exist")


def create_user(
    session: Session,
    username: str,
    grants: Iterable[tuple[Role | str, str]],
    *,
    password: str | None = None,
) -> User:
    """A new user with these (role, area) grants; without a password the
    user can only act through an API key."""
    user = User(
        username=username,
        password_hash=hash_password(password) if password is not None else None,
        active=True,
    )
    user.grants = [_grant(role, area) for role, area in _unique(grants)]
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise UserExists(username) from None
    return user


def add_grant(session: Session, user: User, role: Role | str, area_path: str) -> User:
    if (str(Role(role)), area_path) not in {(g.role, g.area_path) for g in user.grants}:
        user.grants.append(_grant(role, area_path))
        session.commit()
    return user


def set_password(session: Session, user: User, password: str) -> None:
    user.password_hash = hash_password(password)
    session.commit()


def get_user(session: Session, username: str) -> User:
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        raise UserNotFound(username)
    return user


def list_users(session: Session, areas: Sequence[str] | None = None) -> list[User]:
    """Users with a grant inside one of ``areas`` (None: everyone)."""
    query = select(User).order_by(User.username)
    if areas is not None:
        query = query.where(
            User.id.in_(select(Grant.user_id).where(within(Grant.area_path, areas)))
        )
    return list(session.scalars(query).all())


def known_areas(session: Session) -> list[str]:
    """Areas named by grants or tickets, sorted."""
    from api.tables import Ticket

    granted = session.scalars(select(Grant.area_path).distinct()).all()
    ticketed = session.scalars(select(Ticket.area_path).distinct()).all()
    return sorted(set(granted) | set(ticketed))


def _grant(role: Role | str, area_path: str) -> Grant:
    return Grant(role=str(Role(role)), area_path=check_area_path(area_path))


def _unique(grants: Iterable[tuple[Role | str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((str(Role(role)), area) for role, area in grants))
