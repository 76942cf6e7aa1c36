"""Tests for rolloutlab.stats.srm: sample ratio mismatch, fixed and sequential."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest, chisquare

from rolloutlab.errors import DataError
from rolloutlab.stats import SequentialSRM, srm
from rolloutlab.stats.sequential import _dm_log_bf


def test_domain_reference_number():
    # domain.md section 6: 1000 vs 1100 on a 50/50 plan -> p = 0.0290963
    result = srm([1000, 1100], [0.5, 0.5])
    assert result.p_value == pytest.approx(0.0290963, abs=5e-7)
    assert result.estimate == pytest.approx(1.1)


@pytest.mark.parametrize(
    ("counts", "shares"), [([900, 130], [90, 10]), ([310, 345, 290], [1, 1, 1])]
)
def test_matches_scipy_chisquare(counts, shares):
    result = srm(counts, shares)
    expected = np.asarray(shares) / np.sum(shares) * np.sum(counts)
    ref = chisquare(counts, expected)
    assert result.statistic == pytest.approx(ref.statistic)
    assert result.p_value == pytest.approx(ref.pvalue)
    assert result.df == len(counts) - 1
    assert sum(result.observed_shares) == pytest.approx(1.0)


def test_interval_is_exact_binomial_mapped_to_the_ratio():
    result = srm([900, 130], [0.9, 0.1], alpha=0.1)
    ci = binomtest(130, 1030).proportion_ci(confidence_level=0.9, method="exact")
    to_ratio = lambda s: s / (1 - s) * 9  # noqa: E731  (share of the last group -> ratio)
    assert result.ci == pytest.approx((to_ratio(ci.low), to_ratio(ci.high)))


def test_degenerate_and_misuse():
    none = srm([0, 0], [0.5, 0.5])
    assert (none.reason, none.p_value, none.estimate) == ("no traffic", 1.0, 1.0)
    assert srm([1, math.nan], [0.5, 0.5]).reason == "counts contain NaN"
    with pytest.raises(DataError):
        srm([1, 2, 3], [0.5, 0.5])
    with pytest.raises(DataError):
        srm([1, 2], [1.0, 0.0])
    with pytest.raises(DataError):
        srm([-1, 2], [0.5, 0.5])


def test_sequential_srm_is_valid_and_detects_a_skewed_split():
    # 1000 requests/min split 90/10, 180 looks, alpha = 0.05, k = 10000: 2000 replicates,
    # MC standard error of a 5 % rate 0.49 %.
    rng = np.random.default_rng(2)
    shares = np.array([0.9, 0.1])

    def ever_rejects(canary_share: float) -> np.ndarray:
        canary = rng.binomial(1000, canary_share, size=(2000, 180))
        cumulative = np.stack([1000 - canary, canary], axis=-1).cumsum(axis=1).astype(float)
        return (_dm_log_bf(cumulative, 10_000 * shares, np.log(shares)) >= math.log(20)).any(1)

    assert ever_rejects(0.10).mean() <= 0.05
    assert ever_rejects(0.09).mean() >= 0.9  # the canary gets 9 % instead of 10 %
    test = SequentialSRM([0.9, 0.1], alpha=0.05)
    for _ in range(30):
        state = test.update([1000 - 85, 85])
    assert state.reject and state.estimate < 1  # canary under-served
    assert SequentialSRM([0.5, 0.5]).alpha == 0.001  # Eppo's threshold by default
