"""Vectorised forms of the scalar tests, for thousands of metrics × arms × looks at once.

Every function broadcasts over numpy arrays and mirrors a scalar function of this
package (tests pin them together): :func:`welch_arrays` is :func:`~rolloutlab.stats.welch_t`,
:func:`always_valid_p` and :func:`cs_half_width` are :class:`~rolloutlab.stats.AsymptoticCS`
in closed form. The variance estimators read counts per time bucket (last axis) and
return cumulative results, one per look, so a report can be re-read at every bucket.
Degenerate cells give NaN; the caller says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import stdtr, stdtrit

from rolloutlab.stats.sequential import _conjmix_log_e, _conjmix_margin


@dataclass(frozen=True)
class ArrayWelch:
    """Welch's test per cell: estimate (difference, or relative lift), its standard
    error, Welch-Satterthwaite df, two-sided p-value and the ``1 - alpha`` interval."""

    estimate: np.ndarray
    std_error: np.ndarray
    df: np.ndarray
    p_value: np.ndarray
    ci: np.ndarray  # (..., 2)


def welch_arrays(
    n_c: np.ndarray,
    mean_c: np.ndarray,
    var_c: np.ndarray,
    n_t: np.ndarray,
    mean_t: np.ndarray,
    var_t: np.ndarray,
    *,
    alpha: float | np.ndarray = 0.05,
    relative: bool = False,
) -> ArrayWelch:
    """:func:`rolloutlab.stats.welch_t` on arrays of ``(n, mean, variance)`` per group.

    ``relative``: the lift ``mean_t / mean_c - 1`` with the delta-method variance that
    includes the control mean's uncertainty. ``alpha`` may be an array (one level per
    cell, e.g. multiplicity-adjusted levels).
    """
    estimate, se, df = lift_and_se(n_c, mean_c, var_c, n_t, mean_t, var_t, relative=relative)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.minimum(1.0, 2 * stdtr(df, -np.abs(estimate / se)))
        half = stdtrit(df, 1 - np.asarray(alpha) / 2) * se
    return ArrayWelch(estimate, se, df, p, interval(estimate, half))


def lift_and_se(
    n_c: np.ndarray,
    mean_c: np.ndarray,
    var_c: np.ndarray,
    n_t: np.ndarray,
    mean_t: np.ndarray,
    var_t: np.ndarray,
    *,
    relative: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The estimate, standard error and Welch-Satterthwaite df of :func:`welch_arrays`
    without the tests (cheap enough for every look of every cell)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        v_c, v_t = var_c / n_c, var_t / n_t
        if relative:
            ratio = mean_t / mean_c
            estimate = ratio - 1
            variance = (v_t + ratio * ratio * v_c) / mean_c**2
        else:
            estimate = mean_t - mean_c
            variance = v_t + v_c
        share_c, share_t = v_c / (v_c + v_t), v_t / (v_c + v_t)
        df = 1 / (share_c**2 / (n_c - 1) + share_t**2 / (n_t - 1))
    return estimate, np.sqrt(variance), df


def interval(center: np.ndarray, half: np.ndarray) -> np.ndarray:
    """``center ± half`` as a trailing axis of (low, high)."""
    return np.stack(np.broadcast_arrays(center - half, center + half), axis=-1)


def cs_half_width(t: np.ndarray, alpha: float | np.ndarray, rho2: float) -> np.ndarray:
    """Half-width of the asymptotic confidence sequence, in standard errors, at ``t``
    units (``rho2`` from :func:`~rolloutlab.stats.sequential.asymptotic_rho2`)."""
    t = np.asarray(t, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(t) * _conjmix_margin(t, rho2, np.asarray(alpha))


def always_valid_p(z: np.ndarray, t: np.ndarray, rho2: float) -> np.ndarray:
    """The asymptotic CS's p-value at ``z`` standard errors and ``t`` units: the smallest
    ``alpha`` whose confidence sequence excludes zero, so ``p <= alpha`` exactly when
    ``|z| >= cs_half_width(t, alpha, rho2)``."""
    t = np.asarray(t, dtype=float)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.minimum(1.0, np.exp(-_conjmix_log_e(t, t * z**2, rho2)))


def running_min(p: np.ndarray, looks: np.ndarray | None = None) -> np.ndarray:
    """The smallest p-value so far along the last axis (NaN reads as 1), counting only
    the ``looks`` marked True; a valid always-valid p-value that never goes back up."""
    p = np.where(np.isnan(p), 1.0, p)
    if looks is not None:
        p = np.where(looks, p, 1.0)
    return np.minimum.accumulate(p, axis=-1)


def running_intersection(ci: np.ndarray, looks: np.ndarray | None = None) -> np.ndarray:
    """The intersection of the intervals so far along the time axis (``ci`` is
    (..., T, 2)): still a confidence sequence, and it only ever narrows. Intervals with
    NaN ends, or not among ``looks``, do not narrow it."""
    low, high = ci[..., 0], ci[..., 1]
    skip = np.isnan(low) | np.isnan(high)
    if looks is not None:
        skip = skip | ~looks
    low = np.maximum.accumulate(np.where(skip, -np.inf, low), axis=-1)
    high = np.minimum.accumulate(np.where(skip, np.inf, high), axis=-1)
    return np.stack([low, high], axis=-1)


def quasi_poisson_dispersion(
    events: np.ndarray, exposure: np.ndarray, *, binomial: np.ndarray | bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Overdispersion of counts per time bucket, at every look: (phi, degrees of freedom).

    ``events``/``exposure`` are (..., arms, buckets). The model has a rate per bucket
    shared by the arms (diurnal swings, a campaign) times an effect per arm, so only
    variation *beyond* those counts: bursts and bots that hit one arm's buckets.
    ``phi`` is the residuals' sum of squares over the Poisson (or, with ``binomial``,
    binomial) variance summed over the same buckets, scaled by observations over the
    ``(buckets - 1)(arms - 1)`` degrees of freedom: the variance of the *total* count
    relative to the textbook one, whatever the shape of the noise (a sandwich estimate:
    busy buckets weigh more, as they do in the total). Cumulative over the buckets seen
    so far; one rate-per-bucket pass (exact for equal arms, close otherwise).
    """
    events = np.asarray(events, dtype=float)
    exposure = np.asarray(exposure, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = events.sum(axis=-2, keepdims=True) / exposure.sum(axis=-2, keepdims=True)
        rate = np.nan_to_num(rate)
        spread = 1 - np.where(np.asarray(binomial)[..., None, None], np.minimum(rate, 1.0), 0.0)
        spread = np.where(spread > 0, spread, 1.0)
        expected = exposure * rate  # under "no arm effect", per bucket
        live = expected > 0
        g = np.cumsum(expected, axis=-1)
        theta = np.cumsum(events, axis=-1) / g  # each arm's effect so far
        # sum of (y - theta g)^2 / spread, expanded into running sums
        syy, syg, sgg = (
            np.cumsum(np.where(live, a / spread, 0.0), axis=-1)
            for a in (events**2, events * expected, expected**2)
        )
        squares = np.where(theta > 0, syy - 2 * theta * syg + theta**2 * sgg, 0.0).sum(axis=-2)
        textbook = np.where(theta > 0, theta * g, 0.0).sum(axis=-2)
    arms = events.shape[-2]
    buckets = np.cumsum(np.any(live, axis=-2), axis=-1)
    dof = np.maximum(buckets - 1, 0) * (arms - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where(
            (dof > 0) & (textbook > 0), squares / textbook * (buckets * arms) / dof, np.nan
        )
    return phi, dof


def batch_means_variance(events: np.ndarray, exposure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit variance of a ratio ``sum(events) / sum(exposure)`` from its time buckets
    (delta method with the bucket as the independent unit), at every look: (variance
    per unit of exposure, buckets - 1). Inputs are (..., buckets); so are the outputs.

    It makes no model of the counts, so it also sees swings common to all arms (a
    diurnal conversion rate) as noise: wider than quasi-Poisson, never narrower.
    """
    x, y = np.asarray(exposure, dtype=float), np.asarray(events, dtype=float)
    live = x > 0
    k = np.cumsum(live, axis=-1)
    sx, sy = np.cumsum(x, axis=-1), np.cumsum(y, axis=-1)
    sxx, sxy, syy = (np.cumsum(a, axis=-1) for a in (x * x, x * y, y * y))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = sy / sx
        resid = np.maximum(syy - 2 * r * sxy + r * r * sxx, 0.0)
        var_ratio = k / (k - 1) * resid / sx**2
        per_unit = np.where(k >= 2, var_ratio * sx, np.nan)
    return per_unit, np.maximum(k - 1, 0)
