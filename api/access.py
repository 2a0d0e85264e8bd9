"""What each role may do, and where: the one table of permissions.

Every principal sees only tickets inside the areas of its grants; a ticket
outside them answers 404 as if it did not exist, so a user cannot learn
that it does. Inside its areas, the role decides the actions
(``ACTION_ROLES``); a missing role answers 403.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy.orm import Session

from api.areas import covers
from api.auth import Forbidden, Principal
from api.tables import Ticket
from api.tickets import TicketNotFound


class Role(StrEnum):
    REVIEWER = "reviewer"
    DISPATCHER = "dispatcher"
    GRID_WORKER = "grid_worker"
    AREA_ADMIN = "area_admin"
    ENGINEER = "engineer"
    READ_ONLY = "read_only"


class Action(StrEnum):
    READ = "read"
    REVIEW = "review"
    DISPATCH = "dispatch"
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"
    FILE_EVENT = "file_event"
    MANAGE_USERS = "manage_users"


_R = Role
ACTION_ROLES: dict[Action, frozenset[Role]] = {
    Action.READ: frozenset(Role),
    Action.REVIEW: frozenset({_R.REVIEWER}),
    Action.DISPATCH: frozenset({_R.DISPATCHER}),  # dispatch and reassign
    Action.RESOLVE: frozenset({_R.GRID_WORKER}),
    Action.CLOSE: frozenset({_R.DISPATCHER}),
    Action.REOPEN: frozenset({_R.DISPATCHER, _R.REVIEWER}),
    Action.FILE_EVENT: frozenset({_R.ENGINEER}),
    Action.MANAGE_USERS: frozenset({_R.AREA_ADMIN}),
}


def areas_for(principal: Principal, action: Action = Action.READ) -> list[str]:
    """The area prefixes where the principal may do ``action``."""
    allowed = ACTION_ROLES[action]
    return [area for role, area in principal.grants if role in allowed]


def can_see(principal: Principal, area_path: str) -> bool:
    return any(covers(area, area_path) for area in areas_for(principal))


def can(principal: Principal, action: Action, area_path: str) -> bool:
    return any(covers(area, area_path) for area in areas_for(principal, action))


def require(principal: Principal, action: Action, area_path: str) -> None:
    """Raise Forbidden unless one of the principal's roles allows the action
    on this area. Callers check visibility (404) first."""
    if not can(principal, action, area_path):
        roles = ", ".join(sorted(ACTION_ROLES[action]))
        raise Forbidden(
            f"{principal.name} may not {action} here; it needs one of: {roles}"
        )


def visible_ticket(
    session: Session,
    principal: Principal,
    ticket_id: int,
    action: Action = Action.READ,
) -> Ticket:
    """The ticket if the principal may see it, else TicketNotFound (404, as
    for a ticket that does not exist); Forbidden (403) if it may see it but
    not do ``action``."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None or not can_see(principal, ticket.area_path):
        raise TicketNotFound(ticket_id)
    require(principal, action, ticket.area_path)
    return ticket
