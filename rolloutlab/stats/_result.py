"""The shared result base and the input checks every statistics function uses.

Data problems (no traffic, zero variance, all values tied) never raise: they give a
*neutral* result (p-value 1, an uninformative interval) whose ``reason`` says what was
wrong, so one bad metric cannot stop a live loop. Misuse (negative counts, lengths
that differ, ``alpha`` outside (0, 1)) raises :class:`rolloutlab.errors.DataError`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from scipy.stats import norm

from rolloutlab.errors import DataError

UNBOUNDED: tuple[float, float] = (-math.inf, math.inf)


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return f"{float(value):.4g}"
    if isinstance(value, tuple) and len(value) <= 4:
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, str):
        return repr(value)
    return f"<{type(value).__name__}>"


@dataclass(frozen=True, kw_only=True, repr=False)
class StatResult:
    """Fields every test result carries (subclasses: frozen, keyword-only, ``repr=False``
    so this one-line repr is used).

    ``reason`` is None when the computation was normal; otherwise it says in plain
    words why the result is neutral (for example "no requests in the canary").
    """

    estimate: float
    ci: tuple[float, float]
    p_value: float
    reason: str | None = None

    def __repr__(self) -> str:
        shown = ["estimate", "ci", "p_value"]
        extra = [f.name for f in dataclasses.fields(self) if f.name not in (*shown, "reason")]
        parts = [f"{name}={_fmt(getattr(self, name))}" for name in (*shown, *extra[:4])]
        if self.reason is not None:
            parts.append(f"reason={self.reason!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    @classmethod
    def neutral(
        cls,
        reason: str,
        *,
        estimate: float = 0.0,
        ci: tuple[float, float] = UNBOUNDED,
        **fields: Any,
    ) -> Self:
        """The result for degenerate data: p-value 1 and an uninformative interval."""
        return cls(estimate=estimate, ci=ci, p_value=1.0, reason=reason, **fields)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python copy for JSON (tuples become lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


def check_alpha(alpha: float) -> float:
    """Return ``alpha`` as float, or raise if it is not in (0, 1)."""
    if not isinstance(alpha, int | float | np.floating) or not 0.0 < float(alpha) < 1.0:
        raise DataError(f"alpha must be a number in (0, 1), got {alpha!r}")
    return float(alpha)


def is_nan(value: object) -> bool:
    """True for a NaN number (missing data), False for anything else."""
    try:
        return math.isnan(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def check_count(value: float, name: str) -> float:
    """A finite, non-negative count or exposure (Prometheus increase() may be fractional)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise DataError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def finite_values(values: Iterable[float], name: str) -> np.ndarray:
    """A 1-D float array of observations with NaNs dropped (as Kayenta does)."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be a sequence of numbers") from None
    if array.ndim != 1:
        raise DataError(f"{name} must be 1-D, got shape {array.shape}")
    return array[~np.isnan(array)]


def two_sided_p(z: float) -> float:
    """Two-sided normal p-value, exact in the far tails."""
    return float(min(1.0, 2.0 * norm.sf(abs(z))))
