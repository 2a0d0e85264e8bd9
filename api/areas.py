"""Areas: a hierarchy written as paths, ``street-office/community/grid``.

A grant on an area covers it and everything below it: ``old-town`` covers
``old-town/riverside/grid-07`` but not ``old-townhall``. The empty path is
the root and covers every area (a city-wide grant).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import ColumnElement, and_, false, or_, true
from sqlalchemy.orm import InstrumentedAttribute

MAX_AREA_CHARS = 512
_SEGMENT = r"[a-z0-9][a-z0-9_-]{0,62}"
_AREA_PATH = re.compile(rf"^({_SEGMENT}(/{_SEGMENT})*)?$")


def check_area_path(area_path: str) -> str:
    """The path itself if well formed (lower-case segments joined by '/')."""
    if len(area_path) > MAX_AREA_CHARS or not _AREA_PATH.match(area_path):
        raise ValueError(
            f"area path must be lower-case segments of letters, digits, '-' or "
            f"'_' joined by '/', like 'old-town/riverside/grid-07'; "
            f"got {area_path!r}"
        )
    return area_path


def covers(granted: str, area_path: str) -> bool:
    """True when a grant on ``granted`` reaches ``area_path``."""
    return granted == "" or area_path == granted or area_path.startswith(granted + "/")


def covered_by_any(granted: Iterable[str], area_path: str) -> bool:
    return any(covers(prefix, area_path) for prefix in granted)


def narrowest(prefixes: Iterable[str]) -> list[str]:
    """The prefixes without those another one already covers."""
    unique = sorted(set(prefixes), key=len)
    kept: list[str] = []
    for prefix in unique:
        if not covered_by_any(kept, prefix):
            kept.append(prefix)
    return kept


def within(
    column: InstrumentedAttribute[str], prefixes: Iterable[str]
) -> ColumnElement[bool]:
    """SQL condition: the column's area lies under one of the prefixes."""
    kept = narrowest(prefixes)
    if not kept:
        return false()
    if "" in kept:
        return true()
    return or_(*(_under(column, prefix) for prefix in kept))


def _under(column: InstrumentedAttribute[str], prefix: str) -> ColumnElement[bool]:
    """SQL: the area is ``prefix`` or below it.

    The first, looser condition (any path that starts with the prefix) adds
    no rows; it is there because a database reads it as one range of an
    index on the column, which the exact condition, an OR, is not.
    """
    return and_(
        column.startswith(prefix, autoescape=True),
        or_(column == prefix, column.startswith(prefix + "/", autoescape=True)),
    )


def ancestors(area_path: str) -> list[str]:
    """``a/b/c`` -> ``["a", "a/b", "a/b/c"]``; the root has none."""
    if not area_path:
        return []
    parts = area_path.split("/")
    return ["/".join(parts[: index + 1]) for index in range(len(parts))]
