"""What the review pages read besides single tickets: the review queue a page
at a time, and the counts of the area overview. Both are computed by the
database within the caller's areas, so no page has to list every ticket."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api import review_queue
from api.access import Action, areas_for
from api.areas import MAX_AREA_CHARS
from api.deps import PrincipalDep, SessionDep
from api.overview import area_overview
from api.schemas import OverviewPublic, QueuedTicket, QueuePage

router = APIRouter(tags=["tickets"])


@router.get("/api/review-queue", response_model=QueuePage)
def read_review_queue(
    session: SessionDep,
    principal: PrincipalDep,
    after: Annotated[
        str | None,
        Query(
            pattern=review_queue.CURSOR_PATTERN,
            description="A ticket's `cursor`: start behind it.",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=review_queue.MAX_QUEUE_PAGE_SIZE)] = 50,
) -> QueuePage:
    """Tickets waiting for review (pending or reopened) in the areas where
    you review, oldest first, a page at a time. Deciding tickets does not
    move the ones behind them: read on with the `next` cursor."""
    areas = areas_for(principal, Action.REVIEW)
    page, more = review_queue.read_queue(session, areas=areas, after=after, limit=limit)
    return QueuePage(
        items=[QueuedTicket.from_row(row) for row in page],
        total=review_queue.count_queue(session, areas=areas),
        next=review_queue.cursor_of(page[-1]) if more else None,
    )


@router.get("/api/overview", response_model=OverviewPublic)
def read_overview(
    session: SessionDep,
    principal: PrincipalDep,
    area: Annotated[
        str | None,
        Query(max_length=MAX_AREA_CHARS, description="This area and below."),
    ] = None,
) -> OverviewPublic:
    """Counts of the tickets in your areas: open ones by category and state,
    overdue ones, each camera's, and the open tickets to look at first."""
    overview = area_overview(session, areas=areas_for(principal), area=area)
    return OverviewPublic.from_overview(overview, area)
