"""Proportions (conversion, error ratio) and Poisson rates (events per exposure)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scipy.stats import beta as beta_dist
from scipy.stats import binomtest

from rolloutlab.errors import DataError
from rolloutlab.stats._result import StatResult, check_alpha, check_count, is_nan
from rolloutlab.stats.means import WelchResult, _welch


def two_proportions(
    control_successes: float,
    control_n: float,
    treatment_successes: float,
    treatment_n: float,
    *,
    alpha: float = 0.05,
    relative: bool = False,
) -> WelchResult:
    """Difference of two proportions as Welch's t test on 0/1 data (unpooled).

    This is what GrowthBook does: a proportion is the mean of 0/1 values with the
    Bernoulli variance ``p (1 - p)``, and the degrees of freedom are Welch's. Counts
    may be fractional (Prometheus ``increase()``); a NaN count gives a neutral result.
    ``relative=True`` gives the lift ``p_t / p_c - 1`` with the delta-method interval
    of :func:`welch_t`.
    """
    counts = {
        "control_successes": control_successes,
        "control_n": control_n,
        "treatment_successes": treatment_successes,
        "treatment_n": treatment_n,
    }
    if any(is_nan(v) for v in counts.values()):
        check_alpha(alpha)
        return WelchResult.neutral("missing data (NaN count)", relative=relative)
    cs, cn, ts, tn = (check_count(v, k) for k, v in counts.items())
    if cs > cn or ts > tn:
        raise DataError(f"successes cannot exceed trials: {counts}")
    p_c, p_t = (cs / cn if cn else 0.0), (ts / tn if tn else 0.0)
    return _welch(
        (cn, p_c, p_c * (1 - p_c)),
        (tn, p_t, p_t * (1 - p_t)),
        alpha=alpha,
        relative=relative,
        unit="trials",
    )


@dataclass(frozen=True, kw_only=True, repr=False)
class RateRatioResult(StatResult):
    """Ratio of two Poisson rates, treatment / control, with an exact conditional test."""

    rate_control: float = 0.0
    rate_treatment: float = 0.0
    control_count: int = 0
    treatment_count: int = 0


def poisson_rates(
    control_count: float,
    control_exposure: float,
    treatment_count: float,
    treatment_exposure: float,
    *,
    alpha: float = 0.05,
) -> RateRatioResult:
    """Rate ratio ``(k_t / x_t) / (k_c / x_c)`` with an exact conditional p-value and CI.

    Given the total ``k_t + k_c``, the treatment count is Binomial with
    ``p = theta x_t / (theta x_t + x_c)``. The p-value is the two-sided binomial test
    (minimum-likelihood, as statsmodels ``test_poisson_2indep(method="exact-cond")``)
    and the interval is Clopper-Pearson on ``p`` mapped to ``theta``. Counts are
    rounded to integers (the test is exact only for whole events).
    """
    alpha = check_alpha(alpha)
    values = (control_count, control_exposure, treatment_count, treatment_exposure)
    if any(is_nan(v) for v in values):
        return RateRatioResult.neutral("missing data (NaN)", estimate=1.0, ci=(0.0, math.inf))
    kc = round(check_count(control_count, "control_count"))
    kt = round(check_count(treatment_count, "treatment_count"))
    xc = check_count(control_exposure, "control_exposure")
    xt = check_count(treatment_exposure, "treatment_exposure")
    sizes: dict[str, Any] = {"control_count": kc, "treatment_count": kt}
    if xc == 0 or xt == 0:
        group = "control" if xc == 0 else "treatment"
        return RateRatioResult.neutral(
            f"no exposure in the {group}", estimate=1.0, ci=(0.0, math.inf), **sizes
        )
    rates: dict[str, Any] = {"rate_control": kc / xc, "rate_treatment": kt / xt}
    total = kc + kt
    if total == 0:
        return RateRatioResult.neutral(
            "no events in either group", estimate=1.0, ci=(0.0, math.inf), **rates, **sizes
        )
    odds_to_ratio = xc / xt  # theta = p / (1 - p) * x_c / x_t
    p_null = xt / (xt + xc)
    if not 1e-200 < p_null < 1 - 1e-15:
        return RateRatioResult.neutral(
            "exposures too unbalanced for the exact test",
            estimate=1.0,
            ci=(0.0, math.inf),
            **rates,
            **sizes,
        )
    p_value = binomtest(kt, total, p_null).pvalue
    lower_p = beta_dist.ppf(alpha / 2, kt, total - kt + 1) if kt > 0 else 0.0
    upper_p = beta_dist.ppf(1 - alpha / 2, kt + 1, total - kt) if kt < total else 1.0
    lower = lower_p / (1 - lower_p) * odds_to_ratio
    upper = upper_p / (1 - upper_p) * odds_to_ratio if upper_p < 1 else math.inf
    estimate = kt / kc * odds_to_ratio if kc > 0 else math.inf
    return RateRatioResult(
        estimate=estimate,
        ci=(float(lower), float(upper)),
        p_value=float(min(1.0, p_value)),
        **rates,
        **sizes,
    )
