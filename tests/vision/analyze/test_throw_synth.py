"""Synthetic sweeps: falling objects are found, look-alikes are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval.synth_throw import DISTRACTORS, SynthSpec, sweep

# Small and short clips keep the sweep quick; the eval harness runs bigger ones.
BASE = SynthSpec(resolution_wh=(640, 360), duration_s=2.6)


@pytest.mark.slow
def test_recall_for_objects_of_6_px_and_more_at_25_fps(shared_dir: Path) -> None:
    rows = sweep(
        shared_dir,
        sizes_px=(6.0, 10.0),
        fps_values=(25.0,),
        greys=(230, 30),
        seeds=range(5),
        base=BASE,
    )
    recall = sum(int(row["hit"]) for row in rows) / len(rows)
    assert len(rows) == 20
    assert recall >= 0.95, [row for row in rows if not row["hit"]]
    assert sum(int(row["false_alarms"]) for row in rows) == 0


@pytest.mark.parametrize("distractor", DISTRACTORS)
def test_distractor_alone_raises_no_throw(shared_dir: Path, distractor: str) -> None:
    rows = sweep(
        shared_dir, seeds=range(2), distractors=(distractor,), sizes_px=(), base=BASE
    )
    assert [row["false_alarms"] for row in rows] == [0, 0]


def test_throw_with_a_bird_passing_is_still_found(shared_dir: Path) -> None:
    rows = sweep(
        shared_dir,
        sizes_px=(10.0,),
        greys=(230,),
        seeds=range(1),
        base=SynthSpec(
            resolution_wh=(640, 360), duration_s=2.6, distractors=("bird_level",)
        ),
    )
    assert rows[0]["hit"] == 1
