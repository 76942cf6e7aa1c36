"""Pure statistics on numbers and sufficient statistics (numpy/scipy/statsmodels only)."""

from rolloutlab.stats.means import MeanStats, WelchResult, welch_t
from rolloutlab.stats.proportions import RateRatioResult, poisson_rates, two_proportions
from rolloutlab.stats.ranks import (
    BinnedMannWhitneyResult,
    MannWhitneyResult,
    mann_whitney,
    mann_whitney_binned,
)

__all__ = [
    "BinnedMannWhitneyResult",
    "MannWhitneyResult",
    "MeanStats",
    "RateRatioResult",
    "WelchResult",
    "mann_whitney",
    "mann_whitney_binned",
    "poisson_rates",
    "two_proportions",
    "welch_t",
]
