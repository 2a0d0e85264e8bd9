"""A camera worker on another machine: `citywatch watch --remote` files at a
running service with the camera's API key, its evidence in the object store
the service reads (a real moto S3 server), and keeps no database of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from minio import Minio
from starlette.types import ASGIApp, Receive, Scope, Send

from eval.streams import free_port
from tests.serving import serving
from tests.test_main_job import run_citywatch

CAMERA_ID = "facade-east"


class _FilingOutage:
    """The service, answering 503 to every filing while ``down`` is set (its
    database away, say) and everything else as usual."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.down = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        filing = scope["type"] == "http" and scope["path"] == "/api/events"
        if filing and self.down:
            body = b'{"detail": "database_unavailable"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


@dataclass
class Service:
    url: str
    camera_key: str
    reviewer: httpx.Client
    s3_env: dict[str, str]
    outage: _FilingOutage
    bucket: str  # the service's own: the S3 server outlives each test


@pytest.fixture
def service(tmp_path: Path, s3_server) -> Iterator[Service]:
    from api import auth, users
    from api.db import make_engine, make_session_factory, upgrade
    from api.main import create_app
    from api.settings import Settings

    bucket = f"remote-{uuid.uuid4().hex[:12]}"
    s3_env = s3_server.store_env(bucket)
    settings = Settings(
        data_dir=tmp_path / "service", **s3_server.store_settings(bucket)
    )
    assert settings.database_url is not None
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    session_factory = make_session_factory(engine)
    app = create_app(settings, session_factory=session_factory)
    with session_factory() as session:
        camera_key = auth.create_api_key(
            session, name=f"camera {CAMERA_ID}", camera_id=CAMERA_ID
        )
        reviewer = users.create_user(session, "reviewer", [("reviewer", "")])
        token = auth.issue_token(reviewer, app.state.token_secret, 600)

    outage = _FilingOutage(app)
    with (
        serving(outage) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}
        ) as client,
    ):
        yield Service(url, camera_key, client, s3_env, outage, bucket)
    engine.dispose()


def _watch_remote(
    service: Service,
    video: Path,
    worker_dir: Path,
    mirror: Path,
    camera_id: str | None = CAMERA_ID,
    **env: str,
):
    """Run `watch --remote` as the camera ``camera_id`` (None: no camera file)."""
    args = ["watch", str(video), "--remote"]
    if camera_id is not None:
        camera = worker_dir.parent / f"{camera_id}.yaml"
        camera.write_text(yaml.safe_dump({"camera_id": camera_id}))
        args += ["--camera", str(camera)]
    return run_citywatch(
        args,
        worker_dir,
        mirror,
        **{
            "CITYWATCH_API_URL": service.url,
            "CITYWATCH_CAMERA_API_KEY": service.camera_key,
            **service.s3_env,
            **env,
        },
    )


@pytest.mark.slow
def test_a_worker_elsewhere_files_at_the_service_and_keeps_no_database(
    service: Service, tmp_path: Path, videos_dir: Path, models_mirror: Path, s3_server
) -> None:
    video = videos_dir / "throw_facade_ball_720p30.mp4"
    worker_dir = tmp_path / "worker"

    first = _watch_remote(service, video, worker_dir, models_mirror)

    assert first.returncode == 0, first.stderr
    assert f"service: {service.url}" in first.stdout
    (ticket,) = service.reviewer.get("/api/tickets").json()["items"]
    assert (ticket["category"], ticket["camera_id"]) == ("throw", CAMERA_ID)
    detail = service.reviewer.get(f"/api/tickets/{ticket['id']}").json()
    assert detail["evidence_state"] == "stored"
    links = {item["kind"]: item["url"] for item in detail["evidence"]}
    clip = service.reviewer.get(links["clip"])
    assert clip.status_code == 200
    assert clip.headers["content-type"].startswith("video/mp4")
    assert not (worker_dir / "citywatch.db").exists()
    assert not (worker_dir / "evidence").exists()

    # The same recording again: the ticket and its evidence stay as filed.
    s3 = Minio(
        s3_server.endpoint,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        secure=False,
    )
    objects = {
        o.object_name: o.etag for o in s3.list_objects(service.bucket, recursive=True)
    }
    review = {"decision": "confirm"}
    service.reviewer.post(f"/api/tickets/{ticket['id']}/review", json=review)

    again = _watch_remote(service, video, worker_dir, models_mirror)

    assert again.returncode == 0, again.stderr
    assert "filed before, now confirmed" in again.stdout
    assert service.reviewer.get("/api/tickets").json()["total"] == 1
    after = {
        o.object_name: o.etag for o in s3.list_objects(service.bucket, recursive=True)
    }
    assert after == objects


@pytest.mark.parametrize(
    ("camera_id", "env", "expected"),
    [
        (CAMERA_ID, {"CITYWATCH_CAMERA_API_KEY": ""}, "apikey-create --camera"),
        (
            CAMERA_ID,
            {"CITYWATCH_CAMERA_API_KEY": "cwk_not_a_key"},
            "does not know the key in CITYWATCH_CAMERA_API_KEY",
        ),
        ("gate-west", {}, "belongs to another camera; this one is gate-west"),
        (None, {}, "--remote needs --camera FILE"),
        (
            CAMERA_ID,
            {"CITYWATCH_API_URL": f"http://127.0.0.1:{free_port()}"},
            "cannot reach the service at http://127.0.0.1:",
        ),
    ],
    ids=[
        "no key",
        "unknown key",
        "another camera's key",
        "no camera file",
        "no service",
    ],
)
def test_a_worker_the_service_would_not_take_stops_at_once_with_one_line(
    service: Service,
    tmp_path: Path,
    videos_dir: Path,
    models_mirror: Path,
    camera_id: str | None,
    env: dict[str, str],
    expected: str,
) -> None:
    video = videos_dir / "throw_facade_ball_720p30.mp4"

    result = _watch_remote(
        service, video, tmp_path / "worker", models_mirror, camera_id, **env
    )

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert service.reviewer.get("/api/tickets").json()["total"] == 0


@pytest.mark.slow
def test_events_the_service_cannot_take_are_filed_by_the_next_run(
    service: Service, tmp_path: Path, videos_dir: Path, models_mirror: Path
) -> None:
    video = videos_dir / "throw_facade_ball_720p30.mp4"
    worker_dir = tmp_path / "worker"
    service.outage.down = True

    during = _watch_remote(service, video, worker_dir, models_mirror)

    assert during.returncode == 0, during.stderr
    assert "1 event(s) not filed: the ticket service was unavailable" in during.stdout
    assert "will be filed when the service answers" in during.stderr
    assert service.reviewer.get("/api/tickets").json()["total"] == 0
    outbox = worker_dir / "spool" / CAMERA_ID / "outbox"
    assert len(list(outbox.glob("*.json"))) == 1

    service.outage.down = False
    after = _watch_remote(service, video, worker_dir, models_mirror)

    assert after.returncode == 0, after.stderr
    assert "not filed" not in after.stdout
    (ticket,) = service.reviewer.get("/api/tickets").json()["items"]
    assert ticket["evidence_state"] == "stored"
    assert f"ticket {ticket['id']}  throw" in after.stdout
    assert "1 ticket(s)" in after.stdout  # listed once, not again as filed before
    assert list(outbox.glob("*.json")) == []


@pytest.mark.slow
def test_evidence_written_to_another_store_is_filed_missing(
    service: Service, tmp_path: Path, videos_dir: Path, models_mirror: Path
) -> None:
    video = videos_dir / "throw_facade_ball_720p30.mp4"

    result = _watch_remote(
        service,
        video,
        tmp_path / "worker",
        models_mirror,
        CITYWATCH_S3_BUCKET="another-bucket",
    )

    assert result.returncode == 0, result.stderr
    (ticket,) = service.reviewer.get("/api/tickets").json()["items"]
    detail = service.reviewer.get(f"/api/tickets/{ticket['id']}").json()
    assert detail["evidence_state"] == "missing"
    reasons = {item["reason"] for item in detail["evidence"]}
    assert reasons == {"not in the service's evidence store"}
    assert "evidence missing" in result.stdout  # the operator sees it too
