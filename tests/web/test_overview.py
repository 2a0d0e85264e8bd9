"""The area overview in a real browser: its counts come from the server's
aggregate, never from a list of the tickets, and narrow to the area picked."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.web.support import Service, sign_in

pytestmark = pytest.mark.slow


def test_the_overview_reads_counts_not_tickets(
    service: Service, open_page: Any
) -> None:
    page = open_page()
    asked: list[str] = []
    page.on(
        "request",
        lambda request: asked.append(urlsplit(request.url).path),
    )
    sign_in(page, "rita", next_path="/ui/overview")

    subtitle = page.locator("#overview-subtitle")
    assert subtitle.text_content().startswith("5 open of 5 tickets")
    options = page.locator("#area option").all_text_contents()
    assert {"old-town", "old-town/market", "old-town/riverside/grid-07"} <= set(options)

    page.select_option("#area", "old-town/market")
    page.wait_for_function(
        "() => document.querySelector('#overview-subtitle')"
        ".textContent.startsWith('1 open of 1 tickets')"
    )
    cameras = page.locator("#cameras tbody tr").evaluate_all(
        "rows => rows.map(row => row.dataset.camera)"
    )
    assert cameras == ["facade-east"]
    assert asked.count("/api/overview") == 2
    assert not any(path.startswith("/api/tickets") for path in asked)
