"""Rank tests: Mann-Whitney U with the Hodges-Lehmann shift, and its histogram form.

:func:`mann_whitney` reproduces R's ``wilcox.test(treatment, control, exact=FALSE,
correct=TRUE, conf.int=TRUE)`` number for number: the normal approximation with
tie and continuity corrections, and the shift estimate and interval found by R's
``uniroot`` (Brent's zeroin, ``tol=1e-4``) on the corrected z statistic as a function
of the shift (the estimate is that root at z = 0 *without* the continuity
correction, as R does). Kayenta's judge computes the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm, rankdata

from rolloutlab.errors import DataError
from rolloutlab.stats._result import (
    StatResult,
    check_alpha,
    finite_values,
    two_sided_p,
)

_DBL_EPSILON = 2.220446049250313e-16


@dataclass(frozen=True, kw_only=True, repr=False)
class MannWhitneyResult(StatResult):
    """Mann-Whitney U test of treatment vs control.

    ``estimate`` and ``ci`` are the Hodges-Lehmann-type shift (treatment - control) as
    R computes it; ``u`` counts pairs with treatment > control (ties count 1/2),
    ``superiority = u / (n_control n_treatment)`` estimates P(T > C) + P(T = C) / 2,
    and ``z`` is the corrected normal statistic behind ``p_value``.
    """

    u: float = 0.0
    z: float = 0.0
    superiority: float = 0.5
    n_control: int = 0
    n_treatment: int = 0


@dataclass(frozen=True, kw_only=True, repr=False)
class BinnedMannWhitneyResult(StatResult):
    """Mann-Whitney U test on two histograms; requests are the unit.

    ``estimate`` is the probability of superiority P(T > C) + P(T = C) / 2 (0.5 when
    the distributions are equal) with a DeLong-variance interval.
    """

    u: float = 0.0
    z: float = 0.0
    n_control: float = 0.0
    n_treatment: float = 0.0


def _zeroin(
    f: Callable[[float], float],
    ax: float,
    bx: float,
    fa: float,
    fb: float,
    tol: float = 1e-4,
    maxit: int = 1000,
) -> float:
    """Brent's root finder exactly as R's ``R_zeroin2`` (what ``uniroot`` calls).

    Kept step for step so that roots of R's step-shaped rank statistic land where R's
    do; ``scipy.optimize.brentq`` takes different steps on flat stretches.
    """
    a, b = ax, bx
    c, fc = a, fa
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    for _ in range(maxit + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2 * _DBL_EPSILON * abs(b) + tol / 2
        new_step = (c - b) / 2
        if abs(new_step) <= tol_act or fb == 0.0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:
                q = fa / fc
                t1 = fb / fc
                t2 = fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0:
                q = -q
            else:
                p = -p
            if p < (0.75 * cb * q - abs(tol_act * q) / 2) and p < abs(prev_step * q / 2):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return b


def _corrected_z(x: np.ndarray, y: np.ndarray, shift: float, correct: bool) -> tuple[float, float]:
    """``(W - n_x n_y / 2, z)`` for ``x - shift`` vs ``y``, in R's operation order.

    Returns ``z = nan`` when every value is tied (no variance).
    """
    n_x, n_y = float(x.size), float(y.size)
    combined = np.concatenate([x - shift, y])
    ranks = rankdata(combined)
    ties = np.unique(combined, return_counts=True)[1].astype(float)
    dz = float(ranks[: x.size].sum()) - n_x * (n_x + 1) / 2 - n_x * n_y / 2
    correction = math.copysign(0.5, dz) if (correct and dz != 0) else 0.0
    sigma = math.sqrt(
        (n_x * n_y / 12)
        * ((n_x + n_y + 1) - float(np.sum(ties**3 - ties)) / ((n_x + n_y) * (n_x + n_y - 1)))
    )
    if sigma == 0:
        return dz, math.nan
    return dz, (dz - correction) / sigma


def mann_whitney(
    control: Iterable[float],
    treatment: Iterable[float],
    *,
    alpha: float = 0.05,
    correct: bool = True,
    null_shift: float = 0.0,
) -> MannWhitneyResult:
    """Mann-Whitney U test with tie correction and the Hodges-Lehmann shift interval.

    Matches R's ``wilcox.test(treatment, control, mu=null_shift, exact=FALSE,
    correct=correct, conf.int=TRUE, conf.level=1 - alpha)``: the p-value is the normal
    approximation (same as ``scipy.stats.mannwhitneyu(method="asymptotic")``), and the
    estimate is the shift at which the corrected statistic is zero (not simply the
    median of pairwise differences), the interval its roots at the normal quantiles.
    NaNs are dropped. ``null_shift`` tests H0: treatment = control + null_shift.
    """
    alpha = check_alpha(alpha)
    y = finite_values(control, "control")
    x = finite_values(treatment, "treatment")
    sizes: dict[str, Any] = {"n_control": int(y.size), "n_treatment": int(x.size)}
    for name, values in (("control", y), ("treatment", x)):
        if values.size == 0:
            return MannWhitneyResult.neutral(f"no values in the {name}", **sizes)
        if not np.all(np.isfinite(values)):
            return MannWhitneyResult.neutral(
                f"infinite values in the {name} (histogram_quantile above the last bucket?): "
                "compare the buckets with mann_whitney_binned",
                **sizes,
            )
    dz, z = _corrected_z(x, y, null_shift, correct)
    if math.isnan(z):
        return MannWhitneyResult.neutral("all values tied", **sizes)
    if null_shift != 0.0:  # u and superiority describe the data, not the null
        dz = _corrected_z(x, y, 0.0, correct)[0]
    u = dz + x.size * y.size / 2
    estimate, ci = _hodges_lehmann(x, y, alpha, correct)
    return MannWhitneyResult(
        estimate=estimate,
        ci=ci,
        p_value=two_sided_p(z),
        u=u,
        z=z,
        superiority=u / (x.size * y.size),
        **sizes,
    )


def _hodges_lehmann(
    x: np.ndarray, y: np.ndarray, alpha: float, correct: bool
) -> tuple[float, tuple[float, float]]:
    """R's shift estimate and interval: roots of the corrected z in the shift."""
    mu_min = float(x.min() - y.max())
    mu_max = float(x.max() - y.min())
    if mu_min == mu_max:  # both groups constant: the shift is known exactly
        return mu_min, (mu_min, mu_min)

    def wdiff(shift: float, zq: float, correct: bool = correct) -> float:
        return _corrected_z(x, y, shift, correct)[1] - zq

    def root(zq: float) -> float:
        f_lower = wdiff(mu_min, zq)
        if f_lower <= 0:
            return mu_min
        f_upper = wdiff(mu_max, zq)
        if f_upper >= 0:
            return mu_max
        return _zeroin(lambda d: wdiff(d, zq), mu_min, mu_max, f_lower, f_upper)

    # Heavy ties can make R's two roots come out in reverse order; report them sorted.
    low, high = sorted((root(float(norm.isf(alpha / 2))), root(float(norm.ppf(alpha / 2)))))
    # R sets ``correct <- FALSE`` before solving for the estimate.
    f_lower, f_upper = wdiff(mu_min, 0.0, False), wdiff(mu_max, 0.0, False)
    estimate = _zeroin(lambda d: wdiff(d, 0.0, False), mu_min, mu_max, f_lower, f_upper)
    return float(estimate), (float(low), float(high))


def mann_whitney_binned(
    control_counts: Iterable[float],
    treatment_counts: Iterable[float],
    *,
    alpha: float = 0.05,
    correct: bool = True,
) -> BinnedMannWhitneyResult:
    """Mann-Whitney U test from two histograms over the same ordinal bins.

    The inputs are non-cumulative request counts per bin (e.g. increments of
    Prometheus ``_bucket`` series after de-cumulating), so each request is one
    observation and every request in a bin ties with the others in that bin. The
    statistic equals :func:`mann_whitney` on the expanded samples. The estimate is the
    probability of superiority with a DeLong (tie-aware) normal interval, clipped
    to [0, 1]. Counts may be fractional; NaN counts give a neutral result.
    """
    alpha = check_alpha(alpha)
    c = np.asarray(control_counts, dtype=float)
    t = np.asarray(treatment_counts, dtype=float)
    if c.ndim != 1 or c.shape != t.shape:
        raise DataError(
            f"bucket count vectors must be 1-D and of equal length, got {c.shape} and {t.shape}"
        )
    n_c, n_t = float(np.sum(c)), float(np.sum(t))
    sizes: dict[str, Any] = {"n_control": n_c, "n_treatment": n_t}
    if np.isnan(n_c + n_t):
        return BinnedMannWhitneyResult.neutral("bucket counts contain NaN", estimate=0.5, **sizes)
    if np.any(c < 0) or np.any(t < 0) or not np.isfinite(n_c + n_t):
        raise DataError("bucket counts must be finite and >= 0 (pass increments, not rates)")
    for name, n in (("control", n_c), ("treatment", n_t)):
        if n == 0:
            return BinnedMannWhitneyResult.neutral(
                f"no requests in the {name}", estimate=0.5, **sizes
            )
    below_c = np.cumsum(c) - c  # control requests in lower bins
    above_t = n_t - np.cumsum(t)  # treatment requests in higher bins
    u = float(np.sum(t * (below_c + 0.5 * c)))
    n = c + t
    total = n_c + n_t
    sigma = math.sqrt(
        (n_c * n_t / 12) * ((total + 1) - float(np.sum(n**3 - n)) / (total * (total - 1)))
        if total > 1
        else 0.0
    )
    if sigma == 0:
        return BinnedMannWhitneyResult.neutral("all values tied", estimate=0.5, **sizes)
    dz = u - n_c * n_t / 2
    correction = math.copysign(0.5, dz) if (correct and dz != 0) else 0.0
    z = (dz - correction) / sigma
    auc = u / (n_c * n_t)
    if n_c < 2 or n_t < 2:
        ci = (0.0, 1.0)
    else:
        v10 = (below_c + 0.5 * c) / n_c  # placement of each treatment request
        v01 = (above_t + 0.5 * t) / n_t  # placement of each control request
        s10 = float(np.sum(t * (v10 - auc) ** 2)) / (n_t - 1)
        s01 = float(np.sum(c * (v01 - auc) ** 2)) / (n_c - 1)
        half = float(norm.isf(alpha / 2)) * math.sqrt(s10 / n_t + s01 / n_c)
        ci = (max(0.0, auc - half), min(1.0, auc + half))
    return BinnedMannWhitneyResult(estimate=auc, ci=ci, p_value=two_sided_p(z), u=u, z=z, **sizes)
