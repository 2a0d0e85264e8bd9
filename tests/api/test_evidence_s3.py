"""Evidence served from an S3-protocol store (moto's server), built from
settings the way a deployment configures it."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from fastapi.testclient import TestClient

from api import auth, users
from api.db import make_engine, make_session_factory
from api.main import create_app
from api.settings import Settings
from api.storage import build_store, describe_store
from tests.api.builders import make_event, store_evidence
from tests.s3server import S3Server


def test_clip_is_proxied_from_s3_with_ranges(
    s3_server: S3Server,
    sqlite_template: Path,
    tmp_path: Path,
    throw_clip: Path,
    street_photo: Path,
) -> None:
    database = tmp_path / "citywatch.db"
    shutil.copyfile(sqlite_template, database)
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{database}",
        **s3_server.store_settings(f"evidence-{uuid.uuid4().hex[:8]}"),
    )
    writer_store = build_store(settings)
    event = make_event(event_id="evt-s3")
    event.evidence = store_evidence(
        writer_store, event.event_id, throw_clip, street_photo
    )
    data = throw_clip.read_bytes()
    app = create_app(settings)
    engine = make_engine(settings.database_url or "")
    with make_session_factory(engine)() as session:
        camera_key = auth.create_api_key(session, name="cam", camera_id="plaza-north")
        reader = users.create_user(session, "reader", [("read_only", "old-town")])
        token = auth.issue_token(reader, app.state.token_secret, 60)
    engine.dispose()

    # No store handed in: the app builds its own from the settings.
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        filed = client.post(
            "/api/events",
            json=event.model_dump(mode="json"),
            headers={"X-API-Key": camera_key, "Authorization": ""},
        )
        ticket_id = filed.json()["ticket_id"]
        url = f"/api/tickets/{ticket_id}/evidence/clip"
        whole = client.get(url)
        part = client.get(url, headers={"Range": "bytes=300000-300099"})

    assert filed.status_code == 201
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.content == data
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 300000-300099/{len(data)}"
    assert part.content == data[300000:300100]
    assert describe_store(writer_store, "evt-s3/clip.mp4") == (
        f"s3://{settings.s3_bucket}/evt-s3/clip.mp4 at {s3_server.endpoint}"
    )
