"""Evidence in the browser: the clip really plays, from the moment of the
finding, with the finding drawn over it; and when it cannot be played the
page says why and offers the file."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import av
import pytest
from sqlalchemy import update

from api import tickets, workflow
from api.dispatch import DispatchConfig
from api.tables import Evidence, Ticket
from tests.web.support import Service, sign_in
from vision.sink import VerificationOutcome, VerificationResult
from vision.types import Event

pytestmark = pytest.mark.slow

LOITERING_TICKET = 4  # a person on the lawn path; the event starts 1.4 s in
THROW_TICKET = 5


def evidence_key(service: Service, ticket_id: int, kind: str) -> str:
    with service.session_factory() as session:
        row = (
            session.query(Evidence)
            .filter_by(ticket_id=ticket_id, kind=kind, round=0)
            .one()
        )
        return row.key


def clip_duration_s(path: Path) -> float:
    with av.open(str(path)) as container:
        assert container.duration is not None
        return container.duration / av.time_base


def open_ticket_in_queue(page: Any, ticket_id: int) -> None:
    for _ in range(10):
        if page.evaluate("document.body.dataset.current") == str(ticket_id):
            return
        page.keyboard.press("s")
    raise AssertionError(f"ticket {ticket_id} is not in the queue")


def wait_playing(page: Any, ticket_id: int) -> dict[str, float]:
    page.wait_for_selector(
        f".evidence[data-ticket='{ticket_id}'][data-playback='playing']"
    )
    page.wait_for_function(
        "() => { const v = document.querySelector('.evidence video');"
        " return !v.paused && v.readyState >= 3 && v.currentTime > 0; }"
    )
    return page.evaluate(
        """() => {
          const v = document.querySelector('.evidence video');
          return {duration: v.duration, firstPlayed: v.played.start(0),
                  width: v.videoWidth, height: v.videoHeight};
        }"""
    )


def overlay_pixels(page: Any) -> int:
    """How many pixels of the overlay canvas are drawn on."""
    return page.evaluate(
        """() => {
          const c = document.querySelector('.evidence canvas.overlay');
          const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
          return n;
        }"""
    )


def test_the_clip_plays_from_the_event_with_the_finding_drawn_over_it(
    service: Service, open_page: Any
) -> None:
    key = evidence_key(service, LOITERING_TICKET, "clip")
    metadata = json.loads(
        (
            service.evidence_dir / evidence_key(service, LOITERING_TICKET, "metadata")
        ).read_text()
    )
    recorded_s = clip_duration_s(service.evidence_dir / key)

    page = open_page()
    sign_in(page, "rita")
    open_ticket_in_queue(page, LOITERING_TICKET)
    playing = wait_playing(page, LOITERING_TICKET)

    assert abs(playing["duration"] - recorded_s) < 0.2
    assert abs(playing["duration"] - metadata["clip"]["duration_s"]) < 0.2
    offset_s = metadata["clip"]["event_offset_s"]
    assert offset_s > 1.0
    assert playing["firstPlayed"] == pytest.approx(offset_s, abs=0.15)
    assert (playing["width"], playing["height"]) == (768, 576)
    assert overlay_pixels(page) > 500  # the zone and the person's outline
    assert page.locator(".stills img[alt='Snapshot']").count() == 1


def test_a_throw_shows_its_trajectory_over_the_clip_and_as_an_image(
    service: Service, open_page: Any
) -> None:
    page = open_page()
    sign_in(page, "rita")
    open_ticket_in_queue(page, THROW_TICKET)
    wait_playing(page, THROW_TICKET)
    page.wait_for_function(
        "() => document.querySelector('.evidence video').currentTime > 1.5"
    )

    assert overlay_pixels(page) > 100
    assert page.locator(".stills img[alt='Trajectory']").count() == 1
    assert page.locator(".stills img[alt='Snapshot']").count() == 1


@pytest.mark.parametrize(
    ("case", "message", "download"),
    [
        ("missing", "The clip is missing: it could not be kept (disk full)", False),
        ("pending", "The clip is pending: it is spooled", False),
        ("gone from the store", "The clip could not be downloaded", False),
        ("not a video", "The clip cannot be played:", True),
    ],
)
def test_a_clip_that_cannot_be_played_says_why(
    service: Service, open_page: Any, case: str, message: str, download: bool
) -> None:
    key = evidence_key(service, 1, "clip")
    if case in ("missing", "pending"):
        with service.session_factory() as session:
            session.execute(
                update(Evidence)
                .where(Evidence.ticket_id == 1, Evidence.kind == "clip")
                .values(state=case, reason="disk full" if case == "missing" else None)
            )
            session.commit()
    elif case == "gone from the store":
        (service.evidence_dir / key).unlink()
    else:
        (service.evidence_dir / key).write_bytes(b"these are meeting notes\n" * 400)

    page = open_page()
    sign_in(page, "rita")
    assert page.evaluate("document.body.dataset.current") == "1"
    notice = page.locator(".evidence .evidence-message")
    notice.wait_for()
    assert message in notice.text_content()
    link = notice.locator("a[download]")
    assert link.count() == (1 if download else 0)
    if download:
        assert link.get_attribute("href").startswith("blob:")
    # The rest of the evidence is still there, and the ticket can be decided.
    assert page.locator(".stills img[alt='Snapshot']").count() == 1
    page.keyboard.press("c")
    page.wait_for_selector("body[data-cleared='1']")


def _verify_after_a_fix(service: Service, ticket_id: int) -> None:
    """Confirm, dispatch and resolve the ticket; the camera looks again and
    answers with fresh evidence (here: the same recording, a new event)."""
    with service.session_factory() as session:
        tickets.review(session, ticket_id, tickets.ReviewDecision.CONFIRM, actor="rita")
        workflow.dispatch(
            session, ticket_id, DispatchConfig(), actor="rita", assignee="grid-07"
        )
        workflow.resolve(session, ticket_id, actor="gw", clear_s=60.0, note="Towed")
        event = Event.model_validate(session.get(Ticket, ticket_id).event)
        again = event.model_copy(update={"event_id": uuid.uuid4().hex})
        workflow.report_verification(
            session,
            VerificationResult(
                ticket_id=str(ticket_id),
                outcome=VerificationOutcome.GONE,
                evidence_event=again,
            ),
            camera_id=None,
        )


def test_the_ticket_page_shows_the_evidence_of_the_verification_too(
    service: Service, open_page: Any
) -> None:
    _verify_after_a_fix(service, 2)

    page = open_page()
    sign_in(page, "rita", next_path="/ui/tickets/2")

    cards = page.locator(".evidence-card")
    assert cards.count() == 2
    assert "Verification 1: Gone" in cards.nth(1).locator("h2").text_content()
    for card in (cards.nth(0), cards.nth(1)):
        card.locator(".evidence[data-playback='playing']").wait_for()
    trail = page.locator("#audit-trail li").all_text_contents()
    assert len(trail) == 5  # filed, confirmed, dispatched, resolved, verified
    assert "Verified" in trail[-1] and "by camera:plaza-north" in trail[-1]
    assert page.locator(".actions-card button").all_text_contents() == ["Close"]
