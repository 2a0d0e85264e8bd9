"""Analyzers: frames in, events out, no I/O.

Each analyzer has ``process(frame) -> list[Event]`` for every frame it is
given and ``finish(frame_or_none) -> list[Event]`` at the end of a source, so
the same code runs in a camera worker and in the eval harness.
"""

from __future__ import annotations

from typing import Protocol

from vision.types import Event, Frame


class Analyzer(Protocol):
    name: str

    def process(self, frame: Frame) -> list[Event]: ...

    def finish(self) -> list[Event]: ...
