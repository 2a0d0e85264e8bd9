"""A progress bar for long evaluation runs: done of total, rate, time left.

Drawn on stderr, so a report printed on stdout and redirected to a file
stays clean; silent when disabled (not a terminal, or in tests).
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _DoneColumn(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self._unit = unit

    def render(self, task: Task) -> Text:
        total = "?" if task.total is None else f"{task.total:.0f}"
        return Text(f"{task.completed:.0f}/{total} {self._unit}")


class _RateColumn(ProgressColumn):
    def __init__(self, rate_unit: str) -> None:
        super().__init__()
        self._rate_unit = rate_unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        shown = "--" if speed is None else f"{speed:.1f}"
        return Text(f"{shown} {self._rate_unit}")


class ProgressBar:
    """``with ProgressBar("detecting", 133, unit="img", enabled=True) as bar:
    bar.advance()``. The rate reads ``unit``/s unless ``rate_unit`` says
    otherwise; a ``total`` of None draws no time left."""

    def __init__(
        self,
        label: str,
        total: float | None,
        *,
        unit: str,
        enabled: bool,
        rate_unit: str | None = None,
    ) -> None:
        self._progress = Progress(
            TextColumn(label),
            BarColumn(bar_width=24),
            _DoneColumn(unit),
            _RateColumn(rate_unit or f"{unit}/s"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self._total = total
        self._task: TaskID | None = None

    def __enter__(self) -> ProgressBar:
        self._progress.start()
        self._task = self._progress.add_task("run", total=self._total)
        return self

    def advance(self, amount: float = 1.0) -> None:
        if self._task is not None:
            self._progress.advance(self._task, amount)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None and self._task is not None and self._total is not None:
            # Stream time stops a frame short of a video's length: end full.
            self._progress.update(self._task, completed=self._total)
        self._progress.stop()
