"""`citywatch watch` when the evidence store is down during a run: tickets
are filed with their evidence pending in the camera's spool, and the next run
uploads it and the tickets show it stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from api import watch
from api.settings import Settings
from vision.errors import ClipUploadError
from vision.evidence.local import LocalDirStore


class _StoreThatIsDown(LocalDirStore):
    """A store that refuses every write while ``down`` is set."""

    down = True

    def put_file(self, key: str, path: Path, content_type: str) -> Any:
        self._refuse(key)
        return super().put_file(key, path, content_type)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> Any:
        self._refuse(key)
        return super().put_bytes(key, data, content_type)

    def _refuse(self, key: str) -> None:
        if self.down:
            raise ClipUploadError(f"object store down, cannot write {key!r}")


def _evidence_states(data_dir: Path) -> list[str]:
    engine = create_engine(f"sqlite:///{data_dir / 'citywatch.db'}")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT evidence_state FROM tickets"))
        states = [row[0] for row in rows]
    engine.dispose()
    return states


@pytest.mark.slow
def test_evidence_the_store_refused_is_uploaded_by_the_next_run(
    tmp_path: Path, videos_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _StoreThatIsDown(tmp_path / "store")
    monkeypatch.setattr(watch, "build_store", lambda settings, **_: store)
    settings = Settings(data_dir=tmp_path)
    video = str(videos_dir / "throw_facade_ball_720p30.mp4")

    during = watch.watch_source(video, None, settings)

    (ticket,) = during.tickets
    assert ticket.evidence_state == "pending"
    assert len(during.spooled) == 4  # clip, snapshot, trajectory, metadata
    assert _evidence_states(tmp_path) == ["pending"]
    assert not any(store.exists(key) for key in during.spooled)

    store.down = False
    after = watch.watch_source(video, None, settings)

    assert after.spooled == []
    assert [t.evidence_state for t in after.tickets] == ["stored"]
    assert _evidence_states(tmp_path) == ["stored"]
    assert all(store.exists(key) for key in during.spooled)


@pytest.mark.slow
def test_a_store_down_at_start_does_not_keep_the_camera_from_running(
    tmp_path: Path, videos_dir: Path, s3_server
) -> None:
    bucket = "made-when-the-store-is-back"
    settings = Settings(data_dir=tmp_path, **s3_server.store_settings(bucket))
    video = str(videos_dir / "throw_facade_ball_720p30.mp4")

    s3_server.stop()
    try:
        during = watch.watch_source(video, None, settings)
    finally:
        s3_server.start()
    after = watch.watch_source(video, None, settings)

    assert [t.evidence_state for t in during.tickets] == ["pending"]
    assert len(during.spooled) == 4
    assert after.spooled == []
    assert [t.evidence_state for t in after.tickets] == ["stored"]
    assert _evidence_states(tmp_path) == ["stored"]
