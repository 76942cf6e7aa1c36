"""A/B/n experiment analysis: the rules a product team can defend.

Every metric is counted per arm and time bucket (``frames.counter_buckets``) and read
as a rate: conversions per visitor and errors per request as shares of units
(binomial), other counters per unit of their denominator (Poisson), a latency
histogram as the share of requests slower than the control's p90 edge. Then:

* **Variance from the data.** Real per-interval counts vary more than Poisson (bursts,
  bots): ``variance="quasi-poisson"`` (default) scales the binomial/Poisson variance by
  the overdispersion over the time buckets, with a rate per bucket shared by the arms
  so diurnal swings are not mistaken for noise (never below 1);
  ``"batch-means"`` is the delta method for the ratio with the bucket as the unit;
  ``"poisson"`` is the textbook form. Fewer than ``MIN_DISPERSION_DOF`` degrees of
  freedom fall back to the textbook form, and the table says so.
* **Corrections over goals only.** Holm (or BH) runs over goals × arms; the intervals
  of goals are shown at the level consistent with that adjusted p-value
  (``alpha * p / p_adjusted``), so "significant" and "interval excludes zero" agree.
* **Guardrails are non-inferiority tests** with their own budget ``guardrail_alpha``:
  an arm is *not worse* when the one-sided bound of its harm is below the metric's
  margin (``MetricSpec.margin``, else ``guardrail_margin``), *worse* when the harm is
  above zero. Requiring every guardrail to be not worse is an intersection-union
  test: no multiplicity adjustment is needed for it.
* **Monotone sequential results** (``sequential=True``): the always-valid p-value is
  the running minimum over the looks (one per time bucket) and the confidence
  sequence the running intersection: neither ever goes back.
* **The winner rule.** An arm wins when it beats the control on the primary goal,
  no guardrail is worse or unproven, and it is shown better than every other arm
  that also qualifies; otherwise the status names the arms that beat the control.
  "No detectable difference" is an equivalence statement: every arm's goal interval
  lies inside ``± equivalence_margin``. A sample-ratio mismatch makes the report
  ``invalid`` whatever the lifts say.
* **A Bayesian view** (:func:`rolloutlab.stats.bayes.gaussian_posterior`): chance to
  beat the control, expected loss and a credible interval of the relative lift.

All comparisons run on numpy arrays (``rolloutlab.stats.arrays``) for every metric ×
arm × look at once, which keeps a report over thousands of metrics fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from scipy.special import stdtr
from scipy.stats import chi2, norm

from rolloutlab import _html, frames
from rolloutlab.errors import SpecError
from rolloutlab.judges.verdict import _jsonable
from rolloutlab.sources.recording import Recording
from rolloutlab.specs import MetricSpec, Spec
from rolloutlab.stats import adjust, srm
from rolloutlab.stats.arrays import (
    always_valid_p,
    batch_means_variance,
    cs_half_width,
    interval,
    lift_and_se,
    quasi_poisson_dispersion,
    running_intersection,
    running_min,
    welch_arrays,
)
from rolloutlab.stats.bayes import gaussian_posterior
from rolloutlab.stats.multiple import Method
from rolloutlab.stats.sequential import asymptotic_rho2

Status = Literal["winner", "no-winner-yet", "no-detectable-difference", "invalid"]
Variance = Literal["quasi-poisson", "batch-means", "poisson"]
#: The decision colour each status is shown in (a winner is good news, SRM is bad news).
STATUS_TONE: dict[str, str] = {
    "winner": "promote",
    "no-winner-yet": "continue",
    "no-detectable-difference": "continue",
    "invalid": "rollback",
}
#: What each status says on a badge.
STATUS_BADGE: dict[str, str] = {
    "winner": "WINNER",
    "no-winner-yet": "NO WINNER YET",
    "no-detectable-difference": "NO WINNER",
    "invalid": "INVALID",
}

#: The slow-request share of a latency guardrail: requests above the control's p90 edge.
LATENCY_QUANTILE = 0.9
#: Degrees of freedom the overdispersion needs before it is used (else Poisson/binomial).
MIN_DISPERSION_DOF = 10


@dataclass(frozen=True)
class ExperimentSpec:
    """What an experiment compares and how it decides.

    ``goals``: metrics the experiment wants to move; the first is the primary one,
    and its ``direction`` is the *harmful* change (``decrease`` for a conversion rate).
    ``guardrails``: metrics that must not get worse (defaults: errors/requests and
    latency when recorded), each tested for non-inferiority at ``guardrail_alpha``
    (one-sided) against its ``margin`` (relative; ``guardrail_margin`` when the metric
    states none). ``planned_shares``: arm → share of traffic (default: the recorded
    ``weight`` gauges, else equal). ``target_lift``: the relative effect the power and
    remaining-sample columns are computed for; ``equivalence_margin`` (default
    ``target_lift``): the band inside which "no detectable difference" is declared.
    ``variance``: see the module. ``bucket_s``: the time bucket (default: the
    recording's own steps). ``n_star``: the confidence sequence's tuning (the sample
    size where it is tightest). ``prior_mean``/``prior_var``: a Gaussian prior on the
    relative lift for the Bayesian view (default: flat, as GrowthBook's default).
    """

    goals: tuple[MetricSpec, ...] | None = None
    guardrails: tuple[MetricSpec, ...] | None = None
    alpha: float = 0.05
    correction: Literal["holm", "bh"] = "holm"
    sequential: bool = True
    planned_shares: dict[str, float] | None = None
    srm_alpha: float = 0.001
    power: float = 0.8
    target_lift: float = 0.05
    n_star: float = 5000.0
    guardrail_alpha: float = 0.05
    guardrail_margin: float = 0.10
    equivalence_margin: float | None = None
    variance: Variance = "quasi-poisson"
    bucket_s: float | None = None
    prior_mean: float = 0.0
    prior_var: float | None = None

    def __post_init__(self) -> None:
        if self.correction not in ("holm", "bh"):
            raise SpecError(
                f"correction={self.correction!r} is not supported; use 'holm' (family-wise) "
                "or 'bh' (false discovery rate)."
            )
        if self.variance not in ("quasi-poisson", "batch-means", "poisson"):
            raise SpecError(
                f"variance={self.variance!r} is not supported; use 'quasi-poisson' "
                "(default), 'batch-means' or 'poisson'."
            )
        for name in ("alpha", "srm_alpha", "power", "guardrail_alpha"):
            if not 0 < getattr(self, name) < 1:
                raise SpecError(f"{name}={getattr(self, name)!r} must be in (0, 1).")
        positive = ("target_lift", "n_star", "guardrail_margin", "equivalence_margin")
        for name in positive:
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise SpecError(f"{name}={value!r} must be positive, e.g. {name}=0.05.")
        if self.bucket_s is not None and not self.bucket_s > 0:
            raise SpecError(f"bucket_s={self.bucket_s!r} must be positive, e.g. 3600.")
        if self.prior_var is not None and not self.prior_var > 0:
            raise SpecError(f"prior_var={self.prior_var!r} must be positive, e.g. 0.09.")
        for m in self.goals or ():
            if m.direction_or("increase") == "either":
                raise SpecError(
                    f"goal {m.name!r} has direction 'either': a goal needs the harmful "
                    "direction, e.g. direction='decrease' for a conversion rate."
                )
            if m.kind == "gauge":
                raise SpecError(_GAUGE_FIX.format(m.name))
        for m in self.guardrails or ():
            if m.kind == "gauge":
                raise SpecError(_GAUGE_FIX.format(m.name))

    def margin(self, metric: MetricSpec) -> float:
        """A guardrail's tolerated relative harm: its own margin, else ``guardrail_margin``."""
        return metric.margin if metric.margin > 0 else self.guardrail_margin

    @property
    def equivalence(self) -> float:
        """The equivalence margin in force (relative)."""
        return self.equivalence_margin or self.target_lift


_GAUGE_FIX = (
    "metric {!r} is a gauge: experiments compare counts (ratio, counter, latency); judge "
    "gauges with rolloutlab.judge(), which uses autocorrelation-sized block means."
)


def _default_spec(recording: Recording, spec: Spec | ExperimentSpec | None) -> ExperimentSpec:
    """Fill goals and guardrails from what the recording holds."""
    if isinstance(spec, ExperimentSpec) and spec.goals is not None and spec.guardrails is not None:
        return spec
    counters = set(recording.frame.filter(pl.col("kind") == "counter")["metric"].unique().to_list())
    buckets = set(recording.frame.filter(pl.col("kind") == "bucket")["metric"].unique().to_list())
    goals: tuple[MetricSpec, ...] = ()
    if {"conversions", "visitors"} <= counters:
        goals = (
            MetricSpec("conversion", "ratio", "conversions", "visitors", direction="decrease"),
        )
    guardrails: list[MetricSpec] = []
    if isinstance(spec, Spec):
        guardrails = [m for m in spec.metrics if m.kind != "gauge"]
    else:
        if {"errors", "requests"} <= counters:
            guardrails.append(MetricSpec("error-rate", "ratio", "errors", "requests"))
        if "latency_ms" in buckets:
            guardrails.append(MetricSpec("latency", "latency", "latency_ms"))
    base = (
        spec
        if isinstance(spec, ExperimentSpec)
        else ExperimentSpec(alpha=spec.alpha if isinstance(spec, Spec) else 0.05)
    )
    return replace(
        base,
        goals=base.goals if base.goals is not None else goals,
        guardrails=base.guardrails if base.guardrails is not None else tuple(guardrails),
    )


def _planned_shares(recording: Recording, arms: list[str], spec: ExperimentSpec) -> np.ndarray:
    """Planned traffic share per arm: the spec's, else the recorded weights, else equal."""
    if spec.planned_shares is not None:
        missing = [a for a in arms if a not in spec.planned_shares]
        if missing:
            raise SpecError(
                f"planned_shares has no share for {missing}; give one per arm, e.g. "
                f"planned_shares={{{', '.join(repr(a) + ': 0.5' for a in arms[:2])}}}."
            )
        shares = np.array([float(spec.planned_shares[a]) for a in arms])
    else:
        weights = (
            recording.frame.filter(pl.col("metric") == "weight")
            .group_by("variant")
            .agg(pl.col("value").mean())
        )
        found = dict(weights.iter_rows())
        shares = np.array([found.get(a, np.nan) for a in arms], dtype=float)
        if np.any(~np.isfinite(shares)) or shares.sum() <= 0:
            shares = np.ones(len(arms))
    return shares / shares.sum()


def _exposure_counter(metrics: tuple[MetricSpec, ...]) -> str:
    """The counter whose totals are the experiment's units (the goal's denominator)."""
    for m in metrics:
        if m.kind in ("ratio", "counter") and m.denominator:
            return m.denominator
    return "requests"


def _unit_counts(recording: Recording, metric: str, arms: list[str]) -> np.ndarray:
    rows = (
        recording.frame.filter((pl.col("metric") == metric) & (pl.col("kind") == "counter"))
        .group_by("variant")
        .agg(pl.col("value").sum())
    )
    found = dict(rows.iter_rows())
    return np.array([found.get(a, 0.0) for a in arms], dtype=float)


# -- counts per time bucket ------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """Events and exposure per metric, arm (control first) and time bucket."""

    times: pl.Series
    events: np.ndarray  # (M, V, T)
    exposure: np.ndarray  # (M, V, T)
    labels: tuple[str, ...]
    binomial: np.ndarray  # (M,) rates are shares of units


def _counts(
    frame: pl.DataFrame, metrics: tuple[MetricSpec, ...], arms: list[str], bucket_s: float | None
) -> Counts:
    """Count every metric per arm and time bucket; latency as the slow share."""
    missing = [m.name for m in metrics if m.kind != "latency" and m.denominator is None]
    if missing:
        raise SpecError(
            f"metric(s) {missing} need a denominator in an experiment, e.g. "
            "denominator='visitors', so arms of different sizes compare as rates."
        )
    times = frames.time_buckets(frame, bucket_s)
    names = [m.metric for m in metrics] + [m.denominator or "" for m in metrics]
    both = frames.counter_buckets(frame, names, arms, times, bucket_s=bucket_s)
    events, exposure = both[: len(metrics)], both[len(metrics) :]
    labels = [f"{m.metric}/{m.denominator}" for m in metrics]
    for i, m in enumerate(metrics):
        if m.kind == "latency":
            edges, counts = frames.histogram_buckets(
                frame, m.metric, arms, times, bucket_s=bucket_s
            )
            events[i], exposure[i], edge = _slow_share(edges, counts)
            labels[i] = f"{m.metric} > {edge:g}" if edge is not None else m.metric
    with np.errstate(divide="ignore", invalid="ignore"):
        total = exposure.sum(axis=-1)
        rate = np.where(total > 0, events.sum(axis=-1) / total, 0.0)
    kinds = np.array([m.kind for m in metrics])
    binomial = np.isin(kinds, ("ratio", "latency")) & np.all(rate <= 1, axis=1)
    return Counts(times, events, exposure, tuple(labels), binomial)


def _slow_share(
    edges: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Requests above the edge at or above the control's p90, and all requests, per arm
    and bucket (``counts`` is arms × buckets × bins)."""
    exposure = counts.sum(axis=-1)
    control = counts[0].sum(axis=0) if counts.size else np.zeros(0)
    if counts.size == 0 or control.sum() == 0:
        return np.zeros(exposure.shape), exposure, None
    share = np.cumsum(control) / control.sum()
    candidates = np.flatnonzero((share >= LATENCY_QUANTILE - 1e-12) & np.isfinite(edges))
    if candidates.size == 0:
        return np.zeros(exposure.shape), exposure, None
    j = int(candidates[0])
    return counts[..., j + 1 :].sum(axis=-1), exposure, float(edges[j])


# -- every look at once ----------------------------------------------------------------


@dataclass(frozen=True)
class Comparisons:
    """Every metric × treatment arm against the control, at the last look (M, A) and
    over the looks (M, A, T); ``n``/``mean``/``var`` have the control in column 0.

    ``rel_ci``/``rel_cs`` are the intervals decisions use: goals at the level of their
    adjusted p-value, guardrails two-sided at ``2 * guardrail_alpha`` (each side a
    one-sided bound); ``*_unadjusted`` are plain ``1 - alpha`` intervals.
    """

    times: pl.Series
    n: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    dispersion: np.ndarray  # (M, V): variance / the Poisson-binomial variance
    variance_note: tuple[str, ...]
    abs_lift: np.ndarray
    abs_ci: np.ndarray
    rel_lift: np.ndarray
    rel_se: np.ndarray
    rel_ci: np.ndarray
    rel_ci_unadjusted: np.ndarray
    rel_cs: np.ndarray
    rel_cs_unadjusted: np.ndarray
    p_value: np.ndarray
    p_always_valid: np.ndarray
    p_always_valid_now: np.ndarray
    p_noninferiority: np.ndarray
    mde_rel: np.ndarray
    power: np.ndarray
    n_remaining: np.ndarray
    reason: np.ndarray  # object array of str | None
    mean_t: np.ndarray  # (M, V, T) cumulative rates
    rel_lift_t: np.ndarray  # (M, A, T)
    rel_cs_t: np.ndarray  # (M, A, T, 2) the decision sequence, running intersection


def _variance(counts: Counts, method: Variance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-unit variance at every look (M, V, T), the looks where the data's own
    variance is used (M, T), and the dispersion factor (M, V, T)."""
    x = np.cumsum(counts.exposure, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(x > 0, np.cumsum(counts.events, axis=-1) / x, 0.0)
    share = counts.binomial[:, None, None] & (rate <= 1)
    base = np.where(share, rate * (1 - rate), rate)
    if method == "quasi-poisson":
        phi, dof = quasi_poisson_dispersion(
            counts.events, counts.exposure, binomial=counts.binomial
        )
        enough = dof >= MIN_DISPERSION_DOF
        factor = np.broadcast_to(np.where(enough, np.fmax(phi, 1.0), 1.0)[:, None], base.shape)
    elif method == "batch-means":
        own, dof = batch_means_variance(counts.events, counts.exposure)
        enough = np.all(dof >= MIN_DISPERSION_DOF, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(enough[:, None], np.fmax(own / base, 1.0), 1.0)
        factor = np.where(np.isfinite(factor), factor, 1.0)
    else:
        enough = np.zeros(base[:, 0].shape, dtype=bool)
        factor = np.ones(base.shape)
    return base * factor, enough, factor


def _variance_note(method: Variance, enough: bool, factor: float) -> str:
    if method == "poisson":
        return "poisson/binomial"
    if not enough:
        return f"poisson/binomial (too few time buckets for {method})"
    return f"{method} (x{factor:.2f} the poisson/binomial variance)"


def _compare(counts: Counts, roles: tuple[str, ...], metrics, spec: ExperimentSpec) -> Comparisons:
    """Every comparison at every look, the corrections and the decision intervals."""
    x = np.cumsum(counts.exposure, axis=-1)  # (M, V, T)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_t = np.where(x > 0, np.cumsum(counts.events, axis=-1) / x, 0.0)
    var_t, enough, factor = _variance(counts, spec.variance)
    last = x.shape[-1] - 1 if x.shape[-1] else None
    if last is None:  # an empty recording: one empty look
        x, mean_t, var_t = (np.zeros((*a.shape[:2], 1)) for a in (x, mean_t, var_t))
        enough, factor, last = np.zeros((x.shape[0], 1), bool), np.ones(x.shape), 0
    cells = (x[:, :1], mean_t[:, :1], var_t[:, :1], x[:, 1:], mean_t[:, 1:], var_t[:, 1:])
    lift_t, se_t, _ = lift_and_se(*cells, relative=True)
    n, mean, var = x[..., last], mean_t[..., last], var_t[..., last]
    now = tuple(c[..., last] for c in cells)
    absolute = welch_arrays(*now, alpha=spec.alpha)
    rel = welch_arrays(*now, alpha=spec.alpha, relative=True)
    reason = _reasons(n, mean, rel.std_error)
    ok = _no_reason(reason)

    rho2 = asymptotic_rho2(spec.alpha, spec.n_star)
    t = x[:, :1] + x[:, 1:]
    looks = np.broadcast_to((enough | (np.arange(x.shape[-1]) == last))[:, None], t.shape)
    z_t = lift_t / se_t
    p_av_t = np.where(np.isfinite(z_t), always_valid_p(z_t, t, rho2), 1.0)
    p_av = np.where(ok, running_min(p_av_t, looks)[..., last], 1.0)
    p_fixed = np.where(ok, rel.p_value, 1.0)

    # guardrails: one-sided p-value of "harm at least the margin"
    harm = np.array([_harm_sides(m) for m in metrics])  # (M, 2): increase, decrease
    margin = np.array([spec.margin(m) for m in metrics])
    p_ni_t = _noninferiority_p(lift_t, se_t, None, margin, harm, t, rho2)
    p_ni_seq = running_min(p_ni_t, looks)[..., last]
    p_ni_fixed = _noninferiority_p(rel.estimate, rel.std_error, rel.df, margin, harm, None, rho2)
    p_ni = np.where(ok, p_ni_seq if spec.sequential else p_ni_fixed, 1.0)

    # decision levels: goals consistent with their adjusted p, guardrails one-sided
    goal = np.array([r == "goal" for r in roles])
    level = np.where(goal[:, None], spec.alpha, 2 * spec.guardrail_alpha) * np.ones(p_av.shape)
    for p, sequential in ((p_av, True), (p_fixed, False)):
        if sequential == spec.sequential and goal.any():
            level[goal] = _adjusted_level(p[goal], spec.alpha, spec.correction)
    rel_ci = welch_arrays(*now, alpha=level, relative=True).ci
    half_t = cs_half_width(t, level[..., None], rho2) * se_t
    rel_cs_t = running_intersection(interval(lift_t, half_t), looks)
    plain_half = cs_half_width(t, spec.alpha, rho2) * se_t
    rel_cs_plain = running_intersection(interval(lift_t, plain_half), looks)[..., last, :]

    mde, achieved, remaining = _power(rel.std_error, n[:, :1] + n[:, 1:], spec, rho2)
    blank = np.where(ok, 1.0, np.nan)
    largest = factor[..., last].max(axis=1, initial=1.0).tolist()
    used = enough[:, last].tolist()
    notes = tuple(_variance_note(spec.variance, e, f) for e, f in zip(used, largest, strict=True))
    return Comparisons(
        times=counts.times,
        n=n,
        mean=mean,
        var=var,
        dispersion=factor[..., last],
        variance_note=notes,
        abs_lift=np.where(np.isfinite(absolute.estimate), absolute.estimate, np.nan),
        abs_ci=absolute.ci * blank[..., None],
        rel_lift=rel.estimate * blank,
        rel_se=rel.std_error * blank,
        rel_ci=rel_ci * blank[..., None],
        rel_ci_unadjusted=rel.ci * blank[..., None],
        rel_cs=rel_cs_t[..., last, :] * blank[..., None],
        rel_cs_unadjusted=rel_cs_plain * blank[..., None],
        p_value=p_fixed,
        p_always_valid=p_av,
        p_always_valid_now=np.where(ok, p_av_t[..., last], 1.0),
        p_noninferiority=p_ni,
        mde_rel=mde * blank,
        power=achieved * blank,
        n_remaining=remaining * blank,
        reason=reason,
        mean_t=mean_t,
        rel_lift_t=lift_t,
        rel_cs_t=rel_cs_t,
    )


def _reasons(n: np.ndarray, mean: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Why a comparison has no result (None where it has one), per metric and arm."""
    n_c, n_t, mu_c = n[:, :1], n[:, 1:], mean[:, :1]
    reason = np.full(n_t.shape, None, dtype=object)
    reason[~(se > 0) & (n_t >= 2) & (n_c >= 2)] = "zero variance in both arms"
    reason[np.broadcast_to(mu_c == 0, n_t.shape)] = "control mean is zero: relative lift undefined"
    reason[(n_t < 2) | np.broadcast_to(n_c < 2, n_t.shape)] = "fewer than 2 units in an arm"
    reason[(n_t == 0) | np.broadcast_to(n_c == 0, n_t.shape)] = "no data in an arm"
    return reason


def _no_reason(reason: np.ndarray) -> np.ndarray:
    """Where a comparison has a result: its reason (see :func:`_reasons`) is None."""
    # numpy's stubs do not accept None as an operand; elementwise on object arrays it is
    return np.equal(reason, None)  # type: ignore[call-overload]


def _harm_sides(metric: MetricSpec) -> tuple[bool, bool]:
    """Whether an increase, and whether a decrease, of ``metric`` is harmful."""
    direction = metric.direction_or("increase")
    return direction in ("increase", "either"), direction in ("decrease", "either")


def _noninferiority_p(
    estimate: np.ndarray,
    se: np.ndarray,
    df: np.ndarray | None,
    margin: np.ndarray,
    harm: np.ndarray,
    t: np.ndarray | None,
    rho2: float,
) -> np.ndarray:
    """One-sided p-value of "the harm is at least ``margin``" (small: not worse), the
    larger over the harmful sides: always-valid at ``t`` units when given (the confidence
    sequence's p-value halved: one side of it), else Welch's t with ``df``."""
    shape = (slice(None),) + (None,) * (estimate.ndim - 1)
    out = np.zeros(estimate.shape)
    for side, sign in ((0, 1.0), (1, -1.0)):
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (margin[shape] - sign * estimate) / se
            if t is not None:
                p = np.where(z > 0, always_valid_p(z, t, rho2) / 2, 1.0)
            else:
                p = stdtr(df, -z)
        p = np.where(np.isfinite(z), p, 1.0)
        out = np.where(harm[:, side][shape], np.maximum(out, p), out)
    return out


def _adjusted_level(p: np.ndarray, alpha: float, method: Method) -> np.ndarray:
    """The per-comparison level at which each p-value meets its adjusted p-value:
    ``alpha * p / p_adjusted`` (an interval at this level excludes zero exactly when
    the adjusted p-value is at most ``alpha``); ``alpha / m`` where p is zero."""
    adjusted = _adjust(p, method)
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.where(adjusted > 0, alpha * p / adjusted, alpha / max(p.size, 1))
    return np.clip(level, 1e-300, alpha)


def _adjust(p: np.ndarray, method: Method) -> np.ndarray:
    if p.size == 0:
        return p.copy()
    return np.asarray(adjust(p.ravel(), method)).reshape(p.shape)


def _power(
    se: np.ndarray, t: np.ndarray, spec: ExperimentSpec, rho2: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MDE, power for ``target_lift`` and the units still needed, from the relative SE.

    The lift must clear the decision interval's half-width: the confidence sequence's
    when sequential (its half-width at the needed size comes from a fixed point, as it
    grows like sqrt(log t)), the fixed-horizon normal one otherwise.
    """
    z_power = norm.ppf(spec.power)
    target = spec.target_lift
    with np.errstate(divide="ignore", invalid="ignore"):
        if spec.sequential:
            crit = cs_half_width(t, spec.alpha, rho2)
            needed = t
            for _ in range(30):
                needed = (
                    t * ((cs_half_width(needed, spec.alpha, rho2) + z_power) * se / target) ** 2
                )
        else:
            crit = norm.isf(spec.alpha / 2)
            needed = t * ((crit + z_power) * se / target) ** 2
        mde = (crit + z_power) * se
        achieved = norm.cdf(target / se - crit)
        remaining = np.maximum(0.0, np.ceil(needed - t))
    return mde, achieved, remaining


# -- the report -----------------------------------------------------------------------

_SUMMARY_COLUMNS = (
    "metric",
    "role",
    "arm",
    "control",
    "arm value",
    "lift",
    "interval",
    "p",
    "status",
)


@dataclass(frozen=True)
class ExperimentReport:
    """The comparisons of one experiment, the SRM check and the decision.

    ``status`` is ``winner``, ``no-winner-yet``, ``no-detectable-difference`` (every
    arm's primary-goal interval lies inside ``± equivalence_margin``) or ``invalid``
    (sample-ratio mismatch: the split differs from the plan, so no lift can be
    trusted). ``beat_control``: the arms shown better than the control on the primary
    goal; without a winner, ``leader`` is the best arm that passes its guardrails and
    ``runner_up`` the arm it is not yet told apart from (or that does better but is held
    back by a guardrail). ``guardrails``: per arm, each guardrail's ``worse``, ``not
    worse`` or ``unproven``; ``worse`` keeps, per arm, the guardrails shown worse.
    """

    control: str
    arms: tuple[str, ...]
    metrics: tuple[MetricSpec, ...]
    roles: tuple[str, ...]
    labels: tuple[str, ...]
    comparisons: Comparisons
    p_adjusted: np.ndarray
    p_always_valid_adjusted: np.ndarray
    srm_p_value: float
    observed_split: tuple[float, ...]
    planned_split: tuple[float, ...]
    spec: ExperimentSpec
    status: Status = "no-winner-yet"
    winner: str | None = None
    worse: dict[str, tuple[str, ...]] = field(default_factory=dict)
    guardrails: dict[str, dict[str, str]] = field(default_factory=dict)
    beat_control: tuple[str, ...] = ()
    leader: str | None = None
    runner_up: str | None = None
    title: str | None = None
    segment_table: pl.DataFrame | None = None

    # -- decisions ------------------------------------------------------------------

    def _significant(self) -> np.ndarray:
        """Goals only: the adjusted p-value (always-valid when sequential) is at most alpha."""
        p = self.p_always_valid_adjusted if self.spec.sequential else self.p_adjusted
        goal = np.array([r == "goal" for r in self.roles])[:, None]
        return goal & (p <= self.spec.alpha) & _no_reason(self.comparisons.reason)

    def _interval(self) -> np.ndarray:
        """The decision interval per metric and arm (M, A, 2)."""
        c = self.comparisons
        return c.rel_cs if self.spec.sequential else c.rel_ci

    def _good_sign(self, i: int) -> float:
        """+1 when an increase of metric ``i`` is the good direction, else -1."""
        return -1.0 if self.metrics[i].direction_or("increase") == "increase" else 1.0

    def _goal_index(self) -> int | None:
        return self.roles.index("goal") if "goal" in self.roles else None

    def _equivalent(self, i: int, j: int) -> bool:
        low, high = self._interval()[i, j]
        margin = self.spec.equivalence
        return bool(-margin < low and high < margin)

    @property
    def posterior(self):
        """The Bayesian view of every relative lift, in each metric's good direction
        (see :func:`rolloutlab.stats.bayes.gaussian_posterior`)."""
        c = self.comparisons
        sign = np.array([self._good_sign(i) for i in range(len(self.metrics))])[:, None]
        return gaussian_posterior(
            sign * c.rel_lift,
            c.rel_se,
            prior_mean=self.spec.prior_mean,
            prior_var=self.spec.prior_var,
            alpha=self.spec.alpha,
        )

    @property
    def segments(self) -> pl.DataFrame:
        """One row per segment, metric and arm (empty when the recording has no
        ``segment`` column): the lift in the segment with its interval (unadjusted; the
        always-valid one when sequential), what it shows there, and the heterogeneity
        test of the metric and arm (Cochran's Q over the segments, Benjamini-Hochberg
        over metrics × arms: ``differs`` when the effect is not the same everywhere)."""
        return self.segment_table if self.segment_table is not None else pl.DataFrame()

    def _segment_words(self, goal: int) -> str:
        """'B wins in eu (+8.1%), loses in us (-4.0%)' for each arm whose goal effect
        differs between segments."""
        table = self.segments
        if table.is_empty():
            return ""
        name = self.metrics[goal].name
        parts = []
        for arm in self.arms:
            rows = table.filter((pl.col("metric") == name) & (pl.col("arm") == arm))
            if rows.is_empty() or not rows["differs"][0]:
                continue
            order = {"wins": 0, "loses": 1}
            found = sorted(
                rows.select("segment", "shows", "rel_lift").iter_rows(),
                key=lambda row: order.get(row[1], 2),
            )
            said = ", ".join(
                f"{verb if verb in order else 'shows ' + verb} in {segment} ({lift:+.1%})"
                for segment, verb, lift in found
            )
            p = rows["heterogeneity_p_adjusted"][0]
            parts.append(f"{arm} {said} (the segments differ: p={p:.2g})")
        if not parts:
            return f" The effect on {name} is consistent across segments."
        return f" By segment, on {name}: " + "; ".join(parts) + "."

    # -- views ----------------------------------------------------------------------

    def table(self) -> pl.DataFrame:
        """One row per metric and treatment arm, every number the report has."""
        c = self.comparisons
        m_count, a_count = c.rel_lift.shape
        rows = np.arange(m_count).repeat(a_count)
        cols = np.tile(np.arange(a_count), m_count)
        post = self.posterior
        sign = np.array([self._good_sign(int(i)) for i in rows])
        sig = self._significant()
        status = [self._words(int(i), int(j)) for i, j in zip(rows, cols, strict=True)]
        flat = {
            "abs_ci": c.abs_ci,
            "rel_ci": c.rel_ci,
            "rel_ci_unadjusted": c.rel_ci_unadjusted,
            "rel_cs": c.rel_cs,
            "rel_cs_unadjusted": c.rel_cs_unadjusted,
        }
        bounds = {
            f"{name}_{end}": values[..., k].ravel()
            for name, values in flat.items()
            for k, end in enumerate(("low", "high"))
        }
        credible = sign[:, None] * post.ci.reshape(-1, 2)
        return pl.DataFrame(
            {
                "metric": [self.metrics[i].name for i in rows],
                "measure": [self.labels[i] for i in rows],
                "role": [self.roles[i] for i in rows],
                "arm": [self.arms[j] for j in cols],
                "n_control": c.n[rows, 0],
                "n_arm": c.n[rows, cols + 1],
                "control_mean": c.mean[rows, 0],
                "arm_mean": c.mean[rows, cols + 1],
                "abs_lift": c.abs_lift.ravel(),
                "rel_lift": c.rel_lift.ravel(),
                **bounds,
                "p_value": c.p_value.ravel(),
                "p_adjusted": self.p_adjusted.ravel(),
                "p_always_valid": c.p_always_valid.ravel(),
                "p_always_valid_now": c.p_always_valid_now.ravel(),
                "p_always_valid_adjusted": self.p_always_valid_adjusted.ravel(),
                "significant": sig.ravel(),
                "margin": [
                    self.spec.margin(self.metrics[i]) if self.roles[i] == "guardrail" else None
                    for i in rows
                ],
                "p_noninferiority": [
                    c.p_noninferiority[i, j] if self.roles[i] == "guardrail" else None
                    for i, j in zip(rows, cols, strict=True)
                ],
                "status": status,
                "chance_to_beat_control": post.chance_to_win.ravel(),
                "expected_loss": post.risk_treatment.ravel(),
                "credible_low": np.minimum(credible[:, 0], credible[:, 1]),
                "credible_high": np.maximum(credible[:, 0], credible[:, 1]),
                "variance": [c.variance_note[i] for i in rows],
                "dispersion": c.dispersion[rows, cols + 1],
                "mde_rel": c.mde_rel.ravel(),
                "power": c.power.ravel(),
                "n_remaining": c.n_remaining.ravel(),
                "reason": list(c.reason.ravel()),
            },
            strict=False,
        )

    def summary_frame(self) -> pl.DataFrame:
        """One row per metric and arm in words and units, for people and terminals: the
        interval and p-value are the ones the decision used (adjusted for the goals,
        one-sided non-inferiority for guardrails; always-valid when sequential)."""
        c = self.comparisons
        interval_ = self._interval()
        p_goal = self.p_always_valid_adjusted if self.spec.sequential else self.p_adjusted
        rows = []
        for i, m in enumerate(self.metrics):
            share = bool(m.kind in ("ratio", "latency") and np.all(c.mean[i] <= 1))
            guard = self.roles[i] == "guardrail"
            for j, arm in enumerate(self.arms):
                low, high = interval_[i, j]
                rows.append(
                    {
                        "metric": self.labels[i] if m.kind == "latency" else m.name,
                        "role": self.roles[i],
                        "arm": arm,
                        "control": _value(c.mean[i, 0], share),
                        "arm value": _value(c.mean[i, j + 1], share),
                        "lift": _html.percent(c.rel_lift[i, j], signed=True),
                        "interval": f"{_html.percent(low, signed=True)} to "
                        f"{_html.percent(high, signed=True)}",
                        "p": _html.pvalue(c.p_noninferiority[i, j] if guard else p_goal[i, j]),
                        "status": self._words(i, j),
                    }
                )
        return pl.DataFrame(rows, schema=list(_SUMMARY_COLUMNS))

    def _words(self, i: int, j: int) -> str:
        """What one comparison means, in words."""
        reason = self.comparisons.reason[i, j]
        if reason is not None:
            return f"no result: {reason}"
        if self.roles[i] == "guardrail":
            margin = _html.percent(self.spec.margin(self.metrics[i]), 0)
            state = self.guardrails.get(self.arms[j], {}).get(self.metrics[i].name)
            return {
                "worse": "worse than control",
                "not worse": f"not worse (by more than {margin})",
                "unproven": f"not yet shown within {margin}",
            }.get(state or "", "")
        if self._significant()[i, j]:
            good = self.comparisons.rel_lift[i, j] * self._good_sign(i) > 0
            return "beats control" if good else "worse than control"
        if self._equivalent(i, j):
            return f"no difference beyond ±{_html.percent(self.spec.equivalence, 0)}"
        return "no clear difference yet"

    def summary(self) -> str:
        """A few plain sentences for a product team."""
        if self.status == "invalid":
            split = (
                "/".join(f"{s:.1%}" for s in self.observed_split)
                + " vs planned "
                + "/".join(f"{s:.1%}" for s in self.planned_split)
            )
            return (
                f"Invalid: the traffic split is not as planned ({split}, sample-ratio test "
                f"p={self.srm_p_value:.2g}); assignment or logging is broken somewhere, so "
                "no result can be trusted until it is fixed."
            )
        goal = self._goal_index()
        if goal is None:
            return "No goal metric to decide on; the traffic split is as planned."
        name = self.metrics[goal].name
        c = self.comparisons
        kind = "always-valid " if self.spec.sequential else ""
        meaning = (
            "the range the true lift is in, even when checked every day"
            if self.spec.sequential
            else "the range the true lift is in"
        )
        if self.status == "winner":
            j = self.arms.index(self.winner)
            low, high = self._interval()[goal, j]
            verb = "raises" if c.rel_lift[goal, j] > 0 else "lowers"
            chance = chance_words(self.posterior.chance_to_win[goal, j])
            head = (
                f"{self.winner} {verb} {name} by {abs(c.rel_lift[goal, j]):.1%} "
                f"({kind}interval {low:+.1%} to {high:+.1%}: {meaning}; chance "
                f"{self.winner} beats {self.control}: {chance})"
            )
        elif self.status == "no-detectable-difference":
            ranges = ", ".join(
                f"{a} {lo:+.1%} to {hi:+.1%}"
                for a, (lo, hi) in zip(self.arms, self._interval()[goal], strict=True)
            )
            head = (
                f"no arm changes {name} by more than ±{self.spec.equivalence:.0%} "
                f"(every interval lies inside that band: {ranges})"
            )
        else:
            head = self._no_winner_words(goal, name)
        guard = self._guardrail_words()
        segments = self._segment_words(goal)
        text = f"{head}.{segments} {guard} The traffic split is as planned."
        return text[0].upper() + text[1:]

    def _no_winner_words(self, goal: int, name: str) -> str:
        c = self.comparisons
        if self.leader and self.runner_up:
            lead = f"{self.leader} ({c.rel_lift[goal, self.arms.index(self.leader)]:+.1%})"
            other = f"{self.runner_up} ({c.rel_lift[goal, self.arms.index(self.runner_up)]:+.1%})"
            held = set(self.guardrails.get(self.runner_up, {}).values()) - {"not worse"}
            if held:
                return (
                    f"no winner yet on {name}: {_and(self.beat_control)} beat {self.control}; "
                    f"{lead} passes its guardrails, but {other} does better and is held back "
                    "by a guardrail"
                )
            return (
                f"no winner yet on {name}: {_and(self.beat_control)} beat {self.control}; "
                f"the best, {lead}, is not yet distinguishable from {other}"
            )
        if self.beat_control:
            arm = self.beat_control[0]
            states = self.guardrails.get(arm, {})
            worse = [m for m, s in states.items() if s == "worse"]
            unproven = [m for m, s in states.items() if s == "unproven"]
            why = (
                f"{_and(tuple(worse))} got worse"
                if worse
                else f"{_and(tuple(unproven))} is not yet shown to stay within its margin"
            )
            return (
                f"no winner yet on {name}: {arm} beats {self.control} "
                f"({c.rel_lift[goal, self.arms.index(arm)]:+.1%}) but {why}"
            )
        lifts = np.nan_to_num(c.rel_lift[goal] * self._good_sign(goal), nan=-np.inf)
        best = int(np.argmax(lifts))
        more = c.n_remaining[goal, best]
        return f"no winner yet on {name}: best so far {self.arms[best]} at " + (
            f"{c.rel_lift[goal, best]:+.1%}"
            + (
                f", about {more:,.0f} more units to see a {self.spec.target_lift:.0%} change"
                if np.isfinite(more) and more > 0
                else ""
            )
        )

    def _guardrail_words(self) -> str:
        worse = sorted({m for arms in self.worse.values() for m in arms})
        unproven = sorted(
            {m for states in self.guardrails.values() for m, s in states.items() if s == "unproven"}
        )
        if not self.guardrails or not any(self.guardrails.values()):
            return "No guardrail metric."
        parts = []
        if worse:
            parts.append(f"Guardrail{'s' if len(worse) > 1 else ''} worse: {', '.join(worse)}.")
        if unproven:
            parts.append(
                f"Not yet shown to stay within their margin: {', '.join(unproven)} "
                "(more data will tell)."
            )
        return " ".join(parts) or "No guardrail metric got worse beyond its margin."

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: status, winner, SRM, summary and the per-metric table."""
        return _jsonable(
            {
                "status": self.status,
                "winner": self.winner,
                "beat_control": list(self.beat_control),
                "leader": self.leader,
                "runner_up": self.runner_up,
                "summary": self.summary(),
                "control": self.control,
                "arms": list(self.arms),
                "srm": {
                    "p_value": self.srm_p_value,
                    "observed_split": list(self.observed_split),
                    "planned_split": list(self.planned_split),
                },
                "alpha": self.spec.alpha,
                "guardrail_alpha": self.spec.guardrail_alpha,
                "correction": self.spec.correction,
                "sequential": self.spec.sequential,
                "variance": self.spec.variance,
                "guardrails": self.guardrails,
                "results": self.table().to_dicts(),
                "segments": self.segments.to_dicts(),
            }
        )

    def __repr__(self) -> str:
        try:
            who = f" {self.winner}" if self.winner else ""
            return (
                f"<ExperimentReport {self.status}{who} · {len(self.metrics)} metrics × "
                f"{len(self.arms)} arms vs {self.control} · SRM p={self.srm_p_value:.3g}>"
            )
        except Exception:  # a repr never raises
            return "<ExperimentReport>"

    @_html.never_raises
    def _repr_html_(self) -> str:
        """The notebook card (built in :mod:`rolloutlab.views.experiment`)."""
        from rolloutlab.views.experiment import card

        return card(self)


def _and(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def chance_words(x: float) -> str:
    """A probability in words-friendly form: never a flat 100% or 0%."""
    return ">99.9%" if x > 0.999 else "<0.1%" if x < 0.001 else f"{x:.1%}"


def _value(x: float, share: bool) -> str:
    """A rate as a percent when it is a share of units, else as a number per unit."""
    return _html.percent(x, 2) if share else _html.num(x, 4)


def experiment(
    recording: Recording,
    spec: ExperimentSpec | Spec | Mapping[str, Any] | str | Path | None = None,
    *,
    title: str | None = None,
) -> ExperimentReport:
    """Compare every arm of ``recording`` with its control on goals and guardrails.

    ``spec`` is an :class:`ExperimentSpec`, or anything :meth:`Spec.load` reads (a
    ``Spec``, dict, YAML text or file), whose metrics become the guardrails (gauges are
    skipped: experiments compare counts) and whose ``alpha`` is used; the goal is then
    ``conversions``/``visitors`` when recorded. ``title`` heads the card and report.
    """
    if spec is not None and not isinstance(spec, ExperimentSpec):
        spec = Spec.load(spec)
    espec = _default_spec(recording, spec)
    control = recording.control
    arms = list(recording.treatments)
    if not arms:
        raise SpecError(
            f"the recording has only the control {control!r}; an experiment needs at least "
            "two arms (set meta['roles'] = {'control': ..., 'treatment': [...]})."
        )
    metrics = tuple(espec.goals or ()) + tuple(espec.guardrails or ())
    roles = ("goal",) * len(espec.goals or ()) + ("guardrail",) * len(espec.guardrails or ())
    everyone = [control, *arms]
    counts = _counts(recording.frame, metrics, everyone, espec.bucket_s)
    comparisons = _compare(counts, roles, metrics, espec)
    goal = np.array([r == "goal" for r in roles])
    p_adj = np.full(comparisons.p_value.shape, np.nan)
    p_av_adj = np.full(comparisons.p_value.shape, np.nan)
    p_adj[goal] = _adjust(comparisons.p_value[goal], espec.correction)
    p_av_adj[goal] = _adjust(comparisons.p_always_valid[goal], espec.correction)

    units = _unit_counts(recording, _exposure_counter(metrics), everyone)
    planned = _planned_shares(recording, everyone, espec)
    srm_p = float(srm(units, planned).p_value) if units.sum() > 0 else 1.0
    observed = units / units.sum() if units.sum() > 0 else np.full(len(everyone), np.nan)
    report = ExperimentReport(
        control=control,
        arms=tuple(arms),
        metrics=metrics,
        roles=roles,
        labels=counts.labels,
        comparisons=comparisons,
        p_adjusted=p_adj,
        p_always_valid_adjusted=p_av_adj,
        srm_p_value=srm_p,
        observed_split=tuple(observed.tolist()),
        planned_split=tuple(planned.tolist()),
        spec=espec,
        title=title,
    )
    guardrails = _guardrails(report)
    report = replace(
        report,
        guardrails=guardrails,
        worse={
            arm: tuple(m for m, s in states.items() if s == "worse")
            for arm, states in guardrails.items()
            if "worse" in states.values()
        },
    )
    report = replace(report, **_decide(report, counts))
    return replace(report, segment_table=_segments(recording.frame, report))


#: Joins a segment and a metric name into the name of their pair.
_SEP = "\x1f"


def _segments(frame: pl.DataFrame, report: ExperimentReport) -> pl.DataFrame | None:
    """The segment table (see :attr:`ExperimentReport.segments`), or None.

    Every (segment, metric) pair is counted and compared as one metric of its own
    (``segment/metric`` names), so all segments go through one vectorised pass."""
    if frames.SEGMENT not in frame.columns:
        return None
    names = sorted(frame[frames.SEGMENT].drop_nulls().unique().to_list())
    if len(names) < 2:
        return None
    spec, everyone = report.spec, [report.control, *report.arms]
    tagged = frame.filter(pl.col(frames.SEGMENT).is_not_null()).with_columns(
        pl.concat_str(frames.SEGMENT, pl.lit(_SEP), "metric").alias("metric")
    )
    metrics = tuple(
        replace(
            m,
            metric=f"{segment}{_SEP}{m.metric}",
            denominator=m.denominator and f"{segment}{_SEP}{m.denominator}",
        )
        for segment in names
        for m in report.metrics
    )
    c = _compare(
        _counts(tagged, metrics, everyone, spec.bucket_s),
        report.roles * len(names),
        metrics,
        spec,
    )
    size, m_count, a_count = len(names), len(report.metrics), len(report.arms)
    lift = c.rel_lift.reshape(size, m_count, a_count)
    se = c.rel_se.reshape(size, m_count, a_count)
    bounds = (c.rel_cs_unadjusted if spec.sequential else c.rel_ci_unadjusted).reshape(
        size, m_count, a_count, 2
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(np.isfinite(lift) & (se > 0), 1 / se**2, 0.0)
        pooled = (w * np.nan_to_num(lift)).sum(axis=0) / w.sum(axis=0)
        q = (w * np.nan_to_num(lift - pooled) ** 2).sum(axis=0)
    df = (w > 0).sum(axis=0) - 1
    p = np.where(df > 0, chi2.sf(q, np.maximum(df, 1)), 1.0)
    p = np.where(np.isfinite(p), p, 1.0)
    p_adj = _adjust(p, "bh")
    low, high = bounds[..., 0], bounds[..., 1]
    good = np.array([report._good_sign(i) for i in range(m_count)])[None, :, None]
    goal = np.array([r == "goal" for r in report.roles])[None, :, None]
    better = good * (low + high) > 0
    shows = np.where(
        (low > 0) | (high < 0),
        np.where(goal, np.where(better, "wins", "loses"), np.where(better, "better", "worse")),
        "no clear effect",
    )
    cells = size * m_count * a_count
    seg, met, arm = np.unravel_index(np.arange(cells), (size, m_count, a_count))
    n, mean = c.n.reshape(size, m_count, -1), c.mean.reshape(size, m_count, -1)
    return pl.DataFrame(
        {
            "segment": np.array(names, dtype=object)[seg],
            "metric": [report.metrics[i].name for i in met],
            "role": [report.roles[i] for i in met],
            "arm": np.array(report.arms, dtype=object)[arm],
            "n_control": n[seg, met, 0],
            "n_arm": n[seg, met, arm + 1],
            "control_mean": mean[seg, met, 0],
            "arm_mean": mean[seg, met, arm + 1],
            "rel_lift": lift.ravel(),
            "rel_low": low.ravel(),
            "rel_high": high.ravel(),
            "shows": shows.ravel(),
            "heterogeneity_p": np.broadcast_to(p, lift.shape).ravel(),
            "heterogeneity_p_adjusted": np.broadcast_to(p_adj, lift.shape).ravel(),
            "differs": np.broadcast_to(p_adj <= spec.alpha, lift.shape).ravel(),
        },
        strict=False,
    )


def _guardrails(report: ExperimentReport) -> dict[str, dict[str, str]]:
    """Per arm, each guardrail's state from its one-sided bounds: ``worse`` (harm shown
    above zero), ``not worse`` (harm shown below the margin) or ``unproven``."""
    out: dict[str, dict[str, str]] = {}
    bounds = report._interval()
    ok = _no_reason(report.comparisons.reason)
    for j, arm in enumerate(report.arms):
        states = {}
        for i, m in enumerate(report.metrics):
            if report.roles[i] != "guardrail":
                continue
            low, high = bounds[i, j]
            up, down = _harm_sides(m)
            margin = report.spec.margin(m)
            if ok[i, j] and ((up and low > 0) or (down and high < 0)):
                states[m.name] = "worse"
            elif ok[i, j] and (not up or high < margin) and (not down or low > -margin):
                states[m.name] = "not worse"
            else:
                states[m.name] = "unproven"
        out[arm] = states
    return out


def _decide(report: ExperimentReport, counts: Counts) -> dict[str, Any]:
    """Status, winner, the arms that beat the control and the runner-up (see the module)."""
    spec, c = report.spec, report.comparisons
    goal = report._goal_index()
    if goal is None:
        return {"status": "invalid" if report.srm_p_value < spec.srm_alpha else "no-winner-yet"}
    good = c.rel_lift[goal] * report._good_sign(goal)
    sig = report._significant()[goal]
    beat = sorted(
        (j for j in range(len(report.arms)) if sig[j] and good[j] > 0), key=lambda j: -good[j]
    )
    beat_names = tuple(report.arms[j] for j in beat)
    if report.srm_p_value < spec.srm_alpha:
        return {"status": "invalid", "beat_control": beat_names}
    clear = [
        j
        for j in beat
        if all(s == "not worse" for s in report.guardrails.get(report.arms[j], {}).values())
    ]
    if clear:
        best = clear[0]
        # not shown worse than any arm that beats the control, and shown better than
        # every other arm that qualifies
        stronger = [j for j in beat if j != best and _better(report, counts, goal, j, best)]
        rivals = [j for j in clear[1:] if not _better(report, counts, goal, best, j)]
        if not stronger and not rivals:
            return {"status": "winner", "winner": report.arms[best], "beat_control": beat_names}
        return {
            "status": "no-winner-yet",
            "beat_control": beat_names,
            "leader": report.arms[best],
            "runner_up": report.arms[(stronger or rivals)[0]],
        }
    ok = _no_reason(c.reason[goal])
    if (
        not beat
        and np.all(ok)
        and all(report._equivalent(goal, j) for j in range(len(report.arms)))
    ):
        return {"status": "no-detectable-difference"}
    return {"status": "no-winner-yet", "beat_control": beat_names}


def _better(report: ExperimentReport, counts: Counts, goal: int, best: int, other: int) -> bool:
    """Whether arm ``best`` is shown better than arm ``other`` on the goal (relative to
    ``other``, at alpha; always-valid at the current look when sequential)."""
    c = report.comparisons
    i, b, o = goal, best + 1, other + 1
    w = welch_arrays(
        c.n[i, o], c.mean[i, o], c.var[i, o], c.n[i, b], c.mean[i, b], c.var[i, b], relative=True
    )
    if report.spec.sequential:
        rho2 = asymptotic_rho2(report.spec.alpha, report.spec.n_star)
        p = always_valid_p(w.estimate / w.std_error, c.n[i, o] + c.n[i, b], rho2)
    else:
        p = w.p_value
    return bool(p <= report.spec.alpha and w.estimate * report._good_sign(goal) > 0)
