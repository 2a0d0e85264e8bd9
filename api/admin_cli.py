"""``citywatch admin``: users, grants, API keys and areas, from the shell.

The first user (an area admin on the whole city, ``--area ''``) is made here;
after that, area admins can also manage users over the API.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from api import auth, users
from api.access import Role
from api.db import make_engine, make_session_factory, upgrade
from api.settings import get_settings

admin_app = typer.Typer(no_args_is_help=True, help="Users, grants, API keys, areas.")

RoleOption = Annotated[Role, typer.Option("--role", help="What the user may do.")]
AreaOption = Annotated[
    str,
    typer.Option(
        "--area", help="Area path, like old-town/riverside; '' is the whole city."
    ),
]


@contextmanager
def _session() -> Iterator[Session]:
    settings = get_settings()
    assert settings.database_url is not None  # derived by Settings
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _fail(message: str) -> None:
    typer.echo(f"citywatch admin: error: {message}", err=True)
    raise typer.Exit(code=2)


@admin_app.command("user-add")
def user_add(
    name: Annotated[str, typer.Argument(help="User name to sign in with.")],
    role: RoleOption,
    area: AreaOption,
    password_stdin: Annotated[
        bool, typer.Option(help="Read the password from standard input.")
    ] = False,
) -> None:
    """Add a user with one role on one area (more with ``grant``)."""
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        if len(password) < 8:
            _fail("the password needs at least 8 characters")
    try:
        with _session() as session:
            users.create_user(session, name, [(role, area)], password=password)
    except (users.UserExists, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"added {name}: {role} on '{area}'")


@admin_app.command("grant")
def grant(
    name: Annotated[str, typer.Argument(help="An existing user.")],
    role: RoleOption,
    area: AreaOption,
) -> None:
    """Grant a user a role on an area (and everything below it)."""
    try:
        with _session() as session:
            users.add_grant(session, users.get_user(session, name), role, area)
    except (users.UserNotFound, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"granted {name}: {role} on '{area}'")


@admin_app.command("apikey-create")
def apikey_create(
    camera: Annotated[
        str | None, typer.Option("--camera", help="Camera the key files for.")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="User an integration acts as.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="What the key is for.")] = None,
) -> None:
    """Create an API key and print it once; only its hash is kept."""
    if (camera is None) == (user is None):
        _fail("give either --camera or --user")
    try:
        with _session() as session:
            owner = users.get_user(session, user) if user else None
            key = auth.create_api_key(
                session,
                name=name or f"camera {camera}" if camera else name or f"user {user}",
                camera_id=camera,
                user=owner,
            )
    except users.UserNotFound as exc:
        _fail(str(exc))
    typer.echo(key)


@admin_app.command("apikey-revoke")
def apikey_revoke(
    key_id: Annotated[
        str, typer.Argument(help="The key, or its id: the part after 'cwk_'.")
    ],
) -> None:
    """Revoke an API key at once (a lost camera, an integration retired)."""
    try:
        with _session() as session:
            auth.revoke_api_key(session, key_id)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo("revoked")


@admin_app.command("areas")
def areas() -> None:
    """The areas named by grants and tickets, as a tree."""
    with _session() as session:
        known = users.known_areas(session)
    for area in known:
        depth = area.count("/") if area else 0
        label = area.rsplit("/", 1)[-1] if area else "(whole city)"
        typer.echo("  " * depth + label)
