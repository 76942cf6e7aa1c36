"""stats.arrays: the vectorised tests pinned to the scalar ones and to statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from rolloutlab.stats import AsymptoticCS, MeanStats, welch_t
from rolloutlab.stats.arrays import (
    always_valid_p,
    batch_means_variance,
    cs_half_width,
    quasi_poisson_dispersion,
    running_intersection,
    running_min,
    welch_arrays,
)
from rolloutlab.stats.sequential import asymptotic_rho2


def _stats(n, mean, var):
    total = mean * n
    return MeanStats(n, total, var * (n - 1) + total**2 / n)


@pytest.mark.parametrize("relative", [False, True])
def test_welch_arrays_match_welch_t(relative):
    rng = np.random.default_rng(3)
    n = rng.integers(2, 5000, size=(40, 2)).astype(float)
    mean = rng.uniform(0.5, 20, size=(40, 2))
    var = rng.uniform(0.1, 30, size=(40, 2))
    alpha = rng.uniform(0.001, 0.2, size=40)
    got = welch_arrays(
        n[:, 0],
        mean[:, 0],
        var[:, 0],
        n[:, 1],
        mean[:, 1],
        var[:, 1],
        alpha=alpha,
        relative=relative,
    )
    for i in range(40):
        ref = welch_t(
            _stats(n[i, 0], mean[i, 0], var[i, 0]),
            _stats(n[i, 1], mean[i, 1], var[i, 1]),
            alpha=alpha[i],
            relative=relative,
        )
        assert got.p_value[i] == pytest.approx(ref.p_value, rel=1e-9, abs=1e-300)
        assert tuple(got.ci[i]) == pytest.approx(ref.ci, rel=1e-9)
        assert got.estimate[i] == pytest.approx(ref.estimate, rel=1e-12)


def test_reference_means_from_the_domain_doc():
    got = welch_arrays(1000.0, 10.0, 25.0, 1000.0, 10.5, 25.0)
    assert float(got.p_value) == pytest.approx(0.0254573, abs=5e-8)
    assert tuple(got.ci) == pytest.approx((0.0614731, 0.9385269), abs=5e-8)


def test_confidence_sequence_matches_the_scalar_asymptotic_cs():
    rng = np.random.default_rng(5)
    rho2 = asymptotic_rho2(0.05, 5000.0)
    for size in (50, 400, 3000):
        c = MeanStats.from_values(rng.normal(10, 2, size))
        t = MeanStats.from_values(rng.normal(10.3, 2, size))
        state = AsymptoticCS(alpha=0.05, tuning=5000.0).update(c, t)  # one look
        se = np.sqrt(c.variance / c.n + t.variance / t.n)
        half = cs_half_width(c.n + t.n, 0.05, rho2) * se
        diff = t.mean - c.mean
        assert tuple(state.ci) == pytest.approx((diff - half, diff + half), rel=1e-9)


def test_always_valid_p_is_the_level_where_the_sequence_touches_zero():
    rho2 = asymptotic_rho2(0.05, 5000.0)
    t = np.array([500.0, 5_000.0, 50_000.0, 500_000.0])
    for alpha in (0.001, 0.01, 0.05, 0.2):
        z = cs_half_width(t, alpha, rho2)
        assert always_valid_p(z, t, rho2) == pytest.approx(alpha, rel=1e-9)
        assert np.all(always_valid_p(z * 1.01, t, rho2) < alpha)


def test_running_min_and_intersection_never_go_back():
    p = np.array([0.5, 0.2, np.nan, 0.3, 0.1])
    assert running_min(p).tolist() == [0.5, 0.2, 0.2, 0.2, 0.1]
    looks = np.array([True, False, True, True, True])
    assert running_min(p, looks).tolist() == [0.5, 0.5, 0.5, 0.3, 0.1]
    ci = np.array([[-1.0, 2.0], [0.5, 3.0], [np.nan, np.nan], [-2.0, 1.0]])
    assert running_intersection(ci).tolist() == [[-1, 2], [0.5, 2], [0.5, 2], [0.5, 1]]


def _glm_dispersion(events, exposure):
    """statsmodels: Poisson GLM with a factor per bucket and per arm; the squared response
    residuals over the fitted counts, times observations over residual df."""
    arms, buckets = events.shape
    y = events.ravel()
    design = np.zeros((arms * buckets, buckets + arms - 1))
    for a in range(arms):
        for k in range(buckets):
            row = a * buckets + k
            design[row, k] = 1
            if a:
                design[row, buckets + a - 1] = 1
    fit = sm.GLM(y, design, family=sm.families.Poisson(), offset=np.log(exposure.ravel())).fit()
    squares = np.sum(fit.resid_response**2) / np.sum(fit.fittedvalues)
    return squares * y.size / fit.df_resid


def test_quasi_poisson_dispersion_matches_a_statsmodels_glm_at_every_look():
    rng = np.random.default_rng(1)
    buckets = 48
    diurnal = 1 + 0.5 * np.sin(np.arange(buckets) / 24 * 2 * np.pi)  # shared by the arms
    exposure = rng.poisson(3000, (3, buckets)).astype(float)
    mean = exposure * 0.02 * diurnal
    events = rng.negative_binomial(20, 20 / (20 + mean)).astype(float)  # overdispersed
    phi, dof = quasi_poisson_dispersion(events, exposure)
    for t in (12, 30, buckets):
        expected = _glm_dispersion(events[:, :t], exposure[:, :t])
        assert phi[t - 1] == pytest.approx(expected, rel=0.03)
        assert dof[t - 1] == (t - 1) * 2
    assert phi[-1] > 2  # NB(20) at ~60 events per bucket: var = mean (1 + mean / 20)


def test_quasi_poisson_dispersion_is_the_variance_of_the_total():
    rng = np.random.default_rng(6)
    hours = 24 * 7
    traffic = 1 + 0.5 * np.sin(np.arange(hours) / 24 * 2 * np.pi)  # busy and quiet hours
    exposure = np.tile(np.round(2000 * traffic), (2, 1))
    totals, phis = [], []
    for _ in range(400):
        mean = exposure * 0.05 * rng.gamma(3.0, 1 / 3.0, exposure.shape)  # var grows as mean^2
        events = rng.poisson(mean).astype(float)
        totals.append(events[1].sum() - events[0].sum())
        phis.append(quasi_poisson_dispersion(events, exposure)[0][-1])
    poisson_var = 2 * 0.05 * exposure[0].sum()
    assert np.var(totals) / poisson_var == pytest.approx(np.mean(phis), rel=0.15)


def test_quasi_poisson_reads_poisson_counts_as_no_overdispersion():
    rng = np.random.default_rng(2)
    exposure = rng.poisson(5000, (2, 24 * 14)).astype(float)
    diurnal = 1 + 0.6 * np.sin(np.arange(24 * 14) / 24 * 2 * np.pi)
    events = rng.poisson(exposure * 0.01 * diurnal).astype(float)
    phi, _ = quasi_poisson_dispersion(events, exposure)
    assert phi[-1] == pytest.approx(1.0, abs=0.15)  # the diurnal swing is not noise


def test_batch_means_variance_is_the_delta_method_over_buckets():
    rng = np.random.default_rng(4)
    x = rng.poisson(1000, 30).astype(float)
    y = rng.binomial(x.astype(int), 0.1).astype(float)
    got, dof = batch_means_variance(y, x)
    for t in (2, 10, 30):
        xs, ys = x[:t], y[:t]
        r = ys.sum() / xs.sum()
        # delta method for sum(y)/sum(x) with independent buckets, per unit of exposure
        var_ratio = t / (t - 1) * np.sum((ys - r * xs) ** 2) / xs.sum() ** 2
        assert got[t - 1] == pytest.approx(var_ratio * xs.sum(), rel=1e-9)
        assert dof[t - 1] == t - 1
    assert np.isnan(got[0])
