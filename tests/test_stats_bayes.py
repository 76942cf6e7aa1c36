"""stats.bayes against GrowthBook's published gbstats test vectors.

growthbook/growthbook packages/stats/tests/bayesian/test_tests.py at commit
8f1db4456915a8e7b7faf23d5632ca7219d2f469 (TestBinom.test_bayesian_binomial_ab_test,
TestNorm.test_bayesian_gaussian_ab_test and ..._informative): relative effect,
improper flat prior by default, numbers rounded to 5 decimals there.
"""

from __future__ import annotations

import numpy as np
import pytest

from rolloutlab.stats import MeanStats
from rolloutlab.stats.arrays import welch_arrays
from rolloutlab.stats.bayes import gaussian_posterior


def _relative(control: MeanStats, treatment: MeanStats, *, proportion: bool = False):
    def var(s):  # gbstats' ProportionStatistic variance is p (1 - p), without n - 1
        return s.mean * (1 - s.mean) if proportion else s.variance

    w = welch_arrays(
        control.n,
        control.mean,
        var(control),
        treatment.n,
        treatment.mean,
        var(treatment),
        relative=True,
    )
    return w.estimate, w.std_error


def _check(post, expected, ci, sd, chance, risk):
    assert float(post.mean) == pytest.approx(expected, abs=6e-6)
    assert float(post.std) == pytest.approx(sd, abs=6e-6)
    assert tuple(post.ci) == pytest.approx(ci, abs=6e-6)
    assert float(post.chance_to_win) == pytest.approx(chance, abs=6e-6)
    assert (float(post.risk_control), float(post.risk_treatment)) == pytest.approx(risk, abs=6e-6)


def test_binomial_vector():
    est, se = _relative(
        MeanStats.from_counts(49, 100), MeanStats.from_counts(51, 100), proportion=True
    )
    _check(
        gaussian_posterior(est, se),
        0.04082,
        (-0.24779, 0.32943),
        0.14725,
        0.60918,
        (0.0814, 0.04058),
    )


def test_gaussian_vector_flat_prior():
    est, se = _relative(MeanStats(10, 100, 1002.25), MeanStats(10, 105, 1111.5))
    _check(gaussian_posterior(est, se), 0.05, (-0.02, 0.12), 0.03572, 0.91923, (0.05131, 0.00131))


def test_gaussian_vector_informative_prior():
    est, se = _relative(MeanStats(10, 100, 1002.25), MeanStats(10, 105, 1111.5))
    post = gaussian_posterior(est, se, prior_mean=0.1, prior_var=0.1)
    _check(post, 0.05063, (-0.01893, 0.12019), 0.03549, 0.92315, (0.05186, 0.00123))


def test_arrays_broadcast():
    post = gaussian_posterior(np.array([0.0, 0.1]), np.array([0.05, 0.05]))
    assert post.chance_to_win.tolist() == pytest.approx([0.5, 0.97725], abs=1e-5)
    assert post.ci.shape == (2, 2)
