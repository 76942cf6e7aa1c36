"""Multiple-comparison adjustment of p-values (many metrics, many variants)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rolloutlab.errors import DataError
from rolloutlab.stats._result import check_alpha

Method = Literal["holm", "bh", "bonferroni"]


@dataclass(frozen=True)
class Adjusted:
    """Adjusted p-values in the input order and which hypotheses are rejected at alpha."""

    p_values: tuple[float, ...]
    reject: tuple[bool, ...]
    method: Method
    alpha: float

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        """``np.asarray(adjust(p))`` is the array of adjusted p-values."""
        return np.asarray(self.p_values, dtype=dtype)


def adjust(p_values: Iterable[float], method: Method = "holm", *, alpha: float = 0.05) -> Adjusted:
    """Holm (family-wise error), Benjamini-Hochberg (false discovery rate) or Bonferroni.

    Note statsmodels' ``multipletests`` defaults to Holm-Sidak; ``"holm"`` here is
    plain Holm (``multipletests(method="holm")``), ``"bh"`` is ``"fdr_bh"``.
    """
    alpha = check_alpha(alpha)
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise DataError(f"p-values must be a 1-D sequence of numbers in [0, 1], got {p.tolist()}")
    m = p.size
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "bonferroni":
        adjusted = np.minimum(1.0, p * m)
    elif method == "holm":
        steps = np.maximum.accumulate((m - np.arange(m)) * ranked)
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(1.0, steps)
    elif method == "bh":
        steps = np.minimum.accumulate(m / np.arange(m, 0, -1) * ranked[::-1])[::-1]
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(1.0, steps)
    else:
        raise DataError(f"method must be 'holm', 'bh' or 'bonferroni', not {method!r}")
    return Adjusted(
        p_values=tuple(adjusted.tolist()),
        reject=tuple(bool(v) for v in adjusted <= alpha),
        method=method,
        alpha=alpha,
    )
