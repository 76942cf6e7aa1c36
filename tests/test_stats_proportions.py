"""Tests for rolloutlab.stats.proportions: two proportions and Poisson rate ratios."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import ttest_ind
from statsmodels.stats import rates

from rolloutlab.errors import DataError
from rolloutlab.stats import poisson_rates, two_proportions

# Deterministic examples; generation may be slow on a loaded CI machine.
SLOW = [HealthCheck.too_slow]


def test_domain_reference_numbers():
    # domain.md section 6: 100/1000 vs 120/1000 -> Welch p = 0.1528654,
    # CI [-0.0074282, 0.0474282]
    result = two_proportions(100, 1000, 120, 1000)
    assert result.p_value == pytest.approx(0.1528654, abs=5e-7)
    assert result.ci == pytest.approx((-0.0074282, 0.0474282), abs=5e-7)
    assert result.estimate == pytest.approx(0.02)


def test_welch_on_bernoulli_variance_matches_scipy_on_0_1_data():
    # The Bernoulli variance p(1-p) is the n-denominator variance of the 0/1 values:
    # scale each sample variance by (n - 1) / n to compare with scipy's Welch test.
    control = np.r_[np.ones(37), np.zeros(263)]
    treatment = np.r_[np.ones(52), np.zeros(248)]
    result = two_proportions(37, 300, 52, 300)
    se = math.sqrt(control.var() / 300 + treatment.var() / 300)
    assert result.std_error == pytest.approx(se)
    ref = ttest_ind(treatment, control, equal_var=False)  # n-1 variances: tiny difference
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-2)


def test_relative_lift():
    result = two_proportions(100, 1000, 120, 1000, relative=True)
    assert result.estimate == pytest.approx(0.2)
    assert result.ci[0] < 0.2 < result.ci[1] and result.relative


def test_degenerate_proportions():
    assert two_proportions(0, 0, 5, 100).reason == "no trials in the control"
    assert two_proportions(5, 100, 0, 0).reason == "no trials in the treatment"
    none = two_proportions(0, 1000, 0, 100)
    assert (none.reason, none.p_value) == ("zero variance in both groups", 1.0)
    fractional = two_proportions(10.4, 1000.7, 20.2, 990.1)  # Prometheus increase()
    assert fractional.reason is None
    missing = two_proportions(math.nan, 100, 3, 100)
    assert (missing.reason, missing.p_value) == ("missing data (NaN count)", 1.0)


def test_proportions_misuse():
    with pytest.raises(DataError, match="exceed"):
        two_proportions(11, 10, 1, 10)
    with pytest.raises(DataError):
        two_proportions(-1, 10, 1, 10)
    with pytest.raises(DataError):
        two_proportions(1, 10, 1, 10, alpha=-0.1)


@pytest.mark.parametrize(
    ("kc", "xc", "kt", "xt"),
    [(50, 1000, 80, 1000), (9, 900, 4, 100), (120, 9000.0, 25, 1000.0), (3, 10, 0, 5)],
)
def test_poisson_p_value_matches_statsmodels_exact_conditional(kc, xc, kt, xt):
    result = poisson_rates(kc, xc, kt, xt)
    ref = rates.test_poisson_2indep(kt, xt, kc, xc, method="exact-cond")
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-9)


@pytest.mark.parametrize(("kc", "xc", "kt", "xt"), [(50, 1000, 80, 1000), (9, 900, 4, 100)])
def test_poisson_interval_inverts_the_exact_one_sided_tests(kc, xc, kt, xt):
    # Clopper-Pearson = the ratios at which statsmodels' exact one-sided p-values are alpha/2.
    low, high = poisson_rates(kc, xc, kt, xt, alpha=0.1).ci
    larger = rates.test_poisson_2indep(
        kt, xt, kc, xc, value=low, method="exact-cond", alternative="larger"
    )
    smaller = rates.test_poisson_2indep(
        kt, xt, kc, xc, value=high, method="exact-cond", alternative="smaller"
    )
    assert larger.pvalue == pytest.approx(0.05, rel=1e-6)
    assert smaller.pvalue == pytest.approx(0.05, rel=1e-6)
    # and it contains the (asymptotic, narrower) score interval
    score = rates.confint_poisson_2indep(kt, xt, kc, xc, method="score", alpha=0.1)
    assert low < score[0] < score[1] < high


def test_poisson_estimate_and_coverage():
    # 2000 seeded replicates of a true ratio 1.5: 95% coverage has Monte-Carlo SE 0.005;
    # exact intervals are conservative, so require coverage in [0.94, 0.99].
    rng = np.random.default_rng(5)
    covered = 0
    for kc, kt in zip(rng.poisson(30.0, 2000), rng.poisson(5.0, 2000), strict=True):
        low, high = poisson_rates(kc, 1000.0, kt, 111.1111).ci
        covered += low <= 1.5 <= high
    assert 0.94 <= covered / 2000 <= 0.99
    assert poisson_rates(50, 1000, 80, 1000).estimate == pytest.approx(1.6)


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=SLOW)
@given(st.integers(0, 200), st.floats(0.1, 1e4), st.integers(0, 200), st.floats(0.1, 1e4))
def test_poisson_properties(kc, xc, kt, xt):
    result = poisson_rates(kc, xc, kt, xt)
    assert 0.0 <= result.p_value <= 1.0
    assert 0.0 <= result.ci[0] <= result.ci[1]
    if result.reason is None and kc > 0:
        assert result.ci[0] <= result.estimate <= result.ci[1]


def test_poisson_degenerate_and_misuse():
    none = poisson_rates(0, 100, 0, 10)
    assert (none.reason, none.p_value, none.estimate) == ("no events in either group", 1.0, 1.0)
    assert poisson_rates(3, 0, 1, 10).reason == "no exposure in the control"
    assert poisson_rates(3, math.nan, 1, 10).reason == "missing data (NaN)"
    unbalanced = poisson_rates(3213, 42774, 0, 1.2e-300)
    assert unbalanced.reason == "exposures too unbalanced for the exact test"
    assert poisson_rates(2, 1e-308, 2, 1e-308).estimate == pytest.approx(1.0)
    infinite = poisson_rates(0, 1000, 12, 100)
    assert infinite.estimate == math.inf and infinite.p_value < 1e-6 and infinite.reason is None
    with pytest.raises(DataError):
        poisson_rates(-1, 10, 1, 10)
    with pytest.raises(DataError):
        poisson_rates(1, math.inf, 1, 10)
