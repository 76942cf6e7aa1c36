"""A Bayesian reading of an effect estimate, as GrowthBook's gbstats gives it.

The effect (e.g. a relative lift) has a normal likelihood around its estimate with the
delta-method standard error. The prior on the effect is Gaussian: by default improper
and flat (the posterior is then the likelihood, gbstats' default), or proper with
``prior_mean``/``prior_var`` (gbstats' ``GaussianPrior(mean, variance, proper=True)``),
which shrinks small samples toward the prior mean. Arrays broadcast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm


@dataclass(frozen=True)
class Posterior:
    """The posterior of an effect per cell.

    ``chance_to_win``: P(effect > 0). ``risk_control``: expected loss of keeping the
    control, E[max(effect, 0)]; ``risk_treatment``: of shipping the treatment,
    E[max(-effect, 0)] (both in the effect's units). ``ci``: the central credible interval.
    """

    mean: np.ndarray
    std: np.ndarray
    chance_to_win: np.ndarray
    risk_control: np.ndarray
    risk_treatment: np.ndarray
    ci: np.ndarray  # (..., 2)


def gaussian_posterior(
    estimate: np.ndarray,
    std_error: np.ndarray,
    *,
    prior_mean: float = 0.0,
    prior_var: float | None = None,
    alpha: float = 0.05,
) -> Posterior:
    """Posterior of an effect from its estimate and standard error (see the module)."""
    estimate = np.asarray(estimate, dtype=float)
    std_error = np.asarray(std_error, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if prior_var is None:
            mean, var = estimate, std_error**2
        else:
            precision = 1 / std_error**2 + 1 / prior_var
            mean = (estimate / std_error**2 + prior_mean / prior_var) / precision
            var = 1 / precision
        std = np.sqrt(var)
        z = mean / std
        risk_control = mean * norm.cdf(z) + std * norm.pdf(z)
        half = norm.isf(alpha / 2) * std
    return Posterior(
        mean=mean,
        std=std,
        chance_to_win=norm.cdf(z),
        risk_control=risk_control,
        risk_treatment=risk_control - mean,
        ci=np.stack([mean - half, mean + half], axis=-1),
    )
