"""Flagger's analysis, replayed on a recording: static thresholds on the canary alone.

Each tick follows Flagger's controller (``advanceCanary`` in ``pkg/controller/scheduler.go``)
in its order:

1. rollback if ``failedChecks >= threshold`` (counted on earlier ticks);
2. run the checks on the canary's data over each metric's lookback ``[t_k - interval, t_k]``,
   stopping at the first failure, which adds one to ``failedChecks`` (never reset);
3. after a passing tick: below ``maxWeight`` add a step, at or past it promote.

The weight in force during a tick is the plan's weight, advanced one step per passing tick
(``Spec.weight_plan()``). Flagger's first tick (weight 0, no checks, weight set to the
first step) is the start of the recording, so tick 0 already runs at the first step. The
promotion is reported at the tick whose checks pass while the weight in force is the
last step of the plan (at or past ``maxWeight``): that is where Flagger's controller calls
``Promote`` and enters the ``Promoting`` phase. With ``threshold`` T and every check
failing, the rollback comes at tick T, ``T x interval`` after the first failure; a healthy
plan of n steps promotes at tick n - 1, ``n x interval`` after the start.

Which series: the recording's ``requests``/``errors`` and ``latency_ms`` are the series
Flagger's observer for the provider reads (see :mod:`rolloutlab.sources.presets`). Flagger's
request-duration is the p99 of the latency histogram, except for the providers whose
observer takes the mean (``_sum / _count``: nginx, skipper), whose presets also fetch
``latency_ms_sum``; a recording holding it is judged on the mean, as Flagger does. Flagger
truncates the request-duration and its bounds to whole milliseconds before comparing them
(``time.Duration`` of an ``int64``), so a p99 of 500.9 ms passes a max of 500.

``iterations`` replays A/B testing (``abTesting``: promotion at the ``iterations``-th
passing check) and blue/green (one more check, while all traffic is switched to the
canary; with ``provider: kubernetes`` there is no router, so the canary's weight stays 0). Webhooks and the confirm-* gates are not replayed: a replay has nothing to call.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from rolloutlab.frames import TickTable
from rolloutlab.judges.base import Judge
from rolloutlab.judges.verdict import Decision, MetricResult, TickState
from rolloutlab.sources.presets import LATENCY_SUM
from rolloutlab.specs import MetricSpec, Spec
from rolloutlab.specs.flagger import FLAGGER_KUBERNETES_PROVIDER, FLAGGER_TEMPLATE

Phase = Literal["Progressing", "Promoting", "Failed"]


def histogram_quantile(q: float, edges: np.ndarray, counts: np.ndarray) -> float | np.ndarray:
    """Prometheus' ``histogram_quantile`` on non-cumulative bucket counts.

    ``edges`` are the sorted upper bounds (the last must be +Inf), ``counts`` the
    observations per bucket (a vector, or one row per tick). As Prometheus'
    ``bucketQuantile``: linear interpolation inside the bucket holding rank ``q * total``,
    with 0 as the lower bound of the first bucket (or its upper bound when that is <= 0);
    the upper bound of the last finite bucket when the rank falls in +Inf; NaN with no
    observations, fewer than two buckets or no +Inf bucket.
    """
    edges = np.asarray(edges, dtype=float)
    counts = np.asarray(counts, dtype=float)
    shape = counts.shape[:-1]
    if math.isnan(q):
        return _shaped(np.nan, shape)
    if q < 0 or q > 1:
        return _shaped(math.copysign(math.inf, q), shape)
    if edges.size < 2 or not np.isposinf(edges[-1]):
        return _shaped(np.nan, shape)
    cumulative = np.cumsum(counts, axis=-1)
    before = np.concatenate([np.zeros((*shape, 1)), cumulative[..., :-1]], axis=-1)
    total = cumulative[..., -1]
    rank = np.asarray(q * total)
    # the first bucket among all but +Inf whose cumulative count reaches the rank
    b = np.sum(cumulative[..., :-1] < rank[..., None], axis=-1)
    last = edges.size - 1
    inner = np.minimum(b, last - 1)[..., None]
    below = np.take_along_axis(before, inner, -1)[..., 0]
    reached = np.take_along_axis(cumulative, inner, -1)[..., 0]
    start = np.concatenate([[0.0], edges[:-1]])[inner[..., 0]]
    end = edges[inner[..., 0]]
    with np.errstate(invalid="ignore", divide="ignore"):
        value = start + (end - start) * (rank - below) / (reached - below)
    value = np.where((b == 0) & (edges[0] <= 0), edges[0], value)
    value = np.where(b == last, edges[last - 1], value)
    value = np.where(total > 0, value, np.nan)
    return float(value) if value.ndim == 0 else value


def _shaped(value: float, shape: tuple[int, ...]) -> float | np.ndarray:
    return value if not shape else np.full(shape, value)


def lookback_ticks(metric: MetricSpec, table: TickTable, k: int) -> slice:
    """The ticks covering ``[t_k - metric.interval, t_k]`` (at least tick ``k`` itself)."""
    n = max(1, math.ceil(metric.interval_s / table.interval_s - 1e-9))
    return slice(max(0, k - n + 1), k + 1)


def flagger_value(metric: MetricSpec, table: TickTable, variant: str, k: int) -> float:
    """The value Flagger's check sees at tick ``k`` (NaN is Flagger's "no values found").

    ratio: the success rate in percent, ``100 (1 - metric/denominator)`` over the lookback
    (Flagger's request-success-rate); latency: ``histogram_quantile`` of the summed buckets,
    or the mean when the recording holds ``<metric>_sum`` (Flagger's request-duration for
    nginx and skipper), in ms truncated to a whole ms as Flagger does; gauge: the last
    value in tick ``k`` (a template query's result recorded as a series: Flagger runs the
    query at the check, whose own range covers the lookback, so a value of an earlier tick
    is stale and none in tick ``k`` is "no values"); counter: the increase over the
    lookback, per unit of ``denominator`` when it has one.
    """
    window = lookback_ticks(metric, table, k)
    if metric.kind == "latency":
        if metric.metric not in table.edges:
            return math.nan
        buckets = table.histogram(metric.metric, variant)[window].sum(axis=0)
        if is_mean_duration(metric, table):
            total_ms = float(table.counter(_sum_of(metric), variant)[window].sum())
            count = float(buckets.sum())
            value = total_ms / count if count > 0 else math.nan
        else:
            value = float(histogram_quantile(metric.quantile, table.edges[metric.metric], buckets))
        return _whole_ms(float(value)) if _is_duration(metric) else float(value)
    if metric.kind == "gauge":
        ticks, values = table.gauges.get(metric.metric, {}).get(variant, (np.array([]), []))
        inside = ticks == k
        return float(np.asarray(values)[inside][-1]) if inside.any() else math.nan
    total = float(table.counter(metric.metric, variant)[window].sum())
    if metric.denominator is None:
        return total
    exposure = float(table.counter(metric.denominator, variant)[window].sum())
    if exposure <= 0:
        return math.nan
    return 100.0 * (1.0 - total / exposure) if metric.kind == "ratio" else total / exposure


def is_mean_duration(metric: MetricSpec, table: TickTable) -> bool:
    """True when Flagger's value of this latency metric is the mean, not a quantile: a
    built-in request-duration whose recording holds the histogram's sum (``latency_ms_sum``,
    fetched by the presets of providers whose observer divides ``_sum`` by ``_count``)."""
    return _is_duration(metric) and _sum_of(metric) in table.counters


def _is_duration(metric: MetricSpec) -> bool:
    """A built-in request-duration: a latency histogram Flagger's observer reads itself."""
    return metric.kind == "latency" and metric.template is None


def _from_template(metric: MetricSpec) -> bool:
    """A metric Flagger reads through a MetricTemplate (checked after the others)."""
    return (metric.template or "").startswith(FLAGGER_TEMPLATE)


def _sum_of(metric: MetricSpec) -> str:
    return LATENCY_SUM if metric.metric == "latency_ms" else f"{metric.metric}_sum"


def _whole_ms(value: float) -> float:
    """Flagger's ``time.Duration(int64(ms)) * time.Millisecond``: truncated toward zero
    (after rounding to 1e-6 ms, so float noise such as 423.99999999999 reads as 424)."""
    return float(math.trunc(round(value, 6))) if math.isfinite(value) else value


_LABELS = {"ratio": ("success rate", "%"), "latency": ("latency", " ms")}


def describe(metric: MetricSpec, value: float, *, mean: bool = False) -> str:
    """``success rate 98.7%``, ``p99 latency 612 ms``, ``cpu 0.41``: a value as people read it."""
    label, unit = _LABELS.get(metric.kind, (metric.name, ""))
    if metric.kind == "latency":
        label = f"{'mean' if mean else f'p{metric.quantile * 100:g}'} {label}"
    return f"{label} {value:.4g}{unit}"


def check(metric: MetricSpec, value: float, *, mean: bool = False) -> tuple[bool, str]:
    """Flagger's verdict on one value: outside ``[min, max]`` or NaN fails, with the reason.

    A built-in request-duration is compared with bounds truncated to whole ms, as Flagger
    does (its value is truncated by :func:`flagger_value`).
    """
    unit = _LABELS.get(metric.kind, ("", ""))[1]
    if math.isnan(value):
        where = f"; Flagger reads it from {metric.template}" if metric.template else ""
        return False, (
            f"no values found for {metric.name} (no canary data for '{metric.metric}' in the "
            f"last {metric.interval_s:g}s{where})"
        )
    low, high = metric.threshold_min, metric.threshold_max
    if _is_duration(metric):
        low, high = (None if b is None else _whole_ms(b) for b in (low, high))
    shown = describe(metric, value, mean=mean)
    if low is not None and value < low:
        return False, f"{shown} < {low:g}{unit} (min)"
    if high is not None and value > high:
        return False, f"{shown} > {high:g}{unit} (max)"
    bounds = [
        f"{name} {bound:g}{unit}"
        for name, bound in (("min", low), ("max", high))
        if bound is not None
    ]
    return True, f"{shown} within {' and '.join(bounds)}" if bounds else f"{shown} (no bounds)"


class FlaggerJudge(Judge):
    """Flagger's canary analysis, tick by tick (see the module docstring for the timing).

    ``follow_recorded_weights=True`` replays a recorded real rollout: the weight in force
    is the recording's ``weight`` gauge for the treatment instead of the plan, a tick at
    weight 0 runs no checks (Flagger skips the analysis while no traffic reaches the
    canary), and promotion needs a passing tick at a weight of at least ``maxWeight``.
    """

    name = "flagger"

    def __init__(
        self, spec: Spec, *, control: str, treatment: str, follow_recorded_weights: bool = False
    ) -> None:
        super().__init__(spec, control=control, treatment=treatment)
        self.follow_recorded_weights = follow_recorded_weights
        self.failed_checks = 0
        self.passed_checks = 0
        self._plan = spec.weight_plan()
        # Flagger checks the built-ins and inline queries first, then the templateRef
        # metrics (runBuiltinMetricChecks, then runMetricChecks)
        self._checks = sorted(spec.metrics, key=_from_template)

    @property
    def checks_to_promote(self) -> int:
        """Passing checks Flagger needs before promoting (plan steps, or iterations)."""
        if self.spec.iterations is None:
            return len(self._plan)
        return self.spec.iterations + (0 if self.spec.ab_testing else 1)

    def weight_in_force(self, table: TickTable, k: int) -> float | None:
        """The canary weight during tick ``k``: recorded, or the plan step reached so far."""
        if self.follow_recorded_weights:
            recorded = float(table.weight(self.treatment)[k])
            return None if math.isnan(recorded) else recorded
        if self.spec.provider == FLAGGER_KUBERNETES_PROVIDER:
            return 0.0  # no router: Flagger's blue/green there never routes to the canary
        if self.spec.iterations is not None:  # A/B routes matched traffic to the canary
            last = self.passed_checks + 1 == self.checks_to_promote
            return 100.0 if self.spec.ab_testing or last else 0.0
        return self._plan[min(self.passed_checks, len(self._plan) - 1)]

    def observe(self, table: TickTable, k: int) -> TickState:
        if self.decided:
            return self.history[-1]
        weight = self.weight_in_force(table, k)
        if self.failed_checks >= self.spec.threshold:
            previous = self.history[-1].metrics if self.history else ()
            return self._record(table, k, weight, "rollback", "Failed", previous)
        if self.follow_recorded_weights and not weight and self.spec.iterations is None:
            return self._record(table, k, weight, "continue", "Progressing", ())
        results = self._run_checks(table, k)
        if any(r.classification == "fail" and r.critical for r in results):
            self.failed_checks += 1
            return self._record(table, k, weight, "continue", "Progressing", results)
        self.passed_checks += 1
        if self.follow_recorded_weights and self.spec.iterations is None:
            done = weight is not None and weight >= self.spec.max_weight
        else:
            done = self.passed_checks >= self.checks_to_promote
        if done:
            return self._record(table, k, weight, "promote", "Promoting", results)
        return self._record(table, k, weight, "continue", "Progressing", results)

    def _run_checks(self, table: TickTable, k: int) -> tuple[MetricResult, ...]:
        results: list[MetricResult] = []
        failed = False
        for metric in self._checks:
            if failed:
                results.append(
                    MetricResult(
                        metric.name,
                        "inconclusive",
                        "not evaluated: Flagger stops at the first failing check",
                        critical=metric.critical_or(True),
                    )
                )
                continue
            value = flagger_value(metric, table, self.treatment, k)
            ok, reason = check(metric, value, mean=is_mean_duration(metric, table))
            # a non-critical check (an Argo dry-run metric) is shown but does not fail
            failed = not ok and metric.critical_or(True)
            results.append(
                MetricResult(
                    metric.name,
                    "pass" if ok else "fail",
                    reason,
                    estimate=None if math.isnan(value) else value,
                    unit=_LABELS.get(metric.kind, ("", ""))[1].strip(),
                    critical=metric.critical_or(True),
                    details={
                        "value": value,
                        "min": metric.threshold_min,
                        "max": metric.threshold_max,
                        "lookback_s": metric.interval_s,
                    },
                )
            )
        return tuple(results)

    def _record(
        self,
        table: TickTable,
        k: int,
        weight: float | None,
        decision: Decision,
        phase: Phase,
        results: tuple[MetricResult, ...],
    ) -> TickState:
        failing = [r.reason for r in results if r.classification == "fail" and r.critical]
        hold = None
        if decision == "continue" and failing:  # Flagger returns before stepping the weight
            hold = (
                f"failed check ({self.failed_checks} of {self.spec.threshold}): {failing[0]}; "
                "Flagger does not advance the weight after a failed check"
            )
        state = TickState(
            timestamp=table.ends[k],
            weight=weight,
            decision=decision,
            metrics=results,
            hold=hold,
            state={
                "failed_checks": self.failed_checks,
                "passed_checks": self.passed_checks,
                "weight": weight,
                "phase": phase,
            },
        )
        self.history.append(state)
        return state

    def explain(self, state: TickState) -> str:
        failed, phase = state.state["failed_checks"], state.state["phase"]
        failing = [m.reason for m in state.metrics if m.classification == "fail"]
        weight = "" if state.weight is None else f" at weight {state.weight:g}%"
        if state.decision == "rollback":
            last = f"; last failure: {failing[0]}" if failing else ""
            limit = self.spec.threshold
            return f"rollback: {failed} failed checks reached the threshold {limit}{last}"
        if state.decision == "promote":
            return f"promote: all checks passed{weight}, the end of the plan ({phase})"
        if not state.metrics:
            return f"continue: no traffic to the canary{weight}, so no checks ran"
        now = failing[0] if failing else "checks passed"
        return f"continue: {now}{weight}; {failed} of {self.spec.threshold} failed checks used"


__all__ = [
    "FlaggerJudge",
    "check",
    "describe",
    "flagger_value",
    "histogram_quantile",
    "is_mean_duration",
]
