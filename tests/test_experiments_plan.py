"""plan(): sample size and days from a baseline, fixed and sequential; the plan command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import norm

from rolloutlab.cli import main
from rolloutlab.errors import DataError, SpecError
from rolloutlab.experiments import ExperimentSpec, experiment, plan
from rolloutlab.sources.simulate import simulate
from tests.test_experiments import arrays_recording


@pytest.fixture(scope="module")
def baseline():
    return simulate("ab", seed=4, conversion_lift=(0.0, 0.0))


def test_fixed_horizon_size_is_the_textbook_formula(baseline):
    p = plan(baseline, 0.05)
    delta = 0.05 * p.baseline_rate
    textbook = 2 * (norm.isf(0.025) + norm.ppf(0.8)) ** 2 * p.sd_per_unit**2 / delta**2
    assert p.n_per_arm_fixed == pytest.approx(textbook, abs=1.0)
    assert p.sd_per_unit**2 == pytest.approx(p.baseline_rate * (1 - p.baseline_rate), rel=1e-9)
    assert p.units_per_day == pytest.approx(40 * 60 * 24, rel=0.02)  # the scenario's traffic
    assert p.days_fixed == pytest.approx(p.n_per_arm_fixed / (p.units_per_day / 2), rel=1e-3)
    three = plan(baseline, 0.05, arms=3, traffic_share=0.5)
    level = 0.05 / 2  # split over the two treatment arms
    assert three.n_per_arm_fixed == pytest.approx(
        2 * (norm.isf(level / 2) + norm.ppf(0.8)) ** 2 * p.sd_per_unit**2 / delta**2, abs=1.0
    )
    assert three.days_fixed == pytest.approx(three.n_per_arm_fixed / (p.units_per_day / 6), 1e-3)


def test_sequential_size_gives_experiment_its_target_power(baseline):
    p = plan(baseline, 0.05)
    assert p.n_per_arm_sequential > p.n_per_arm_fixed
    n = np.full((2, 20), p.n_per_arm_sequential / 20)
    conv = n * p.baseline_rate
    rec = arrays_recording({"visitors": n, "conversions": conv})
    report = experiment(rec, ExperimentSpec(target_lift=0.05, variance="poisson"))
    assert report.table()["power"][0] == pytest.approx(0.8, abs=0.01)


def test_overdispersed_baseline_needs_more_units():
    rng = np.random.default_rng(2)
    days = 14
    visitors = rng.poisson(50_000, (1, days * 24))
    swings = np.repeat(rng.gamma(25.0, 0.04, (1, days)), 24, axis=1)  # ±20% day to day
    bursty = arrays_recording(
        {"visitors": visitors, "conversions": rng.poisson(visitors * 0.1 * swings)}, arms=("A",)
    )
    calm = arrays_recording(
        {"visitors": visitors, "conversions": rng.binomial(visitors, 0.1)}, arms=("A",)
    )
    wide, narrow = plan(bursty, 0.02), plan(calm, 0.02)
    assert wide.dispersion > 5 and narrow.dispersion < 2
    assert wide.n_per_arm_fixed > 3 * narrow.n_per_arm_fixed
    assert "batch means over" in wide.variance
    short = arrays_recording(
        {"visitors": visitors[:, :48], "conversions": rng.binomial(visitors[:, :48], 0.1)},
        arms=("A",),
    )
    assert "fewer than 7 days" in plan(short, 0.02).variance


def test_misuse_and_missing_data_raise_with_the_fix(baseline):
    with pytest.raises(SpecError, match="mde > 0"):
        plan(baseline, 0.0)
    with pytest.raises(SpecError, match=r"\(0, 1\)"):
        plan(baseline, 0.02, power=1.0)
    no_goal = simulate("healthy", seed=1, duration_min=60)
    with pytest.raises(DataError, match="conversions/visitors"):
        plan(no_goal, 0.02)


def test_plan_command_prints_both_designs(baseline, tmp_path, capsys):
    path = baseline.save(tmp_path / "baseline.parquet")
    assert main(["plan", str(path), "--mde", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "read once at the end" in out and "read every day" in out and "days" in out
    assert main(["plan", str(path), "--mde", "0.05", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n_per_arm_fixed"] == plan(baseline, 0.05).n_per_arm_fixed
    assert repr(plan(baseline, 0.05)).startswith("<Plan conversion mde=5.0%")
    assert "experiment plan" in plan(baseline, 0.05)._repr_html_()
