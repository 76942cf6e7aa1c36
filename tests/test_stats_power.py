"""Tests for rolloutlab.stats.power: sample sizes, MDE, time to decision."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import samplesize_proportions_2indep_onetail

from rolloutlab.errors import DataError
from rolloutlab.stats import (
    mde_means,
    mde_proportions,
    sample_size_means,
    sample_size_proportions,
    time_to_decision,
    two_proportions,
)


@pytest.mark.parametrize(("sigma", "mde", "ratio"), [(5.0, 0.5, 1.0), (1.0, 0.1, 3.0)])
def test_sample_size_means_matches_statsmodels(sigma, mde, ratio):
    ours = sample_size_means(sigma, mde, ratio=ratio)
    # NormalIndPower: nobs2 = ratio * nobs1, effect size in sd units (also counts the
    # negligible far tail, hence +-1).
    ref = NormalIndPower().solve_power(mde / sigma, alpha=0.05, power=0.8, ratio=ratio)
    assert abs(ours.n_control - math.ceil(ref)) <= 1
    assert abs(ours.n_treatment - math.ceil(ratio * ref)) <= 1
    assert ours.total == ours.n_control + ours.n_treatment


@pytest.mark.parametrize(("p_c", "lift", "ratio"), [(0.1, 0.1, 1.0), (0.01, 1.0, 1 / 9)])
def test_sample_size_proportions_matches_statsmodels(p_c, lift, ratio):
    ours = sample_size_proportions(p_c, lift, ratio=ratio)
    p_t = p_c * (1 + lift)
    # Unpooled variances expressed as NormalIndPower's common sd:
    # var = s^2 (1/n_c + 1/n_t) with s^2 = (v_c + v_t / ratio) / (1 + 1 / ratio).
    s = math.sqrt((p_c * (1 - p_c) + p_t * (1 - p_t) / ratio) / (1 + 1 / ratio))
    ref = NormalIndPower().solve_power((p_t - p_c) / s, alpha=0.05, power=0.8, ratio=ratio)
    assert abs(ours.n_control - math.ceil(ref)) <= 1


def test_balanced_proportions_agree_with_statsmodels_pooled_formula():
    # statsmodels' own formula uses the pooled variance under H0 (a pooled z test); with
    # equal groups it is within 1 % of ours. (With a 10 % canary and rare events they
    # differ by ~40 %: ours sizes the unpooled Welch test this package runs.)
    ours = sample_size_proportions(0.1, 0.1)
    sm = samplesize_proportions_2indep_onetail(0.01, 0.1, 0.8)  # sample 1 = p2 + diff
    assert ours.n_treatment == pytest.approx(sm, rel=0.01)


def test_proportion_sample_size_delivers_the_power_by_simulation():
    # Run the package's own test at the planned size: 2000 seeded replicates (SE 0.9 %).
    plan = sample_size_proportions(0.1, 0.1)
    rng = np.random.default_rng(4)
    controls = rng.binomial(plan.n_control, 0.10, 2000)
    treatments = rng.binomial(plan.n_treatment, 0.11, 2000)
    rejections = np.mean(
        [
            two_proportions(c, plan.n_control, t, plan.n_treatment).p_value < 0.05
            for c, t in zip(controls, treatments, strict=True)
        ]
    )
    assert rejections == pytest.approx(0.8, abs=0.03)


def test_mde_inverts_sample_size():
    mde = mde_means(1000, 1000, 5.0)
    assert sample_size_means(5.0, mde.absolute).n_control == pytest.approx(1000, abs=1)
    assert NormalIndPower().power(mde.absolute / 5.0, 1000, 0.05) == pytest.approx(0.8, abs=1e-4)
    mdp = mde_proportions(5000, 2000, 0.2)
    p_t, ratio = 0.2 + mdp.absolute, 2000 / 5000
    s = math.sqrt((0.2 * 0.8 + p_t * (1 - p_t) / ratio) / (1 + 1 / ratio))
    power = NormalIndPower().power(mdp.absolute / s, 5000, 0.05, ratio=ratio)
    assert power == pytest.approx(0.8, abs=1e-4)
    assert mdp.relative == pytest.approx(mdp.absolute / 0.2)


def test_time_to_decision_is_fixed_horizon_power_by_simulation():
    # 1 % errors, 2x on a 10 % canary at 1000 req/min: run a Welch proportion test once
    # at the predicted minute; 2000 seeded replicates should reject ~80 % (SE 0.9 %).
    plan = time_to_decision(0.01, 2.0, requests_per_min=1000, canary_weight=0.1)
    n_canary, n_primary = round(plan.n_canary), round(plan.n_primary)
    assert plan.minutes == pytest.approx(n_canary / 100, rel=0.01)
    rng = np.random.default_rng(3)
    rejections = np.mean(
        [
            two_proportions(k, n_primary, c, n_canary).p_value < 0.05
            for k, c in zip(
                rng.binomial(n_primary, 0.01, 2000), rng.binomial(n_canary, 0.02, 2000), strict=True
            )
        ]
    )
    # The normal approximation is conservative with rare events (~33 canary errors):
    # measured 84 %.
    assert 0.8 - 0.03 <= rejections <= 0.9
    faster = time_to_decision(0.01, 5.0, requests_per_min=1000, canary_weight=0.1)
    assert faster.minutes < plan.minutes


def test_misuse_raises():
    with pytest.raises(DataError):
        sample_size_proportions(1.5, 0.1)
    with pytest.raises(DataError):
        sample_size_proportions(0.6, 1.0)  # implies p_t = 1.2
    with pytest.raises(DataError):
        sample_size_means(1.0, 0.0)
    with pytest.raises(DataError):
        sample_size_means(1.0, 0.1, power=1.0)
    with pytest.raises(DataError):
        time_to_decision(0.01, 2.0, requests_per_min=1000, canary_weight=10)  # percent
    with pytest.raises(DataError):
        mde_proportions(0, 10, 0.1)
