"""A/B/n experiment report: lifts, fixed-horizon and always-valid p-values, SRM, power.

Every metric is reduced to per-arm sufficient statistics ``(n, mean, variance)``:

* ``ratio`` counters (conversions/visitors, errors/requests): a proportion, the mean of
  0/1 outcomes with variance ``p (1 - p)`` (a rate above 1 falls back to Poisson);
* ``counter`` with a denominator (events per visitor): a Poisson rate, variance = mean;
* ``latency`` histograms: the share of requests slower than the bucket edge at or above
  the control's p90 (requests as the unit).

The comparisons are then computed for all metrics × arms at once on numpy arrays,
which is what keeps a report over thousands of metrics fast: Welch's test on the
difference, the relative lift with the delta-method interval that includes the
control mean's uncertainty (the GrowthBook/Eppo definition, not spotify-confidence's
division of the absolute interval by the control mean), the always-valid p-value and
confidence sequence of the asymptotic confidence sequence (Waudby-Smith et al.,
GrowthBook's tuning ``N*``), Holm or Benjamini-Hochberg across metrics and arms, and
the minimum detectable effect and remaining sample at the current size.

Decisions (``status``/``winner``) use the always-valid numbers by default
(``ExperimentSpec.sequential``), so a report may be read every day without inflating
the false-winner rate. A winner needs the primary goal significant after correction in
its good direction and no guardrail significantly worse (guardrails are judged without
correction, which errs on the side of safety). A sample-ratio mismatch makes the
report ``invalid`` whatever the lifts say.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from scipy.special import stdtr, stdtrit
from scipy.stats import norm

from rolloutlab import _html
from rolloutlab.errors import SpecError
from rolloutlab.judges.spec import MetricSpec, Spec
from rolloutlab.judges.verdict import _jsonable
from rolloutlab.sources.recording import Recording
from rolloutlab.stats import adjust, srm

Status = Literal["winner", "no-winner-yet", "no-detectable-difference", "invalid"]
#: The decision colour each status is shown in (a winner is good news, SRM is bad news).
STATUS_TONE: dict[str, str] = {
    "winner": "promote",
    "no-winner-yet": "continue",
    "no-detectable-difference": "continue",
    "invalid": "rollback",
}

#: The slow-request share of a latency guardrail: requests above the control's p90 edge.
LATENCY_QUANTILE = 0.9


@dataclass(frozen=True)
class ExperimentSpec:
    """What an experiment compares and how it decides.

    ``goals``: metrics the experiment wants to move; the first is the primary one,
    and its ``direction`` is the *harmful* change (``decrease`` for a conversion rate).
    ``guardrails``: metrics that must not get worse (defaults: errors/requests and
    latency when recorded). ``planned_shares``: arm → share of traffic (default: the
    recorded ``weight`` gauges, else equal). ``target_lift``: the relative effect the
    power and remaining-sample columns are computed for. ``n_star``: the asymptotic
    confidence sequence's tuning (the sample size where it is tightest).
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

    def __post_init__(self) -> None:
        if self.correction not in ("holm", "bh"):
            raise SpecError(
                f"correction={self.correction!r} is not supported; use 'holm' (family-wise) "
                "or 'bh' (false discovery rate)."
            )
        for name in ("alpha", "srm_alpha", "power"):
            if not 0 < getattr(self, name) < 1:
                raise SpecError(f"{name}={getattr(self, name)!r} must be in (0, 1).")
        if self.target_lift <= 0 or self.n_star <= 0:
            raise SpecError("target_lift and n_star must be positive, e.g. target_lift=0.05.")
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


@dataclass(frozen=True)
class Comparisons:
    """All metrics × treatment arms against the control, as arrays of shape (M, A).

    ``n``/``mean``/``var`` hold the per-arm statistics with the control in column 0
    (shape (M, A + 1)); everything else compares arm ``j + 1`` with the control.
    """

    n: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    abs_lift: np.ndarray
    abs_ci: np.ndarray  # (..., 2)
    rel_lift: np.ndarray
    rel_ci: np.ndarray
    p_value: np.ndarray
    abs_cs: np.ndarray
    rel_cs: np.ndarray
    p_always_valid: np.ndarray
    mde_rel: np.ndarray
    power: np.ndarray
    n_remaining: np.ndarray
    reason: np.ndarray  # object array of str | None


def compare(
    n: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    target_lift: float = 0.05,
    n_star: float = 5000.0,
    sequential: bool = True,
) -> Comparisons:
    """Compare every arm (columns 1..) with the control (column 0), row by row.

    Fixed horizon: Welch's t with Welch-Satterthwaite df, as :func:`rolloutlab.stats.welch_t`.
    Always valid: the asymptotic confidence sequence with ``t = n_c + n_t`` and
    ``sigma = SE * sqrt(t)``, whose p-value has the closed form
    ``min(1, sqrt(t rho^2 + 1) exp(-z^2 t rho^2 / (2 (t rho^2 + 1))))``.
    Power, MDE and remaining sample are for ``target_lift`` and the interval decisions
    use: the confidence sequence when ``sequential`` (its half-width at the needed size
    comes from a fixed-point iteration), Welch's normal approximation otherwise.
    Degenerate cells (no data, zero variance, zero control mean) are neutral
    (p-value 1, NaN lifts) with a reason.

    TODO(stats): ``welch_t``/``two_proportions`` and ``AsymptoticCS`` are scalar; this
    is their vectorised form, kept here for the 1,000-metric speed target until
    ``rolloutlab.stats`` grows array versions (tests pin it to the scalar functions).
    """
    n, mean, var = (np.asarray(a, dtype=float) for a in (n, mean, var))
    n_c, mu_c, s2_c = n[:, :1], mean[:, :1], var[:, :1]
    n_t, mu_t, s2_t = n[:, 1:], mean[:, 1:], var[:, 1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        v_c, v_t = s2_c / n_c, s2_t / n_t
        abs_lift = mu_t - mu_c
        se = np.sqrt(v_c + v_t)
        df = (v_c + v_t) ** 2 / (v_c**2 / (n_c - 1) + v_t**2 / (n_t - 1))
        rel_lift = mu_t / mu_c - 1
        se_rel = np.sqrt(v_t / mu_c**2 + mu_t**2 * v_c / mu_c**4)
        reason = np.full(abs_lift.shape, None, dtype=object)
        reason[(se == 0) & (n_c >= 2) & (n_t >= 2)] = "zero variance in both arms"
        reason[mu_c[:, 0] == 0, :] = "control mean is zero: relative lift undefined"
        reason[(n_t < 2) | np.broadcast_to(n_c < 2, n_t.shape)] = "fewer than 2 units in an arm"
        reason[(n_t == 0) | np.broadcast_to(n_c == 0, n_t.shape)] = "no data in an arm"
        ok = np.equal(reason, None)

        t_crit = stdtrit(df, 1 - alpha / 2)
        z = abs_lift / se
        p_value = np.where(ok, np.minimum(1.0, 2 * stdtr(df, -np.abs(z))), 1.0)
        abs_ci = _interval(abs_lift, t_crit * se)
        rel_ci = _interval(rel_lift, t_crit * se_rel)

        t = n_c + n_t
        rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / n_star
        p_av = np.minimum(
            1.0, np.sqrt(t * rho2 + 1) * np.exp(-(z**2) * t * rho2 / (2 * (t * rho2 + 1)))
        )
        p_av = np.where(ok, p_av, 1.0)
        abs_cs = _interval(abs_lift, _cs_factor(t, rho2, alpha) * se)
        rel_cs = _interval(rel_lift, _cs_factor(t, rho2, alpha) * se_rel)

        # power for target_lift: the lift must clear the interval's half-width (in SEs)
        z_power = norm.ppf(power)
        target = target_lift * np.abs(mu_c)
        if sequential:
            crit = _cs_factor(t, rho2, alpha)
            n_needed = t
            for _ in range(30):  # the half-width grows like sqrt(log t): a fixed point
                n_needed = t * ((_cs_factor(n_needed, rho2, alpha) + z_power) * se / target) ** 2
        else:
            crit = norm.isf(alpha / 2)
            n_needed = t * ((crit + z_power) * se / target) ** 2
        mde_rel = (crit + z_power) * se / np.abs(mu_c)
        achieved = norm.cdf(target / se - crit)
        n_remaining = np.maximum(0.0, np.ceil(n_needed - t))
    nan_where_bad = {
        "abs_lift": abs_lift,
        "rel_lift": rel_lift,
        "mde_rel": mde_rel,
        "power": achieved,
        "n_remaining": n_remaining,
    }
    cleaned = {k: np.where(ok, v, np.nan) for k, v in nan_where_bad.items()}
    cleaned["abs_lift"] = np.where(np.isfinite(abs_lift), abs_lift, np.nan)
    intervals = {
        k: np.where(ok[..., None], v, np.nan)
        for k, v in {"abs_ci": abs_ci, "rel_ci": rel_ci, "abs_cs": abs_cs, "rel_cs": rel_cs}.items()
    }
    return Comparisons(
        n=n,
        mean=mean,
        var=var,
        p_value=p_value,
        p_always_valid=p_av,
        reason=reason,
        **cleaned,
        **intervals,
    )


def _cs_factor(t: np.ndarray, rho2: float, alpha: float) -> np.ndarray:
    """Half-width of the asymptotic confidence sequence in standard errors at size ``t``."""
    tr = t * rho2
    return np.sqrt(2 * (tr + 1) / tr * np.log(np.sqrt(tr + 1) / alpha))


def _interval(center: np.ndarray, half: np.ndarray) -> np.ndarray:
    return np.stack([center - half, center + half], axis=-1)


# -- reading a recording ------------------------------------------------------------


def _statistics(
    recording: Recording, metrics: tuple[MetricSpec, ...], arms: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Per metric and arm: (n, mean, variance) arrays and each metric's label."""
    missing = [m.name for m in metrics if m.kind != "latency" and m.denominator is None]
    if missing:
        raise SpecError(
            f"metric(s) {missing} need a denominator in an experiment, e.g. "
            "denominator='visitors', so arms of different sizes compare as rates."
        )
    frame = recording.frame
    totals = (
        frame.filter((pl.col("kind") == "counter") & pl.col("variant").is_in(arms))
        .group_by("metric", "variant")
        .agg(pl.col("value").sum())
        .pivot(on="variant", index="metric", values="value")
    )
    names = {name: i for i, name in enumerate(totals["metric"].to_list())}
    absent = len(names)  # the matrix's last row: zeros for names never recorded
    matrix = np.zeros((absent + 1, len(arms)))
    for j, arm in enumerate(arms):
        if arm in totals.columns:
            matrix[:absent, j] = totals[arm].fill_null(0.0).to_numpy()
    events = matrix[[names.get(m.metric, absent) for m in metrics]]
    exposure = matrix[[names.get(m.denominator or "", absent) for m in metrics]]
    labels = [f"{m.metric}/{m.denominator}" for m in metrics]
    latency = [i for i, m in enumerate(metrics) if m.kind == "latency"]
    hist = _histograms(frame, {metrics[i].metric for i in latency}, arms) if latency else {}
    for i in latency:
        name = metrics[i].metric
        edges, counts = hist.get(name, (np.zeros(0), np.zeros((len(arms), 0))))
        events[i], exposure[i], edge = _slow_share(edges, counts)
        labels[i] = f"{name} > {edge:g}" if edge is not None else name
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(exposure > 0, events / exposure, 0.0)
    kinds = np.array([m.kind for m in metrics])
    bernoulli = np.isin(kinds, ("ratio", "latency")) & np.all(rate <= 1, axis=1)
    var = np.where(bernoulli[:, None], rate * (1 - rate), rate)
    return exposure, rate, var, labels


def _histograms(
    frame: pl.DataFrame, names: set[str], arms: list[str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """metric → (sorted edges, arms × bins non-cumulative counts over the whole run)."""
    rows = (
        frame.filter((pl.col("kind") == "bucket") & pl.col("metric").is_in(list(names)))
        .group_by("metric", "variant", "le")
        .agg(pl.col("value").sum())
    )
    out = {}
    for (metric,), part in rows.partition_by("metric", as_dict=True).items():
        edges = np.sort(part["le"].unique().to_numpy())
        cumulative = np.zeros((len(arms), len(edges)))
        for variant, le, value in part.select("variant", "le", "value").iter_rows():
            if variant in arms:
                cumulative[arms.index(variant), np.searchsorted(edges, le)] = value
        out[metric] = (edges, np.diff(cumulative, axis=1, prepend=0.0).clip(min=0.0))
    return out


def _slow_share(
    edges: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Requests above the edge at or above the control's p90, and all requests, per arm."""
    exposure = counts.sum(axis=1)
    if counts.size == 0 or exposure[0] == 0:
        return np.zeros(len(counts)), exposure, None
    share = np.cumsum(counts[0]) / exposure[0]
    candidates = np.flatnonzero((share >= LATENCY_QUANTILE - 1e-12) & np.isfinite(edges))
    if candidates.size == 0:
        return np.zeros(len(counts)), exposure, None
    j = int(candidates[0])
    return counts[:, j + 1 :].sum(axis=1), exposure, float(edges[j])


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


# -- the report -----------------------------------------------------------------------


@dataclass(frozen=True)
class ExperimentReport:
    """The comparisons of one experiment, the SRM check and the decision.

    ``status`` is ``winner``, ``no-winner-yet``, ``no-detectable-difference`` (the
    primary goal is powered for ``target_lift`` and shows nothing) or ``invalid``
    (sample-ratio mismatch: the split differs from the plan, so no lift can be trusted).
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
    status: Status
    winner: str | None
    worse: dict[str, tuple[str, ...]] = field(default_factory=dict)

    # -- views --------------------------------------------------------------------

    def table(self) -> pl.DataFrame:
        """One row per metric and treatment arm."""
        c = self.comparisons
        m_count, a_count = c.abs_lift.shape
        rows = np.arange(m_count).repeat(a_count)
        cols = np.tile(np.arange(a_count), m_count)
        sig = self._significant()
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
                "abs_ci_low": c.abs_ci[..., 0].ravel(),
                "abs_ci_high": c.abs_ci[..., 1].ravel(),
                "rel_lift": c.rel_lift.ravel(),
                "rel_ci_low": c.rel_ci[..., 0].ravel(),
                "rel_ci_high": c.rel_ci[..., 1].ravel(),
                "rel_cs_low": c.rel_cs[..., 0].ravel(),
                "rel_cs_high": c.rel_cs[..., 1].ravel(),
                "p_value": c.p_value.ravel(),
                "p_adjusted": self.p_adjusted.ravel(),
                "p_always_valid": c.p_always_valid.ravel(),
                "p_always_valid_adjusted": self.p_always_valid_adjusted.ravel(),
                "significant": sig.ravel(),
                "mde_rel": c.mde_rel.ravel(),
                "power": c.power.ravel(),
                "n_remaining": c.n_remaining.ravel(),
                "reason": [r for r in c.reason.ravel()],
            },
            strict=False,
        )

    def summary_frame(self) -> pl.DataFrame:
        """One row per metric and arm in words and units, for people and terminals."""
        c = self.comparisons
        sequential = self.spec.sequential
        interval = c.rel_cs if sequential else c.rel_ci
        p = self.p_always_valid_adjusted if sequential else self.p_adjusted
        sig = self._significant()
        rows = []
        for i, m in enumerate(self.metrics):
            share = m.kind in ("ratio", "latency")
            for j, arm in enumerate(self.arms):
                low, high = interval[i, j]
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
                        "p": _html.pvalue(p[i, j]),
                        "status": self._words(i, j, bool(sig[i, j])),
                    }
                )
        return pl.DataFrame(rows, schema=list(_SUMMARY_COLUMNS))

    def _words(self, i: int, j: int, significant: bool) -> str:
        """What one comparison means, in words."""
        reason = self.comparisons.reason[i, j]
        if reason is not None:
            return f"no result: {reason}"
        if self.roles[i] == "guardrail":
            return "worse" if self.metrics[i].name in self.worse.get(self.arms[j], ()) else "ok"
        if not significant:
            return "no clear difference yet"
        harmful = self.metrics[i].direction_or("increase")
        up = self.comparisons.rel_lift[i, j] > 0
        return "worse than control" if up == (harmful == "increase") else "beats control"

    def _significant(self) -> np.ndarray:
        p = self.p_always_valid_adjusted if self.spec.sequential else self.p_adjusted
        return (p <= self.spec.alpha) & np.equal(self.comparisons.reason, None)

    def summary(self) -> str:
        """One plain sentence for a product team."""
        split = (
            "the traffic split is as planned"
            if self.status != "invalid"
            else (
                "the traffic split is not as planned (observed "
                + "/".join(f"{s:.1%}" for s in self.observed_split)
                + " vs planned "
                + "/".join(f"{s:.1%}" for s in self.planned_split)
                + f", SRM p={self.srm_p_value:.2g}), so no result can be trusted yet"
            )
        )
        goal = self._goal_index()
        if goal is None:
            return f"No goal metric to decide on; {split}."
        name = self.metrics[goal].name
        c = self.comparisons
        kind = "always-valid" if self.spec.sequential else ""
        level = f"{1 - self.spec.alpha:.0%} {kind} interval".replace("  ", " ")
        if self.status == "winner":
            j = self.arms.index(self.winner)
            low, high = (c.rel_cs if self.spec.sequential else c.rel_ci)[goal, j]
            verb = "raises" if c.rel_lift[goal, j] > 0 else "lowers"
            head = (
                f"{self.winner} {verb} {name} by {abs(c.rel_lift[goal, j]):.1%} "
                f"({level} {low:+.1%} to {high:+.1%})"
            )
        elif self.status == "no-detectable-difference":
            head = (
                f"no arm changes {name} detectably (enough data to see a "
                f"{self.spec.target_lift:.0%} change)"
            )
        else:
            best = int(np.nanargmax(np.abs(np.nan_to_num(c.rel_lift[goal]))))
            head = (
                f"no winner yet on {name}: best so far {self.arms[best]} at "
                f"{c.rel_lift[goal, best]:+.1%}"
                + (
                    f", about {c.n_remaining[goal, best]:,.0f} more units to see a "
                    f"{self.spec.target_lift:.0%} change"
                    if np.isfinite(c.n_remaining[goal, best])
                    else ""
                )
            )
        worse = sorted({m for arms in self.worse.values() for m in arms})
        guard = (
            "no guardrail metric got worse"
            if not worse
            else f"guardrail{'s' if len(worse) > 1 else ''} worse: {', '.join(worse)}"
        )
        text = f"{head}; {guard}; {split}."
        return text[0].upper() + text[1:]

    def _goal_index(self) -> int | None:
        return self.roles.index("goal") if "goal" in self.roles else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: status, winner, SRM, summary and the per-metric table."""
        return _jsonable(
            {
                "status": self.status,
                "winner": self.winner,
                "summary": self.summary(),
                "control": self.control,
                "arms": list(self.arms),
                "srm": {
                    "p_value": self.srm_p_value,
                    "observed_split": list(self.observed_split),
                    "planned_split": list(self.planned_split),
                },
                "alpha": self.spec.alpha,
                "correction": self.spec.correction,
                "sequential": self.spec.sequential,
                "results": self.table().to_dicts(),
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
        """A card: status badge, the product-team sentence, the split, and the table."""
        color = _html.DECISION_COLORS[STATUS_TONE[self.status]]
        arms = ", ".join(self.arms)
        title = _html.Html(
            f"{_html.badge(self.status, color)} experiment: {_html.esc(arms)} vs "
            f"{_html.esc(self.control)}"
        )
        split = " / ".join(
            f"{_html.percent(o)} ({_html.percent(p)} planned)"
            for o, p in zip(self.observed_split, self.planned_split, strict=False)
        )
        facts = _html.kv_table(
            {
                "result": self.summary(),
                "traffic split": f"{split}, SRM p={_html.pvalue(self.srm_p_value)}",
            }
        )
        return _html.card(title, facts, self.details_html())

    def details_html(self) -> _html.Html:
        """Every metric and arm in one compact table, with the interval and p-value the
        decision used (always-valid when the experiment is sequential)."""
        sequential = self.spec.sequential
        low, high = ("rel_cs_low", "rel_cs_high") if sequential else ("rel_ci_low", "rel_ci_high")
        p = "p_always_valid_adjusted" if sequential else "p_adjusted"
        rows = (
            (
                r["metric"],
                r["role"],
                r["arm"],
                _html.num(r["control_mean"], 4),
                _html.num(r["arm_mean"], 4),
                _html.percent(r["rel_lift"], signed=True),
                f"{_html.percent(r[low], signed=True)} to {_html.percent(r[high], signed=True)}",
                _html.pvalue(r[p]),
                "yes" if r["significant"] else "no",
                _html.percent(r["power"], 0),
                _html.num(r["n_remaining"]),
                r["reason"] or "",
            )
            for r in self.table().iter_rows(named=True)
        )
        columns = (
            "metric",
            "role",
            "arm",
            "control mean",
            "arm mean",
            "lift",
            "always-valid interval" if sequential else "interval",
            "p (adjusted)",
            "significant",
            "power",
            "more units needed",
            "note",
        )
        return _html.table(columns, rows, numeric=columns[3:8] + columns[9:11])


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


def _value(x: float, share: bool) -> str:
    """A rate as a percent when it is a share of units, else as a number per unit."""
    return _html.percent(x, 2) if share else _html.num(x, 4)


def experiment(
    recording: Recording, spec: ExperimentSpec | Spec | Mapping[str, Any] | str | Path | None = None
) -> ExperimentReport:
    """Compare every arm of ``recording`` with its control on goals and guardrails.

    ``spec`` is an :class:`ExperimentSpec`, or anything :meth:`Spec.load` reads (a
    ``Spec``, dict, YAML text or file), whose metrics become the guardrails (gauges are
    skipped: experiments compare counts) and whose ``alpha`` is used; the goal is then
    ``conversions``/``visitors`` when recorded.
    """
    if spec is not None and not isinstance(spec, ExperimentSpec):
        spec = Spec.load(spec)
    espec = _default_spec(recording, spec)
    control = recording.control
    arms = [a for a in recording.treatments]
    if not arms:
        raise SpecError(
            f"the recording has only the control {control!r}; an experiment needs at least "
            "two arms (set meta['roles'] = {'control': ..., 'treatment': [...]})."
        )
    metrics = tuple(espec.goals or ()) + tuple(espec.guardrails or ())
    roles = ("goal",) * len(espec.goals or ()) + ("guardrail",) * len(espec.guardrails or ())
    everyone = [control, *arms]
    n, mean, var, labels = _statistics(recording, metrics, everyone)
    comparisons = compare(
        n,
        mean,
        var,
        alpha=espec.alpha,
        power=espec.power,
        target_lift=espec.target_lift,
        n_star=espec.n_star,
        sequential=espec.sequential,
    )
    p_adj = _adjust(comparisons.p_value, espec.correction)
    p_av_adj = _adjust(comparisons.p_always_valid, espec.correction)

    exposure_metric = _exposure_counter(metrics)
    units = _unit_counts(recording, exposure_metric, everyone)
    planned = _planned_shares(recording, everyone, espec)
    srm_p = float(srm(units, planned).p_value) if units.sum() > 0 else 1.0
    observed = units / units.sum() if units.sum() > 0 else np.full(len(everyone), np.nan)

    report = ExperimentReport(
        control=control,
        arms=tuple(arms),
        metrics=metrics,
        roles=roles,
        labels=tuple(labels),
        comparisons=comparisons,
        p_adjusted=p_adj,
        p_always_valid_adjusted=p_av_adj,
        srm_p_value=srm_p,
        observed_split=tuple(observed.tolist()),
        planned_split=tuple(planned.tolist()),
        spec=espec,
        status="no-winner-yet",
        winner=None,
    )
    status, winner, worse = _decide(report)
    return replace(report, status=status, winner=winner, worse=worse)


def _adjust(p: np.ndarray, method: str) -> np.ndarray:
    if p.size == 0:
        return p.copy()
    return np.asarray(adjust(p.ravel(), method)).reshape(p.shape)


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


def _decide(report: ExperimentReport) -> tuple[Status, str | None, dict[str, tuple[str, ...]]]:
    """Status, winner and, per arm, the guardrails that got significantly worse."""
    spec, c = report.spec, report.comparisons
    ok = np.equal(c.reason, None)
    p_own = c.p_always_valid if spec.sequential else c.p_value
    interval = c.rel_cs if spec.sequential else c.rel_ci
    worse: dict[str, tuple[str, ...]] = {}
    for j, arm in enumerate(report.arms):
        bad = []
        for i, m in enumerate(report.metrics):
            if report.roles[i] != "guardrail" or not ok[i, j] or p_own[i, j] > spec.alpha:
                continue
            low, high = interval[i, j]
            up = m.direction_or("increase") in ("increase", "either") and low > m.margin
            down = m.direction_or("increase") in ("decrease", "either") and high < -m.margin
            if up or down:
                bad.append(m.name)
        if bad:
            worse[arm] = tuple(bad)
    if report.srm_p_value < spec.srm_alpha:
        return "invalid", None, worse
    goal = report._goal_index()
    if goal is None:
        return "no-winner-yet", None, worse
    sig = report._significant()[goal]
    good_sign = -1.0 if report.metrics[goal].direction_or("increase") == "increase" else 1.0
    lift = c.rel_lift[goal] * good_sign
    candidates = [
        j for j, arm in enumerate(report.arms) if sig[j] and lift[j] > 0 and arm not in worse
    ]
    if candidates:
        best = max(candidates, key=lambda j: lift[j])
        return "winner", report.arms[best], worse
    powered = ok[goal] & (c.n_remaining[goal] == 0)
    if np.all(powered) and not np.any(sig):
        return "no-detectable-difference", None, worse
    return "no-winner-yet", None, worse
