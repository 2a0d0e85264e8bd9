"""Request dependencies: a database session, the evidence store, and who is
asking (a bearer token or an API key)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.orm import Session

from api import auth
from api.auth import AuthError, Principal
from api.dispatch import DispatchConfig
from api.notify import Notifier
from api.settings import Settings
from vision.errors import StoreError
from vision.evidence.objects import ObjectStore

logger = logging.getLogger(__name__)

TOKEN_URL = "/api/auth/token"
API_KEY_HEADER = "X-API-Key"

_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)
_api_key = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="Key of a camera worker or an integration.",
)


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, closed when the response is sent."""
    with request.app.state.session_factory() as session:
        yield session


def get_store(request: Request) -> ObjectStore:
    """The evidence store, built on first use (the API may run without one)."""
    store: ObjectStore | None = request.app.state.store
    if store is None:
        store = request.app.state.store_builder()
        request.app.state.store = store
    return store


def get_store_if_reachable(request: Request) -> ObjectStore | None:
    """The evidence store, or None while it cannot be built (unreachable at
    the service's start): for routes that work without it."""
    try:
        return get_store(request)
    except StoreError as exc:
        logger.warning("evidence store unavailable: %s", exc)
        return None


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_dispatch_config(request: Request) -> DispatchConfig:
    config: DispatchConfig = request.app.state.dispatch_config
    return config


def get_notifier(request: Request) -> Notifier:
    notifier: Notifier = request.app.state.notifier
    return notifier


SessionDep = Annotated[Session, Depends(get_session)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
ReachableStoreDep = Annotated[ObjectStore | None, Depends(get_store_if_reachable)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DispatchDep = Annotated[DispatchConfig, Depends(get_dispatch_config)]
NotifierDep = Annotated[Notifier, Depends(get_notifier)]


def get_principal(
    request: Request,
    session: SessionDep,
    token: Annotated[str | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    """The authenticated caller; 401 without valid credentials."""
    if api_key:
        return auth.principal_from_api_key(session, api_key)
    if token:
        secret: str = request.app.state.token_secret
        return auth.principal_from_token(session, token, secret)
    raise AuthError("sign in (bearer token) or send an API key")


PrincipalDep = Annotated[Principal, Depends(get_principal)]
