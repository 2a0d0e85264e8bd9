"""The fall test: a projective fall passes, look-alike motions do not."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from vision.analyze.fall_fit import FallCriteria, fit_fall

CRITERIA = FallCriteria(max_speed_px_s=2880.0)


def _fit(track: list[tuple[float, float, float]], size_px: float = 6.0):
    array = np.asarray(track, float)
    return fit_fall(array[:, 0], array[:, 1:3], np.full(len(array), size_px), CRITERIA)


def _ball_keyframes(videos_dir: Path) -> list[tuple[float, float, float]]:
    truth = json.loads((videos_dir / "ground_truth.json").read_text())[0]
    return [(n / 30, x, y) for n, x, y in truth["events"][0]["track_xy"] if n >= 13]


def test_ball_keyframes_fit_the_projective_fall(videos_dir: Path) -> None:
    fit = _fit(_ball_keyframes(videos_dir))
    assert fit.passed, fit.reason
    # Faster than a parabola: the ball comes nearer the camera as it falls.
    assert fit.y_coef[2] < 0
    # Released about frame 13, from about where it rested.
    assert abs(fit.t0_s - 13 / 30) < 0.15
    assert math.dist(fit.position(fit.t0_s), (612, 35)) < 15


def test_ball_keyframes_are_no_parabola(videos_dir: Path) -> None:
    """Why the model may not demand constant image-space acceleration."""
    track = np.asarray(_ball_keyframes(videos_dir))
    coef = np.polyfit(track[:, 0], track[:, 2], 2)
    parabola_rms = np.sqrt(np.mean((np.polyval(coef, track[:, 0]) - track[:, 2]) ** 2))
    assert parabola_rms > 25


def _path(fn, duration_s: float = 1.0, fps: float = 25.0):
    times = np.arange(0, duration_s, 1 / fps)
    return [(t, *fn(t)) for t in times]


@pytest.mark.parametrize(
    ("name", "track", "passes"),
    [
        ("parabolic fall", _path(lambda t: (300 + 5 * t, 50 + 250 * t * t)), True),
        (
            "projective fall",
            _path(lambda t: (300, 50 + 200 * t * t / (1 - 0.4 * t * t))),
            True,
        ),
        (
            "level bird",
            _path(lambda t: (100 + 200 * t, 150 + 3 * math.sin(25 * t))),
            False,
        ),
        ("rising bird", _path(lambda t: (100 + 150 * t, 250 - 80 * t)), False),
        (
            "leaf at steady speed",
            _path(lambda t: (300 + 20 * math.sin(4 * t), 50 + 60 * t), 2.0),
            False,
        ),
        (
            "rain streak speed",
            _path(lambda t: (300 + 40 * t, 10 + 900 * t), 0.4),
            False,
        ),
        (
            "branch swinging",
            _path(
                lambda t: (300 + 30 * math.sin(6 * t), 200 + 20 * math.sin(6 * t)), 2.0
            ),
            False,
        ),
        ("too brief", _path(lambda t: (300, 50 + 250 * t * t), 0.2), False),
    ],
)
def test_fall_test_table(name: str, track: list, passes: bool) -> None:
    fit = _fit(track)
    assert fit.passed is passes, (name, fit.reason)


def test_motion_that_stops_and_starts_fails() -> None:
    """Down, a pause, down again: a fall never pauses."""

    def row(t: float) -> float:
        if t < 0.4:
            return 100 + 300 * t * t
        if t < 0.7:
            return 148.0
        return 148 + 300 * (t - 0.7) ** 2 + 240 * (t - 0.7)

    assert not _fit(_path(lambda t: (300.0, row(t)), 1.2)).passed
