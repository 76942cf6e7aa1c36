"""Post-mortem replay and what-if: the judges' timelines side by side, and re-runs over spec grids."""

from __future__ import annotations

import polars as pl
import pytest

import rolloutlab
from rolloutlab import frames
from rolloutlab.errors import SpecError
from rolloutlab.postmortem import replay
from rolloutlab.sources.recording import Recording


@pytest.fixture(scope="module")
def regression():
    # canary success rate ~97% against Flagger's 99% minimum: every check fails
    return rolloutlab.simulate("error-regression", seed=11, duration_min=60)


def test_replay_runs_every_judge_on_the_same_ticks(regression):
    r = replay(regression)
    assert set(r.decisions) == {"flagger", "kayenta", "rolloutlab"}
    assert r.weights == "recorded"
    timeline = r.timeline
    assert set(timeline["judge"]) == set(r.decisions)
    # the weight in force is the recording's own timeline (10% during the first 5 minutes)
    first = timeline.filter(pl.col("judge") == "flagger").sort("timestamp").head(5)
    assert first["weight"].to_list() == [10.0] * 5
    # Flagger's failed checks are cumulative: 1, 2, 3, ...
    assert first["failed_checks"].to_list() == [1, 2, 3, 4, 5]


def test_flagger_rolls_back_after_threshold_intervals(regression):
    # domain.md §2: with a check failing every tick, rollback comes at interval × threshold,
    # at the start of the tick after the threshold-th failure
    r = replay(regression, judges=("flagger",))
    d = r.decisions["flagger"]
    assert (d.decision, d.minutes) == ("rollback", 6.0)
    assert d.sentence().startswith("flagger rolls back at 10:06 UTC (6 min in)")


def test_what_if_grid_gives_one_row_per_combination_and_judge(regression):
    r = replay(regression, judges=("flagger",))
    grid = r.what_if(threshold=[1, 2, 5, 10], interval=["1m", "2m"])
    assert grid.height == 8
    one_minute = grid.filter(pl.col("interval") == "1m").sort("threshold")
    assert one_minute["minutes_to_decision"].to_list() == [2.0, 3.0, 6.0, 11.0]
    two_minutes = grid.filter(pl.col("interval") == "2m").sort("threshold")
    assert two_minutes["minutes_to_decision"].to_list() == [4.0, 6.0, 12.0, 22.0]


def test_what_if_margin_changes_every_metric(regression):
    r = replay(regression, judges=("rolloutlab",))
    grid = r.what_if(margin=[0.1, 10.0])
    tolerant = grid.filter(pl.col("margin") == 10.0)
    strict = grid.filter(pl.col("margin") == 0.1)
    assert strict["decision"].to_list() == ["rollback"]
    # tolerating an 11x error rate, the 3x regression is no reason to roll back
    assert tolerant["decision"].to_list() != ["rollback"]


def test_plan_weights_when_a_spec_is_given(regression):
    r = replay(regression, {"interval": "1m", "threshold": 3}, judges=("flagger",))
    assert r.weights == "plan"
    assert r.decisions["flagger"].minutes == 4.0


def test_bad_what_if_and_weights_say_how_to_fix(regression):
    r = replay(regression, judges=("flagger",))
    with pytest.raises(SpecError, match="at least one spec field"):
        r.what_if()
    with pytest.raises(SpecError, match="threshhold"):
        r.what_if(threshhold=[1])
    with pytest.raises(SpecError, match="'recorded' or 'plan'"):
        replay(regression, weights="live")


def test_displays(regression):
    r = replay(regression, judges=("flagger", "kayenta"))
    html = r._repr_html_()
    assert "ROLLBACK" in html and "flagger" in html and "<script" not in html
    assert repr(r) == "<Replay flagger rollback, kayenta rollback>"
    assert "kayenta" in r.summary()


def test_replaying_an_empty_recording_with_no_judges_is_empty_not_a_type_error():
    # The origin was computed from the recording's start, None when it is empty.
    empty = Recording(frames.empty())
    r = replay(empty, judges=())
    assert (r.verdicts, r.origin) == ({}, None)
