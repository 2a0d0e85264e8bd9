"""A camera asks the service for fixes to verify about every second; while
the service is away it asks less and less often, and says so once."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from vision.errors import SinkUnavailable
from vision.verifier import CameraVerifier


class _Analyzer:
    def start_verification(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    def take_verification_outcomes(self) -> list:
        return []


class _Service:
    def __init__(self) -> None:
        self.away = True
        self.asked_at: list[float] = []
        self.now = 0.0

    def pending_verifications(self, camera_id: str) -> list:
        self.asked_at.append(self.now)
        if self.away:
            raise SinkUnavailable("the service at http://tickets.test did not answer")
        return []


def test_a_service_that_is_away_is_asked_less_often(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = _Service()
    worker = SimpleNamespace(
        analyzers=[_Analyzer()], camera=SimpleNamespace(camera_id="gate-east")
    )
    verifier = CameraVerifier(worker, service, poll_s=1.0)  # type: ignore[arg-type]

    def run(seconds: range) -> None:
        for second in seconds:
            service.now = float(second)
            verifier(SimpleNamespace(ts_s=float(second)))  # type: ignore[arg-type]

    with caplog.at_level(logging.INFO, logger="vision.verifier"):
        run(range(0, 300))
        away = len(service.asked_at)
        service.away = False
        run(range(300, 420))

    assert away <= 10  # not 300
    back = [t for t in service.asked_at if t >= 300]
    assert back[-5:] == [415.0, 416.0, 417.0, 418.0, 419.0]  # every second again
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert any("answers again" in r.getMessage() for r in caplog.records)
