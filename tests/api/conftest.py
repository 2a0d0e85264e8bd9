"""Service fixtures: a migrated database on SQLite and on PostgreSQL, the
local evidence store, and the API behind FastAPI's TestClient.

PostgreSQL runs on 127.0.0.1:5432 (trust auth). Each test session creates a
uniquely named database, migrates it once, empties its tables between tests,
and drops it at the end. Where the server cannot be reached the PostgreSQL
half of each test is skipped with the reason.
"""

from __future__ import annotations

import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from api import auth, users
from api.db import make_engine, make_session_factory, upgrade
from api.dispatch import DispatchConfig
from api.main import create_app
from api.notify import MemoryNotifier
from api.settings import Settings
from api.tables import User
from vision.evidence.local import LocalDirStore

with warnings.catch_warnings():
    # Starlette >= 1.x wants its own client package beside httpx; the
    # TestClient works the same with httpx, which the service depends on.
    warnings.filterwarnings("ignore", message=".*httpx.*starlette.testclient")
    from fastapi.testclient import TestClient

PG_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BACKENDS = ["sqlite", "postgresql"]
TABLES = (
    "tickets, evidence, transitions, attachments, verifications, "
    "users, grants, api_keys"
)
# Every role on the whole city: the user the general API tests act as.
OPS_GRANTS = [(role, "") for role in users.Role]

Headers = dict[str, str]


def _admin_connection():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        autocommit=True,
        connect_timeout=3,
    )


@dataclass
class PgServer:
    reachable: bool
    reason: str = ""

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"citywatch_test_{uuid.uuid4().hex[:12]}"
        with _admin_connection() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return PG_SERVER_URL.rsplit("/", 1)[0] + f"/{name}"

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with _admin_connection() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return PgServer(False, "psycopg is not installed (the 'postgres' extra)")
    try:
        with _admin_connection() as connection:
            connection.execute("SELECT 1")
    except Exception as exc:
        return PgServer(False, f"PostgreSQL at 127.0.0.1:5432 unreachable: {exc}")
    return PgServer(True)


@pytest.fixture
def empty_database_url(
    request: pytest.FixtureRequest, pg_server: PgServer, tmp_path: Path
) -> Iterator[str]:
    """A database with no tables at all, on the backend ``request.param``."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    if not pg_server.reachable:
        pytest.skip(pg_server.reason)
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating)."""
    path = tmp_path_factory.mktemp("template") / "citywatch.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_session_database(pg_server: PgServer) -> Iterator[str | None]:
    if not pg_server.reachable:
        yield None
        return
    url = pg_server.create_database()
    try:
        upgrade(url)
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture(params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest,
    sqlite_template: Path,
    pg_session_database: str | None,
    pg_server: PgServer,
    tmp_path: Path,
) -> str:
    """A migrated, empty database on each backend in turn."""
    if request.param == "sqlite":
        path = tmp_path / "citywatch.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"
    if pg_session_database is None:
        pytest.skip(pg_server.reason)
    engine = make_engine(pg_session_database)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return pg_session_database


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def store(tmp_path: Path) -> LocalDirStore:
    return LocalDirStore(tmp_path / "evidence")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url)


@pytest.fixture
def notifier() -> MemoryNotifier:
    return MemoryNotifier()


@pytest.fixture
def app(
    settings: Settings,
    store: LocalDirStore,
    session_factory: sessionmaker[Session],
    notifier: MemoryNotifier,
) -> FastAPI:
    return create_app(
        settings,
        store=store,
        session_factory=session_factory,
        notifier=notifier,
        dispatch_config=DispatchConfig(),
    )


@pytest.fixture
def user_headers(
    app: FastAPI, session_factory: sessionmaker[Session]
) -> Callable[..., Headers]:
    """``user_headers(name, [(role, area), ...])``: a new user (no password,
    so no slow hashing) and the bearer header of a token for them."""

    def make(name: str, grants: list[tuple[str, str]]) -> Headers:
        with session_factory() as session:
            user = users.create_user(session, name, grants)
            token = auth.issue_token(user, app.state.token_secret, 3600)
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def camera_headers(session_factory: sessionmaker[Session]) -> Callable[[str], Headers]:
    """``camera_headers(camera_id)``: the API-key header of a new camera key."""

    def make(camera_id: str) -> Headers:
        with session_factory() as session:
            key = auth.create_api_key(
                session, name=f"camera {camera_id}", camera_id=camera_id
            )
        return {"X-API-Key": key}

    return make


@pytest.fixture
def ops_headers(user_headers: Callable[..., Headers]) -> Headers:
    return user_headers("ops", OPS_GRANTS)


@pytest.fixture
def client(app: FastAPI, ops_headers: Headers) -> Iterator[TestClient]:
    """The API, signed in as a user with every role on the whole city."""
    with TestClient(app, headers=ops_headers) as client:
        yield client


@pytest.fixture
def anonymous(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


def user_row(session_factory: sessionmaker[Session], name: str) -> User:
    with session_factory() as session:
        return users.get_user(session, name)


@pytest.fixture(scope="session")
def throw_clip(shared_dir: Path) -> Path:
    """A real H.264 MP4 (372 KB): the evidence clip the tests serve."""
    return shared_dir / "data" / "videos" / "throw_facade_ball_720p30.mp4"


@pytest.fixture(scope="session")
def street_photo(shared_dir: Path) -> Path:
    return shared_dir / "data" / "images" / "bus.jpg"
