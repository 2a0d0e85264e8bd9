"""Who is asking: users with passwords and bearer tokens, and API keys.

Users sign in with the OAuth2 password flow and get a JWT (HS256, PyJWT)
signed with ``settings.token_secret``; passwords are kept as Argon2 hashes
(pwdlib). Camera workers and integrations send an API key in ``X-API-Key``:
``cwk_<key id>_<secret>``, of which only the SHA-256 of the secret is kept
(the secret is random, so a fast hash is enough).

What a principal may do is decided by its grants (role on an area); see
``api.access``. Grants are read from the database on every request, so a
revoked grant takes effect at once, not when the token expires.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import jwt
from pwdlib import PasswordHash
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.settings import Settings
from api.tables import ApiKey, User, utc_now
from vision.errors import CitywatchError

logger = logging.getLogger(__name__)

TOKEN_ALGORITHM = "HS256"
API_KEY_PREFIX = "cwk"
TOKEN_SECRET_FILE = "token_secret"

_password_hash = PasswordHash.recommended()
# Checked against when the user does not exist, so a wrong name takes as long
# as a wrong password and user names cannot be probed by timing.
_DUMMY_HASH = _password_hash.hash(secrets.token_urlsafe(16))


class AuthError(CitywatchError):
    """Credentials missing, malformed, expired or unknown (HTTP 401)."""


class Forbidden(CitywatchError):
    """Known principal, but its roles do not allow the action (HTTP 403)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user or camera and what it was granted."""

    name: str  # the actor written in audit records
    user_id: int | None = None
    camera_id: str | None = None
    grants: tuple[tuple[str, str], ...] = field(default=())  # (role, area_path)

    @property
    def is_camera(self) -> bool:
        return self.camera_id is not None


def hash_password(password: str) -> str:
    return _password_hash.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    if password_hash is None:
        _password_hash.verify(password, _DUMMY_HASH)
        return False
    return _password_hash.verify(password, password_hash)


def token_secret(settings: Settings) -> str:
    """The signing key: the setting, or in development a key generated once
    and kept in ``{data_dir}/token_secret`` so tokens survive a restart."""
    if settings.token_secret is not None:
        return settings.token_secret.get_secret_value()
    if settings.environment != "development":
        raise AuthError("token_secret is not set")  # Settings refuses this too
    path = Path(settings.data_dir) / TOKEN_SECRET_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
        logger.info("generated a development token secret in %s", path)
    return path.read_text().strip()


def issue_token(user: User, secret: str, ttl_s: int) -> str:
    now = utc_now()
    claims = {
        "sub": user.username,
        "uid": user.id,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_s),
    }
    return jwt.encode(claims, secret, algorithm=TOKEN_ALGORITHM)


def authenticate_password(session: Session, username: str, password: str) -> User:
    user = session.scalars(select(User).where(User.username == username)).first()
    if not verify_password(password, user.password_hash if user else None):
        raise AuthError("wrong user name or password")
    assert user is not None
    if not user.active:
        raise AuthError("wrong user name or password")
    return user


def principal_from_token(session: Session, token: str, secret: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[TOKEN_ALGORITHM],
            options={"require": ["exp", "sub", "uid"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("the token has expired; sign in again") from None
    except jwt.InvalidTokenError:
        raise AuthError("the token is not valid") from None
    user = session.get(User, claims.get("uid"))
    if user is None or not user.active or user.username != claims["sub"]:
        raise AuthError("the token's user no longer exists or is disabled")
    return principal_for_user(user)


def principal_for_user(user: User) -> Principal:
    return Principal(
        name=user.username,
        user_id=user.id,
        grants=tuple((grant.role, grant.area_path) for grant in user.grants),
    )


# --- API keys -----------------------------------------------------------------


def _secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(
    session: Session,
    *,
    name: str,
    camera_id: str | None = None,
    user: User | None = None,
) -> str:
    """Store a new key and return it; it is shown once and never again."""
    if (camera_id is None) == (user is None):
        raise ValueError("an API key belongs to either a camera or a user")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            key_id=key_id,
            secret_sha256=_secret_sha256(secret),
            name=name,
            camera_id=camera_id,
            user_id=user.id if user else None,
        )
    )
    session.commit()
    return f"{API_KEY_PREFIX}_{key_id}_{secret}"


def revoke_api_key(session: Session, key_id: str) -> None:
    """Refuse the key from now on; the row stays, with when it was revoked.
    ``key_id`` is the part after ``cwk_``, or the whole key."""
    if key_id.startswith(f"{API_KEY_PREFIX}_"):
        key_id = key_id.split("_", 2)[1]
    row = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).first()
    if row is None:
        raise ValueError(f"key_id: no API key {key_id!r}")
    if row.revoked_at is None:
        row.revoked_at = utc_now()
        session.commit()
        logger.info("revoked API key %s (%s)", key_id, row.name)


def principal_from_api_key(session: Session, api_key: str) -> Principal:
    prefix, _, rest = api_key.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != API_KEY_PREFIX or not key_id or not secret:
        raise AuthError("the API key is malformed")
    row = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).first()
    expected = row.secret_sha256 if row else _secret_sha256("")
    matches = hmac.compare_digest(expected, _secret_sha256(secret))
    if row is None or not matches or row.revoked_at is not None:
        raise AuthError("the API key is unknown or revoked")
    if row.camera_id is not None:
        return Principal(name=f"camera:{row.camera_id}", camera_id=row.camera_id)
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        raise AuthError("the API key's user no longer exists or is disabled")
    return principal_for_user(user)
