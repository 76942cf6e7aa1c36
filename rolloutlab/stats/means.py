"""Means from sufficient statistics ``(n, sum, sum_sq)`` and Welch's t test on them."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import t as student_t

from rolloutlab.errors import DataError
from rolloutlab.stats._result import StatResult, check_alpha, finite_values


@dataclass(frozen=True)
class MeanStats:
    """Sufficient statistics of one group: count, sum and sum of squares.

    ``n`` may be fractional (Prometheus ``increase()`` extrapolates). Two groups'
    statistics merge with ``+``, so per-window stats can be accumulated.

    The variance comes from ``m2``, the sum of squared deviations from the mean, which
    :meth:`from_values` computes in two passes and ``+`` merges with Chan et al.'s
    update, so a large mean (1e9 + noise) keeps its variance; ``sum_sq - sum**2 / n``
    would cancel it away. Built from raw sums, ``m2`` is derived from them.
    """

    n: float
    sum: float
    sum_sq: float
    m2: float | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        values = (self.n, self.sum, self.sum_sq)
        if not all(math.isfinite(v) for v in values) or self.n < 0 or self.sum_sq < 0:
            raise DataError(
                f"MeanStats needs finite n >= 0 and sum_sq >= 0, got n={self.n}, "
                f"sum={self.sum}, sum_sq={self.sum_sq}"
            )
        # Cauchy-Schwarz: n * sum_sq >= sum**2 for real data (small slack for rounding).
        if self.n * self.sum_sq < self.sum**2 * (1 - 1e-9) - 1e-12:
            raise DataError(
                f"MeanStats is inconsistent: sum_sq={self.sum_sq} < sum**2 / n "
                f"(n={self.n}, sum={self.sum}); pass the sum of squared values"
            )
        if self.m2 is None:
            m2 = self.sum_sq - self.sum**2 / self.n if self.n > 0 else 0.0
            object.__setattr__(self, "m2", max(0.0, m2))
        elif not (math.isfinite(self.m2) and self.m2 >= 0):
            raise DataError(f"MeanStats needs a finite m2 >= 0, got {self.m2}")

    @classmethod
    def from_values(cls, values: Iterable[float]) -> MeanStats:
        """Statistics of an array of observations (NaNs are ignored)."""
        array = finite_values(values, "values")
        if not np.all(np.isfinite(array)):
            raise DataError("values must be finite (infinite observations have no mean)")
        total, squares = float(array.sum()), float(array @ array)
        if not (math.isfinite(total) and math.isfinite(squares)):
            raise DataError("values too large: their sum of squares overflows float64")
        deviations = array - total / array.size if array.size else array
        m2 = float(deviations @ deviations)
        return cls(n=float(array.size), sum=total, sum_sq=squares, m2=m2)

    @classmethod
    def from_counts(cls, successes: float, n: float) -> MeanStats:
        """Statistics of ``n`` 0/1 outcomes of which ``successes`` are 1."""
        if not 0 <= successes <= n:
            raise DataError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
        return cls(n=float(n), sum=float(successes), sum_sq=float(successes))

    def __add__(self, other: MeanStats) -> MeanStats:
        if not isinstance(other, MeanStats):
            return NotImplemented
        n = self.n + other.n
        if n == 0:
            return MeanStats(0.0, 0.0, 0.0)
        delta = other.mean - self.mean
        m2 = self.m2 + other.m2 + delta * delta * self.n * other.n / n  # type: ignore[operator]
        return MeanStats(n, self.sum + other.sum, self.sum_sq + other.sum_sq, m2=m2)

    @property
    def mean(self) -> float:
        """Sample mean (0 when there are no observations)."""
        return self.sum / self.n if self.n > 0 else 0.0

    @property
    def variance(self) -> float:
        """Sample variance with the n - 1 denominator (0 with fewer than 2 observations)."""
        if self.n < 2:
            return 0.0
        return self.m2 / (self.n - 1)  # type: ignore[operator]


@dataclass(frozen=True, kw_only=True, repr=False)
class WelchResult(StatResult):
    """Welch t test of treatment minus control (or treatment / control - 1 if relative).

    ``approximate`` is True when the test was run on block means of autocorrelated
    series (see :func:`rolloutlab.stats.welch_on_blocks`), whose block length is
    ``block_size``.
    """

    statistic: float = 0.0
    df: float = 0.0
    std_error: float = 0.0
    relative: bool = False
    n_control: float = 0.0
    n_treatment: float = 0.0
    approximate: bool = False
    block_size: int | None = None


def welch_t(
    control: MeanStats,
    treatment: MeanStats,
    *,
    alpha: float = 0.05,
    relative: bool = False,
) -> WelchResult:
    """Welch's unequal-variance t test with the Welch-Satterthwaite degrees of freedom.

    With ``relative=True`` the estimate is the lift ``mean_t / mean_c - 1`` and its
    variance comes from the delta method *including the control mean's uncertainty*
    (the GrowthBook / Eppo definition)::

        var_rel = var_t / (n_t * mu_c**2) + mu_t**2 * var_c / (n_c * mu_c**4)

    tested with the same t distribution (spotify-confidence instead divides the
    absolute interval by ``mu_c``; we do not).
    """
    if not isinstance(control, MeanStats) or not isinstance(treatment, MeanStats):
        raise DataError("welch_t takes two MeanStats (use MeanStats.from_values(array))")
    return _welch(
        (control.n, control.mean, control.variance),
        (treatment.n, treatment.mean, treatment.variance),
        alpha=alpha,
        relative=relative,
        unit="observations",
    )


def _welch(
    control: tuple[float, float, float],
    treatment: tuple[float, float, float],
    *,
    alpha: float,
    relative: bool,
    unit: str,
) -> WelchResult:
    """Welch test from ``(n, mean, variance)`` of each group."""
    alpha = check_alpha(alpha)
    (n_c, mu_c, s2_c), (n_t, mu_t, s2_t) = control, treatment
    sizes: dict[str, Any] = {"n_control": n_c, "n_treatment": n_t, "relative": relative}
    for name, n in (("control", n_c), ("treatment", n_t)):
        if n == 0:
            return WelchResult.neutral(f"no {unit} in the {name}", **sizes)
        if n < 2:
            return WelchResult.neutral(f"fewer than 2 {unit} in the {name}", **sizes)
    var_c, var_t = s2_c / n_c, s2_t / n_t
    if relative and mu_c**2 == 0:
        return WelchResult.neutral("control mean is zero: relative change undefined", **sizes)
    estimate = mu_t / mu_c - 1 if relative else mu_t - mu_c
    if var_c + var_t == 0:
        return WelchResult.neutral("zero variance in both groups", estimate=estimate, **sizes)
    # relative: var_t / mu_c^2 + mu_t^2 var_c / mu_c^4, written to avoid mu_c^4 underflow
    variance = var_t + var_c
    if relative:
        ratio = mu_t / mu_c
        variance = (var_t + (ratio * ratio * var_c if var_c else 0.0)) / mu_c**2
        if not math.isfinite(variance):
            reason = "control mean too close to zero: relative change undefined"
            return WelchResult.neutral(reason, estimate=estimate, **sizes)
    if variance == 0:  # relative, with a constant treatment at exactly 0
        reason = "treatment constant at 0: the relative change has no delta-method variance"
        return WelchResult.neutral(reason, estimate=estimate, **sizes)
    share_c, share_t = var_c / (var_c + var_t), var_t / (var_c + var_t)  # scale-free df
    df = 1 / (share_c**2 / (n_c - 1) + share_t**2 / (n_t - 1))
    std_error = math.sqrt(variance)
    statistic = estimate / std_error
    p_value = float(min(1.0, 2 * student_t.sf(abs(statistic), df)))
    half = float(student_t.ppf(1 - alpha / 2, df)) * std_error
    return WelchResult(
        estimate=estimate,
        ci=(estimate - half, estimate + half),
        p_value=p_value,
        statistic=statistic,
        df=df,
        std_error=std_error,
        **sizes,
    )
