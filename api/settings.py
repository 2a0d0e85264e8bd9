"""Process settings of the service: database, object store, paths, server.

Settings come from, highest priority first: keyword arguments, environment
variables prefixed ``CITYWATCH_`` (``CITYWATCH_DATABASE_URL``), and an optional
settings file named by ``CITYWATCH_SETTINGS_FILE``: YAML (keys are field names,
``database_url: ...``) or a ``.env`` file (keys carry the prefix). Unknown keys
in a settings file are refused, so a typo never silently falls back to a
default.

Paths left unset derive from ``data_dir``: the database, the evidence store,
the spool and the model directory all live under ``./var`` by default, which
is the single-machine setup. Secrets have no defaults; outside development the
well-known placeholder credentials are refused.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from dotenv import dotenv_values
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from vision.errors import ConfigError

ENV_PREFIX = "CITYWATCH_"
SETTINGS_FILE_ENV = f"{ENV_PREFIX}SETTINGS_FILE"

# Credentials that ship in examples and quick starts; fine on a laptop,
# never on a deployed service.
_PLACEHOLDER_SECRETS = frozenset({"minioadmin", "changethis", "changeme", "secret"})
# HMAC-SHA256 keys shorter than the digest weaken the signature (RFC 7518 3.2).
_MIN_SIGNING_SECRET_BYTES = 32
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", validate_default=True
    )

    environment: Literal["development", "production"] = Field(
        default="development",
        description="Outside development, placeholder secrets are refused.",
    )
    data_dir: Path = Field(
        default=Path("./var"),
        description="Root of everything the service keeps on local disk.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///{data_dir}/citywatch.db. "
        "PostgreSQL: postgresql+psycopg://user:password@host/db.",
    )

    store_kind: Literal["local", "s3"] = "local"
    store_dir: Path | None = Field(
        default=None, description="Local evidence store; default {data_dir}/evidence."
    )
    s3_endpoint: str | None = Field(
        default=None, description="host:port of the S3 or MinIO server."
    )
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_bucket: str = "citywatch-evidence"
    s3_secure: bool = Field(default=True, description="Use HTTPS to the store.")
    s3_region: str | None = None

    spool_dir: Path | None = Field(
        default=None,
        description="Evidence waiting for the store; default {data_dir}/spool.",
    )
    model_dir: Path | None = Field(
        default=None, description="Pulled model weights; default {data_dir}/models."
    )
    model_mirror_dir: Path | None = Field(
        default=None,
        description="Local directory to copy models from when offline.",
    )

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=1, le=65535)
    api_url: str | None = Field(
        default=None,
        description="The service that `watch --remote` files tickets at; "
        "default http://{api_host}:{api_port}.",
    )
    camera_api_key: SecretStr | None = Field(
        default=None,
        description="The camera's API key for `watch --remote` "
        "(citywatch admin apikey-create --camera ID on the service).",
    )
    ort_intra_op_threads: int | None = Field(
        default=None, ge=1, description="onnxruntime threads; None lets it decide."
    )
    ort_graph_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        default="all",
        description="onnxruntime graph optimisation level of detector sessions.",
    )
    log_level: str = "INFO"

    token_secret: SecretStr | None = Field(
        default=None,
        description="Key that signs sign-in tokens (HS256). Required outside "
        "development; in development one is generated and kept in "
        "{data_dir}/token_secret.",
    )
    token_ttl_s: int = Field(
        default=8 * 3600, ge=60, description="How long a sign-in token is valid."
    )
    dispatch_file: Path | None = Field(
        default=None,
        description="YAML or JSON file of dispatch rules (category and area to "
        "department or grid team), deadlines and verification times.",
    )
    verification_clear_s: float = Field(
        default=60.0,
        gt=0,
        description="Stream seconds a resolved place must stay clear to count "
        "as fixed, unless the dispatch file sets it per category.",
    )
    duplicate_window_s: float = Field(
        default=3600.0,
        ge=0,
        description="An event within this many seconds of an open ticket's last "
        "event, at the same place, attaches to it instead of filing another.",
    )
    duplicate_iou: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="Box overlap (intersection over union) that counts as the "
        "same place.",
    )
    rejected_retention_days: float = Field(
        default=7.0,
        ge=0,
        description="Evidence of a ticket rejected longer ago than this may be "
        "deleted from a full spool to make room; nothing else ever is.",
    )
    webhook_urls: list[str] = Field(
        default_factory=list,
        description="URLs that receive ticket notifications (POST, JSON, "
        "HMAC-SHA256 signed).",
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="Key that signs webhook bodies; required with URLs."
    )
    webhook_retries: int = Field(default=5, ge=0)
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    mqtt_host: str | None = Field(
        default=None, description="MQTT broker for ticket notifications; None: off."
    )
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_topic_prefix: str = "citywatch/tickets"
    overdue_check_interval_s: float = Field(
        default=60.0, gt=0, description="How often overdue tickets are looked for."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        file_source = _settings_file_source(settings_cls)
        if file_source is not None:
            sources.append(file_source)
        return tuple(sources)

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        name = value.upper()
        if not isinstance(logging.getLevelName(name), int):
            raise ValueError(
                f"log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL, "
                f"not {value!r}"
            )
        return name

    @model_validator(mode="after")
    def _derive_and_check(self) -> Settings:
        self.database_url = self.database_url or (
            f"sqlite:///{self.data_dir / 'citywatch.db'}"
        )
        self.store_dir = self.store_dir or self.data_dir / "evidence"
        self.spool_dir = self.spool_dir or self.data_dir / "spool"
        self.model_dir = self.model_dir or self.data_dir / "models"
        if self.api_url is None:
            host = "127.0.0.1" if self.api_host in _WILDCARD_HOSTS else self.api_host
            self.api_url = f"http://{host}:{self.api_port}"
        if self.store_kind == "s3":
            self._check_s3()
        if self.environment != "development" and self.token_secret is None:
            raise ValueError(
                "token_secret is required outside development "
                f"(set {ENV_PREFIX}TOKEN_SECRET to a long random value)"
            )
        if self.webhook_urls and self.webhook_secret is None:
            raise ValueError(
                f"webhook_urls need webhook_secret (set {ENV_PREFIX}WEBHOOK_SECRET)"
            )
        if self.environment != "development":
            self._check_signing_secrets()
        return self

    def _check_signing_secrets(self) -> None:
        """Keys that sign tokens and webhooks: no placeholders, and long
        enough for HMAC-SHA256 (PyJWT warns below the digest's 32 bytes)."""
        for name in ("token_secret", "webhook_secret"):
            secret: SecretStr | None = getattr(self, name)
            if secret is None:
                continue
            value = secret.get_secret_value()
            if value.lower() in _PLACEHOLDER_SECRETS:
                raise ValueError(
                    f"{name} is a placeholder value; set a real secret "
                    "outside development"
                )
            if len(value.encode()) < _MIN_SIGNING_SECRET_BYTES:
                raise ValueError(
                    f"{name} must be at least {_MIN_SIGNING_SECRET_BYTES} bytes "
                    f"outside development, got {len(value.encode())}"
                )

    def _check_s3(self) -> None:
        missing = [
            name
            for name in ("s3_endpoint", "s3_access_key", "s3_secret_key")
            if not getattr(self, name)
        ]
        if missing:
            raise ValueError(
                f"store_kind 's3' needs {', '.join(missing)} "
                f"(set {', '.join(ENV_PREFIX + m.upper() for m in missing)})"
            )
        if self.environment == "development":
            return
        for name in ("s3_access_key", "s3_secret_key"):
            secret: SecretStr = getattr(self, name)
            if secret.get_secret_value().lower() in _PLACEHOLDER_SECRETS:
                raise ValueError(
                    f"{name} is a placeholder value; set a real credential "
                    f"outside development"
                )


def _settings_file_source(
    settings_cls: type[BaseSettings],
) -> PydanticBaseSettingsSource | None:
    """The source for the file named by CITYWATCH_SETTINGS_FILE, if any."""
    name = os.environ.get(SETTINGS_FILE_ENV)
    if not name:
        return None
    path = Path(name)
    if not path.is_file():
        raise ConfigError(f"{SETTINGS_FILE_ENV}={name}: no such settings file")
    if path.suffix.lower() in {".yaml", ".yml"}:
        return YamlConfigSettingsSource(settings_cls, yaml_file=path)
    if path.name.endswith(".env") or path.suffix == "":
        return _PrefixedDotEnvSource(settings_cls, path)
    raise ConfigError(
        f"{SETTINGS_FILE_ENV}={name}: expected a .yaml, .yml or .env file"
    )


class _PrefixedDotEnvSource(PydanticBaseSettingsSource):
    """The ``CITYWATCH_`` lines of a .env file; other lines are left alone
    (the file may be shared with other services), but a prefixed key that
    names no setting is refused like any unknown field."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self._values = {
            name[len(ENV_PREFIX) :].lower(): value
            for name, value in dotenv_values(path).items()
            if name.upper().startswith(ENV_PREFIX) and value is not None
        }

    def get_field_value(
        self, field: FieldInfo, field_name: str
    ) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


def load_settings(**overrides: Any) -> Settings:
    """Read settings now; a bad value raises ConfigError naming the field."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {_describe(exc)}") from None
    except yaml.YAMLError as exc:
        name = os.environ.get(SETTINGS_FILE_ENV)
        reason = " ".join(str(exc).split())
        raise ConfigError(
            f"{SETTINGS_FILE_ENV}={name}: not valid YAML: {reason}"
        ) from None


def _describe(exc: ValidationError) -> str:
    """One line: each bad field with what is wrong, never the value given
    (it may be a secret)."""
    parts = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        message = (
            "unknown setting" if error["type"] == "extra_forbidden" else error["msg"]
        )
        message = message.removeprefix("Value error, ")
        parts.append(f"{field}: {message}" if field else message)
    return "; ".join(parts)


@functools.cache
def get_settings() -> Settings:
    """The process settings, read once. Tests call ``get_settings.cache_clear``."""
    return load_settings()
