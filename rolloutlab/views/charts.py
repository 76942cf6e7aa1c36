"""Altair charts of recordings, verdicts and experiments. They return charts, never display.

Every chart aggregates in polars first, to at most ``max_points`` points per series
(a 24 h recording at a 15 s step has 5,760 steps) and fewer when many series share a
dataset, so no chart hits altair's row limit or slows a notebook. Latency quantiles
come from bucket counts summed over each time bin (never from averaged quantiles).
Variant and decision colours come from :mod:`rolloutlab.views.palette`, so primary is
the same blue everywhere; times are UTC.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import altair as alt
import numpy as np
import polars as pl

from rolloutlab import frames, stats
from rolloutlab._html import DECISION_COLORS, TREATMENT_COLORS
from rolloutlab.judges.flagger import histogram_quantile
from rolloutlab.views.palette import (
    NEUTRAL_COLOR,
    classification_scale,
    decision_scale,
    treatment_colors,
    variant_scale,
)

MAX_POINTS = 2000
#: altair's default row limit per dataset: charts stay under it instead of lifting it.
ROW_LIMIT = 5000
WIDTH = 640
TIME_TITLE = "time (UTC)"
P_FLOOR = 1e-12  # p-values below this are drawn at it (a log axis has no zero)
REFERENCE_COLOR = "#555555"
#: The canary-weight shading: from faint at 0% to clearly tinted at 100%.
SHADING_OPACITY = [0.04, 0.4]
#: 24-hour UTC labels whatever the zoom (vega's default says "10 AM").
TIME_FORMAT = {
    "year": "%Y",
    "month": "%b %d",
    "date": "%b %d",
    "hours": "%H:%M",
    "minutes": "%H:%M",
    "seconds": "%H:%M:%S",
}

#: Time-series panels: key -> axis title (with the unit).
PANELS: dict[str, str] = {
    "request_rate": "request rate (req/s)",
    "error_rate": "error rate (%)",
    "latency_p50": "latency p50 (ms)",
    "latency_p99": "latency p99 (ms)",
    "weight": "weight (%)",
}
_NEEDS = {
    "request_rate": "requests",
    "error_rate": "errors",
    "latency_p50": "latency_ms",
    "latency_p99": "latency_ms",
    "weight": "weight",
}

__all__ = [
    "MAX_POINTS",
    "PANELS",
    "evidence",
    "latency_cdf",
    "lift",
    "scorecard",
    "split",
    "srm",
    "timeline",
    "timeseries",
]


# -- shared pieces -------------------------------------------------------------------


def _iso(values: Iterable[datetime] | pl.Series) -> pl.Series:
    """UTC datetimes as ISO strings with a ``Z``, which every browser parses as UTC."""
    series = values if isinstance(values, pl.Series) else pl.Series(list(values))
    if series.dtype == pl.Null or series.is_empty():
        return pl.Series([], dtype=pl.String)
    return series.dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _x(field: str = "time", title: str | None = TIME_TITLE) -> alt.X:
    return alt.X(
        f"{field}:T", scale=alt.Scale(type="utc"), axis=alt.Axis(format=TIME_FORMAT), title=title
    )


def _finite(value: Any) -> float | None:
    """A float, or None for None/NaN/inf/non-numbers (polars nulls, not NaN, in data)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _stride(frame: pl.DataFrame, max_points: int, by: str | list[str]) -> pl.DataFrame:
    """At most ``max_points`` evenly spaced rows per ``by`` group, always keeping the last."""
    if frame.is_empty():
        return frame
    longest = cast(int, frame.group_by(by).len()["len"].max())  # a count: polars types it wide
    step = math.ceil(longest / max_points)
    if step <= 1:
        return frame
    idx = pl.int_range(pl.len()).over(by)
    size = pl.len().over(by)
    return frame.filter(idx % step == (size - 1) % step)


def _budget(max_points: int, series: int) -> int:
    """Points per series so that ``series`` of them fit one dataset under the row limit."""
    return max(1, min(max_points, (ROW_LIMIT - 1) // max(series, 1)))


def _message(text: str, title: str = "") -> alt.Chart:
    """A chart that only says ``text`` (no data to draw)."""
    data = pl.DataFrame({"text": [text]})
    chart = alt.Chart(data).mark_text(size=13, color=REFERENCE_COLOR).encode(text="text:N")
    return chart.properties(width=WIDTH, height=40, title=title)


def _runs(ticks: pl.DataFrame, column: str, step_s: float, by: Sequence[str] = ()) -> pl.DataFrame:
    """Runs of equal ``column`` over consecutive ticks (per ``by`` group) as rows with
    ISO ``start``/``end``, the value, and the last value of every other column; a tick
    ending at ``timestamp`` covers the ``step_s`` before it. Null values are left out."""
    by = list(by)
    rest = [c for c in ticks.columns if c not in (*by, column, "timestamp")]
    run = pl.col(column).rle_id()
    runs = (
        ticks.drop_nulls(column)
        .with_columns(run=run.over(by) if by else run)
        .group_by(*by, "run", maintain_order=True)
        .agg(
            start=pl.col("timestamp").min() - pl.duration(microseconds=int(step_s * 1e6)),
            end=pl.col("timestamp").max(),
            **{column: pl.col(column).first()},
            **{c: pl.col(c).last() for c in rest},
        )
    )
    return runs.with_columns(start=_iso(runs["start"]), end=_iso(runs["end"])).drop("run")


def _weights(
    times: Sequence[datetime] | pl.Series, weights: Iterable[Any], step_s: float
) -> pl.DataFrame:
    """The canary's weight steps (start, end, weight) for the shading."""
    ticks = pl.DataFrame(
        {
            "timestamp": pl.Series(list(times), dtype=pl.Datetime("us", "UTC")),
            "weight": pl.Series([_finite(w) for w in weights], dtype=pl.Float64),
        }
    )
    return _runs(ticks, "weight", step_s)


def _tick_step(times: pl.Series) -> float:
    """Seconds between ticks: the smallest positive gap (60 with fewer than two)."""
    gaps = times.unique().sort().diff().dt.total_microseconds().drop_nulls()
    gaps = gaps.filter(gaps > 0)
    return cast(int, gaps.min()) / 1e6 if len(gaps) else 60.0  # microseconds, not null


#: One dash pattern per judge for the decision rules (the colour is the decision).
JUDGE_DASHES = ([1, 0], [6, 3], [2, 2], [8, 3, 2, 3])


def _markers(verdicts: Iterable[Any]) -> pl.DataFrame:
    """One row per verdict that reached a decision: time, judge, decision, and the
    legend's label ("flagger: rollback")."""
    rows = [
        (v.decided_at, str(v.judge), str(v.decision))
        for v in verdicts
        if isinstance(getattr(v, "decided_at", None), datetime)
    ]
    return pl.DataFrame(
        {
            "time": _iso([r[0] for r in rows]),
            "judge": [r[1] for r in rows],
            "decision": [r[2] for r in rows],
            "label": [f"{r[1]}: {r[2]}" for r in rows],
        },
        schema={"time": pl.String, "judge": pl.String, "decision": pl.String, "label": pl.String},
    )


def _with_context(
    layers: Sequence[alt.Chart],
    shading: pl.DataFrame | None = None,
    markers: pl.DataFrame | None = None,
) -> alt.LayerChart:
    """``layers`` with the weight steps shaded behind them and each judge's decision in
    front (a rule coloured by the decision, dashed by judge, named in one legend rather
    than labelled on every panel): the shared context of every time chart."""
    behind: list[alt.Chart] = []
    front: list[alt.Chart] = []
    if shading is not None and shading.height > 1:  # one run: no steps to show
        behind.append(
            alt.Chart(shading)
            .mark_rect(color=TREATMENT_COLORS[0])
            .encode(
                x=_x("start"),
                x2="end:T",
                opacity=alt.Opacity(
                    "weight:Q",
                    scale=alt.Scale(domain=[0, 100], range=SHADING_OPACITY),
                    legend=alt.Legend(title="canary weight (%)", symbolType="square"),
                ),
                tooltip=[
                    alt.Tooltip("start:T", title="from", format="%Y-%m-%d %H:%M"),
                    alt.Tooltip("weight:Q", title="canary weight (%)"),
                ],
            )
        )
    if markers is not None and markers.height:
        labels = markers["label"].to_list()
        colors = [DECISION_COLORS.get(d, NEUTRAL_COLOR) for d in markers["decision"]]
        dashes = [JUDGE_DASHES[i % len(JUDGE_DASHES)] for i in range(len(labels))]
        legend = alt.Legend(title="decision", symbolType="stroke")
        front.append(
            alt.Chart(markers)
            .mark_rule(strokeWidth=2.5)
            .encode(
                x=_x(),
                stroke=alt.Stroke(
                    "label:N", scale=alt.Scale(domain=labels, range=colors), legend=legend
                ),
                strokeDash=alt.StrokeDash(
                    "label:N",
                    scale=alt.Scale(domain=labels, range=dashes),
                    legend=legend,  # the same as the colours': one legend
                ),
                tooltip=["judge:N", "decision:N", alt.Tooltip("time:T", format="%H:%M:%S")],
            )
        )
    return alt.LayerChart(layer=[*behind, *layers, *front])


# -- recordings ----------------------------------------------------------------------


def _binned(recording: Any, max_points: int) -> frames.TickTable:
    """The recording in at most ``max_points`` equal time bins (whole steps each)."""
    frame = recording.frame
    step = recording.step_s or frames.step_seconds(frame) or 60.0
    span_s = (recording.end - recording.start).total_seconds()
    factor = max(1, math.ceil((span_s / step + 1) / max_points))
    return frames.tick_table(frame, step * factor, variants=recording.variants)


def _series(table: frames.TickTable, panel: str) -> dict[str, np.ndarray]:
    """One panel's values per variant, per time bin."""
    out = {}
    for v in table.variants:
        requests = table.counter("requests", v)
        with np.errstate(invalid="ignore", divide="ignore"):
            if panel == "request_rate":
                out[v] = requests / table.interval_s
            elif panel == "error_rate":
                out[v] = np.where(
                    requests > 0, 100.0 * table.counter("errors", v) / requests, np.nan
                )
            elif panel in ("latency_p50", "latency_p99"):
                q = 0.5 if panel == "latency_p50" else 0.99
                edges = table.edges.get("latency_ms", np.array([]))
                out[v] = np.asarray(histogram_quantile(q, edges, table.histogram("latency_ms", v)))
            else:
                out[v] = table.weight(v)
    return out


def timeseries(
    recording: Any,
    verdicts: Iterable[Any] = (),
    *,
    panels: Sequence[str] = tuple(PANELS),
    max_points: int = MAX_POINTS,
) -> alt.VConcatChart | alt.Chart:
    """Each canonical metric per variant over time, one panel per metric (request rate,
    error rate, latency p50/p99 from summed buckets, weight), with the canary's weight
    steps shaded and each verdict's decision marked."""
    unknown = [p for p in panels if p not in PANELS]
    if unknown:
        raise ValueError(f"unknown panel(s) {unknown}; choose from {list(PANELS)}")
    if not len(recording):
        return _message("this recording is empty", "rollout over time")
    table = _binned(recording, _budget(max_points, len(recording.variants)))
    times = _iso(table.ends)
    scale = variant_scale(recording.variants, recording.control)
    treatments = recording.treatments
    shading = (
        _weights(table.ends, table.weight(treatments[0]), table.interval_s) if treatments else None
    )
    markers = _markers(verdicts)
    charts = []
    for panel in (p for p in panels if _NEEDS[p] in recording.metrics):
        data = (
            pl.concat(
                [
                    pl.DataFrame({"time": times, "variant": v, "value": values})
                    for v, values in _series(table, panel).items()
                ]
            )
            .with_columns(pl.col("value").fill_nan(None))
            .drop_nulls("value")
        )
        line = (
            alt.Chart(data)
            .mark_line(strokeWidth=1.5)
            .encode(
                x=_x(),
                y=alt.Y("value:Q", title=PANELS[panel]),
                color=alt.Color("variant:N", scale=scale, legend=alt.Legend(title="variant")),
                tooltip=[
                    alt.Tooltip("time:T", format="%Y-%m-%d %H:%M"),
                    "variant:N",
                    alt.Tooltip("value:Q", title=PANELS[panel], format=".4g"),
                ],
            )
        )
        charts.append(_with_context([line], shading, markers).properties(width=WIDTH, height=110))
    if not charts:
        return _message("no canonical metrics in this recording", "each variant over time")
    bin_note = f"{table.interval_s:g} s bins"
    return alt.vconcat(*charts).properties(title=f"Each variant over time ({bin_note})")


def latency_cdf(recording: Any, *, metric: str = "latency_ms") -> alt.Chart:
    """Each variant's latency distribution over the whole recording, as the share of
    requests at or below each bucket edge (bucket counts summed, then cumulated)."""
    rows = []
    for v in recording.variants:
        edges, counts = frames.bucket_counts(recording.frame, metric, v)
        if not counts.size or counts.sum() <= 0:
            continue
        cdf = 100.0 * np.cumsum(counts.sum(axis=0)) / counts.sum()
        keep = np.isfinite(edges) & (edges > 0)
        rows.append(pl.DataFrame({"variant": v, "le_ms": edges[keep], "share": cdf[keep]}))
    if not rows:
        return _message(f"no '{metric}' buckets in this recording", "latency distribution")
    data = pl.concat(rows)
    # Drop the empty head and the full tail (Istio's edges run to an hour), keeping one
    # edge of each so the curves still start at 0% and end at 100%.
    shares = data.group_by("le_ms").agg(lo=pl.col("share").max(), hi=pl.col("share").min())
    first = shares.filter(pl.col("lo") <= 0)["le_ms"].max()
    last = shares.filter(pl.col("hi") >= 100 - 1e-9)["le_ms"].min()
    data = data.filter(
        pl.col("le_ms").is_between(first or 0, last if last is not None else math.inf)
    )
    # The control wide and solid underneath, the others thinner and dashed on top: where
    # the curves coincide both stay visible.
    variants = data["variant"].unique(maintain_order=True).to_list()
    control = recording.control if recording.control in variants else variants[0]
    order = [control, *(v for v in variants if v != control)]
    dashes = [[1, 0]] + [JUDGE_DASHES[1 + i % 3] for i in range(len(order) - 1)]
    widths = [5] + [2] * (len(order) - 1)
    data = data.with_columns(
        layer=pl.col("variant").replace_strict({v: i for i, v in enumerate(order)})
    )
    legend = alt.Legend(title="variant", symbolType="stroke", symbolStrokeWidth=3)
    return (
        alt.Chart(data)
        .mark_line(point=alt.OverlayMarkDef(size=20))
        .encode(
            x=alt.X("le_ms:Q", scale=alt.Scale(type="log"), title="latency (ms, log scale)"),
            y=alt.Y("share:Q", scale=alt.Scale(domain=[0, 100]), title="requests at or below (%)"),
            color=alt.Color(
                "variant:N",
                scale=variant_scale(recording.variants, recording.control),
                legend=legend,
            ),
            strokeDash=alt.StrokeDash(
                "variant:N", scale=alt.Scale(domain=order, range=dashes), legend=legend
            ),
            strokeWidth=alt.StrokeWidth(
                "variant:N", scale=alt.Scale(domain=order, range=widths), legend=None
            ),
            order=alt.Order("layer:Q"),
            tooltip=[
                "variant:N",
                alt.Tooltip("le_ms:Q", title="latency ≤ (ms)"),
                alt.Tooltip("share:Q", title="requests (%)", format=".2f"),
            ],
        )
        .properties(width=WIDTH, height=220, title="Latency distribution (from histogram buckets)")
    )


def split(recording: Any, *, max_points: int = MAX_POINTS) -> alt.Chart:
    """The canary's share of requests in each time bin (solid, with points) against the
    weight in force (dashed steps): they should move together, step by step. The
    sample-ratio-mismatch test of the totals against the weights is in the title, with
    what it means."""
    if "requests" not in recording.metrics or not recording.treatments:
        return _message("no requests per variant in this recording", "traffic split")
    table = _binned(recording, _budget(max_points, 2 * len(recording.treatments)))
    requests = {v: table.counter("requests", v) for v in table.variants}
    total = sum(requests.values())
    times = _iso(table.ends)
    parts = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for v in recording.treatments:
            share = np.where(total > 0, 100.0 * requests[v] / total, np.nan)
            for kind, values in (("requests seen", share), ("weight in force", table.weight(v))):
                parts.append(
                    pl.DataFrame(
                        {"time": times, "variant": v, "kind": kind, "percent": values},
                        schema_overrides={"percent": pl.Float64},
                    )
                )
    data = pl.concat(parts).with_columns(pl.col("percent").fill_nan(None)).drop_nulls("percent")
    p = _srm_p(recording, "requests", None)
    verdict = "as planned" if p is None or p >= 0.001 else "NOT as planned: check the routing"
    legend = alt.Legend(title=f"to {', '.join(recording.treatments)}", symbolType="stroke")
    colors = [TREATMENT_COLORS[0], REFERENCE_COLOR]

    def kinds(values: list[Any]) -> alt.Scale:
        return alt.Scale(domain=["requests seen", "weight in force"], range=values)

    return (
        alt.Chart(data)
        .mark_line(strokeWidth=2, interpolate="step-before")
        .encode(
            x=_x(),
            y=alt.Y("percent:Q", title="to the canary (%)"),
            color=alt.Color("kind:N", scale=kinds(colors), legend=legend),
            strokeDash=alt.StrokeDash("kind:N", scale=kinds([[1, 0], [6, 3]]), legend=legend),
            detail="variant:N",
            tooltip=[
                alt.Tooltip("time:T", format="%Y-%m-%d %H:%M"),
                "variant:N",
                "kind:N",
                alt.Tooltip("percent:Q", title="%", format=".1f"),
            ],
        )
        .properties(
            width=WIDTH,
            height=180,
            title=alt.TitleParams(
                f"Traffic to the canary per {table.interval_s:g} s bin vs the weight",
                subtitle=f"split test (sample-ratio mismatch, χ² p = {_p_text(p)}): {verdict}",
            ),
        )
    )


def _srm_p(recording: Any, metric: str, planned: Mapping[str, float] | None) -> float | None:
    """The sample-ratio-mismatch χ² p-value of ``metric``'s totals against the plan."""
    counts = frames.totals(recording.frame, metric)
    variants = [v for v in recording.variants if v in counts.columns]
    if counts.is_empty() or not variants:
        return None
    observed = counts.select(variants).to_numpy()
    share = _planned_share(recording.frame, counts["timestamp"], variants, planned)
    expected = (observed.sum(axis=1, keepdims=True) * share).sum(axis=0)
    return stats.srm(observed.sum(axis=0), expected).p_value


def srm(
    recording: Any,
    *,
    metric: str | None = None,
    planned: Mapping[str, float] | None = None,
    max_points: int = MAX_POINTS,
) -> alt.Chart:
    """Each variant's cumulative share of traffic, observed (solid) vs planned (dashed),
    with the sample-ratio-mismatch χ² p-value at the end in the title.

    ``metric`` is the unit counted (``visitors`` when recorded, else ``requests``); the
    plan is the recorded weight in force at each step, or ``planned`` percents.
    """
    metric = metric or ("visitors" if "visitors" in recording.metrics else "requests")
    counts = frames.totals(recording.frame, metric)
    variants = [v for v in recording.variants if v in counts.columns]
    if counts.is_empty() or not variants:
        return _message(f"no '{metric}' counts in this recording", "traffic split")
    observed = counts.select(variants).to_numpy()
    share = _planned_share(recording.frame, counts["timestamp"], variants, planned)
    cum_obs = observed.cumsum(axis=0)
    cum_exp = (observed.sum(axis=1, keepdims=True) * share).cumsum(axis=0)
    cum_total = cum_obs.sum(axis=1)
    started = cum_total >= 1  # no share before the first request
    times = _iso(counts["timestamp"]).filter(pl.Series(started))
    parts = [
        pl.DataFrame(
            {
                "time": times,
                "variant": v,
                "kind": kind,
                "share": 100 * values[started, j] / cum_total[started],
            }
        )
        for kind, values in (("observed", cum_obs), ("planned", cum_exp))
        for j, v in enumerate(variants)
    ]
    data = _stride(pl.concat(parts), _budget(max_points, 2 * len(variants)), by=["variant", "kind"])
    p = stats.srm(cum_obs[-1], cum_exp[-1]).p_value  # χ² against the plan in force
    return (
        alt.Chart(data)
        .mark_line(strokeWidth=1.5)
        .encode(
            x=_x(),
            y=alt.Y("share:Q", title=f"share of {metric} (%)"),
            color=alt.Color(
                "variant:N",
                scale=variant_scale(recording.variants, recording.control),
                legend=alt.Legend(title="variant"),
            ),
            strokeDash=alt.StrokeDash(
                "kind:N",
                scale=alt.Scale(domain=["observed", "planned"], range=[[1, 0], [5, 3]]),
                legend=alt.Legend(title="share"),
            ),
            tooltip=[
                alt.Tooltip("time:T", format="%Y-%m-%d %H:%M"),
                "variant:N",
                "kind:N",
                alt.Tooltip("share:Q", title="share (%)", format=".2f"),
            ],
        )
        .properties(
            width=WIDTH,
            height=180,
            title=f"Traffic split, observed vs planned (SRM χ² p = {_p_text(p)})",
        )
    )


def _planned_share(
    frame: pl.DataFrame,
    timestamps: pl.Series,
    variants: Sequence[str],
    planned: Mapping[str, float] | None,
) -> np.ndarray:
    """Each variant's planned fraction at each timestamp (rows sum to 1): ``planned``,
    else the recorded weight in force (carried forward), else an equal split."""
    if planned is not None:
        plan = pl.DataFrame({v: [float(planned.get(v, 0.0))] for v in variants})
    else:
        weights = frame.filter((pl.col("metric") == "weight") & (pl.col("kind") == "gauge"))
        wide = weights.pivot(
            on="variant", index="timestamp", values="value", aggregate_function="last"
        )
        plan = pl.DataFrame({"timestamp": timestamps}).join(wide, on="timestamp", how="left")
        plan = plan.select(
            pl.col(v).forward_fill() if v in plan.columns else pl.lit(None, pl.Float64).alias(v)
            for v in variants
        )
    share = plan.fill_null(0.0).to_numpy().clip(min=0.0)
    share = np.broadcast_to(share, (len(timestamps), len(variants)))
    row = share.sum(axis=1, keepdims=True)
    return np.where(row > 0, share / np.where(row > 0, row, 1.0), 1.0 / len(variants))


def _p_text(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "n/a"
    return "< 0.0001" if p < 1e-4 else f"{p:.2g}"


# -- verdicts ------------------------------------------------------------------------


def _metric_specs(spec: Any) -> dict[str | None, Any]:
    return {getattr(m, "name", None): m for m in (getattr(spec, "metrics", None) or ())}


def _references(result: Any, metric_spec: Any) -> list[tuple[float, str]]:
    """Reference lines for a result's estimate: for a ratio or a latency shift, no effect,
    the rollback margin and the promotion bound; and any threshold the judge reports
    (Flagger's thresholdRange)."""
    refs = []
    unit = str(getattr(result, "unit", ""))
    if unit.endswith(("ratio", "×")) or unit == "latency shift":
        none = 0.0 if unit == "latency shift" else 1.0
        refs.append((none, "no effect"))
        sign = -1.0 if getattr(metric_spec, "direction", "increase") == "decrease" else 1.0
        margin = _finite(getattr(metric_spec, "margin", None))
        if margin:
            refs.append((none + sign * margin, "rollback margin"))
        tolerance = getattr(metric_spec, "promotion_tolerance", None)
        if callable(tolerance):
            refs.append((none + sign * tolerance(), "promotion bound"))
    details = getattr(result, "details", None)
    for key in ("min", "max"):
        value = _finite(details.get(key)) if isinstance(details, dict) else None
        if value is not None:
            refs.append((value, f"threshold {key}"))
    return refs


def _ref_layers(refs: Sequence[tuple[float, str]], channel: str) -> list[alt.Chart]:
    """Dashed reference rules (with their labels in the tooltip) across x or y."""
    if not refs:
        return []
    data = pl.DataFrame({"ref": [r[0] for r in refs], "label": [r[1] for r in refs]})
    enc = alt.X("ref:Q") if channel == "x" else alt.Y("ref:Q")
    return [
        alt.Chart(data)
        .mark_rule(color=REFERENCE_COLOR, strokeDash=[4, 3])
        .encode(enc, tooltip=["label:N", "ref:Q"])
    ]


_RESULT_SCHEMA = {
    **{c: pl.String for c in ("metric", "classification", "unit", "reason")},
    **{c: pl.Float64 for c in ("p_value", "estimate", "lo", "hi")},
}


def _results(results: Iterable[Any], times: Iterable[datetime] | None = None) -> pl.DataFrame:
    """MetricResult-shaped objects as rows: metric, classification, unit, reason,
    p_value, estimate, lo, hi (non-finite numbers as nulls), and ``time`` when given."""
    results = list(results)
    stamps = [None] * len(results) if times is None else list(times)
    rows = []
    for m, when in zip(results, stamps, strict=True):
        ci = getattr(m, "ci", None)
        lo, hi = ci if isinstance(ci, tuple | list) and len(ci) == 2 else (None, None)
        rows.append(
            {
                "metric": str(getattr(m, "name", "?")),
                "classification": str(getattr(m, "classification", "?")),
                "unit": str(getattr(m, "unit", "") or ""),
                "reason": str(getattr(m, "reason", "") or ""),
                "p_value": _finite(getattr(m, "p_value", None)),
                "estimate": _finite(getattr(m, "estimate", None)),
                "lo": _finite(lo),
                "hi": _finite(hi),
                "time": when,
            }
        )
    schema = _RESULT_SCHEMA | {"time": pl.Datetime("us", "UTC")}
    frame = pl.DataFrame(rows, schema=schema)
    return frame if times is not None else frame.drop("time")


def _interval_layers(
    data: pl.DataFrame, x_title: str, color: alt.Color, tooltip: list[Any], **encoding: Any
) -> list[alt.Chart]:
    """A point estimate on a thick interval rule (columns estimate, lo, hi), on x."""
    x = alt.X("estimate:Q", title=x_title, scale=alt.Scale(zero=False))
    base = alt.Chart(data).encode(color=color, tooltip=tooltip, **encoding)
    return [
        base.mark_rule(strokeWidth=3).encode(x=alt.X("lo:Q", title=x_title), x2="hi:Q"),
        base.mark_point(filled=True, size=90, opacity=1).encode(x=x),
    ]


def evidence(verdict: Any, *, max_points: int = MAX_POINTS) -> alt.Chart | alt.VConcatChart:
    """The sequential evidence in a verdict's ticks, one row per metric: the p-value over
    time on a log axis against α, and the estimate's interval (a confidence sequence for
    the rolloutlab judge) against no effect and the margin; weight steps shaded and the
    decision marked. Reads each tick's MetricResults, so it works for any judge."""
    ticks = tuple(getattr(verdict, "ticks", ()) or ())
    title = f"Evidence over time: {getattr(verdict, 'judge', '?')}"
    pairs = [(m, t.timestamp) for t in ticks for m in getattr(t, "metrics", ()) or ()]
    data = _results([m for m, _ in pairs], [when for _, when in pairs])
    if data.filter(pl.col("p_value").is_not_null() | pl.col("estimate").is_not_null()).is_empty():
        return _message("no per-tick evidence in this verdict", title)
    data = _stride(data.with_columns(time=_iso(data["time"])), max_points, by="metric")
    times = pl.Series([t.timestamp for t in ticks], dtype=pl.Datetime("us", "UTC"))
    shading = _weights(times, [t.weight for t in ticks], _tick_step(times))
    markers = _markers([verdict])
    spec = getattr(verdict, "spec", None)
    specs = _metric_specs(spec)
    tooltip = [alt.Tooltip("time:T", format="%H:%M:%S")] + [
        alt.Tooltip(f"{c}:Q", format=".3g") for c in ("p_value", "estimate", "lo", "hi")
    ]
    size = {"width": WIDTH // 2 - 20, "height": 140}
    latest = {str(m.name): m for t in ticks for m in getattr(t, "metrics", ()) or ()}
    rows = []
    for name in data["metric"].unique(maintain_order=True):
        part = data.filter(pl.col("metric") == name)
        unit = part["unit"][0]
        alpha = _finite(getattr(specs.get(name), "alpha", None))
        alpha = alpha or _finite(getattr(spec, "alpha", None)) or 0.05
        row = []
        pvals = part.drop_nulls("p_value").with_columns(pl.col("p_value").clip(P_FLOOR))
        if pvals.height:
            p_line = (
                alt.Chart(pvals)
                .mark_line(color=TREATMENT_COLORS[0])
                .encode(
                    x=_x(),
                    y=alt.Y("p_value:Q", scale=alt.Scale(type="log"), title="p-value (log scale)"),
                    tooltip=tooltip,
                )
            )
            layers = [p_line, *_ref_layers([(alpha, f"α = {alpha:g}")], "y")]
            row.append(
                _with_context(layers, shading, markers).properties(
                    title=f"{name}: p-value vs α = {alpha:g}", **size
                )
            )
        est = part.drop_nulls("estimate")
        if est.height:
            y_title = f"estimate ({unit})" if unit else "estimate"
            y = alt.Y("estimate:Q", title=y_title, scale=alt.Scale(zero=False))
            band = (
                alt.Chart(est.drop_nulls(["lo", "hi"]))
                .mark_area(color=TREATMENT_COLORS[0], opacity=0.25)
                .encode(x=_x(), y=alt.Y("lo:Q", title=y_title), y2="hi:Q")
            )
            e_line = (
                alt.Chart(est)
                .mark_line(color=TREATMENT_COLORS[0])
                .encode(x=_x(), y=y, tooltip=tooltip)
            )
            refs = _ref_layers(_references(latest.get(name), specs.get(name)), "y")
            layers = [band, e_line, *refs]
            row.append(
                _with_context(layers, shading, markers).properties(
                    title=f"{name}: estimate and interval", **size
                )
            )
        rows.append(alt.hconcat(*row))
    return alt.vconcat(*rows).properties(title=title)


def scorecard(verdict: Any) -> alt.Chart | alt.VConcatChart:
    """One row per metric of a verdict: the estimate with its interval, coloured by the
    metric's classification (pass green, fail red, inconclusive amber, nodata grey), or a
    line of text when the judge gave no estimate."""
    specs = _metric_specs(getattr(verdict, "spec", None))
    results = tuple(getattr(verdict, "metrics", ()) or ())
    title = f"Scorecard: {getattr(verdict, 'judge', '?')} says {getattr(verdict, 'decision', '?')}"
    if not results:
        return _message("no metric results in this verdict", title)
    color = alt.Color(
        "classification:N", scale=classification_scale(), legend=alt.Legend(title="result")
    )
    tooltip = ["metric:N", "classification:N", "estimate:Q", "lo:Q", "hi:Q", "reason:N"]
    rows: list[alt.Chart | alt.LayerChart] = []
    for result in results:
        data = _results([result])
        name, unit = data["metric"][0], data["unit"][0]
        if data["estimate"][0] is None:
            what = f"{name}: {data['classification'][0]}, no estimate ({data['reason'][0]})"
            rows.append(_message(what))
            continue
        layers = _interval_layers(
            data,
            f"{name} ({unit})" if unit else name,
            color,
            tooltip,
            y=alt.Y("classification:N", title=None),
        )
        refs = _ref_layers(_references(result, specs.get(name)), "x")
        rows.append(alt.LayerChart(layer=[*refs, *layers]).properties(width=WIDTH - 140, height=30))
    return alt.vconcat(*rows).resolve_scale(x="independent").properties(title=title)


def timeline(source: Any) -> alt.Chart:
    """Each judge's decision tick by tick, one lane per judge (runs of the same decision
    merged), so the judges of a replay can be compared at a glance.

    ``source`` is a ``Replay`` (its ``timeline`` frame: the tooltips then also show each
    judge's state at the end of a run, e.g. Flagger's failed checks or Kayenta's score)
    or an iterable of verdicts (their ticks)."""
    if hasattr(source, "timeline"):
        ticks = source.timeline.drop("weight", strict=False)
    else:
        ticks = pl.DataFrame(
            [
                {"timestamp": t.timestamp, "judge": str(v.judge), "decision": str(t.decision)}
                for v in source
                for t in getattr(v, "ticks", ()) or ()
            ],
            schema={
                "timestamp": pl.Datetime("us", "UTC"),
                "judge": pl.String,
                "decision": pl.String,
            },
        )
    if ticks.is_empty():
        return _message("no ticks to show", "Decisions over time")
    data = _runs(ticks, "decision", _tick_step(ticks["timestamp"]), by=["judge"])
    state = [c for c in data.columns if c not in ("judge", "decision", "start", "end")]
    data = data.select(
        "judge",
        "decision",
        "start",
        "end",
        *(c for c in state if data[c].null_count() < data.height),
    )
    return (
        alt.Chart(data)
        .mark_rect()
        .encode(
            x=_x("start"),
            x2="end:T",
            y=alt.Y("judge:N", title=None),
            color=alt.Color(
                "decision:N", scale=decision_scale(), legend=alt.Legend(title="decision")
            ),
            tooltip=[
                "judge:N",
                "decision:N",
                alt.Tooltip("start:T", format="%Y-%m-%d %H:%M:%S", title="from"),
                alt.Tooltip("end:T", format="%Y-%m-%d %H:%M:%S", title="to"),
                *(c for c in data.columns[4:]),
            ],
        )
        .properties(width=WIDTH, height=alt.Step(26), title="Each judge's decision, tick by tick")
    )


# -- experiments ---------------------------------------------------------------------


def lift(result: Any, *, sequential: bool | None = None) -> alt.LayerChart:
    """Relative lift with its interval per metric and arm (in %), against the no-effect
    line at 0.

    ``result`` is an ``ExperimentReport`` or its ``.table()`` frame: columns metric,
    arm, rel_lift and rel_ci_low/high (fixed-horizon) or rel_cs_low/high (always-valid,
    used when ``sequential``, by default the report's own setting), as fractions;
    optional role (goal/guardrail) and p_value. Arms take the treatment colours.
    """
    table = result.table() if hasattr(result, "table") else result
    spec = getattr(result, "spec", None)
    if sequential is None:
        sequential = bool(getattr(spec, "sequential", False))
    bounds = ("rel_cs_low", "rel_cs_high") if sequential else ("rel_ci_low", "rel_ci_high")
    needed = ("metric", "arm", "rel_lift", *bounds)
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"lift() needs columns {list(needed)}; missing {missing}")
    role = pl.format("{} ({})", "metric", "role") if "role" in table.columns else pl.col("metric")
    data = table.select(
        role.alias("metric"),
        "arm",
        *(
            pl.col(c).cast(pl.Float64).fill_nan(None).mul(100.0).alias(new)
            for c, new in zip(("rel_lift", *bounds), ("estimate", "lo", "hi"), strict=True)
        ),
        *(c for c in ("p_value",) if c in table.columns),
    )
    colors = treatment_colors(data["arm"].unique(maintain_order=True))
    color = alt.Color(
        "arm:N",
        scale=alt.Scale(domain=list(colors), range=list(colors.values())),
        legend=alt.Legend(title="arm"),
    )
    tooltip = [
        "metric:N",
        "arm:N",
        alt.Tooltip("estimate:Q", title="lift (%)", format=".2f"),
        alt.Tooltip("lo:Q", title="from (%)", format=".2f"),
        alt.Tooltip("hi:Q", title="to (%)", format=".2f"),
    ]
    if "p_value" in data.columns:
        tooltip.append(alt.Tooltip("p_value:Q", format=".3g"))
    layers = _interval_layers(
        data,
        "relative lift vs control (%)",
        color,
        tooltip,
        y=alt.Y("metric:N", title=None),
        yOffset="arm:N",
    )
    level = 1 - (_finite(getattr(spec, "alpha", None)) or 0.05)
    kind = "always-valid interval" if sequential else "interval"
    return alt.LayerChart(layer=[*_ref_layers([(0.0, "no effect")], "x"), *layers]).properties(
        width=WIDTH - 140, height=alt.Step(30), title=f"Lift per metric ({level:.0%} {kind})"
    )
