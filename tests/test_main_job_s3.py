"""The main job with its evidence in an S3-protocol object store (a real
moto server process, standing in for MinIO)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from minio import Minio

from tests.test_main_job import run_citywatch, tickets_in

EXPECTED_TYPES = {
    "clip": "video/mp4",
    "snapshot": "image/jpeg",
    "trajectory": "image/jpeg",
    "metadata": "application/json",
}


@pytest.mark.slow
def test_throw_evidence_lands_in_the_bucket_with_its_media_types(
    tmp_path: Path, videos_dir: Path, models_mirror: Path, s3_server
) -> None:
    bucket = "main-job-evidence"
    result = run_citywatch(
        ["watch", str(videos_dir / "throw_facade_ball_720p30.mp4")],
        tmp_path,
        models_mirror,
        **s3_server.store_env(bucket),
    )
    assert result.returncode == 0, result.stderr
    assert f"s3://{bucket}/" in result.stdout

    (ticket,) = tickets_in(tmp_path)
    event = ticket["event"]
    event = json.loads(event) if isinstance(event, str) else event
    client = Minio(
        s3_server.endpoint,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        secure=False,
    )
    for item in event["evidence"]:
        assert item["state"] == "stored"
        stat = client.stat_object(bucket, item["key"])
        assert stat.content_type == EXPECTED_TYPES[item["kind"]]
        assert stat.size == item["size_bytes"]
    assert not (tmp_path / "evidence").exists()  # nothing went to local disk


@pytest.mark.slow
def test_the_api_serves_evidence_from_the_bucket_to_a_reviewer(
    tmp_path: Path, videos_dir: Path, models_mirror: Path, s3_server
) -> None:
    from fastapi.testclient import TestClient

    from api import auth, users
    from api.db import make_engine, make_session_factory
    from api.main import create_app
    from api.settings import Settings

    s3_env = s3_server.store_env("api-evidence")
    video = videos_dir / "throw_facade_ball_720p30.mp4"
    result = run_citywatch(["watch", str(video)], tmp_path, models_mirror, **s3_env)
    assert result.returncode == 0, result.stderr

    settings = Settings(data_dir=tmp_path, **s3_server.store_settings("api-evidence"))
    engine = make_engine(settings.database_url)
    session_factory = make_session_factory(engine)
    app = create_app(settings, session_factory=session_factory)
    with session_factory() as session:
        reviewer = users.create_user(session, "reviewer", [("reviewer", "")])
        token = auth.issue_token(reviewer, app.state.token_secret, 600)

    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        (ticket,) = client.get("/api/tickets").json()["items"]
        detail = client.get(f"/api/tickets/{ticket['id']}").json()
        links = {item["kind"]: item["url"] for item in detail["evidence"]}
        for kind, content_type in EXPECTED_TYPES.items():
            response = client.get(links[kind])
            assert response.status_code == 200
            assert response.headers["content-type"].startswith(content_type)
            assert response.headers["content-disposition"].startswith("inline")
    engine.dispose()
