"""Signing in, and area administrators managing the users of their areas."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from api import auth, users
from api.access import Action, areas_for, require
from api.areas import covered_by_any
from api.auth import Forbidden, Principal
from api.deps import PrincipalDep, SessionDep, SettingsDep
from api.schemas import GrantBody, Token, UserCreate, UserPublic
from api.tables import User

router = APIRouter(tags=["users"])

Username = Annotated[str, Path(min_length=1, max_length=64)]


@router.post("/api/auth/token", response_model=Token)
def sign_in(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
) -> Token:
    """OAuth2 password flow: a bearer token for a user name and password."""
    user = auth.authenticate_password(session, form.username, form.password)
    secret: str = request.app.state.token_secret
    return Token(access_token=auth.issue_token(user, secret, settings.token_ttl_s))


@router.get("/api/users/me", response_model=UserPublic)
def who_am_i(session: SessionDep, principal: PrincipalDep) -> UserPublic:
    """The signed-in user and their grants."""
    if principal.user_id is None:
        raise Forbidden(f"{principal.name} is not a user")
    user = session.get(User, principal.user_id)
    assert user is not None  # the principal was just read from it
    return UserPublic.from_row(user)


@router.get("/api/users", response_model=list[UserPublic])
def list_users(session: SessionDep, principal: PrincipalDep) -> list[UserPublic]:
    """Users with a grant in the caller's administered areas (area admins)."""
    areas = areas_for(principal, Action.MANAGE_USERS)
    if not areas:
        raise Forbidden(f"{principal.name} administers no area")
    return [UserPublic.from_row(user) for user in users.list_users(session, areas)]


@router.post(
    "/api/users", response_model=UserPublic, status_code=status.HTTP_201_CREATED
)
def create_user(
    body: UserCreate, session: SessionDep, principal: PrincipalDep
) -> UserPublic:
    """A new user whose grants all lie in the caller's administered areas."""
    for grant in body.grants:
        require(principal, Action.MANAGE_USERS, grant.area_path)
    user = users.create_user(
        session,
        body.username,
        [(grant.role, grant.area_path) for grant in body.grants],
        password=body.password,
    )
    return UserPublic.from_row(user)


@router.post("/api/users/{username}/grants", response_model=UserPublic)
def grant(
    username: Username, body: GrantBody, session: SessionDep, principal: PrincipalDep
) -> UserPublic:
    """Grant a role on an area the caller administers to one of its users."""
    user = _visible_user(session, principal, username)
    require(principal, Action.MANAGE_USERS, body.area_path)
    return UserPublic.from_row(
        users.add_grant(session, user, body.role, body.area_path)
    )


def _visible_user(session: SessionDep, principal: Principal, username: str) -> User:
    """A user with a grant in the caller's administered areas; others are
    answered as unknown, like tickets outside one's areas."""
    areas = areas_for(principal, Action.MANAGE_USERS)
    user = users.get_user(session, username)
    if not any(covered_by_any(areas, grant.area_path) for grant in user.grants):
        raise users.UserNotFound(username)
    return user
