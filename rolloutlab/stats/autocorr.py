"""Autocorrelated series (scrape points of a level, e.g. a latency quantile or CPU).

Treating autocorrelated points as independent inflates false alarms: the variance of a
mean is multiplied by the integrated autocorrelation time ``tau = 1 + 2 sum rho_k``.
The remedy here: average non-overlapping blocks of several ``tau`` points (``tau``
estimated on the control) and compare the block means; the result is approximate.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rolloutlab.errors import DataError
from rolloutlab.stats._result import finite_values
from rolloutlab.stats.means import MeanStats, WelchResult, welch_t


@dataclass(frozen=True)
class Autocorrelation:
    """Integrated autocorrelation time of a series.

    ``tau`` is also the variance inflation factor of the series mean; ``lags`` is the
    number of autocorrelations summed. ``reason`` is set when the series was too short
    or constant to estimate anything (then ``tau = 1``).
    """

    tau: float
    lags: int
    n: int
    reason: str | None = None


def integrated_autocorr_time(values: Iterable[float]) -> Autocorrelation:
    """``tau = 1 + 2 sum rho_k`` by Geyer's initial positive sequence estimator.

    Sums the autocorrelations in pairs ``rho_2m + rho_2m+1`` while the pair sums stay
    positive (they are positive for any reversible process), which stops before the
    noisy tail. Autocorrelations come from the FFT of the demeaned series (NaNs
    dropped). Short series still underestimate ``tau`` somewhat (about 8.5 for a true 9
    with 180 points of AR(1) phi = 0.8).
    """
    x = finite_values(values, "values")
    n = x.size
    if n < 4:
        return Autocorrelation(tau=1.0, lags=0, n=n, reason="fewer than 4 points")
    x = x - x.mean()
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(x, size)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), size)[:n]
    if acov[0] <= 0:
        return Autocorrelation(tau=1.0, lags=0, n=n, reason="constant series")
    rho = acov / acov[0]
    pairs = rho[: n - n % 2].reshape(-1, 2).sum(axis=1)  # (rho_0 + rho_1), (rho_2 + rho_3), ...
    stop = int(np.argmax(pairs <= 0)) if np.any(pairs <= 0) else pairs.size
    tau = 2 * float(pairs[:stop].sum()) - 1
    return Autocorrelation(tau=max(tau, 1.0 / n), lags=2 * stop - 1, n=n)


def block_means(values: Iterable[float], block: int) -> np.ndarray:
    """Means of consecutive non-overlapping blocks of ``block`` points (tail dropped)."""
    if not isinstance(block, int | np.integer) or block < 1:
        raise DataError(f"block must be a positive integer, got {block!r}")
    x = finite_values(values, "values")
    whole = x.size // block
    return x[: whole * block].reshape(whole, block).mean(axis=1)


def welch_on_blocks(
    control: Iterable[float],
    treatment: Iterable[float],
    *,
    alpha: float = 0.05,
    relative: bool = False,
    block_factor: float = 4.0,
) -> WelchResult:
    """Welch's t test on block means sized from the control's autocorrelation time.

    The block length is ``ceil(block_factor * tau)`` with ``tau`` from
    :func:`integrated_autocorr_time` on the control series; both series are cut into
    blocks of that length and their block means compared with :func:`welch_t`. The
    result has ``approximate=True`` and its ``block_size``.

    Why 4 tau and not 2: adjacent block means stay correlated and short series
    underestimate ``tau``. Simulated A/A on 180-point AR(1) series at alpha = 0.05:
    phi = 0.8 rejects 9.4 % with 2 tau, 6.1 % with 4 tau (6000 runs), 5.4 % with 5 tau;
    phi = 0.5 8.3 % vs about 6.5 %; naive Welch on the raw points rejects about 50 % at
    phi = 0.8. Larger factors cost power (a 1 sd shift at phi = 0.8: 73 % with 4 tau,
    66 % with 5 tau).
    """
    if not (math.isfinite(block_factor) and block_factor >= 2):
        raise DataError(f"block_factor must be >= 2, got {block_factor!r}")
    c = finite_values(control, "control")
    t = finite_values(treatment, "treatment")
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(t))):
        return WelchResult.neutral(
            "infinite values in a series", relative=relative, approximate=True
        )
    block = max(1, math.ceil(block_factor * integrated_autocorr_time(c).tau))
    mark: dict[str, Any] = {"approximate": True, "block_size": block}
    if min(c.size, t.size) < 2 * block:
        return WelchResult.neutral(
            f"series too short for two blocks of {block} points", relative=relative, **mark
        )
    result = welch_t(
        MeanStats.from_values(block_means(c, block)),
        MeanStats.from_values(block_means(t, block)),
        alpha=alpha,
        relative=relative,
    )
    return dataclasses.replace(result, **mark)
