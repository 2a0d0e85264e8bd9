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
        CITYWATCH_STORE_KIND="s3",
        CITYWATCH_S3_ENDPOINT=s3_server.endpoint,
        CITYWATCH_S3_ACCESS_KEY=s3_server.access_key,
        CITYWATCH_S3_SECRET_KEY=s3_server.secret_key,
        CITYWATCH_S3_BUCKET=bucket,
        CITYWATCH_S3_SECURE="false",
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
