"""Tests for rolloutlab.stats.means: MeanStats and Welch's t test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import ttest_ind
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from rolloutlab.errors import DataError
from rolloutlab.stats import MeanStats, WelchResult, welch_t

# Deterministic examples; generation may be slow on a loaded CI machine.
SLOW = [HealthCheck.too_slow]


def stats(mean: float, sd: float, n: int) -> MeanStats:
    """Sufficient statistics of a sample with this mean and sample sd."""
    return MeanStats(n, mean * n, sd * sd * (n - 1) + mean * mean * n)


def test_domain_reference_numbers():
    # domain.md section 6: means 10 vs 10.5, sd 5, n 1000 -> p = 0.0254573,
    # CI [0.0614731, 0.9385269]
    result = welch_t(stats(10, 5, 1000), stats(10.5, 5, 1000))
    assert result.p_value == pytest.approx(0.0254573, abs=5e-7)
    assert result.ci == pytest.approx((0.0614731, 0.9385269), abs=5e-7)
    assert result.estimate == pytest.approx(0.5)


def test_growthbook_absolute_fixture():
    # gbstats tests/frequentist/test_tests.py (older version): control 0.41 sd 3.9 n 3407,
    # treatment 0.70 sd 6.2 n 3461 -> expected 0.29, ci [0.04538, 0.53462], p 0.02016.
    result = welch_t(stats(0.41, 3.9, 3407), stats(0.70, 6.2, 3461))
    assert round(result.estimate, 5) == 0.29
    assert [round(v, 5) for v in result.ci] == [0.04538, 0.53462]
    assert round(result.p_value, 5) == 0.02016


def test_growthbook_relative_fixture():
    # gbstats tests/frequentist/test_tests.py (current): same data, relative lift with the
    # control mean's uncertainty -> 0.70732, sd 0.37879, ci [-0.03526, 1.44989], p 0.06191.
    result = welch_t(stats(0.41, 3.9, 3407), stats(0.70, 6.2, 3461), relative=True)
    assert round(result.estimate, 5) == 0.70732
    assert round(result.std_error, 5) == 0.37879
    assert [round(v, 5) for v in result.ci] == [-0.03526, 1.44989]
    assert round(result.p_value, 5) == 0.06191
    assert result.relative


@pytest.mark.parametrize("seed", range(4))
def test_matches_scipy_and_statsmodels_on_raw_data(seed):
    rng = np.random.default_rng(seed)
    control = rng.normal(3.0, 1.0, 40 + 10 * seed)
    treatment = rng.normal(3.4, 2.0, 25)
    result = welch_t(MeanStats.from_values(control), MeanStats.from_values(treatment), alpha=0.1)
    ref = ttest_ind(treatment, control, equal_var=False)
    assert result.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert result.df == pytest.approx(ref.df, rel=1e-10)
    ci = ref.confidence_interval(confidence_level=0.9)
    assert result.ci == pytest.approx((ci.low, ci.high), rel=1e-10)
    sm = CompareMeans(DescrStatsW(treatment), DescrStatsW(control))
    assert result.ci == pytest.approx(sm.tconfint_diff(alpha=0.1, usevar="unequal"), rel=1e-10)


def test_mean_stats_merge_and_moments():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=30), rng.normal(2, 3, size=45)
    merged = MeanStats.from_values(a) + MeanStats.from_values(b)
    both = np.concatenate([a, b])
    assert merged.n == 75
    assert merged.mean == pytest.approx(both.mean())
    assert merged.variance == pytest.approx(both.var(ddof=1))
    assert MeanStats.from_values([1.0, math.nan, 3.0]).n == 2  # NaNs ignored
    assert MeanStats(0, 0, 0).mean == 0.0 and MeanStats(1, 5, 25).variance == 0.0


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=SLOW)
@given(
    st.lists(st.floats(-1e3, 1e3), min_size=0, max_size=30),
    st.lists(st.floats(-1e3, 1e3), min_size=0, max_size=30),
    st.floats(0.001, 0.5),
    st.booleans(),
)
def test_properties(control, treatment, alpha, relative):
    result = welch_t(
        MeanStats.from_values(control),
        MeanStats.from_values(treatment),
        alpha=alpha,
        relative=relative,
    )
    assert 0.0 <= result.p_value <= 1.0 and not math.isnan(result.estimate)
    assert result.ci[0] <= result.estimate <= result.ci[1]
    if result.reason is not None:
        assert result.p_value == 1.0 and result.ci == (-math.inf, math.inf)


def test_degenerate_inputs_are_neutral():
    empty = welch_t(MeanStats(0, 0, 0), stats(1, 1, 10))
    assert (empty.p_value, empty.reason) == (1.0, "no observations in the control")
    one = welch_t(stats(1, 1, 10), MeanStats.from_values([4.0]))
    assert one.reason == "fewer than 2 observations in the treatment"
    flat = welch_t(MeanStats.from_values([2.0] * 5), MeanStats.from_values([3.0] * 7))
    assert (flat.reason, flat.p_value, flat.estimate) == ("zero variance in both groups", 1.0, 1.0)
    zero = welch_t(MeanStats.from_values([-1.0, 1.0]), stats(1, 1, 10), relative=True)
    assert zero.reason == "control mean is zero: relative change undefined"
    tiny = welch_t(MeanStats.from_values([1e-160] * 2), stats(1e4, 1e4, 2), relative=True)
    assert tiny.reason == "control mean too close to zero: relative change undefined"
    subnormal = welch_t(MeanStats.from_values([0.0, 0.0]), MeanStats.from_values([0.0, 3e-140]))
    assert subnormal.reason is None and subnormal.df == pytest.approx(1.0)  # no 0/0 in df
    gone = welch_t(stats(1, 1, 10), MeanStats.from_values([0.0, 0.0]), relative=True)
    assert gone.reason and gone.reason.startswith("treatment constant at 0")
    assert (gone.estimate, gone.p_value) == (-1.0, 1.0)


def test_misuse_raises():
    with pytest.raises(DataError, match="alpha"):
        welch_t(stats(1, 1, 10), stats(1, 1, 10), alpha=0)
    with pytest.raises(DataError):
        MeanStats(-1, 0, 0)
    with pytest.raises(DataError, match="inconsistent"):
        MeanStats(10, 100, 50)  # sum_sq below sum**2 / n
    with pytest.raises(DataError):
        MeanStats.from_values([1.0, math.inf])
    with pytest.raises(DataError):
        welch_t([1.0, 2.0], stats(1, 1, 10))  # type: ignore[arg-type]


def test_result_is_frozen_with_short_repr_and_dict():
    result = welch_t(stats(10, 5, 1000), stats(10.5, 5, 1000))
    assert isinstance(result, WelchResult)
    with pytest.raises(AttributeError):
        result.p_value = 0.5  # type: ignore[misc]
    text = repr(result)
    assert "\n" not in text and len(text) < 200 and "p_value=0.02546" in text
    assert result.to_dict()["ci"] == list(result.ci)


def test_large_means_keep_their_variance_and_welch_p_matches_scipy():
    # 1e9 + N(0, 1): sum_sq - sum**2 / n cancels to 0 in float64 (the p 0.898);
    # the two-pass m2 and Chan's merge keep it. Golden p from scipy on the raw values.
    rng = np.random.default_rng(10)
    control = 1e9 + rng.normal(0, 1, 500)
    treatment = 1e9 + 0.1 + rng.normal(0, 1, 700)
    expected = ttest_ind(treatment, control, equal_var=False)
    whole = welch_t(MeanStats.from_values(control), MeanStats.from_values(treatment))
    merged = welch_t(
        sum((MeanStats.from_values(c) for c in np.array_split(control, 7)), MeanStats(0, 0, 0)),
        sum((MeanStats.from_values(t) for t in np.array_split(treatment, 5)), MeanStats(0, 0, 0)),
    )
    assert whole.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert whole.statistic == pytest.approx(expected.statistic, rel=1e-9)
    # merged chunk sums round differently from one pairwise sum by about one ulp of 1e9
    # (1.2e-7) per mean, 2e-6 of this 0.16 difference: the values' own resolution
    assert merged.p_value == pytest.approx(expected.pvalue, rel=1e-4)
    assert MeanStats.from_values(control).variance == pytest.approx(np.var(control, ddof=1))
