"""Pure statistics on numbers and sufficient statistics (numpy/scipy/statsmodels only).

Test results are frozen dataclasses with ``estimate``, ``ci``, ``p_value`` and a
``reason`` that is None unless the data were degenerate (then the result is neutral:
p-value 1, uninformative interval). Misuse raises :class:`rolloutlab.errors.DataError`.
"""

from rolloutlab.stats._result import StatResult
from rolloutlab.stats.autocorr import (
    Autocorrelation,
    block_means,
    integrated_autocorr_time,
    welch_on_blocks,
)
from rolloutlab.stats.group_sequential import (
    Boundaries,
    GroupSequentialState,
    GroupSequentialTest,
    spending_boundaries,
)
from rolloutlab.stats.means import MeanStats, WelchResult, welch_t
from rolloutlab.stats.multiple import Adjusted, adjust
from rolloutlab.stats.power import (
    MDE,
    SampleSize,
    TimeToDecision,
    mde_means,
    mde_proportions,
    minutes_to_evidence,
    sample_size_means,
    sample_size_proportions,
    time_to_decision,
)
from rolloutlab.stats.proportions import RateRatioResult, poisson_rates, two_proportions
from rolloutlab.stats.ranks import (
    BinnedMannWhitneyResult,
    MannWhitneyResult,
    mann_whitney,
    mann_whitney_binned,
)
from rolloutlab.stats.sequential import (
    MSPRT,
    AsymptoticCS,
    DirichletMultinomialTest,
    PoissonRatioBatch,
    PoissonRatioSequential,
    SequentialState,
    TickContrast,
    TickDispersion,
)
from rolloutlab.stats.srm import SequentialSRM, SRMResult, srm

__all__ = [
    "MDE",
    "MSPRT",
    "Adjusted",
    "AsymptoticCS",
    "Autocorrelation",
    "BinnedMannWhitneyResult",
    "Boundaries",
    "DirichletMultinomialTest",
    "GroupSequentialState",
    "GroupSequentialTest",
    "MannWhitneyResult",
    "MeanStats",
    "PoissonRatioBatch",
    "PoissonRatioSequential",
    "RateRatioResult",
    "SRMResult",
    "SampleSize",
    "SequentialSRM",
    "SequentialState",
    "StatResult",
    "TickContrast",
    "TickDispersion",
    "TimeToDecision",
    "WelchResult",
    "adjust",
    "block_means",
    "integrated_autocorr_time",
    "mann_whitney",
    "mann_whitney_binned",
    "mde_means",
    "mde_proportions",
    "minutes_to_evidence",
    "poisson_rates",
    "sample_size_means",
    "sample_size_proportions",
    "spending_boundaries",
    "srm",
    "time_to_decision",
    "two_proportions",
    "welch_on_blocks",
    "welch_t",
]
