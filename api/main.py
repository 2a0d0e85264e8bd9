"""The FastAPI application: tickets and their workflow, evidence, event
filing and camera verification, users and sign-in.

``create_app`` takes every collaborator (settings, evidence store, session
factory, notifier, dispatch rules) so tests and embedders can hand in their
own; whatever is not given is built from the settings. Domain errors become
HTTP answers in one place (``ERROR_RESPONSES``), each with a stable
``detail`` code and a readable ``message``.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from fastapi import Depends, FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from api import tickets, users, workflow
from api.access import can_see
from api.auth import AuthError, Forbidden, Principal, token_secret
from api.cameras import CameraFleet, camera_files_in
from api.db import make_engine, make_session_factory, upgrade
from api.deps import PrincipalDep, SessionDep
from api.dispatch import DispatchConfig, load_dispatch_config
from api.notify import BackgroundNotifier, Notifier
from api.review_queue import InvalidCursor
from api.routes import events as events_routes
from api.routes import overview as overview_routes
from api.routes import reviews as reviews_routes
from api.routes import tickets as tickets_routes
from api.routes import users as users_routes
from api.routes.ingest import IngestLimits, ingest_router
from api.schemas import ERROR_DOCS, Health
from api.settings import Settings, get_settings
from api.storage import build_store
from api.web import pages
from vision.errors import ConfigError, StoreError
from vision.evidence.objects import ObjectStore
from vision.metrics import health_summary, metrics_app

logger = logging.getLogger(__name__)

# Most specific first: the first matching class answers.
ERROR_RESPONSES: list[tuple[type[Exception], int, str]] = [
    (AuthError, status.HTTP_401_UNAUTHORIZED, "not_authenticated"),
    (Forbidden, status.HTTP_403_FORBIDDEN, "forbidden"),
    (tickets.TicketNotFound, status.HTTP_404_NOT_FOUND, "ticket_not_found"),
    (
        workflow.VerificationNotFound,
        status.HTTP_404_NOT_FOUND,
        "verification_not_found",
    ),
    (users.UserNotFound, status.HTTP_404_NOT_FOUND, "user_not_found"),
    (users.UserExists, status.HTTP_409_CONFLICT, "user_exists"),
    (workflow.NoAssignee, status.HTTP_422_UNPROCESSABLE_CONTENT, "no_assignee"),
    (tickets.EvidenceNotFound, status.HTTP_404_NOT_FOUND, "evidence_not_found"),
    (tickets.EventNotFiled, status.HTTP_404_NOT_FOUND, "event_not_filed"),
    (tickets.IllegalTransition, status.HTTP_409_CONFLICT, "illegal_transition"),
    (tickets.InvalidReview, status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_review"),
    (tickets.InvalidEvent, status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_event"),
    (InvalidCursor, status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_cursor"),
    (DataError, status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_value"),
    (StoreError, status.HTTP_503_SERVICE_UNAVAILABLE, "evidence_store_unavailable"),
    (OperationalError, status.HTTP_503_SERVICE_UNAVAILABLE, "database_unavailable"),
]


def create_app(
    settings: Settings | None = None,
    *,
    store: ObjectStore | None = None,
    session_factory: sessionmaker[Session] | None = None,
    notifier: Notifier | None = None,
    dispatch_config: DispatchConfig | None = None,
    cameras: CameraFleet | None = None,
) -> FastAPI:
    """The API over the settings' database and evidence store.

    The database schema must be at head (``api.db.upgrade``); the store is
    built on the first evidence request when not given, so the API answers
    about tickets even while the store is unreachable. While the app runs, a
    background thread looks for overdue tickets and notifies about them.
    """
    settings = settings or get_settings()
    engine: Engine | None = None
    if session_factory is None:
        assert settings.database_url is not None  # derived by Settings
        engine = make_engine(settings.database_url)
        session_factory = make_session_factory(engine)
    own_notifier = (
        BackgroundNotifier.from_settings(settings) if notifier is None else None
    )
    notifier = notifier or own_notifier
    assert notifier is not None
    factory = session_factory

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        checker = threading.Thread(
            target=_check_overdue,
            args=(factory, notifier, settings.overdue_check_interval_s, stop),
            name="citywatch-overdue",
            daemon=True,
        )
        checker.start()
        if cameras is not None:
            cameras.start()
        yield
        if cameras is not None:
            cameras.stop()
        stop.set()
        checker.join(timeout=10.0)
        if own_notifier is not None:
            own_notifier.close()
        if engine is not None:
            engine.dispose()

    app = FastAPI(
        title="citywatch",
        summary="Tickets filed by city cameras, their evidence and their review.",
        version="0.1.0",
        lifespan=lifespan,
        responses=ERROR_DOCS,
    )
    app.state.settings = settings
    app.state.session_factory = session_factory
    app.state.store = store
    app.state.store_builder = partial(build_store, settings)
    app.state.notifier = notifier
    app.state.dispatch_config = dispatch_config or load_dispatch_config(
        settings.dispatch_file
    )
    app.state.token_secret = token_secret(settings)

    app.include_router(users_routes.router)
    app.include_router(tickets_routes.router)
    app.include_router(reviews_routes.router)
    app.include_router(overview_routes.router)
    app.include_router(events_routes.router)
    app.include_router(pages.router)
    app.add_api_route(
        "/healthz",
        healthz,
        methods=["GET"],
        tags=["health"],
        response_model=Health,
        responses={503: {"model": Health, "description": "Database unreachable."}},
    )
    if cameras is not None:
        _mount_cameras(app, cameras)
    _install_error_responses(app)
    return app


def _mount_cameras(app: FastAPI, cameras: CameraFleet) -> None:
    """Pushed frames and clips, Prometheus metrics and camera health."""
    uploads = app.state.settings.data_dir / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    limits = IngestLimits(temp_dir=uploads)
    app.include_router(
        ingest_router(cameras.hub, limits), dependencies=[Depends(_camera_pushes)]
    )
    app.mount("/metrics", metrics_app(cameras.board))

    def cameras_health(principal: PrincipalDep) -> list[dict[str, object]]:
        """State (online, degraded, offline), lag and faults of each camera
        in the caller's areas; a camera's own key sees that camera."""
        return [
            status
            for status in health_summary(cameras.board)
            if _may_see_camera(principal, cameras, str(status["camera_id"]))
        ]

    app.add_api_route(
        "/api/health/cameras", cameras_health, methods=["GET"], tags=["health"]
    )


def _may_see_camera(principal: Principal, cameras: CameraFleet, camera_id: str) -> bool:
    if principal.camera_id == camera_id:
        return True
    camera = cameras.cameras.get(camera_id)
    return camera is not None and can_see(principal, camera.area_path)


def _camera_pushes(camera_id: str, principal: PrincipalDep) -> None:
    """Only the camera itself (its API key) pushes its frames and clips."""
    if principal.camera_id != camera_id:
        raise Forbidden(f"{principal.name} may not push frames for camera {camera_id}")


def _check_overdue(
    factory: sessionmaker[Session],
    notifier: Notifier,
    interval_s: float,
    stop: threading.Event,
) -> None:
    """Notify about overdue tickets every ``interval_s`` until stopped."""
    while not stop.wait(interval_s):
        try:
            with factory() as session:
                workflow.notify_overdue(session, notifier)
        except Exception:  # keep checking; the database may come back
            logger.exception("looking for overdue tickets failed")


def healthz(session: SessionDep) -> JSONResponse:
    """200 when the database answers, 503 when it does not."""
    try:
        session.execute(text("SELECT 1"))
    except OperationalError:
        logger.warning("health check: the database does not answer", exc_info=True)
        body = Health(status="unavailable", database="unreachable")
        return JSONResponse(body.model_dump(), status.HTTP_503_SERVICE_UNAVAILABLE)
    return JSONResponse(Health(status="ok", database="ok").model_dump())


def _install_error_responses(app: FastAPI) -> None:
    for error_type, status_code, detail in ERROR_RESPONSES:
        app.add_exception_handler(error_type, _error_handler(status_code, detail))
    app.add_exception_handler(RequestValidationError, _invalid_request)


def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """422 with the usual list of what is wrong.

    The list echoes the offending values, and JSON has no NaN or infinity:
    those are quoted, so that refusing a non-finite number never turns into
    a failure to say why.
    """
    assert isinstance(exc, RequestValidationError)
    errors = _json_safe(jsonable_encoder(exc.errors()))
    # One line beside the list, as every other refusal has.
    message = "; ".join(
        f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg')}"
        for error in exc.errors()
    )
    return JSONResponse(status_code=422, content={"detail": errors, "message": message})


def _json_safe(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    return value


def _error_handler(
    status_code: int, detail: str
) -> Callable[[Request, Exception], JSONResponse]:
    def handle(request: Request, exc: Exception) -> JSONResponse:
        message = _message(exc)
        # A refused request is the client's business, not an operator's;
        # a service that cannot reach its database or store needs a human.
        level = logging.INFO if status_code < 500 else logging.ERROR
        logger.log(
            level,
            "%s %s -> %s %s: %s",
            request.method,
            request.url.path,
            status_code,
            detail,
            message,
        )
        headers = {"WWW-Authenticate": "Bearer"} if status_code == 401 else None
        return JSONResponse(
            {"detail": detail, "message": message},
            status_code=status_code,
            headers=headers,
        )

    return handle


def _message(exc: Exception) -> str:
    if isinstance(exc, DataError | OperationalError):
        # The driver's text may quote the statement and its values.
        return str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
    return str(exc)


def run_server(settings: Settings, camera_dir: Path | None = None) -> None:
    """Run the API with uvicorn on ``api_host:api_port`` until stopped; with
    ``camera_dir``, the cameras of its camera files run beside it."""
    import uvicorn

    assert settings.database_url is not None  # derived by Settings
    _check_port_free(settings.api_host, settings.api_port)
    upgrade(settings.database_url)  # a no-op when the schema is already at head
    cameras = None
    if camera_dir is not None:
        cameras = CameraFleet(settings, camera_files_in(camera_dir))
    store = _store_at_start(settings)
    logger.info("serving the API on %s:%s", settings.api_host, settings.api_port)
    uvicorn.run(
        create_app(settings, cameras=cameras, store=store),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
    )


def _store_at_start(settings: Settings) -> ObjectStore | None:
    """The evidence store, checked (and its bucket made) before serving. One
    that cannot be reached does not stop the service, whose tickets stay
    reviewable: it is said now, and asked for again on each request."""
    try:
        return build_store(settings)
    except StoreError as exc:
        logger.warning(
            "evidence store unavailable at start: %s; evidence requests answer "
            "503 until it is back",
            exc,
        )
        return None


def _check_port_free(host: str, port: int) -> None:
    """Refuse to start, in one line, where uvicorn would fail after the
    cameras had started: the address is taken or cannot be had."""
    try:
        with socket.socket(_family_of(host), socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise ConfigError(
            f"cannot serve on {host}:{port}: {exc.strerror or exc} "
            "(another service there? set CITYWATCH_API_PORT or CITYWATCH_API_HOST)"
        ) from None


def _family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
