"""The simulator's truth: what a scenario says is what the data show."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

import rolloutlab
from rolloutlab.errors import SpecError
from rolloutlab.frames import tick_table


def test_same_seed_same_data_other_seed_other_data():
    a = rolloutlab.simulate("healthy", seed=1)
    assert a.frame.equals(rolloutlab.simulate("healthy", seed=1).frame)
    assert not a.frame.equals(rolloutlab.simulate("healthy", seed=2).frame)


def test_weight_plan_is_flagger_like():
    rec = rolloutlab.simulate("healthy", seed=0, interval_s=300, step_weight=10, max_weight=50)
    table = tick_table(rec.frame, 300)
    assert table.weight("canary").tolist()[:7] == [10, 20, 30, 40, 50, 50, 50]
    assert np.allclose(table.weight("primary") + table.weight("canary"), 100)


def test_error_ratio_is_the_truth():
    rec = rolloutlab.simulate("error-regression", seed=4)
    t = tick_table(rec.frame, 60)
    c_err, c_n = t.counter("errors", "canary").sum(), t.counter("requests", "canary").sum()
    p_err, p_n = t.counter("errors", "primary").sum(), t.counter("requests", "primary").sum()
    # exact conditional binomial test of the rate ratio (independent reference: scipy)
    share = 3 * c_n / (3 * c_n + p_n)
    assert stats.binomtest(int(c_err), int(c_err + p_err), share).pvalue > 0.001


def test_requests_split_follows_weight():
    rec = rolloutlab.simulate("aa", seed=5)
    t = tick_table(rec.frame, 60)
    canary, total = t.counter("requests", "canary").sum(), t.counter("requests", "primary").sum()
    total += canary
    assert stats.binomtest(int(canary), int(total), 0.10).pvalue > 0.001


@pytest.mark.parametrize("name", ["latency-regression", "tail-latency-regression"])
def test_latency_regressions_move_the_right_part(name):
    rec = rolloutlab.simulate(name, seed=6, requests_per_min=5000)
    t = tick_table(rec.frame, 60)
    edges = t.edges["latency_ms"]
    cdf = {v: np.cumsum(t.histogram("latency_ms", v).sum(0)) for v in ("primary", "canary")}
    cdf = {v: c / c[-1] for v, c in cdf.items()}
    median_bin = np.searchsorted(edges, 100.0)  # the 100 ms edge, near the median
    slow_bin = np.searchsorted(edges, 500.0)  # beyond the primary's p95 (~215 ms)
    if name == "latency-regression":
        assert cdf["canary"][median_bin] < cdf["primary"][median_bin] - 0.03
    else:
        assert abs(cdf["canary"][median_bin] - cdf["primary"][median_bin]) < 0.01
        assert cdf["canary"][slow_bin] < cdf["primary"][slow_bin] - 0.005


def test_ab_scenario_has_conversions_and_a_lift():
    rec = rolloutlab.simulate("ab", seed=1)
    totals = rec.summary().filter(pl.col("metric").is_in(["visitors", "conversions"]))
    assert set(totals["variant"]) == {"A", "B"}
    assert rec.meta["roles"] == {"control": "A", "treatment": ["B"]}
    assert rec.meta["kind"] == "experiment"


def test_ar1_gauge_is_autocorrelated():
    rec = rolloutlab.simulate("aa", seed=8, cpu_phi=0.8)
    cpu = tick_table(rec.frame, 60).gauge("cpu", "primary")
    lag1 = np.corrcoef(cpu[:-1], cpu[1:])[0, 1]
    assert 0.65 < lag1 < 0.9


def test_bad_scenarios_say_how_to_fix():
    with pytest.raises(SpecError, match="unknown scenario 'nope'. Choose one of"):
        rolloutlab.simulate("nope")
    with pytest.raises(SpecError, match="Scenario fields are"):
        rolloutlab.simulate("healthy", request_rate=5)
    with pytest.raises(SpecError, match="one per variant"):
        rolloutlab.simulate("healthy", error_ratio=(1.0,))
