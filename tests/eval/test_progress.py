"""The progress bar of long runs: done of total, rate and time left."""

from __future__ import annotations

from eval.progress import ProgressBar


def test_the_bar_shows_done_rate_and_time_left_on_stderr(capsys):
    with ProgressBar("detecting", 4, unit="img", enabled=True) as bar:
        for _ in range(4):
            bar.advance()

    out, err = capsys.readouterr()
    assert out == ""  # a report printed on stdout stays clean
    assert "detecting" in err
    assert "4/4 img" in err
    assert " img/s" in err
    assert "left 0:00:00" in err


def test_the_rate_may_read_in_its_own_unit(capsys):
    with ProgressBar(
        "events", 2.5, unit="video s", rate_unit="x real time", enabled=True
    ) as bar:
        bar.advance(2.5)

    assert "x real time" in capsys.readouterr().err


def test_a_disabled_bar_draws_nothing(capsys):
    with ProgressBar("detecting", 3, unit="img", enabled=False) as bar:
        bar.advance()

    assert capsys.readouterr() == ("", "")
