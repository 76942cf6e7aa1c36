"""Sample size, minimum detectable effect and time to decision (fixed-horizon, two-sided).

All formulas are the normal approximation with unpooled variances, matching the
Welch tests in this package: ``n_c = (z_{1-alpha/2} + z_{power})^2 (var_c + var_t /
ratio) / delta^2`` and ``n_t = ratio * n_c``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm

from rolloutlab.errors import DataError
from rolloutlab.stats._result import check_alpha
from rolloutlab.stats.sequential import half_normal_log_e


@dataclass(frozen=True)
class SampleSize:
    """Observations needed per group (rounded up) to detect ``effect`` (absolute units)."""

    n_control: int
    n_treatment: int
    effect: float
    alpha: float
    power: float

    @property
    def total(self) -> int:
        return self.n_control + self.n_treatment


@dataclass(frozen=True)
class MDE:
    """Smallest true effect detected with the given power (absolute, and relative if known)."""

    absolute: float
    relative: float | None
    alpha: float
    power: float


@dataclass(frozen=True)
class TimeToDecision:
    """Minutes of canary traffic a fixed-horizon test needs, and the requests by then."""

    minutes: float
    n_canary: float
    n_primary: float
    sample_size: SampleSize


def _check(alpha: float, power: float, ratio: float) -> tuple[float, float, float]:
    alpha = check_alpha(alpha)
    if not 0 < power < 1:
        raise DataError(f"power must be in (0, 1), got {power!r}")
    if not (math.isfinite(ratio) and ratio > 0):
        raise DataError(f"ratio (n_treatment / n_control) must be > 0, got {ratio!r}")
    return alpha, power, ratio


def _z_sum(alpha: float, power: float) -> float:
    return float(norm.isf(alpha / 2) + norm.ppf(power))


def _sample_size(
    var_c: float, var_t: float, delta: float, alpha: float, power: float, ratio: float
) -> SampleSize:
    if delta == 0 or not math.isfinite(delta):
        raise DataError(f"the effect to detect must be finite and non-zero, got {delta!r}")
    n_c = _z_sum(alpha, power) ** 2 * (var_c + var_t / ratio) / delta**2
    return SampleSize(
        n_control=math.ceil(n_c - 1e-9),
        n_treatment=math.ceil(ratio * n_c - 1e-9),
        effect=delta,
        alpha=alpha,
        power=power,
    )


def _treatment_rate(p_control: float, mde: float, relative: bool) -> float:
    if not 0 < p_control < 1:
        raise DataError(f"p_control must be in (0, 1), got {p_control!r}")
    p_t = p_control * (1 + mde) if relative else p_control + mde
    if not 0 < p_t < 1:
        raise DataError(f"the treatment rate {p_t!r} implied by mde={mde!r} is not in (0, 1)")
    return p_t


def sample_size_proportions(
    p_control: float,
    mde: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    relative: bool = True,
    ratio: float = 1.0,
) -> SampleSize:
    """Per-group sample size to detect ``p_t - p_c`` (or ``p_t / p_c - 1`` if relative).

    ``ratio = n_treatment / n_control`` (a 10 % canary is ``ratio = 1 / 9``).
    """
    alpha, power, ratio = _check(alpha, power, ratio)
    p_t = _treatment_rate(p_control, mde, relative)
    return _sample_size(
        p_control * (1 - p_control), p_t * (1 - p_t), p_t - p_control, alpha, power, ratio
    )


def sample_size_means(
    sigma: float,
    mde: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
) -> SampleSize:
    """Per-group sample size to detect a difference ``mde`` of means with common sd ``sigma``."""
    alpha, power, ratio = _check(alpha, power, ratio)
    if not (math.isfinite(sigma) and sigma > 0):
        raise DataError(f"sigma must be > 0, got {sigma!r}")
    return _sample_size(sigma**2, sigma**2, mde, alpha, power, ratio)


def mde_means(
    n_control: float,
    n_treatment: float,
    sigma: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
) -> MDE:
    """Smallest difference of means detectable with these group sizes."""
    alpha, power, _ = _check(alpha, power, 1.0)
    if not (n_control > 0 and n_treatment > 0 and sigma > 0):
        raise DataError("n_control, n_treatment and sigma must be > 0")
    delta = _z_sum(alpha, power) * sigma * math.sqrt(1 / n_control + 1 / n_treatment)
    return MDE(absolute=delta, relative=None, alpha=alpha, power=power)


def mde_proportions(
    n_control: float,
    n_treatment: float,
    p_control: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
) -> MDE:
    """Smallest increase ``p_t - p_c`` detectable with these group sizes (also as a lift).

    Solved numerically because the treatment variance depends on ``p_t``.
    """
    alpha, power, _ = _check(alpha, power, 1.0)
    if not (n_control > 0 and n_treatment > 0):
        raise DataError("n_control and n_treatment must be > 0")
    if not 0 < p_control < 1:
        raise DataError(f"p_control must be in (0, 1), got {p_control!r}")
    z = _z_sum(alpha, power)
    var_c = p_control * (1 - p_control) / n_control

    def gap(delta: float) -> float:
        p_t = p_control + delta
        return delta - z * math.sqrt(var_c + p_t * (1 - p_t) / n_treatment)

    top = 1 - p_control - 1e-12
    if gap(top) < 0:
        raise DataError("these sample sizes cannot detect any increase with that power")
    delta = float(brentq(gap, 0.0, top, xtol=1e-14))
    return MDE(absolute=delta, relative=delta / p_control, alpha=alpha, power=power)


def time_to_decision(
    baseline_rate: float,
    ratio: float,
    *,
    requests_per_min: float,
    canary_weight: float,
    alpha: float = 0.05,
    power: float = 0.8,
) -> TimeToDecision:
    """Expected minutes until a canary has enough requests to detect an error-rate ratio.

    Fixed-horizon: the traffic a single two-sided test of the error proportions
    (canary vs primary, Welch on 0/1) needs at the end to reach ``power`` when the
    canary's rate is ``ratio * baseline_rate``. ``canary_weight`` is a fraction
    (0.1 for 10 %). With rare events the normal approximation is conservative (for
    1 % errors doubled on a 10 % canary at 1000 req/min: 16.3 minutes planned, 84 %
    power measured). Anytime-valid tests that look every tick
    (:class:`PoissonRatioSequential`) need more traffic for the same power but stop
    early when the effect is larger (median 11 minutes for the same case).
    """
    if not (math.isfinite(requests_per_min) and requests_per_min > 0):
        raise DataError(f"requests_per_min must be > 0, got {requests_per_min!r}")
    if not 0 < canary_weight < 1:
        raise DataError(f"canary_weight must be a fraction in (0, 1), got {canary_weight!r}")
    size = sample_size_proportions(
        baseline_rate,
        ratio - 1,
        alpha=alpha,
        power=power,
        relative=True,
        ratio=canary_weight / (1 - canary_weight),
    )
    minutes = max(
        size.n_treatment / (requests_per_min * canary_weight),
        size.n_control / (requests_per_min * (1 - canary_weight)),
    )
    return TimeToDecision(
        minutes=minutes,
        n_canary=minutes * requests_per_min * canary_weight,
        n_primary=minutes * requests_per_min * (1 - canary_weight),
        sample_size=size,
    )


def minutes_to_evidence(
    gap: float,
    information: float,
    information_per_min: float,
    *,
    tau: float,
    alpha: float,
    horizon_min: float = 7 * 24 * 60,
) -> float:
    """Minutes until a one-sided normal-mixture test is expected to reject, or inf.

    ``gap`` is how far the estimate lies inside the alternative (e.g. the promotion
    bound minus the estimated log ratio), ``information`` the test's information now and
    ``information_per_min`` how fast it grows at the current traffic. Assumes the
    estimate stays where it is and solves for the first minute at which
    :func:`~rolloutlab.stats.sequential.half_normal_log_e` reaches ``log(1/alpha)``;
    inf when the gap is not positive, nothing accrues, or it takes beyond ``horizon_min``.
    """
    if not (gap > 0 and information_per_min > 0 and math.isfinite(information)):
        return math.inf
    minutes = np.concatenate([[0.0], np.geomspace(0.25, horizon_min, 400)])
    info = information + information_per_min * minutes
    reached = np.flatnonzero(half_normal_log_e(info * gap, info, tau) >= math.log(1 / alpha))
    return float(minutes[reached[0]]) if reached.size else math.inf
