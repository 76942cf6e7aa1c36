"""Tests for rolloutlab.stats.sequential: anytime-valid tests and confidence sequences.

Statistical guarantees are checked by seeded, vectorised simulation: the private
engines/formulas the classes call broadcast over thousands of replicates, and
``test_*_class_matches_*`` pin the classes to them number for number.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import betabinom, binom, norm

from rolloutlab.errors import DataError
from rolloutlab.stats import (
    MSPRT,
    AsymptoticCS,
    DirichletMultinomialTest,
    MeanStats,
    PoissonRatioSequential,
    TickContrast,
    minutes_to_evidence,
)
from rolloutlab.stats.sequential import (
    DEFAULT_GRID,
    PoissonRatioBatch,
    _conjmix_log_e,
    _conjmix_margin,
    _dm_log_bf,
    _msprt_log_lambda,
    asymptotic_rho2,
    half_normal_log_e,
)

LOG20 = math.log(20)  # 1 / alpha at alpha = 0.05
TICKS = 180  # one look per minute for three hours


def _mc_bound(rate: float, replicates: int) -> float:
    """rate + 3 Monte-Carlo standard errors."""
    return rate + 3 * math.sqrt(rate * (1 - rate) / replicates)


# ---------------------------------------------------------------------------------------
# Dirichlet-multinomial (Lindon & Malek)
# ---------------------------------------------------------------------------------------


def test_dm_bayes_factor_is_beta_binomial_over_binomial():
    # Two groups: the Dirichlet-multinomial marginal is the beta-binomial, so the Bayes
    # factor is betabinom.pmf / binom.pmf (binomial coefficients cancel).
    shares, k = np.array([0.9, 0.1]), 100.0
    counts = np.array([170.0, 31.0])
    expected = betabinom.logpmf(31, 201, k * 0.1, k * 0.9) - binom.logpmf(31, 201, 0.1)
    assert _dm_log_bf(counts, k * shares, np.log(shares)) == pytest.approx(expected, rel=1e-10)


def test_dm_class_matches_formula_and_p_is_running_min():
    rng = np.random.default_rng(1)
    test = DirichletMultinomialTest([0.9, 0.1], k=100)
    total, p_values, largest = np.zeros(2), [], 0.0
    for _ in range(60):
        tick = np.array([rng.binomial(900, 0.01), rng.binomial(100, 0.015)], dtype=float)
        total += tick
        state = test.update(tick)
        largest = max(largest, _dm_log_bf(total, 100 * np.array([0.9, 0.1]), np.log([0.9, 0.1])))
        assert state.log_e_value == pytest.approx(largest)
        assert state.p_value == pytest.approx(min(1.0, math.exp(-largest)))
        p_values.append(state.p_value)
    assert p_values == sorted(p_values, reverse=True)
    assert state.n == total.sum() and state.t == 60
    assert state.estimate == pytest.approx((total[1] / 0.1) / (total[0] / 0.9))


def _dm_simulation(ratio: float, replicates: int, seed: int) -> tuple[float, np.ndarray]:
    """domain.md's setting: 1000 req/min, canary 10 %, 1 % errors, k=100, alpha=0.05."""
    rng = np.random.default_rng(seed)
    canary = rng.binomial(100, 0.01 * ratio, size=(replicates, TICKS))
    primary = rng.binomial(900, 0.01, size=(replicates, TICKS))
    cumulative = np.stack([primary, canary], axis=-1).cumsum(axis=1).astype(float)
    shares = np.array([0.9, 0.1])
    reject = _dm_log_bf(cumulative, 100 * shares, np.log(shares)) >= LOG20
    first = np.where(reject.any(axis=1), reject.argmax(axis=1) + 1, np.inf)
    return float(reject.any(axis=1).mean()), first


def test_dm_simulation_matches_domain_figures():
    # domain.md: A/A false rejections 1.6 %, median time to detect 2x errors 16 min.
    # 4000 A/A replicates: MC standard error of a 2 % rate is 0.22 %.
    false_rate, _ = _dm_simulation(1.0, 4000, seed=1)
    assert 0.008 <= false_rate <= 0.03  # measured 2.2 %
    power, first = _dm_simulation(2.0, 2000, seed=2)
    assert power > 0.99
    assert 13 <= np.median(first) <= 19  # measured 16 (p90 29)


# ---------------------------------------------------------------------------------------
# Poisson rate ratio with changing exposures
# ---------------------------------------------------------------------------------------


def _stream(rng, ticks, ratio=1.0, weights=(0.1, 0.2, 0.3, 0.4, 0.5), rpm=1000.0, rate=0.01):
    """Per-tick (c, x, k, y): canary weight steps through ``weights`` evenly."""
    weight = np.repeat(weights, math.ceil(ticks / len(weights)))[:ticks]
    x, y = rpm * weight, rpm * (1 - weight)
    return rng.poisson(x * rate * ratio), x, rng.poisson(y * rate), y


def test_grid_likelihood_is_the_conditional_binomial():
    rng = np.random.default_rng(3)
    c, x, k, y = _stream(rng, 40, ratio=1.7)
    engine = PoissonRatioBatch(DEFAULT_GRID, 1.0, "two-sided")
    for tick in zip(c, x, k, y, strict=True):
        engine.step(*(np.asarray(float(v)) for v in tick))
    i, j = 100, 140  # theta = 1 and theta ~ 2.2

    def binomial_loglik(theta: float) -> float:
        p = theta * x / (theta * x + y)
        return float(binom.logpmf(c, c + k, p).sum())

    expected = binomial_loglik(DEFAULT_GRID[j]) - binomial_loglik(DEFAULT_GRID[i])
    assert engine.loglik[j] - engine.loglik[i] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_poisson_class_matches_batched_engine(alternative):
    rng = np.random.default_rng(4)
    streams = [_stream(rng, 50, ratio=r) for r in (0.5, 1.0, 1.3, 2.0)]
    batch = PoissonRatioBatch(DEFAULT_GRID, 1.0, alternative, batch_shape=(4,))
    tests = [PoissonRatioSequential(alternative=alternative) for _ in streams]
    for t in range(50):
        ticks = [tuple(float(v[t]) for v in stream) for stream in streams]
        states = [test.update(*tick) for test, tick in zip(tests, ticks, strict=True)]
        batch.step(*(np.array(column) for column in zip(*ticks, strict=True)))
        assert [s.p_value for s in states] == pytest.approx(batch.p_value().tolist(), rel=1e-9)
    for test, cs in zip(tests, batch.cs_log_e, strict=True):
        inside = DEFAULT_GRID[cs < LOG20]
        low, high = test.ci
        assert (low == 0 and inside[0] == DEFAULT_GRID[0]) or low == inside[0]
        assert (high == math.inf and inside[-1] == DEFAULT_GRID[-1]) or high == inside[-1]


def test_poisson_state_semantics():
    rng = np.random.default_rng(5)
    test = PoissonRatioSequential(alternative="greater")
    assert test.state.reason == "no events yet" and test.p_value == 1.0
    p_values, intervals = [], []
    for c, x, k, y in zip(*_stream(rng, 60, ratio=2.5), strict=True):
        state = test.update(c, x, k, y)
        p_values.append(state.p_value)
        intervals.append(state.ci)
    assert p_values == sorted(p_values, reverse=True)  # always-valid p never increases
    assert all(b[0] >= a[0] for a, b in zip(intervals, intervals[1:], strict=False))
    assert state.reject and state.ci[1] == math.inf and 1.0 < state.ci[0] < state.estimate
    before = test.state
    after = test.update(0, 100.0, 0, 900.0)  # a tick without events is a no-op
    assert (after.p_value, after.ci, after.n, after.t) == (
        before.p_value,
        before.ci,
        before.n,
        before.t + 1,
    )
    assert test.update(0, 0, 0, 0).p_value == before.p_value  # no traffic at all
    ignored = test.update(3, 0.0, 5, 900.0)  # events without exposure (counter reset)
    assert ignored.reason and "ignored 1" in ignored.reason and ignored.n == before.n
    assert "ignored 2" in test.update(math.nan, 1.0, 1.0, 1.0).reason
    extreme = PoissonRatioSequential().update(1.0, 2.0, 5e-324, 5e-324)  # subnormal counts
    assert extreme.estimate == pytest.approx(0.5) and 0 <= extreme.p_value <= 1


def test_poisson_misuse_raises():
    with pytest.raises(DataError):
        PoissonRatioSequential(alternative="bigger")  # type: ignore[arg-type]
    with pytest.raises(DataError):
        PoissonRatioSequential(null_ratio=100.0)  # outside the default grid
    with pytest.raises(DataError):
        PoissonRatioSequential(grid=[2.0, 1.0, 3.0])
    with pytest.raises(DataError):
        PoissonRatioSequential().update(-1, 10, 1, 10)


def _poisson_simulation(
    ratio: float,
    null_ratio: float,
    alternative: str,
    replicates: int,
    seed: int,
    weights=(0.1, 0.2, 0.3, 0.4, 0.5),
    track_cs: bool = False,
):
    """Vectorised runs over TICKS looks; returns (rejected, first tick, CS covered)."""
    rng = np.random.default_rng(seed)
    engine = PoissonRatioBatch(
        DEFAULT_GRID, null_ratio, alternative, batch_shape=(replicates,), track_cs=track_cs
    )
    truth = int(np.argmin(abs(DEFAULT_GRID - ratio)))
    first = np.full(replicates, np.inf)
    covered = np.ones(replicates, dtype=bool)
    weight = np.repeat(weights, TICKS // len(weights))
    for t in range(TICKS):
        x = np.full(replicates, 1000.0 * weight[t])
        y = 1000.0 - x
        c = rng.poisson(x * 0.01 * ratio).astype(float)
        k = rng.poisson(y * 0.01).astype(float)
        engine.step(c, x, k, y)
        first = np.where(np.isinf(first) & (engine.max_log_e >= LOG20), t + 1, first)
        if track_cs:
            covered &= engine.cs_log_e[:, truth] < LOG20
    return np.isfinite(first), first, covered


def test_poisson_aa_with_changing_split_controls_errors():
    # Canary weight 10 % -> 20 % -> ... -> 50 % (36 minutes each), 1000 req/min, 1 % errors,
    # 180 looks, 2000 replicates: MC standard error of a 5 % rate is 0.49 %.
    rejected, _, covered = _poisson_simulation(1.0, 1.0, "two-sided", 2000, 6, track_cs=True)
    assert rejected.mean() <= 0.05  # measured 2.9 %
    assert covered.mean() >= 0.95  # the true ratio stays in the CS at all 180 looks


def test_poisson_greater_with_null_above_truth_almost_never_rejects():
    # H0: ratio <= 1.5 is true (ratio = 1): the composite null is controlled at its edge,
    # so a truth inside it rejects far less than alpha. 2000 replicates.
    rejected, _, _ = _poisson_simulation(1.0, 1.5, "greater", 2000, 7)
    assert rejected.mean() <= 0.01  # measured 0.15 %


def test_poisson_greater_detects_doubled_errors_quickly():
    # 10 % canary, 1000 req/min, 1 % errors, canary errors doubled: 500 replicates.
    rejected, first, _ = _poisson_simulation(2.0, 1.0, "greater", 500, 8, weights=(0.1,))
    assert rejected.mean() > 0.99
    assert np.median(first) <= 16  # measured 11 min (p90 25); DM two-sided needs 16


# ---------------------------------------------------------------------------------------
# mSPRT for a difference of means
# ---------------------------------------------------------------------------------------


def test_msprt_statistic_is_the_normal_mixture_likelihood_ratio():
    # Lambda_n = int N(d; theta, 2s^2/n) N(theta; theta0, tau^2) dtheta / N(d; theta0, 2s^2/n)
    sigma, tau, theta0, n, diff = 2.0, 0.7, 0.1, 40.0, 0.6
    se = math.sqrt(2 * sigma**2 / n)
    numerator, _ = integrate.quad(
        lambda th: norm.pdf(diff, th, se) * norm.pdf(th, theta0, tau), -20, 20, epsabs=1e-13
    )
    expected = math.log(numerator / norm.pdf(diff, theta0, se))
    assert _msprt_log_lambda(n, diff, sigma, tau, theta0) == pytest.approx(expected, rel=1e-8)


def test_msprt_class_and_interval_duality():
    rng = np.random.default_rng(9)
    control, treatment = rng.normal(0, 1.5, 30), rng.normal(0.8, 1.5, 30)
    test = MSPRT(1.5, 0.5)
    state = test.update(MeanStats.from_values(control), MeanStats.from_values(treatment))
    diff = treatment.mean() - control.mean()
    assert state.estimate == pytest.approx(diff)
    log_lambda = _msprt_log_lambda(30.0, diff, 1.5, 0.5, 0.0)
    assert state.log_e_value == pytest.approx(max(0.0, log_lambda))  # running max from e = 1
    assert state.p_value == pytest.approx(min(1.0, math.exp(-log_lambda)))
    for edge, inside in ((state.ci[0], 1e-6), (state.ci[1], -1e-6)):  # Lambda = 1/alpha there
        assert _msprt_log_lambda(30.0, diff, 1.5, 0.5, edge) == pytest.approx(LOG20, rel=1e-9)
        assert _msprt_log_lambda(30.0, diff, 1.5, 0.5, edge + inside) < LOG20


def test_msprt_aa_simulation():
    # 2000 A/A runs, 100 looks of 10 + 10 observations, sigma known: MC SE 0.49 %.
    rng = np.random.default_rng(10)
    sums = rng.normal(0, 1, (2000, 100, 2, 10)).sum(axis=-1).cumsum(axis=1)
    n = 10.0 * np.arange(1, 101)
    diff = (sums[..., 1] - sums[..., 0]) / n
    rejected = (_msprt_log_lambda(n, diff, 1.0, 0.3, 0.0) >= LOG20).any(axis=1)
    assert rejected.mean() <= 0.05


def test_msprt_degenerate_and_misuse():
    test = MSPRT(1.0, 1.0)
    state = test.update(MeanStats(0, 0, 0), MeanStats.from_values([1.0, 2.0]))
    assert state.p_value == 1.0 and state.reason == "no observations in the control yet"
    with pytest.raises(DataError):
        MSPRT(0.0, 1.0)
    with pytest.raises(DataError):
        test.update([1.0], [2.0])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# Overdispersed counts: the robust (quasi-likelihood, Huber) rate-ratio test
# ---------------------------------------------------------------------------------------


def _bursty_errors(rng, replicates, ratio=1.0, canary=0.2, rpm=1000.0, rate=0.01, burst=3):
    """Per-tick (c, x, k, y) where every root failure is retried into ``burst`` errors
    (mesh retries), so error counts vary ``burst`` times more than a Poisson's."""
    x = rng.poisson(rpm * canary, (replicates, TICKS)).astype(float)
    y = rng.poisson(rpm * (1 - canary), (replicates, TICKS)).astype(float)
    c = burst * rng.binomial(x.astype(int), rate * ratio / burst)
    k = burst * rng.binomial(y.astype(int), rate / burst)
    return c.astype(float), x, k.astype(float), y


def _first_rejection(engine: PoissonRatioBatch, data, alpha: float) -> np.ndarray:
    c, x, k, y = data
    first = np.full(c.shape[0], np.inf)
    for t in range(c.shape[1]):
        engine.step(c[:, t], x[:, t], k[:, t], y[:, t])
        hit = (engine.max_log_e >= math.log(1 / alpha)) & ~np.isfinite(first)
        first[hit] = t + 1
    return first


def test_robust_rate_ratio_keeps_its_level_on_retry_bursts():
    # A/A, 20 % canary, 1 % errors each retried into 3, looked at every minute for 3 h.
    # The Poisson test (every request independent) rejects far beyond alpha; the robust
    # one stays within alpha + 3 Monte-Carlo standard errors (1,000 runs).
    alpha, reps = 0.025, 1000
    data = _bursty_errors(np.random.default_rng(11), reps)
    plain = PoissonRatioBatch(DEFAULT_GRID, 1.0, "greater", (reps,), track_cs=False)
    robust = PoissonRatioBatch(
        DEFAULT_GRID, 1.0, "greater", (reps,), track_cs=False, robust=True, prior_sd=0.5
    )
    plain_rate = np.isfinite(_first_rejection(plain, data, alpha)).mean()
    robust_rate = np.isfinite(_first_rejection(robust, data, alpha)).mean()
    assert plain_rate > 0.1  # measured 0.24
    assert robust_rate <= _mc_bound(alpha, reps), robust_rate  # measured 0.001
    assert 2.5 < np.median(robust.phi) < 3.5  # the dispersion it estimated: about 3


def test_robust_rate_ratio_still_catches_doubled_errors():
    reps = 300
    data = _bursty_errors(np.random.default_rng(12), reps, ratio=2.0, burst=1)
    robust = PoissonRatioBatch(
        DEFAULT_GRID, 1.0, "greater", (reps,), track_cs=False, robust=True, prior_sd=0.5
    )
    first = _first_rejection(robust, data, 0.025)
    assert np.isfinite(first).all()
    assert np.median(first) <= 20  # measured 15.5 minutes at a 20 % canary, 1,000 req/min


def test_robust_public_class_reports_its_dispersion():
    rng = np.random.default_rng(13)
    test = PoissonRatioSequential(alternative="greater", robust=True)
    c, x, k, y = _bursty_errors(rng, 1)
    for tick in zip(c[0], x[0], k[0], y[0], strict=True):
        state = test.update(*tick)
    assert 2.0 < state.dispersion < 4.5
    assert PoissonRatioSequential().update(1, 10, 1, 10).dispersion == 1.0


# ---------------------------------------------------------------------------------------
# A difference seen tick by tick (latency scores)
# ---------------------------------------------------------------------------------------


def test_half_normal_mixture_is_the_integral_it_names():
    # int_0^inf exp(theta S - theta^2 I / 2) 2 N(theta; 0, tau^2) dtheta, by quadrature
    for score, info, tau in ((3.0, 10.0, 0.4), (-2.0, 50.0, 0.1), (0.0, 1.0, 1.0)):

        def mixed(th: float, s=score, i=info, t=tau) -> float:
            return math.exp(th * s - th**2 * i / 2) * 2 * norm.pdf(th, 0, t)

        value, _ = integrate.quad(mixed, 0, np.inf)
        assert half_normal_log_e(score, info, tau) == pytest.approx(math.log(value), rel=1e-8)


def _contrast_runs(rng, replicates, effect=0.0, extra_sd=0.0, outlier_p=0.0):
    """Per-tick differences with model variance v; optional between-tick noise (extra
    variance the model does not know) and rare large outliers (incidents)."""
    v = np.full((replicates, TICKS), 0.004)
    d = effect + rng.normal(0, np.sqrt(v)) + rng.normal(0, extra_sd, v.shape)
    hits = rng.random(v.shape) < outlier_p
    d = d + hits * rng.choice([-1.0, 1.0], v.shape) * 0.5
    return d, v


def _contrast_rejections(d, v, null=0.0, alpha=0.025, tau=0.05):
    test = TickContrast(tau, (+1,), batch_shape=(d.shape[0],))
    best = np.zeros(d.shape[0])
    first = np.full(d.shape[0], np.inf)
    for t in range(d.shape[1]):
        test.step(d[:, t], v[:, t], (null,))
        best = np.maximum(best, test.log_e()[0])
        first[(best >= math.log(1 / alpha)) & ~np.isfinite(first)] = t + 1
    return first, test


def test_tick_contrast_keeps_its_level_with_overdispersed_and_outlying_ticks():
    reps = 1000
    for extra_sd, outlier_p in ((0.0, 0.0), (0.1, 0.0), (0.0, 0.02)):
        d, v = _contrast_runs(np.random.default_rng(14), reps, 0.0, extra_sd, outlier_p)
        first, test = _contrast_rejections(d, v)
        rate = np.isfinite(first).mean()
        assert rate <= _mc_bound(0.025, reps), (extra_sd, outlier_p, rate)
    # between-tick sd 0.1 on a model sd of 0.063: variance (0.004 + 0.01) / 0.004 = 3.5
    d, v = _contrast_runs(np.random.default_rng(15), 200, 0.0, 0.1)
    _, test = _contrast_rejections(d, v)
    assert 2.8 < np.median(test.dispersion.phi) < 4.2


def test_tick_contrast_detects_a_shift_and_its_interval_covers():
    d, v = _contrast_runs(np.random.default_rng(16), 300, effect=0.03)
    first, test = _contrast_rejections(d, v)
    # measured: 299 of 300 within the 180 ticks, median 53
    assert np.isfinite(first).mean() >= 0.99 and np.median(first) <= 60
    width = test.half_width(0.05)
    covered = np.abs(test.estimate - 0.03) <= width
    assert covered.mean() >= 0.95


def test_minutes_to_evidence_is_where_the_mixture_crosses():
    gap, info, rate, tau, alpha = 0.2, 20.0, 15.0, 0.5, 0.05
    minutes = minutes_to_evidence(gap, info, rate, tau=tau, alpha=alpha)
    after = info + rate * minutes
    assert half_normal_log_e(after * gap, after, tau) >= math.log(1 / alpha)
    earlier = info + rate * minutes * 0.97
    assert half_normal_log_e(earlier * gap, earlier, tau) < math.log(1 / alpha)
    assert minutes_to_evidence(-0.1, info, rate, tau=tau, alpha=alpha) == math.inf
    assert minutes_to_evidence(gap, info, 0.0, tau=tau, alpha=alpha) == math.inf


# ---------------------------------------------------------------------------------------
# Asymptotic confidence sequences (Waudby-Smith et al., GrowthBook)
# ---------------------------------------------------------------------------------------


def test_asymptotic_cs_growthbook_fixtures():
    # gbstats tests/frequentist/test_tests.py, TestSequentialTTest (relative lift):
    # stat_a = (sum 1396.87, sum_squares 52377.9767, n 3000), stat_b = (2422.7, 134698.29,
    # 3461), tuning 1000 -> expected 0.50336, ci [-0.55844, 1.56516], p 1
    test = AsymptoticCS(tuning=1000, relative=True)
    state = test.update(MeanStats(3000, 1396.87, 52377.9767), MeanStats(3461, 2422.7, 134698.29))
    assert round(state.estimate, 5) == 0.50336
    assert [round(v, 5) for v in state.ci] == [-0.55844, 1.56516]
    assert state.p_value == 1.0
    # proportions 1396/3000 vs 2422/3461, tuning 5000 -> 0.50386, ci [0.40098, 0.60675], p 0.
    # GrowthBook uses the Bernoulli variance p(1-p); MeanStats the n-1 sample variance,
    # so the bounds agree to 4 decimals.
    test = AsymptoticCS(relative=True)
    state = test.update(MeanStats.from_counts(1396, 3000), MeanStats.from_counts(2422, 3461))
    assert round(state.estimate, 5) == 0.50386
    assert state.ci == pytest.approx((0.40098, 0.60675), abs=5e-5)
    assert round(state.p_value, 5) == 0.0


def test_asymptotic_rho_formula():
    # eq. 161: rho^2 = (-2 log alpha + log(-2 log alpha + 1)) / N*
    assert asymptotic_rho2(0.05, 5000) == pytest.approx(
        (-2 * math.log(0.05) + math.log(-2 * math.log(0.05) + 1)) / 5000
    )


def test_asymptotic_cs_duality_and_aa_simulation():
    # The e-value at the interval's edge is exactly 1/alpha (test and interval agree):
    # unit variance, so the standardised sum at the edge is n * margin.
    rho2, n = asymptotic_rho2(0.05, 2000), 500.0
    margin = float(_conjmix_margin(n, rho2, 0.05))
    assert _conjmix_log_e(n, (n * margin) ** 2, rho2) == pytest.approx(LOG20, rel=1e-9)
    # 2000 A/A runs of 150 looks with 20 + 20 Bernoulli(0.3) draws each (estimated
    # variance): false rejections <= 5 % within MC error (SE 0.49 %).
    rng = np.random.default_rng(11)
    draws = rng.binomial(20, 0.3, size=(2000, 150, 2)).cumsum(axis=1)
    size = 20.0 * np.arange(1, 151)
    p = draws / size[None, :, None]
    variance = (p * (1 - p)).sum(axis=-1) / size
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = np.where(variance > 0, (p[..., 1] - p[..., 0]) ** 2 / variance, 0.0)
    log_e = _conjmix_log_e(2 * size, 2 * size * statistic, rho2)
    assert (log_e >= LOG20).any(axis=1).mean() <= _mc_bound(0.05, 2000)


def test_asymptotic_cs_class_running_intersection_and_degenerate():
    rng = np.random.default_rng(12)
    test = AsymptoticCS(tuning=500)
    state = test.update(MeanStats.from_values([1.0]), MeanStats.from_values([2.0]))
    assert state.reason == "fewer than 2 observations in the control yet" and state.p_value == 1
    intervals = []
    for _ in range(30):
        state = test.update(
            MeanStats.from_values(rng.normal(0, 1, 20)), MeanStats.from_values(rng.normal(1, 1, 20))
        )
        intervals.append(state.ci)
    assert all(
        b[0] >= a[0] and b[1] <= a[1] for a, b in zip(intervals, intervals[1:], strict=False)
    )
    assert state.reject and state.ci[0] < 1.0 < state.ci[1]
    flat = AsymptoticCS().update(MeanStats.from_values([1.0] * 3), MeanStats.from_values([1.0] * 3))
    assert flat.reason == "zero variance in both groups"
    with pytest.raises(DataError):
        AsymptoticCS(tuning=0)
