"""The A/B report's HTML (notebook card and report page parts) and its charts.

Statistical terms come with plain words beside them: a product manager reads the
badge, the sentence and the table; an analyst finds every number in ``table()``.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import numpy as np
import polars as pl

from rolloutlab import _html
from rolloutlab.experiments.analysis import (
    STATUS_BADGE,
    STATUS_TONE,
    ExperimentReport,
    chance_words,
)
from rolloutlab.views.charts import WIDTH

#: What the table's terms mean, shown under it.
GLOSSARY = (
    (
        "interval",
        "the range the true lift lies in with {level} confidence (for a guardrail, its harmful "
        "end is a one-sided {level} bound)",
    ),
    (
        "always-valid",
        "stays correct however often you look, so checking daily does not fake a winner",
    ),
    (
        "p",
        "for a goal, how surprising the data would be if the arms were the same; for a "
        "guardrail, if the harm were as large as its margin (small: a real effect, or safely "
        "within the margin)",
    ),
    ("guardrail", "a metric that must not get worse by more than its margin (one-sided test)"),
    ("chance to beat control", "Bayesian probability (flat prior) that the arm is better"),
    ("expected loss", "the lift lost on average if the arm is shipped and is in fact worse"),
)


def title(report: ExperimentReport) -> str:
    """The report's title: its own, else "experiment: B, C vs A"."""
    return report.title or f"experiment: {', '.join(report.arms)} vs {report.control}"


def badge(report: ExperimentReport) -> _html.Html:
    """WINNER / NO WINNER YET / NO WINNER / INVALID, in the status's colour."""
    color = _html.DECISION_COLORS[STATUS_TONE[report.status]]
    return _html.badge(STATUS_BADGE[report.status], color)


def card(report: ExperimentReport) -> str:
    """The notebook card: badge and title, the sentence, the split, the table."""
    split = " / ".join(
        f"{_html.percent(o)} ({_html.percent(p)} planned)"
        for o, p in zip(report.observed_split, report.planned_split, strict=False)
    )
    facts = _html.kv_table(
        {
            "result": report.summary(),
            "traffic split": f"{split}, sample-ratio mismatch test, SRM p={_html.pvalue(report.srm_p_value)}",
        }
    )
    head = _html.Html(f"{badge(report)} {_html.esc(title(report))}")
    return _html.card(head, facts, details(report))


def details(report: ExperimentReport) -> _html.Html:
    """Every metric and arm in one compact table, with the numbers the decision used,
    the Bayesian view beside them, and a glossary of the terms."""
    frame = report.summary_frame()
    table = report.table()
    rows = (
        (
            *(s["metric"], s["role"], s["arm"], s["control"], s["arm value"], s["lift"]),
            s["interval"],
            s["p"],
            chance_words(t["chance_to_beat_control"]),
            _html.percent(t["expected_loss"], 2),
            s["status"],
        )
        for s, t in zip(frame.iter_rows(named=True), table.iter_rows(named=True), strict=True)
    )
    level = f"{1 - report.spec.alpha:.0%}"
    kind = "always-valid interval" if report.spec.sequential else "interval"
    columns = (
        "metric",
        "role",
        "arm",
        "control",
        "arm value",
        "lift",
        kind,
        "p",
        "chance to beat control",
        "expected loss",
        "status",
    )
    notes = "; ".join(
        f"<b>{_html.esc(term)}</b>: {_html.esc(words.format(level=level))}"
        for term, words in GLOSSARY
    )
    how = (
        f"Goals: {report.spec.correction.upper()}-adjusted over goals × arms, intervals at "
        "the matching level. Guardrails: one-sided at "
        f"{report.spec.guardrail_alpha:.0%}. Variance: {report.comparisons.variance_note[0]}."
        if report.metrics
        else ""
    )
    return _html.Html(
        _html.table(columns, rows, numeric=columns[3:10])
        + _html.muted(_html.Html(notes))
        + _html.muted(how)
    )


# -- charts --------------------------------------------------------------------------


def _over_time(report: ExperimentReport, metric: str | None) -> tuple[int, str]:
    names = [m.name for m in report.metrics]
    if metric is None:
        goal = report._goal_index()
        i = goal if goal is not None else 0
    elif metric in names:
        i = names.index(metric)
    else:
        raise ValueError(f"no metric {metric!r} in this experiment; choose one of {names}")
    return i, names[i]


def lift_over_time(report: ExperimentReport, metric: str | None = None) -> alt.LayerChart:
    """Cumulative relative lift of each arm over time with its decision interval band
    (the running-intersection confidence sequence when sequential), default the goal."""
    i, name = _over_time(report, metric)
    c = report.comparisons
    times = c.times.to_list()
    rows = []
    for j, arm in enumerate(report.arms):
        for k, when in enumerate(times):
            low, high = c.rel_cs_t[i, j, k]
            rows.append(
                {
                    "time": when,
                    "arm": arm,
                    "lift": _pct(c.rel_lift_t[i, j, k]),
                    "low": _pct(low),
                    "high": _pct(high),
                }
            )
    data = pl.DataFrame(rows, schema_overrides={"time": pl.Datetime("us", "UTC")})
    colors = _html.treatment_colors(report.arms)
    color = alt.Color("arm:N", scale=alt.Scale(domain=list(colors), range=list(colors.values())))
    base = alt.Chart(data).encode(x=alt.X("time:T", title="time (UTC)"), color=color)
    band = base.mark_area(opacity=0.2).encode(y="low:Q", y2="high:Q")
    line = base.mark_line().encode(
        y=alt.Y("lift:Q", title=f"{name}: lift vs {report.control} (%)"),
        tooltip=["time:T", "arm:N", alt.Tooltip("lift:Q", format=".2f")],
    )
    zero = alt.Chart(pl.DataFrame({"y": [0.0]})).mark_rule(color="#888").encode(y="y:Q")
    kind = "confidence sequence" if report.spec.sequential else "interval"
    return alt.LayerChart(layer=[band, line, zero]).properties(
        width=WIDTH - 140, height=220, title=f"Cumulative lift over time ({kind} band)"
    )


def rate_over_time(report: ExperimentReport, metric: str | None = None) -> alt.Chart:
    """Each arm's cumulative rate of ``metric`` (default the goal) over time."""
    i, name = _over_time(report, metric)
    c = report.comparisons
    arms = (report.control, *report.arms)
    rows = [
        {"time": when, "arm": arm, "rate": float(c.mean_t[i, v, k])}
        for v, arm in enumerate(arms)
        for k, when in enumerate(c.times.to_list())
    ]
    data = pl.DataFrame(rows, schema_overrides={"time": pl.Datetime("us", "UTC")})
    colors = _html.variant_colors(arms, report.control)
    return (
        alt.Chart(data)
        .mark_line()
        .encode(
            x=alt.X("time:T", title="time (UTC)"),
            y=alt.Y("rate:Q", title=f"{report.labels[i]} (cumulative)"),
            color=alt.Color(
                "arm:N", scale=alt.Scale(domain=list(colors), range=list(colors.values()))
            ),
            tooltip=["time:T", "arm:N", alt.Tooltip("rate:Q", format=".4g")],
        )
        .properties(width=WIDTH - 140, height=200, title=f"{name} per arm over time")
    )


def _pct(x: Any) -> float | None:
    x = float(x)
    return 100 * x if np.isfinite(x) else None


def segment_forest(
    report: ExperimentReport, metric: str | None = None
) -> alt.Chart | alt.LayerChart:
    """Forest plot: the lift of each arm in each segment with its interval, against the
    no-effect line (default the goal); says so when the recording has no segments."""
    _, name = _over_time(report, metric)
    table = report.segments
    if table.is_empty():
        return (
            alt.Chart(pl.DataFrame({"text": ["no segment column in this recording"]}))
            .mark_text()
            .encode(text="text:N")
        )
    data = table.filter(pl.col("metric") == name).select(
        "segment",
        "arm",
        "shows",
        *(pl.col(c).mul(100.0).alias(c) for c in ("rel_lift", "rel_low", "rel_high")),
    )
    colors = _html.treatment_colors(report.arms)
    color = alt.Color("arm:N", scale=alt.Scale(domain=list(colors), range=list(colors.values())))
    base = alt.Chart(data).encode(y=alt.Y("segment:N", title=None), yOffset="arm:N", color=color)
    rule = base.mark_rule().encode(x=alt.X("rel_low:Q", title=f"{name}: lift (%)"), x2="rel_high:Q")
    point = base.mark_point(filled=True).encode(
        x="rel_lift:Q",
        tooltip=["segment:N", "arm:N", "shows:N", alt.Tooltip("rel_lift:Q", format=".2f")],
    )
    zero = alt.Chart(pl.DataFrame({"x": [0.0]})).mark_rule(color="#888").encode(x="x:Q")
    return alt.LayerChart(layer=[zero, rule, point]).properties(
        width=WIDTH - 140, height=alt.Step(24), title=f"{name} by segment"
    )
