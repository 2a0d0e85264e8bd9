"""Areas in SQL, on SQLite and PostgreSQL: ``within`` selects exactly the
areas that ``covers`` says a grant reaches."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api import users
from api.areas import covers, within
from api.tables import Grant

AREAS = [
    "old-town",
    "old-town/riverside",
    "old-town/riverside/grid-07",
    "old-townhall",
    "old-town-east/grid-01",
    "old_town/grid-01",
    "oldxtown/grid-01",
    "new-town/grid-01",
]


@pytest.mark.parametrize(
    "granted",
    ["", "old-town", "old-town/riverside", "old_town", "old-town-east", "nowhere"],
)
def test_within_selects_the_areas_a_grant_covers(
    session_factory: sessionmaker[Session], granted: str
) -> None:
    with session_factory() as session:
        users.create_user(session, "ada", [("read_only", area) for area in AREAS])
        selected = session.scalars(
            select(Grant.area_path).where(within(Grant.area_path, [granted]))
        ).all()

    assert sorted(selected) == sorted(a for a in AREAS if covers(granted, a))
