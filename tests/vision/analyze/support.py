"""Running an analyzer over frames, as the camera worker does, for tests."""

from __future__ import annotations

from collections.abc import Iterable

from vision.analyze import Analyzer
from vision.types import Event, Frame


def run(analyzer: Analyzer, frames: Iterable[Frame]) -> list[Event]:
    """Every event the analyzer files over the frames, then at their end."""
    events = []
    for frame in frames:
        events += analyzer.process(frame)
    return events + analyzer.finish()
