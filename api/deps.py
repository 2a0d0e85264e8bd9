"""Request dependencies: a database session and the evidence store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from vision.evidence.objects import ObjectStore


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


SessionDep = Annotated[Session, Depends(get_session)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
