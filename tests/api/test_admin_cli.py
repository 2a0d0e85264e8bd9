"""``citywatch admin``: users, grants, camera keys and areas from the shell."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from api import auth
from api.admin_cli import admin_app
from api.db import make_engine, make_session_factory
from api.settings import get_settings


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CITYWATCH_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_admin_commands(data_dir: Path) -> None:
    runner = CliRunner()

    added = runner.invoke(
        admin_app,
        [
            "user-add",
            "ada",
            "--role",
            "area_admin",
            "--area",
            "old-town",
            "--password-stdin",
        ],
        input="a long enough password\n",
    )
    granted = runner.invoke(
        admin_app, ["grant", "ada", "--role", "reviewer", "--area", "old-town/grid-07"]
    )
    key = runner.invoke(admin_app, ["apikey-create", "--camera", "plaza-north"])
    areas = runner.invoke(admin_app, ["areas"])
    duplicate = runner.invoke(
        admin_app, ["user-add", "ada", "--role", "reviewer", "--area", ""]
    )
    bad_area = runner.invoke(
        admin_app, ["grant", "ada", "--role", "reviewer", "--area", "Old Town"]
    )

    assert added.exit_code == 0, added.output
    assert granted.exit_code == 0, granted.output
    assert key.exit_code == 0 and key.output.startswith("cwk_")
    assert areas.output.split() == ["old-town", "grid-07"]
    assert duplicate.exit_code == 2 and "already exists" in duplicate.output
    assert bad_area.exit_code == 2 and "area path" in bad_area.output

    engine = make_engine(f"sqlite:///{data_dir / 'citywatch.db'}")
    with make_session_factory(engine)() as session:
        user = auth.authenticate_password(session, "ada", "a long enough password")
        assert {(g.role, g.area_path) for g in user.grants} == {
            ("area_admin", "old-town"),
            ("reviewer", "old-town/grid-07"),
        }
        camera = auth.principal_from_api_key(session, key.output.strip())
        assert camera.camera_id == "plaza-north"
    engine.dispose()

    key_id = key.output.strip().split("_")[1]
    revoked = runner.invoke(admin_app, ["apikey-revoke", key_id])
    unknown = runner.invoke(admin_app, ["apikey-revoke", "0123456789abcdef"])
    assert revoked.exit_code == 0, revoked.output
    assert unknown.exit_code == 2 and "no API key" in unknown.output
    engine = make_engine(f"sqlite:///{data_dir / 'citywatch.db'}")
    with make_session_factory(engine)() as session:
        with pytest.raises(auth.AuthError, match="revoked"):
            auth.principal_from_api_key(session, key.output.strip())
    engine.dispose()
