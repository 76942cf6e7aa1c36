"""Kayenta's NetflixACAJudge, replayed on a recording: rank tests on per-step series.

A port of ``kayenta-judge`` (NetflixACAJudge-v1.0, as in the spinnaker monorepo): the
pure functions :func:`preprocess`, :func:`classify` and :func:`score` follow
``NetflixACAJudge.classifyMetric``, ``MannWhitneyClassifier`` and ``WeightedSumScorer``
line by line, and :class:`KayentaJudge` runs them on Spinnaker's judgment schedule
(:func:`judgment_times_s`, as ``SetupAndExecuteCanariesStage``).

NetflixACAJudge's defaults hold where the spec leaves a field unset (None): a metric is
judged in either direction and is not critical (:func:`metric_config`), and the whole
lifetime is one judgment unless an analysis interval (``judgment_interval_s``, Kayenta's
``analysisIntervalMins``) is given.
Deviations: the Gaussian noise Kayenta adds when each group is constant uses a fixed seed
(so a replay is reproducible) and a standard deviation of ``|value| * 1e-5``; metrics are
never muted; classification errors are rolloutlab's :class:`RolloutlabError`.

One point per variant (the first judgment of a 1-minute plan judged every minute):
Kayenta has no minimum sample size, but its interval search starts by evaluating the
rank statistic at the smallest possible shift, ``min(experiment) - max(control)``; with
one point each that shift makes the two points equal, every observation ties, and
Kayenta's Mann-Whitney throws, which NetflixACAJudge records as Error (not critical,
left out of the score). :func:`interval_undefined` reproduces that check in floating
point, so a one-point metric is Error whenever Kayenta's would be (always when the two
values are within a factor of 2 or one is 0; beyond that rounding can leave the points
apart and the zero-width interval then gives High or Low, as in Kayenta).

The series a metric gives, one value per tick of the spec's interval (set the interval
to the step you would query Kayenta with, typically 1m):

- ratio: ``metric / denominator`` per step (e.g. the error ratio); NaN without traffic;
- latency: the step's ``quantile`` (p99 by default) by ``histogram_quantile`` on the
  step's buckets, as a Kayenta user queries a quantile series; NaN without requests;
- gauge: the recorded values as they are;
- counter: the count per step, per unit of ``denominator`` when it has one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

import numpy as np
from scipy.stats import rankdata

from rolloutlab.errors import RolloutlabError
from rolloutlab.frames import TickTable
from rolloutlab.judges.base import Judge
from rolloutlab.judges.flagger import histogram_quantile
from rolloutlab.judges.verdict import Classification as Outcome
from rolloutlab.judges.verdict import Decision, MetricResult, TickState
from rolloutlab.specs.model import Direction, KayentaSettings, MetricSpec
from rolloutlab.stats import mann_whitney

Label = Literal["Pass", "High", "Low", "Nodata", "NodataFailMetric", "Error"]
ScoreClass = Literal["Pass", "Marginal", "Fail"]

#: Kayenta's labels as rolloutlab's classifications (Kayenta's label stays in details).
OUTCOMES: dict[Label, Outcome] = {
    "Pass": "pass",
    "High": "fail",
    "Low": "fail",
    "Nodata": "nodata",
    "NodataFailMetric": "nodata",
    "Error": "inconclusive",
}
#: NetflixACAJudge's defaults for a metric config without ``direction`` / ``critical``
DEFAULT_DIRECTION: Direction = "either"
DEFAULT_CRITICAL = False
NODATA_THRESHOLD = 50.0
NOISE_SCALE = 1e-5
DEFAULT_GROUP = "default"
DEFAULTS = KayentaSettings()


# -- preprocessing -----------------------------------------------------------------


def iqr_outliers(
    values: Iterable[float], factor: float = 1.5, *, reduce_sensitivity: bool = False
) -> np.ndarray:
    """Kayenta's IQRDetector: True for values beyond ``Q1 - factor IQR`` or ``Q3 + factor IQR``.

    Percentiles interpolate linearly (R type 7). ``reduce_sensitivity`` widens the fences
    to at least the 1st and 99th percentiles, as the judge uses it.
    """
    data = np.asarray(list(values), dtype=float)
    if data.size == 0:
        return np.zeros(0, dtype=bool)
    p25, p75 = np.percentile(data, [25, 75])
    lower, upper = p25 - factor * (p75 - p25), p75 + factor * (p75 - p25)
    if reduce_sensitivity:
        p01, p99 = np.percentile(data, [1, 99])
        lower, upper = min(p01, lower), max(p99, upper)
    return (data < lower) | (data > upper)


def preprocess(values: Iterable[float], settings: KayentaSettings) -> np.ndarray:
    """NaNs removed (or replaced by 0), then IQR outliers removed if the settings say so."""
    data = np.asarray(list(values), dtype=float)
    nan = np.isnan(data)
    data = data[~nan] if settings.nan_strategy == "remove" else np.where(nan, 0.0, data)
    if settings.remove_outliers:
        data = data[~iqr_outliers(data, settings.outlier_factor, reduce_sensitivity=True)]
    return data


# -- effect sizes ------------------------------------------------------------------


def mean_ratio(control: Iterable[float], experiment: Iterable[float]) -> float:
    """``mean(experiment) / mean(control)``; NaN when either mean is 0 (Kayenta's rule)."""
    c, e = float(np.mean(list(control))), float(np.mean(list(experiment)))
    return math.nan if c == 0.0 or e == 0.0 else e / c


def cles(control: Iterable[float], experiment: Iterable[float]) -> float:
    """Common-language effect size: P(experiment > control) + P(tie) / 2 (Vargha-Delaney)."""
    c, e = np.asarray(list(control), float), np.asarray(list(experiment), float)
    m, n = e.size, c.size
    r1 = float(rankdata(np.concatenate([e, c]))[:m].sum())
    return (2 * r1 - m * (m + 1)) / (2 * n * m)


# -- classification ----------------------------------------------------------------


def interval_undefined(control: np.ndarray, experiment: np.ndarray) -> bool:
    """True when Kayenta's Mann-Whitney cannot compute its interval and throws.

    Kayenta's interval search evaluates the rank statistic at both ends of the shift
    range, ``min(experiment) - max(control)`` and ``max(experiment) - min(control)``,
    ranking ``experiment - shift`` with ``control``; when every one of those values is
    the same the statistic has no variance and the test fails (NetflixACAJudge: Error).
    After the classifier's own checks this happens only with one point per variant, and
    only when ``e - (e - c)`` rounds back to exactly ``c`` (Sterbenz: always when the
    two are within a factor of 2 of each other, or one of them is 0).
    """
    c, e = np.asarray(control, float), np.asarray(experiment, float)
    for shift in (e.min() - c.max(), e.max() - c.min()):
        if np.unique(np.concatenate([e - shift, c])).size == 1:
            return True
    return False


@dataclass(frozen=True)
class Classification:
    """One metric's Kayenta label with the numbers behind it.

    ``deviation`` is the mean ratio experiment/control (NaN when a mean is 0),
    ``effect_size`` the configured measure, ``critical`` whether this result fails the
    whole canary; ``estimate``/``ci``/``p_value`` come from the Mann-Whitney test
    (experiment - control), None when no test ran.
    """

    label: Label
    reason: str | None = None
    deviation: float = 1.0
    effect_size: float = math.nan
    critical: bool = False
    estimate: float | None = None
    ci: tuple[float, float] | None = None
    p_value: float | None = None


def classify(
    control: Iterable[float],
    experiment: Iterable[float],
    settings: KayentaSettings = DEFAULTS,
    *,
    direction: Direction = "either",
    critical: bool = False,
    must_have_data: bool = False,
    name: str = "metric",
) -> Classification:
    """Kayenta's MannWhitneyClassifier on two preprocessed series.

    Mann-Whitney at ``settings.confidence``; High when the interval's lower end is above
    ``effect_size_rule * |estimate|`` and the effect size reaches ``allowed_increase``, Low
    symmetrically (an effect size that cannot be computed is ignored). A critical metric
    that is High/Low beyond ``critical_increase``/``critical_decrease``, or without data,
    fails the canary; a metric that must have data and has none is NodataFailMetric.
    When Kayenta's test cannot run (one point per variant, see :func:`interval_undefined`)
    the label is Error: not critical, and the scorer leaves it out.
    """
    c, e = np.asarray(list(control), float), np.asarray(list(experiment), float)
    if c.size == 0 or e.size == 0:
        if settings.nan_strategy == "replace":
            return Classification("Pass")
        reason: str | None = f"Missing data for {name}"
        if must_have_data and not critical:
            return Classification("NodataFailMetric", reason)
        return Classification("Nodata", reason, critical=critical)
    if np.array_equal(np.sort(e), np.sort(c)):
        return Classification("Pass", "The Canary and Baseline data are identical")
    if np.unique(np.concatenate([e, c])).size == 1:
        return Classification("Pass")
    if np.unique(e).size == 1 and np.unique(c).size == 1:  # Kayenta breaks the ties with noise
        rng = np.random.default_rng(0)
        e = e + rng.normal(0.0, abs(e[0]) * NOISE_SCALE, e.size)
        c = c + rng.normal(0.0, abs(c[0]) * NOISE_SCALE, c.size)
    if interval_undefined(c, e):  # one point per variant: Kayenta's test throws
        return Classification(
            "Error",
            "Metric Classification Failed: every observation ties at an end of the shift "
            f"range ({e.size} canary and {c.size} baseline point(s)), no interval",
            deviation=mean_ratio(c, e),
        )
    try:
        test = mann_whitney(c, e, alpha=1.0 - settings.confidence)
    except RolloutlabError as exc:
        return Classification("Error", f"Metric Classification Failed: {exc}")
    measure = cles(c, e) if settings.effect_size_measure == "cles" else mean_ratio(c, e)
    bound = settings.effect_size_rule * abs(test.estimate)
    low, high = test.ci
    is_high = (
        direction in ("increase", "either")
        and low > bound
        and (math.isnan(measure) or measure >= settings.allowed_increase)
    )
    is_low = (
        direction in ("decrease", "either")
        and high < -bound
        and (math.isnan(measure) or measure <= settings.allowed_decrease)
    )
    label: Label = "High" if is_high else "Low" if is_low else "Pass"
    fails_canary = critical and (
        (label == "High" and (math.isnan(measure) or measure >= settings.critical_increase))
        or (label == "Low" and (math.isnan(measure) or measure <= settings.critical_decrease))
    )
    reason = None
    if label != "Pass":
        reason = f"The metric {name} was classified as {label}" + (
            " (Critical)" if fails_canary else ""
        )
    return Classification(
        label,
        reason,
        deviation=mean_ratio(c, e),
        effect_size=measure,
        critical=fails_canary,
        estimate=test.estimate,
        ci=test.ci,
        p_value=test.p_value,
    )


# -- scoring -----------------------------------------------------------------------


@dataclass(frozen=True)
class MetricOutcome:
    """What the scorer needs of one metric: its label, groups, and critical failure flag."""

    label: Label
    groups: tuple[str, ...] = (DEFAULT_GROUP,)
    critical: bool = False


@dataclass(frozen=True)
class Score:
    """The summary score (0-100, rounded to 2 decimals), group scores, and why it is 0."""

    summary: float
    groups: dict[str, float]
    reason: str | None = None


def score(
    results: Sequence[MetricOutcome], group_weights: Mapping[str, float] | None = None
) -> Score:
    """Kayenta's WeightedSumScorer.

    Group score = 100 pass / (pass + high + low + nodataFail) (0 for a group with none of
    these, which counts as 100 in the summary); the summary weighs groups by
    ``group_weights`` (percent), groups without a weight sharing what is left equally.
    A critical failure, or Nodata on 50% or more of the metrics, makes the summary 0.
    """
    weights = dict(group_weights or {})
    labels: dict[str, list[Label]] = {}
    for r in results:
        for group in r.groups:
            labels.setdefault(group, []).append(r.label)
    groups: dict[str, float] = {}
    no_data: set[str] = set()
    for group, members in labels.items():
        counted = [x for x in members if x in ("Pass", "High", "Low", "NodataFailMetric")]
        groups[group] = 100.0 * counted.count("Pass") / len(counted) if counted else 0.0
        if not counted:
            no_data.add(group)
    critical = [r for r in results if r.critical and r.label != "Pass"]
    if critical:
        return Score(0.0, groups, f"Canary Failed: a critical metric is {critical[0].label}")
    nodata = sum(r.label == "Nodata" for r in results)
    if results and 100.0 * nodata / len(results) >= NODATA_THRESHOLD:
        return Score(0.0, groups, f"Canary Failed: {NODATA_THRESHOLD:g}% or more metrics NODATA")
    unweighted = [g for g in groups if g not in weights]
    share = (100.0 - sum(weights.values())) / len(unweighted) if unweighted else 0.0
    summary = sum(
        (100.0 if g in no_data else s) * weights.get(g, share) / 100 for g, s in groups.items()
    )
    rounded = float(Decimal(repr(summary)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
    return Score(rounded, groups)


def score_class(summary: float, settings: KayentaSettings) -> ScoreClass:
    """ThresholdScoreClassifier: Pass at or above the pass score, Marginal above marginal."""
    if summary >= settings.pass_score:
        return "Pass"
    return "Marginal" if summary >= settings.marginal_score else "Fail"


# -- series and the judge ----------------------------------------------------------


def step_series(metric: MetricSpec, table: TickTable, variant: str, k: int) -> np.ndarray:
    """The per-step series of ``metric`` for ``variant`` over ticks ``0..k`` (see module doc)."""
    upto = slice(0, k + 1)
    if metric.kind == "latency":
        if metric.metric not in table.edges:
            return np.array([])
        hist = table.histogram(metric.metric, variant)[upto]
        return np.asarray(histogram_quantile(metric.quantile, table.edges[metric.metric], hist))
    if metric.kind == "gauge":
        return table.gauge(metric.metric, variant, upto=k)
    counts = table.counter(metric.metric, variant)[upto]
    if metric.denominator is None:
        return counts
    exposure = table.counter(metric.denominator, variant)[upto]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(exposure > 0, counts / exposure, np.nan)


def metric_config(metric: MetricSpec) -> tuple[Direction, bool]:
    """The metric's direction and criticality; unset (None) ones are NetflixACAJudge's
    defaults: either direction, not critical."""
    direction = DEFAULT_DIRECTION if metric.direction is None else metric.direction
    critical = DEFAULT_CRITICAL if metric.critical is None else metric.critical
    return direction, critical


def judgment_times_s(lifetime_s: float, interval_s: float | None) -> tuple[float, ...]:
    """When Kayenta judges, in seconds from the start: every ``interval_s``,
    ``floor(lifetime / interval)`` times, so the last judgment may come before the end
    of the lifetime. No interval, 0 or one longer than the lifetime means a single
    judgment of the whole lifetime."""
    if not interval_s or interval_s > lifetime_s:
        interval_s = lifetime_s
    count = math.floor(lifetime_s / interval_s + 1e-9)
    return tuple(interval_s * i for i in range(1, count + 1))


def _reason(metric: MetricSpec, result: Classification) -> str:
    """Kayenta's reason (or its label) with the numbers behind it."""
    text = result.reason or f"{metric.name} was classified as {result.label}"
    if result.estimate is None or result.ci is None:
        return text
    unit = " ms" if metric.kind == "latency" else ""
    low, high = result.ci
    return (
        f"{text}: shift {result.estimate:.3g}{unit} (interval {low:.3g} to {high:.3g}), "
        f"mean ratio {result.deviation:.3g}"
    )


class KayentaJudge(Judge):
    """Kayenta's canary analysis on Spinnaker's schedule.

    Judgments run on the growing window from the start at :func:`judgment_times_s` of
    the lifetime (``lifetime_s``, default the recording's end) and the analysis interval
    (``judgment_interval_s``; unset: the whole lifetime at once). A score at or below
    the marginal score stops the canary (rollback); the last judgment promotes at or
    above the pass score and rolls back below it.
    """

    name = "kayenta"

    def observe(self, table: TickTable, k: int) -> TickState:
        if self.decided:
            return self.history[-1]
        settings = self.spec.kayenta
        elapsed = (k + 1) * table.interval_s
        lifetime = settings.lifetime_s or len(table) * table.interval_s
        times = judgment_times_s(lifetime, settings.judgment_interval_s)
        done = sum(1 for t in times if t <= elapsed + 1e-9)
        due = done > sum(1 for t in times if t <= elapsed - table.interval_s + 1e-9)
        final = done == len(times)
        weight = float(table.weight(self.treatment)[k])
        weight_or_none = None if math.isnan(weight) else weight
        if not due:
            last = self.history[-1] if self.history else None
            state = TickState(
                table.ends[k],
                weight_or_none,
                "continue",
                last.metrics if last else (),
                {**(last.state if last else {"score": None}), "judged": False},
            )
            self.history.append(state)
            return state
        results = tuple(self._judge_metric(m, table, k) for m in self.spec.metrics)
        outcomes = [
            MetricOutcome(r.details["label"], r.details["groups"], r.details["fails_canary"])
            for r in results
        ]
        total = score(outcomes, dict(settings.group_weights))
        decision: Decision = "continue"
        if total.summary <= settings.marginal_score:
            decision = "rollback"
        elif final:
            decision = "promote" if total.summary >= settings.pass_score else "rollback"
        judgments = sum(1 for t in self.history if t.state.get("judged")) + 1
        state = TickState(
            table.ends[k],
            weight_or_none,
            decision,
            results,
            {
                "score": total.summary,
                "classification": score_class(total.summary, settings),
                "group_scores": total.groups,
                "score_reason": total.reason,
                "judgment": judgments,
                "final": final,
                "judged": True,
            },
        )
        self.history.append(state)
        return state

    def _judge_metric(self, metric: MetricSpec, table: TickTable, k: int) -> MetricResult:
        settings = metric.kayenta or self.spec.kayenta
        control = preprocess(step_series(metric, table, self.control, k), settings)
        experiment = preprocess(step_series(metric, table, self.treatment, k), settings)
        direction, critical = metric_config(metric)
        result = classify(
            control,
            experiment,
            settings,
            direction=direction,
            critical=critical,
            must_have_data=metric.must_have_data,
            name=metric.name,
        )
        groups = metric.groups or (DEFAULT_GROUP,)
        return MetricResult(
            metric.name,
            OUTCOMES[result.label],
            _reason(metric, result),
            estimate=result.estimate,
            ci=result.ci,
            p_value=result.p_value,
            unit="ms" if metric.kind == "latency" else "",
            critical=critical,
            details={
                "label": result.label,
                "ratio": result.deviation,
                "effect_size": result.effect_size,
                "fails_canary": result.critical,
                "groups": groups,
                "n_control": int(control.size),
                "n_experiment": int(experiment.size),
            },
        )

    def explain(self, state: TickState) -> str:
        settings = self.spec.kayenta
        if state.state.get("score") is None:
            every = settings.judgment_interval_s
            when = f"every {every:g}s" if every else "at the end of the lifetime"
            return f"continue: no Kayenta judgment yet ({when})"
        summary = state.state["score"]
        flagged = [m.reason for m in state.metrics if m.details.get("label") != "Pass"]
        why = f" ({'; '.join(flagged)})" if flagged else ""
        if state.decision == "rollback" and summary <= settings.marginal_score:
            return (
                f"rollback: Kayenta score {summary:g} <= marginal {settings.marginal_score:g}{why}"
            )
        if state.decision == "rollback":
            return f"rollback: final Kayenta score {summary:g} < pass {settings.pass_score:g}{why}"
        if state.decision == "promote":
            return f"promote: final Kayenta score {summary:g} >= pass {settings.pass_score:g}"
        return f"continue: Kayenta score {summary:g} at judgment {state.state['judgment']}{why}"


__all__ = [
    "Classification",
    "KayentaJudge",
    "MetricOutcome",
    "Score",
    "classify",
    "cles",
    "interval_undefined",
    "iqr_outliers",
    "judgment_times_s",
    "mean_ratio",
    "metric_config",
    "preprocess",
    "score",
    "score_class",
    "step_series",
]
