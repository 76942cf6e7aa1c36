"""Sample ratio mismatch: does the traffic split match the configured weights?"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import beta as beta_dist
from scipy.stats import chi2

from rolloutlab.errors import DataError
from rolloutlab.stats._result import StatResult, check_alpha
from rolloutlab.stats.sequential import DirichletMultinomialTest, _last_vs_rest_ratio, _shares


@dataclass(frozen=True, kw_only=True, repr=False)
class SRMResult(StatResult):
    """Chi-square goodness of fit of observed counts against planned shares.

    ``estimate`` is how over- or under-served the last group is relative to the others,
    ``(N_last / rho_last) / (N_rest / rho_rest)`` (1 when the split is as planned), with
    an exact (Clopper-Pearson) interval.
    """

    statistic: float = 0.0
    df: int = 0
    observed_shares: tuple[float, ...] = ()
    planned_shares: tuple[float, ...] = ()


def srm(
    observed_counts: Iterable[float],
    planned_shares: Iterable[float],
    *,
    alpha: float = 0.05,
) -> SRMResult:
    """Pearson chi-square test of the observed split against the planned one.

    Shares are normalised, so weights like ``(90, 10)`` work. Eppo flags a mismatch at
    p < 0.001; ``alpha`` only sets the interval's level. Counts may be fractional.
    """
    alpha = check_alpha(alpha)
    shares = _shares(planned_shares, "planned_shares")
    counts = np.asarray(observed_counts, dtype=float)
    if counts.shape != shares.shape:
        raise DataError(
            f"need one count per planned share, got {counts.tolist()} for {shares.tolist()}"
        )
    fields: dict[str, Any] = {"df": shares.size - 1, "planned_shares": tuple(shares.tolist())}
    if np.any(np.isnan(counts)):
        return SRMResult.neutral("counts contain NaN", estimate=1.0, ci=(0.0, math.inf), **fields)
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise DataError(f"counts must be finite and >= 0, got {counts.tolist()}")
    total = counts.sum()
    if total == 0:
        return SRMResult.neutral("no traffic", estimate=1.0, ci=(0.0, math.inf), **fields)
    expected = total * shares
    statistic = float(np.sum((counts - expected) ** 2 / expected))
    last = counts[-1]
    odds = (1 - shares[-1]) / shares[-1]  # maps a share s of the last group to the ratio
    low_s = beta_dist.ppf(alpha / 2, last, total - last + 1) if last > 0 else 0.0
    high_s = beta_dist.ppf(1 - alpha / 2, last + 1, total - last) if last < total else 1.0
    ci = (
        float(low_s / (1 - low_s) * odds),
        float(high_s / (1 - high_s) * odds) if high_s < 1 else math.inf,
    )
    return SRMResult(
        estimate=_last_vs_rest_ratio(counts, shares),
        ci=ci,
        p_value=float(chi2.sf(statistic, fields["df"])),
        statistic=statistic,
        observed_shares=tuple((counts / total).tolist()),
        **fields,
    )


class SequentialSRM(DirichletMultinomialTest):
    """Live sample-ratio check: the Dirichlet-multinomial test on assignment counts.

    Feed each tick's new requests (or users) per group with ``update``; the p-value is
    valid however often you look. The default concentration ``k = 10000`` (GrowthBook's)
    makes the test sensitive to small share deviations, which SRM is about.
    """

    def __init__(
        self, planned_shares: Iterable[float], *, alpha: float = 0.001, k: float = 10_000.0
    ):
        super().__init__(planned_shares, alpha=alpha, k=k)
