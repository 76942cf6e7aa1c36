"""How long must an experiment run? Sample size and calendar days from a baseline.

The baseline recording (the current product, before the experiment) gives the goal's
rate, its variance per unit and the units per day. The variance is the binomial (or
Poisson) one scaled by the day-to-day overdispersion (batch means over daily buckets,
the delta method for the ratio; needs at least ``MIN_DAYS`` days, else the textbook
variance, and the plan says which). Then, per treatment arm against the control:

* fixed horizon: statsmodels' ``NormalIndPower`` for a two-sided test at ``alpha``
  divided over the treatment arms (Bonferroni, a conservative stand-in for Holm);
* sequential: the size where the asymptotic confidence sequence (the one
  ``experiment()`` reads every day) has the same power, from a fixed point: its
  half-width grows like ``sqrt(log n)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import norm
from statsmodels.stats.power import NormalIndPower

from rolloutlab import _html, frames
from rolloutlab.errors import DataError, SpecError
from rolloutlab.sources.recording import Recording, load
from rolloutlab.specs import MetricSpec
from rolloutlab.stats.arrays import batch_means_variance, cs_half_width
from rolloutlab.stats.sequential import asymptotic_rho2

#: Days of baseline the overdispersion needs before it is used.
MIN_DAYS = 7
DAY_S = 86_400.0


@dataclass(frozen=True)
class Plan:
    """Units per arm and calendar days for a relative ``mde``, fixed and sequential."""

    metric: str
    baseline_rate: float
    sd_per_unit: float
    dispersion: float
    variance: str
    units_per_day: float
    mde: float
    alpha: float
    power: float
    arms: int
    traffic_share: float
    n_per_arm_fixed: float
    n_per_arm_sequential: float
    days_fixed: float
    days_sequential: float

    def summary(self) -> str:
        """The plan in two sentences."""
        return (
            f"To see a {self.mde:.1%} relative change in {self.metric} (now "
            f"{self.baseline_rate:.3%}) with {self.power:.0%} power at {self.alpha:.0%} "
            f"significance, each of the {self.arms} arms needs {self.n_per_arm_fixed:,.0f} "
            f"units read once at the end (about {self.days_fixed:.1f} days at "
            f"{self.units_per_day * self.traffic_share:,.0f} units/day in the experiment), or "
            f"{self.n_per_arm_sequential:,.0f} units (about {self.days_sequential:.1f} days) "
            "if you read the results every day. Variance: "
            f"{self.variance}."
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary()}

    def __repr__(self) -> str:
        return (
            f"<Plan {self.metric} mde={self.mde:.1%}: {self.days_fixed:.1f} days fixed, "
            f"{self.days_sequential:.1f} days sequential>"
        )

    @_html.never_raises
    def _repr_html_(self) -> str:
        facts = _html.kv_table(
            {
                "plan": self.summary(),
                "units per arm (read once)": _html.num(self.n_per_arm_fixed),
                "units per arm (read daily)": _html.num(self.n_per_arm_sequential),
                "baseline": f"{_html.percent(self.baseline_rate, 3)} "
                f"({_html.num(self.units_per_day)} units/day)",
            }
        )
        return _html.card(f"experiment plan: {_html.esc(self.metric)}", facts)


def plan(
    baseline: Recording | str | Path,
    mde: float = 0.02,
    *,
    metric: MetricSpec | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    arms: int = 2,
    traffic_share: float = 1.0,
    n_star: float = 5000.0,
) -> Plan:
    """Plan an experiment on ``baseline`` for a relative minimum detectable effect ``mde``.

    ``metric``: the goal (default conversions/visitors); ``arms``: all arms, control
    included, with equal shares; ``traffic_share``: the part of the traffic that enters
    the experiment. See the module for the method.
    """
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise SpecError(f"alpha={alpha!r} and power={power!r} must be in (0, 1).")
    if not mde > 0 or arms < 2 or not 0 < traffic_share <= 1:
        raise SpecError(
            f"need mde > 0 (e.g. 0.02 for 2%), arms >= 2 and 0 < traffic_share <= 1; got "
            f"mde={mde!r}, arms={arms!r}, traffic_share={traffic_share!r}."
        )
    recording = baseline if isinstance(baseline, Recording) else load(baseline)
    goal = metric or MetricSpec("conversion", "ratio", "conversions", "visitors")
    if goal.denominator is None:
        raise SpecError(f"metric {goal.name!r} needs a denominator, e.g. 'visitors'.")
    frame = recording.frame
    times = frames.time_buckets(frame, DAY_S)
    counts = frames.counter_buckets(
        frame, [goal.metric, goal.denominator], sorted(set(frame["variant"])), times, bucket_s=DAY_S
    ).sum(axis=1)  # all variants of the baseline together, per day
    events, exposure = counts
    start, end = recording.start, recording.end
    if start is None or end is None or exposure.sum() <= 0 or events.sum() <= 0:
        raise DataError(
            f"the baseline has no {goal.metric}/{goal.denominator} counts; record a period "
            "of the current product with both counters."
        )
    rate = events.sum() / exposure.sum()
    base = rate * (1 - rate) if goal.kind == "ratio" and rate <= 1 else rate
    per_unit, dof = batch_means_variance(events, exposure)
    if dof[-1] + 1 >= MIN_DAYS and np.isfinite(per_unit[-1]):
        dispersion = max(1.0, float(per_unit[-1]) / base)
        note = f"batch means over {dof[-1] + 1} daily buckets (x{dispersion:.2f} the textbook)"
    else:
        dispersion, note = 1.0, f"binomial/poisson (fewer than {MIN_DAYS} days of baseline)"
    sd = math.sqrt(base * dispersion)
    span_s = (end - start).total_seconds() + (recording.step_s or 0.0)
    units_per_day = exposure.sum() / max(span_s / DAY_S, 1e-9)

    level = alpha / (arms - 1)
    effect = mde * rate / sd
    n_fixed = float(NormalIndPower().solve_power(effect, alpha=level, power=power, ratio=1.0))
    z_power = norm.ppf(power)
    rho2 = asymptotic_rho2(alpha, n_star)
    total = 2 * n_fixed
    for _ in range(50):  # (half-width in SEs + z_power) * SE(n) = mde: a fixed point in n
        ratio = (float(cs_half_width(np.asarray(total), level, rho2)) + z_power) / (
            norm.isf(level / 2) + z_power
        )
        total = 2 * n_fixed * ratio**2
    n_seq = total / 2
    daily = units_per_day * traffic_share / arms  # per arm
    return Plan(
        metric=goal.name,
        baseline_rate=float(rate),
        sd_per_unit=sd,
        dispersion=dispersion,
        variance=note,
        units_per_day=float(units_per_day),
        mde=mde,
        alpha=alpha,
        power=power,
        arms=arms,
        traffic_share=traffic_share,
        n_per_arm_fixed=math.ceil(n_fixed),
        n_per_arm_sequential=math.ceil(n_seq),
        days_fixed=n_fixed / daily,
        days_sequential=n_seq / daily,
    )
