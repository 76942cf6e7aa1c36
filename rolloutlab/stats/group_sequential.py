"""Group-sequential boundaries with Lan-DeMets alpha spending.

The most powerful sequential design when the maximum sample size is known (Spotify's
choice). The z statistics at the looks are a Brownian motion in the information
fraction ``t``; boundaries are found look by look so that the probability of first
crossing at look ``k`` under H0 equals ``alpha(t_k) - alpha(t_{k-1})``, by recursive
numerical integration of the continuation density (Armitage, McPherson & Rowe 1969).

Spending functions (Lan & DeMets 1983), applied per side: for ``sides=2`` each side
spends ``alpha / 2`` (gsDesign, ldbounds and rpact do the same):

- ``"obrien-fleming"``: ``a(t) = 2 - 2 Phi(z_{a/2} / sqrt(t))`` for side level ``a``;
- ``"pocock"``: ``a(t) = a log(1 + (e - 1) t)``.

These are the *spending-function approximations*, not the classical boundaries: with
five equal looks at alpha = 0.05 two-sided, classical O'Brien-Fleming is 4.562, 3.226,
2.634, 2.281, 2.040 and classical Pocock 2.413 throughout, while the spending versions
give about 4.88, 3.36, 2.68, 2.29, 2.03 and 2.44, 2.43, 2.41, 2.40, 2.39.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm

from rolloutlab.errors import DataError
from rolloutlab.stats._result import StatResult, check_alpha

Spending = Literal["obrien-fleming", "pocock"]
_NODES = 601  # odd, for Simpson's rule over the continuation region
_FAR = 10.0  # one-sided designs: integrate down to -10 sd


def spent_alpha(t: float, *, alpha: float, spending: Spending, sides: int) -> float:
    """Cumulative type I error (both sides together) spent by information fraction ``t``."""
    t = min(max(t, 0.0), 1.0)
    side = alpha / sides
    if t == 0:
        return 0.0
    if spending == "obrien-fleming":
        per_side = 2 * norm.sf(norm.isf(side / 2) / math.sqrt(t))
    else:
        per_side = side * math.log(1 + (math.e - 1) * t)
    return float(sides * per_side)


def _simpson_weights(n: int, width: float) -> np.ndarray:
    weights = np.ones(n)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return weights * width / (3 * (n - 1))


class _Recursion:
    """Sub-density of S_k = Z_k sqrt(t_k) on the continuation region, look by look."""

    def __init__(self, sides: int):
        self.sides = sides
        self.t = 0.0
        self.nodes: np.ndarray | None = None  # None before the first look: S_0 = 0
        self.mass: np.ndarray | None = None  # density * Simpson weight at the nodes

    def exceed(self, t: float, z: float) -> float:
        """P(no crossing before, and Z_t beyond +-z (or above z if one-sided)) under H0."""
        scale = math.sqrt(t - self.t)
        b = z * math.sqrt(t)
        if self.nodes is None:
            upper = norm.sf(b / scale)
            lower = norm.cdf(-b / scale)
        else:
            upper = self.mass @ norm.sf((b - self.nodes) / scale)
            lower = self.mass @ norm.cdf((-b - self.nodes) / scale)
        return float(upper + (lower if self.sides == 2 else 0.0))

    def boundary(self, t: float, target: float) -> float:
        """The z boundary at fraction ``t`` whose first-crossing probability is ``target``."""
        if target <= 0:
            return math.inf
        if self.exceed(t, 0.0) <= target:
            return 0.0
        return float(brentq(lambda z: self.exceed(t, z) - target, 0.0, 40.0, xtol=1e-10))

    def advance(self, t: float, z: float) -> None:
        """Move to look ``t`` with boundary ``z``: keep the density that did not cross."""
        scale = math.sqrt(t - self.t)
        b = min(z, 40.0) * math.sqrt(t)
        low = -b if self.sides == 2 else -_FAR * math.sqrt(t)
        nodes = np.linspace(low, b, _NODES)
        if self.nodes is None:
            density = norm.pdf(nodes / scale) / scale
        else:
            density = self.mass @ (norm.pdf((nodes[None, :] - self.nodes[:, None]) / scale) / scale)
        self.nodes, self.mass = nodes, density * _simpson_weights(_NODES, b - low)
        self.t = t


def _fractions(information_fractions: Iterable[float]) -> tuple[float, ...]:
    fractions = tuple(float(t) for t in information_fractions)
    if not fractions or any(not 0 < t <= 1 for t in fractions):
        raise DataError(f"information fractions must be in (0, 1], got {fractions}")
    if any(b <= a for a, b in zip(fractions, fractions[1:], strict=False)):
        raise DataError(f"information fractions must increase strictly, got {fractions}")
    return fractions


def _check_design(alpha: float, spending: str, sides: int) -> float:
    if spending not in ("obrien-fleming", "pocock"):
        raise DataError(f"spending must be 'obrien-fleming' or 'pocock', not {spending!r}")
    if sides not in (1, 2):
        raise DataError(f"sides must be 1 or 2, not {sides!r}")
    return check_alpha(alpha)


@dataclass(frozen=True)
class Boundaries:
    """Efficacy boundaries on the z scale at each look (reject when |z| >= z_k)."""

    information_fractions: tuple[float, ...]
    z: tuple[float, ...]
    cumulative_alpha: tuple[float, ...]
    nominal_p: tuple[float, ...]
    alpha: float
    spending: Spending
    sides: int


def spending_boundaries(
    information_fractions: Iterable[float],
    *,
    alpha: float = 0.05,
    spending: Spending = "obrien-fleming",
    sides: int = 2,
) -> Boundaries:
    """Lan-DeMets boundaries for looks at the given information fractions.

    ``nominal_p`` is the fixed-sample p-value threshold at each look (two-sided for
    ``sides=2``). The last fraction is usually 1; if it is less, the remaining alpha is
    simply not spent.
    """
    alpha = _check_design(alpha, spending, sides)
    fractions = _fractions(information_fractions)
    recursion = _Recursion(sides)
    z_values, cumulative = [], []
    previous = 0.0
    for t in fractions:
        spent = spent_alpha(t, alpha=alpha, spending=spending, sides=sides)
        z = recursion.boundary(t, spent - previous)
        recursion.advance(t, z)
        z_values.append(z)
        cumulative.append(spent)
        previous = spent
    nominal = tuple(float(sides * norm.sf(z)) for z in z_values)
    return Boundaries(
        fractions, tuple(z_values), tuple(cumulative), nominal, alpha, spending, sides
    )


@dataclass(frozen=True, kw_only=True, repr=False)
class GroupSequentialState(StatResult):
    """Result at a look of a group-sequential test.

    ``estimate`` is the look's z statistic, ``ci`` the repeated confidence interval on
    the z scale (``z -+ boundary``; multiply by the standard error for effect units),
    ``p_value`` the stage-wise ordering p-value (it is <= alpha exactly when a boundary
    was crossed).
    """

    reject: bool = False
    look: int = 0
    information_fraction: float = 0.0
    boundary: float = math.inf


class GroupSequentialTest:
    """Consume z statistics at (possibly unplanned) information fractions; stop on crossing.

    The boundary of each look is computed when it happens, from the actual fractions of
    the looks so far (the flexibility spending functions exist for). After a crossing
    the test has stopped and further updates return the final state.
    """

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        spending: Spending = "obrien-fleming",
        sides: int = 2,
    ):
        self.alpha = _check_design(alpha, spending, sides)
        self.spending: Spending = spending
        self.sides = sides
        self._recursion = _Recursion(sides)
        self._spent = 0.0
        self._look = 0
        self._last: GroupSequentialState | None = None

    def update(self, z: float, information_fraction: float) -> GroupSequentialState:
        """Test the z statistic of a look at this information fraction (in (0, 1])."""
        if self._last is not None and self._last.reject:
            return self._last
        (t,) = _fractions([information_fraction])
        if t <= self._recursion.t:
            raise DataError(f"information fraction {t} does not exceed the last look's")
        if not math.isfinite(z):
            raise DataError(f"z must be a finite number, got {z!r}")
        spent = spent_alpha(t, alpha=self.alpha, spending=self.spending, sides=self.sides)
        recursion = self._recursion
        boundary = recursion.boundary(t, spent - self._spent)
        statistic = abs(z) if self.sides == 2 else z
        reject = statistic >= boundary
        p_value = self._spent + recursion.exceed(t, statistic)
        recursion.advance(t, boundary)
        self._spent, self._look = spent, self._look + 1
        ci = (z - boundary, z + boundary) if self.sides == 2 else (z - boundary, math.inf)
        self._last = GroupSequentialState(
            estimate=float(z),
            ci=ci,
            p_value=float(min(1.0, p_value)),
            reject=bool(reject),
            look=self._look,
            information_fraction=t,
            boundary=boundary,
        )
        return self._last
