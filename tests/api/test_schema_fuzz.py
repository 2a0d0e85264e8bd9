"""Fuzzing the OpenAPI schema with schemathesis: whatever a client sends,
the API never answers 5xx and every answer matches its documented schema.

Requests are generated both valid (positive) and broken (negative: wrong
types, missing fields, values out of range), on SQLite and on PostgreSQL,
whose drivers refuse different values. Signed in as a user with every role on
the whole city, with a ticket and its evidence in place so some ids exist.
Examples per operation are kept few to stay well inside the suite's time
budget.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy.orm import Session, sessionmaker

from api.dispatch import DispatchConfig, DispatchRule
from api.filing import file_event
from tests.api.builders import make_event, store_evidence
from vision.evidence.local import LocalDirStore

MAX_EXAMPLES = 25


@pytest.fixture
def fuzz_app(
    app: FastAPI,
    store: LocalDirStore,
    session_factory: sessionmaker[Session],
    throw_clip: Path,
    street_photo: Path,
) -> FastAPI:
    app.state.dispatch_config = DispatchConfig(
        rules=[DispatchRule(category="*", area="", assignee="city-office")]
    )
    event = make_event()
    event.evidence = store_evidence(store, event.event_id, throw_clip, street_photo)
    with session_factory() as session:
        file_event(session, event)
    return app


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_never_fails_and_keeps_its_schema(
    fuzz_app: FastAPI, ops_headers: dict[str, str], mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    fuzzed = []

    for operation in operations:
        # Sign-in's form carries its own credentials.
        sent = {} if operation.path == "/api/auth/token" else ops_headers
        try:
            _fuzz(operation, mode, sent)
        except Unsatisfiable:
            # Nothing the client sends can be broken (no body, no query).
            assert mode is GenerationMode.NEGATIVE, operation.path
            continue
        fuzzed.append(operation.path)

    assert len(fuzzed) >= 15


def _fuzz(operation: object, mode: GenerationMode, sent: dict[str, str]) -> None:
    """Send generated requests to one operation; hypothesis shrinks a failure
    to the smallest request that shows it."""

    @given(case=operation.as_strategy(mode))  # type: ignore[attr-defined]
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
