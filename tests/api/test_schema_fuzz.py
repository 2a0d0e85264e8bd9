"""Fuzzing the OpenAPI schema with schemathesis: whatever a client sends,
the API never answers 5xx and every answer matches its documented schema.

Signed in as a user with every role on the whole city, on SQLite, with a
ticket and its evidence in place so some ids exist. Examples per operation
are kept few to stay well inside the suite's time budget.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import Engine

from api import auth, users
from api.access import Role
from api.db import make_engine, make_session_factory
from api.dispatch import DispatchConfig, DispatchRule
from api.main import create_app
from api.notify import MemoryNotifier
from api.settings import Settings
from tests.api.builders import make_event, store_evidence
from vision.evidence.local import LocalDirStore

MAX_EXAMPLES = 25


@pytest.fixture
def fuzz_app(
    sqlite_template: Path, tmp_path: Path, throw_clip: Path, street_photo: Path
) -> Iterator[tuple[FastAPI, dict[str, str]]]:
    database = tmp_path / "fuzz.db"
    shutil.copyfile(sqlite_template, database)
    url = f"sqlite:///{database}"
    engine: Engine = make_engine(url)
    factory = make_session_factory(engine)
    store = LocalDirStore(tmp_path / "evidence")
    app = create_app(
        Settings(data_dir=tmp_path, database_url=url),
        store=store,
        session_factory=factory,
        notifier=MemoryNotifier(),
        dispatch_config=DispatchConfig(
            rules=[DispatchRule(category="*", area="", assignee="city-office")]
        ),
    )
    event = make_event()
    event.evidence = store_evidence(store, event.event_id, throw_clip, street_photo)
    from api.filing import file_event

    with factory() as session:
        file_event(session, event)
        user = users.create_user(session, "fuzzer", [(r, "") for r in Role])
        token = auth.issue_token(user, app.state.token_secret, 3600)
    yield app, {"Authorization": f"Bearer {token}"}
    engine.dispose()


def test_api_never_fails_and_keeps_its_schema(
    fuzz_app: tuple[FastAPI, dict[str, str]],
) -> None:
    app, headers = fuzz_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:
        # Sign-in's form carries its own credentials.
        _fuzz(operation, {} if operation.path == "/api/auth/token" else headers)


def _fuzz(operation: object, sent: dict[str, str]) -> None:
    """Send generated requests to one operation; hypothesis shrinks a failure
    to the smallest request that shows it."""

    @given(case=operation.as_strategy())  # type: ignore[attr-defined]
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(
            headers=sent, checks=[not_a_server_error, response_schema_conformance]
        )

    check()
