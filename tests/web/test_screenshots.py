"""Each page at desktop and phone width, saved as PNG (see support.SCREENSHOTS_DIR).

Only street-footage tickets are on screen where frames show: the street
footage may be redistributed, the throw clip may not (it appears here only
as counts and list entries).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from api.tables import Ticket, utc_now
from tests.web.support import DESKTOP, PHONE, Service, screenshot, sign_in

pytestmark = pytest.mark.slow

QUEUED_TICKET = 3  # a person lingering on the lawn path, seen throughout
OVERDUE_TICKET = 1  # a car in the no-parking bay, dispatched and overdue


def _give_the_tickets_a_history(service: Service) -> None:
    """A few tickets further along, so the pages show more than one state."""
    with service.api("rita") as client:
        for ticket_id, steps in {
            OVERDUE_TICKET: [
                ("review", {"decision": "confirm"}),
                ("dispatch", {"assignee": "traffic-police", "note": "Bay blocked"}),
            ],
            2: [("review", {"decision": "confirm"})],
            4: [
                ("review", {"decision": "confirm", "note": "Same person as before"}),
                ("dispatch", {"assignee": "riverside-grid-team"}),
            ],
        }.items():
            for action, body in steps:
                response = client.post(f"/api/tickets/{ticket_id}/{action}", json=body)
                response.raise_for_status()
    with service.session_factory() as session:
        session.execute(
            update(Ticket)
            .where(Ticket.id == OVERDUE_TICKET)
            .values(due_at=utc_now() - timedelta(minutes=40))
        )
        session.commit()


def _show_the_finding(page: Any, t_s: float) -> None:
    """Hold the clip at ``t_s`` so each screenshot shows the same frame."""
    page.wait_for_selector(".evidence[data-playback='playing']")
    page.wait_for_function(
        "() => document.querySelector('.evidence video').readyState >= 3"
    )
    page.evaluate(
        """t => new Promise(done => {
          const v = document.querySelector('.evidence video');
          v.pause();
          v.addEventListener('seeked', () => requestAnimationFrame(() => done()),
                             {once: true});
          v.currentTime = t;
        })""",
        t_s,
    )


def _fits_the_width(page: Any) -> bool:
    """Nothing sticks out sideways: read on a phone without scrolling across."""
    return bool(
        page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    )


@pytest.mark.parametrize(
    ("width_name", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)]
)
def test_screenshots_of_every_page(
    service: Service, open_page: Any, width_name: str, viewport: dict[str, int]
) -> None:
    _give_the_tickets_a_history(service)
    phone = viewport is PHONE
    page = open_page(viewport)

    page.goto("/ui/signin")
    page.wait_for_selector("#signin")
    screenshot(page, f"signin-{width_name}")
    assert _fits_the_width(page)

    # The queue on a street ticket: the person on the lawn path.
    page.fill("#username", "rita")
    page.fill("#password", "correct-horse-battery")
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-ready='true']")
    page.wait_for_selector(f"body[data-current='{QUEUED_TICKET}']")
    page.keyboard.press("x")  # one ticket selected, to show how a burst looks
    page.keyboard.press("Escape")
    _show_the_finding(page, 5.6)
    assert page.locator("#queue li").count() == 2  # it and the throw
    screenshot(page, f"queue-{width_name}", full_page=phone)
    assert _fits_the_width(page)

    page.goto(f"/ui/tickets/{OVERDUE_TICKET}")
    page.wait_for_selector("body[data-ready='true']")
    _show_the_finding(page, 5.0)
    screenshot(page, f"ticket-{width_name}", full_page=True)
    assert _fits_the_width(page)

    page.goto("/ui/overview")
    page.wait_for_selector("body[data-ready='true']")
    assert page.locator("#open-list li.overdue").count() == 1
    screenshot(page, f"overview-{width_name}", full_page=phone)
    assert _fits_the_width(page)


def test_signing_in_then_lands_on_the_page_asked_for(
    service: Service, open_page: Any
) -> None:
    page = open_page()
    page.goto("/ui/overview")
    page.wait_for_url("**/ui/signin?next=*")
    sign_in(page, "rita", next_path="/ui/overview")
    assert page.locator("header.top nav a.active").text_content() == "Area overview"
