"""Process settings: defaults, environment, settings files, refusals."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from api.settings import Settings, get_settings, load_settings
from vision.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CITYWATCH_ variable of the machine running the tests leaks in."""
    import os

    for name in list(os.environ):
        if name.startswith("CITYWATCH_"):
            monkeypatch.delenv(name)


def test_paths_derive_from_the_data_dir() -> None:
    settings = Settings(data_dir=Path("/srv/cw"))

    assert settings.database_url == "sqlite:////srv/cw/citywatch.db"
    assert settings.store_dir == Path("/srv/cw/evidence")
    assert settings.spool_dir == Path("/srv/cw/spool")
    assert settings.model_dir == Path("/srv/cw/models")
    assert settings.store_kind == "local"
    assert settings.s3_bucket == "citywatch-evidence"
    assert settings.api_port == 8080
    assert settings.api_url == "http://127.0.0.1:8080"
    assert settings.model_mirror_dir is None


def test_defaults_live_under_var() -> None:
    assert Settings().database_url == "sqlite:///var/citywatch.db"


def test_environment_variables_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYWATCH_DATABASE_URL", "postgresql+psycopg://db/cw")
    monkeypatch.setenv("CITYWATCH_API_PORT", "9000")
    monkeypatch.setenv("CITYWATCH_API_HOST", "0.0.0.0")
    monkeypatch.setenv("CITYWATCH_LOG_LEVEL", "debug")
    monkeypatch.setenv("CITYWATCH_ORT_INTRA_OP_THREADS", "2")
    monkeypatch.setenv("CITYWATCH_ORT_GRAPH_OPTIMIZATION", "basic")

    settings = Settings()

    assert settings.database_url == "postgresql+psycopg://db/cw"
    assert settings.api_port == 9000
    assert settings.api_url == "http://127.0.0.1:9000"
    assert settings.log_level == "DEBUG"
    assert settings.ort_intra_op_threads == 2
    assert settings.ort_graph_optimization == "basic"


def test_yaml_settings_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "citywatch.yaml"
    path.write_text(
        "data_dir: /data\n"
        "store_kind: s3\n"
        "s3_endpoint: minio.local:9000\n"
        "s3_access_key: reader\n"
        "s3_secret_key: s3cr3t-value\n"
        "s3_secure: false\n"
        "api_port: 8181\n"
    )
    monkeypatch.setenv("CITYWATCH_SETTINGS_FILE", str(path))
    monkeypatch.setenv("CITYWATCH_API_PORT", "8282")  # the environment wins

    settings = Settings()

    assert settings.store_kind == "s3"
    assert settings.s3_secure is False
    assert settings.s3_secret_key is not None
    assert settings.s3_secret_key.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t" not in repr(settings)
    assert settings.spool_dir == Path("/data/spool")
    assert settings.api_port == 8282


def test_dotenv_settings_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "citywatch.env"
    path.write_text(
        "# shared with the database container\n"
        "POSTGRES_PASSWORD=not-ours\n"
        "CITYWATCH_DATA_DIR=/data\n"
        "citywatch_log_level=warning\n"
    )
    monkeypatch.setenv("CITYWATCH_SETTINGS_FILE", str(path))

    settings = Settings()

    assert settings.database_url == "sqlite:////data/citywatch.db"
    assert settings.log_level == "WARNING"


@pytest.mark.parametrize(
    ("file_name", "text", "message"),
    [
        ("cw.yaml", "databse_url: sqlite://\n", "databse_url"),
        ("cw.yaml", "api_port: 0\n", "api_port"),
        ("cw.env", "CITYWATCH_DATABSE_URL=sqlite://\n", "databse_url"),
        ("cw.env", "CITYWATCH_S3_SECURE=maybe\n", "s3_secure"),
        ("cw.toml", "api_port = 1\n", "expected a .yaml"),
        (None, "", "no such settings file"),
    ],
)
def test_bad_settings_files_are_refused(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    file_name: str | None,
    text: str,
    message: str,
) -> None:
    path = tmp_path / (file_name or "absent.yaml")
    if file_name is not None:
        path.write_text(text)
    monkeypatch.setenv("CITYWATCH_SETTINGS_FILE", str(path))

    with pytest.raises(ConfigError, match=message):
        load_settings()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"store_kind": "s3"}, "s3_endpoint, s3_access_key, s3_secret_key"),
        (
            {"store_kind": "s3", "s3_endpoint": "minio:9000", "s3_access_key": "a"},
            "needs s3_secret_key",
        ),
        (
            {
                "environment": "production",
                "store_kind": "s3",
                "s3_endpoint": "minio:9000",
                "s3_access_key": "minioadmin",
                "s3_secret_key": "minioadmin",
            },
            "placeholder",
        ),
        (
            {"environment": "production", "token_secret": "changethis"},
            "token_secret is a placeholder",
        ),
        (
            {"environment": "production", "token_secret": "k3y-0f-17-bytes!!"},
            "token_secret must be at least 32 bytes",
        ),
        (
            {
                "environment": "production",
                "token_secret": "t" * 40,
                "webhook_urls": ["https://hooks.example/citywatch"],
                "webhook_secret": "secret",
            },
            "webhook_secret is a placeholder",
        ),
        ({"log_level": "loud"}, "log_level"),
        ({"store_kind": "ftp"}, "store_kind"),
        ({"ort_graph_optimization": "max"}, "ort_graph_optimization"),
    ],
)
def test_invalid_settings_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(**overrides)


def test_placeholder_credentials_are_fine_in_development() -> None:
    settings = Settings(
        store_kind="s3",
        s3_endpoint="127.0.0.1:9000",
        s3_access_key="minioadmin",
        s3_secret_key="minioadmin",
    )
    assert settings.environment == "development"


def test_get_settings_reads_once(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    monkeypatch.setenv("CITYWATCH_API_PORT", "9100")
    try:
        first = get_settings()
        monkeypatch.setenv("CITYWATCH_API_PORT", "9200")
        assert get_settings() is first
        assert first.api_port == 9100
    finally:
        get_settings.cache_clear()


def test_detector_sessions_follow_the_settings(
    tmp_path: Path, models_mirror: Path
) -> None:
    from api.watch import load_detector

    settings = Settings(
        data_dir=tmp_path,
        model_mirror_dir=models_mirror,
        ort_intra_op_threads=1,
        ort_graph_optimization="basic",
    )

    detector = load_detector("yolo11n-coco", settings)

    options = detector.session_options
    assert options.intra_op_num_threads == 1
    assert options.graph_optimization_level.name == "ORT_ENABLE_BASIC"


def test_serve_on_a_taken_port_is_refused_in_one_line(tmp_path: Path) -> None:
    from api.main import run_server

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(data_dir=tmp_path, api_port=port)

        with pytest.raises(ConfigError, match=f"cannot serve on 127.0.0.1:{port}"):
            run_server(settings)

    assert not (tmp_path / "citywatch.db").exists()  # refused before anything
