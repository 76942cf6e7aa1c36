"""Charts, asserted on ``chart.to_dict()``: marks, encodings, colours, data sizes, units."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import altair as alt
import numpy as np
import polars as pl
import pytest
import scipy.stats

from rolloutlab.judges import judge
from rolloutlab.judges.verdict import MetricResult, TickState, Verdict
from rolloutlab.postmortem import replay
from rolloutlab.sources.recording import Recording
from rolloutlab.sources.simulate import simulate
from rolloutlab.specs import MetricSpec, Spec
from rolloutlab.views import charts, palette

T0 = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)
BLUE, ORANGE = palette.CONTROL_COLOR, palette.TREATMENT_COLORS[0]


# -- helpers -------------------------------------------------------------------------


def views(spec: Any, data: str | None = None) -> Iterator[dict]:
    """Every unit view (a dict with a mark) in a compiled spec, with ``_data`` set to the
    name of the dataset it draws (its own, or the nearest ancestor's)."""
    if isinstance(spec, dict):
        data = spec.get("data", {}).get("name", data)
        if "mark" in spec:
            yield spec | {"_data": data}
        for key, value in spec.items():
            if key != "data":
                yield from views(value, data)
    elif isinstance(spec, list):
        for value in spec:
            yield from views(value, data)


def mark_type(view: dict) -> str:
    return view["mark"] if isinstance(view["mark"], str) else view["mark"]["type"]


def rows(spec: dict, view: dict) -> list[dict]:
    return spec["datasets"][view["_data"]]


def scale_colors(spec: dict, channel: str = "color") -> dict[str, str]:
    """domain -> colour of every ``channel`` scale in the spec (merged)."""
    out = {}
    for view in views(spec):
        scale = view.get("encoding", {}).get(channel, {}).get("scale")
        if scale and "domain" in scale:
            out |= dict(zip(scale["domain"], scale["range"], strict=True))
    return out


def titles(spec: Any) -> list[str]:
    """Every axis title (x/y encodings) in the spec."""
    return [
        enc["title"]
        for view in views(spec)
        for ch, enc in view.get("encoding", {}).items()
        if ch in ("x", "y") and isinstance(enc, dict) and isinstance(enc.get("title"), str)
    ]


def results(i: int) -> tuple[MetricResult, ...]:
    """A failing error ratio whose evidence grows tick by tick, and a passing latency."""
    ratio = 1.0 + 0.1 * i
    return (
        MetricResult(
            "request-success-rate",
            "fail" if i >= 10 else "inconclusive",
            f"canary error rate {ratio:.1f}× primary",
            ratio,
            (ratio - 0.5, ratio + 0.5),
            0.0 if i == 12 else 1.0 / (1 + i) ** 2,  # an exact 0 must still plot on log axis
            "ratio",
        ),
        MetricResult("request-duration", "pass", "p99 as primary", 80.0, (75.0, 85.0), 0.6, "ms"),
    )


def verdict(judge: str = "rolloutlab", decision: str = "rollback", n: int = 13) -> Verdict:
    spec = Spec(
        metrics=(MetricSpec("request-success-rate", "ratio", "errors", "requests", margin=0.2),)
    )
    ticks = tuple(
        TickState(
            T0 + timedelta(minutes=5 * (i + 1)),
            float(min(50, 10 * (i // 3 + 1))),
            decision if i == n - 1 else "continue",
            results(i),
        )
        for i in range(n)
    )
    decided = ticks[-1].timestamp if decision != "continue" else None
    return Verdict(judge, decision, decided, ticks[-1].metrics, f"{decision}: errors", ticks, spec)


@pytest.fixture(scope="module")
def canary() -> Recording:
    return simulate("error-regression", duration_min=90, seed=3)


@pytest.fixture(scope="module")
def day() -> Recording:
    """24 h at a 15 s step: 5,760 steps per series."""
    return simulate("healthy", duration_min=1440, step_s=15, seed=1)


def histogram_recording(step_counts: list[list[float]], edges=(10.0, 100.0, 1000.0, np.inf)):
    """Two-variant recording whose latency buckets per step are ``step_counts`` (per bin)."""
    out = []
    for k, counts in enumerate(step_counts):
        ts = T0 + timedelta(minutes=k + 1)
        for variant in ("primary", "canary"):
            cumulative = np.cumsum(counts)
            out += [
                (ts, variant, "latency_ms", "bucket", le, c)
                for le, c in zip(edges, cumulative, strict=True)
            ]
            out.append((ts, variant, "requests", "counter", None, float(cumulative[-1])))
    frame = pl.DataFrame(
        out, schema=["timestamp", "variant", "metric", "kind", "le", "value"], orient="row"
    )
    return Recording(frame, {"step_s": 60.0})


# -- palette -------------------------------------------------------------------------


def test_palette_scales():
    scale = palette.variant_scale(["primary", "canary"], "primary").to_dict()
    assert scale == {"domain": ["primary", "canary"], "range": [BLUE, ORANGE]}
    assert palette.decision_scale().to_dict()["range"] == ["#2e7d32", "#f9a825", "#c62828"]
    assert palette.classification_scale().to_dict()["domain"] == [
        "pass",
        "fail",
        "inconclusive",
        "nodata",
    ]


# -- latency quantiles from summed buckets --------------------------------------------------


def test_latency_panel_sums_buckets_before_the_quantile():
    # Two steps in one bin: all fast, then all slow. The p99 of the summed buckets is in
    # the slow bucket (982 ms); the mean of the two per-step p99s would be ~500 ms.
    rec = histogram_recording([[100, 0, 0, 0], [0, 0, 100, 0]])
    spec = charts.timeseries(rec, panels=("latency_p99",), max_points=1).to_dict()
    (line,) = [v for v in views(spec) if mark_type(v) == "line"]
    values = {r["variant"]: r["value"] for r in rows(spec, line)}
    assert values == pytest.approx({"primary": 982.0, "canary": 982.0})


# -- time series ---------------------------------------------------------------------


def test_timeseries_panels_colours_units(canary):
    v = verdict()
    spec = charts.timeseries(canary, [v, verdict("flagger", "promote", n=15)]).to_dict()
    assert len(spec["vconcat"]) == 5
    assert titles(spec).count("time (UTC)") >= 5
    for title in charts.PANELS.values():
        assert title in titles(spec)
    assert {"request rate (req/s)", "error rate (%)", "latency p99 (ms)"} <= set(titles(spec))
    assert scale_colors(spec) == {"primary": BLUE, "canary": ORANGE}
    lines = [v for v in views(spec) if mark_type(v) == "line"]
    assert {r["variant"] for r in rows(spec, lines[0])} == {"primary", "canary"}
    assert all(v["encoding"]["x"]["scale"] == {"type": "utc"} for v in lines)
    # the weight steps: one shaded rect per step of the canary's plan (10..50%)
    rects = [v for v in views(spec) if mark_type(v) == "rect"]
    assert len(rects) == 5
    assert [r["weight"] for r in rows(spec, rects[0])] == [10.0, 20.0, 30.0, 40.0, 50.0]
    # visible: the canary's colour, from faint at 0% to 40% opaque at 100%
    assert rects[0]["mark"]["color"] == ORANGE
    assert rects[0]["encoding"]["opacity"]["scale"]["range"] == [0.04, 0.4]
    # each judge's decision: a rule per panel, coloured by decision and dashed by judge,
    # named in one legend (the same field, domain and title on every panel), no text
    rules = [v for v in views(spec) if mark_type(v) == "rule"]
    assert len(rules) == 5
    assert not [v for v in views(spec) if mark_type(v) == "text"]
    green, red = palette.DECISION_COLORS["promote"], palette.DECISION_COLORS["rollback"]
    assert scale_colors(spec, "stroke") == {"rolloutlab: rollback": red, "flagger: promote": green}
    legends = {
        json.dumps([v["encoding"][c]["field"], v["encoding"][c]["legend"]], sort_keys=True)
        for v in rules
        for c in ("stroke", "strokeDash")
    }
    assert legends == {json.dumps(["label", {"symbolType": "stroke", "title": "decision"}])}
    dashes = {tuple(map(tuple, v["encoding"]["strokeDash"]["scale"]["range"])) for v in rules}
    assert len(dashes) == 1 and len(set(next(iter(dashes)))) == 2  # one dash per judge


def test_timeseries_error_rate_is_percent(canary):
    spec = charts.timeseries(canary, panels=("error_rate",)).to_dict()
    (line,) = [v for v in views(spec) if mark_type(v) == "line"]
    data = pl.DataFrame(rows(spec, line))
    means = dict(data.group_by("variant").agg(pl.col("value").mean()).iter_rows())
    assert means["primary"] == pytest.approx(1.0, abs=0.4)  # 1% errors
    assert means["canary"] == pytest.approx(3.0, abs=0.8)  # 3× primary


def test_timeseries_without_decisions_has_no_markers(canary):
    spec = charts.timeseries(canary, panels=("request_rate",)).to_dict()
    assert {mark_type(v) for v in views(spec)} == {"rect", "line"}


def test_timeseries_rejects_unknown_panels(canary):
    with pytest.raises(ValueError, match="latency_p999"):
        charts.timeseries(canary, panels=("latency_p999",))


def test_day_long_recording_stays_small_and_fast(day):
    started = time.perf_counter()
    chart = charts.timeseries(day, [verdict()])
    spec = chart.to_dict()  # altair's default 5,000-row limit is left in force
    assert time.perf_counter() - started < 5.0
    for view in views(spec):
        data = pl.DataFrame(rows(spec, view))
        assert data.height < alt.data_transformers.options.get("max_rows", 5000)
        if "variant" in data.columns:
            assert data.group_by("variant").len()["len"].max() <= charts.MAX_POINTS
    total = sum(len(r) for r in spec["datasets"].values())
    assert total <= 5 * 2 * charts.MAX_POINTS + 100
    assert "45 s bins" in spec["title"]  # 5,760 steps of 15 s, three to a bin
    for chart in (charts.srm(day), charts.latency_cdf(day)):
        spec = chart.to_dict()
        assert max(len(r) for r in spec["datasets"].values()) < 5000


def test_many_variants_stay_under_the_row_limit():
    rec = simulate(
        "healthy",
        variants=("a", "b", "c", "d"),
        weights=(25.0, 25.0, 25.0, 25.0),
        error_ratio=(1, 1, 1, 1),
        latency_shift=(0, 0, 0, 0),
        tail_shift=(0, 0, 0, 0),
        cpu_shift=(0, 0, 0, 0),
        duration_min=1440,
        step_s=60,
    )
    for chart in (charts.timeseries(rec, panels=("request_rate",)), charts.srm(rec)):
        spec = chart.to_dict()
        assert max(len(r) for r in spec["datasets"].values()) < 5000
    colors = scale_colors(charts.srm(rec).to_dict())
    assert colors == {"a": BLUE, **dict(zip("bcd", palette.TREATMENT_COLORS, strict=False))}


# -- distributions and traffic -------------------------------------------------------


def test_latency_cdf(canary):
    spec = charts.latency_cdf(canary).to_dict()
    (line,) = list(views(spec))
    enc = line["encoding"]
    assert enc["x"]["scale"] == {"type": "log"} and "ms" in enc["x"]["title"]
    assert "%" in enc["y"]["title"]
    assert scale_colors(spec) == {"primary": BLUE, "canary": ORANGE}
    data = pl.DataFrame(rows(spec, line))
    for _, part in data.group_by("variant"):
        shares = part.sort("le_ms")["share"].to_list()
        assert shares == sorted(shares) and shares[-1] == pytest.approx(100.0)
    assert data["le_ms"].max() < 10_000  # the hour-long tail buckets are trimmed
    # identical curves stay visible: the primary wide and solid underneath, the canary
    # thin and dashed on top
    assert enc["strokeWidth"]["scale"] == {"domain": ["primary", "canary"], "range": [5, 2]}
    dashes = dict(zip(*enc["strokeDash"]["scale"].values(), strict=True))
    assert dashes["primary"] == [1, 0] and dashes["canary"] != [1, 0]
    assert enc["order"]["field"] == "layer"
    assert dict(data.select("variant", "layer").unique().iter_rows()) == {"primary": 0, "canary": 1}


def test_split_shows_the_weight_per_bin_against_the_requests_seen(canary):
    spec = charts.split(canary).to_dict()
    (line,) = list(views(spec))
    assert line["mark"]["interpolate"] == "step-before"
    assert line["encoding"]["y"]["title"] == "to the canary (%)"
    data = pl.DataFrame(rows(spec, line))
    weight = data.filter(pl.col("kind") == "weight in force")
    # the weight in force per bin is the plan's step, not a cumulative share
    assert sorted(set(weight["percent"])) == [10.0, 20.0, 30.0, 40.0, 50.0]
    seen = data.filter(pl.col("kind") == "requests seen").join(weight, on="time")
    assert (seen["percent"] - seen["percent_right"]).abs().mean() < 3  # follows the steps
    # the split test: scipy's chi-square of the totals against the weights in force
    wide = canary.frame.filter(pl.col("metric").is_in(["requests", "weight"])).pivot(
        on=["metric", "variant"], index="timestamp", values="value"
    )
    step_total = wide['{"requests","primary"}'] + wide['{"requests","canary"}']
    observed = [wide[f'{{"requests","{v}"}}'].sum() for v in ("primary", "canary")]
    expected = [
        (step_total * wide[f'{{"weight","{v}"}}'] / 100).sum() for v in ("primary", "canary")
    ]
    p = scipy.stats.chisquare(observed, expected).pvalue
    assert spec["title"]["subtitle"] == (
        f"split test (sample-ratio mismatch, χ² p = {p:.2g}): as planned"
    )


def test_split_without_requests_says_so():
    rec = simulate("healthy", duration_min=10)
    frame = rec.frame.filter(pl.col("metric") != "requests")
    spec = charts.split(Recording(frame, rec.meta)).to_dict()
    assert mark_type(spec) == "text"


def test_srm_matches_plan_on_a_healthy_canary(canary):
    spec = charts.srm(canary).to_dict()
    assert "SRM χ² p = " in spec["title"]
    p = float(spec["title"].split("p = ")[1].rstrip(")"))
    assert p > 0.01
    view = next(views(spec))
    assert view["encoding"]["strokeDash"]["scale"]["domain"] == ["observed", "planned"]
    data = pl.DataFrame(rows(spec, view))
    last = data.filter(pl.col("time") == data["time"].max())
    shares = {(v, k): s for v, k, s in last.select("variant", "kind", "share").iter_rows()}
    assert shares[("canary", "observed")] == pytest.approx(shares[("canary", "planned")], abs=1)


def test_srm_flags_a_mismatch_and_counts_visitors():
    rec = simulate("ab", duration_min=3 * 24 * 60)
    assert "visitors" in charts.srm(rec).to_dict()["encoding"]["y"]["title"]
    skewed = charts.srm(rec, planned={"A": 45.0, "B": 55.0}).to_dict()
    assert "p = < 0.0001" in skewed["title"]
    # 1000 vs 1100 on a 50/50 plan: p = 0.0290963 (domain.md's reference number)
    rec = histogram_recording([[500, 0, 0, 0], [500, 0, 0, 0]])
    frame = rec.frame.with_columns(
        value=pl.when((pl.col("metric") == "requests") & (pl.col("variant") == "canary"))
        .then(pl.col("value") * 1.1)
        .otherwise("value")
    )
    p = charts.srm(Recording(frame, rec.meta), planned={"primary": 50, "canary": 50})
    assert "p = 0.029)" in p.to_dict()["title"]


# -- verdicts ------------------------------------------------------------------------


def test_evidence_pvalue_on_log_axis_against_alpha_and_interval_against_margin():
    spec = charts.evidence(verdict()).to_dict()
    rows_ = spec["vconcat"]
    assert len(rows_) == 2  # one row per metric
    p_panel, ci_panel = rows_[0]["hconcat"]
    p_line = next(v for v in views(p_panel) if mark_type(v) == "line")
    assert p_line["encoding"]["y"]["scale"] == {"type": "log"}
    assert min(r["p_value"] for r in rows(spec, p_line)) == charts.P_FLOOR  # 0 clipped
    alpha_rule = next(v for v in views(p_panel) if mark_type(v) == "rule" and "y" in v["encoding"])
    assert [r["ref"] for r in rows(spec, alpha_rule)] == [0.05]
    refs = next(v for v in views(ci_panel) if mark_type(v) == "rule" and "y" in v["encoding"])
    # no effect, the rollback margin, the promotion bound (the ratio kind's default 1.5x)
    assert [r["ref"] for r in rows(spec, refs)] == [1.0, pytest.approx(1.2), pytest.approx(1.5)]
    assert "estimate (ratio)" in titles(ci_panel)
    assert any(mark_type(v) == "area" for v in views(ci_panel))  # the interval band
    decision = next(
        v for v in views(p_panel) if mark_type(v) == "rule" and "stroke" in v["encoding"]
    )
    assert rows(spec, decision)[0]["label"] == "rolloutlab: rollback"
    assert "ms" in " ".join(titles(rows_[1]))


def test_evidence_of_the_rolloutlab_judge(canary):
    margins = {
        "metrics": [{"name": "request-success-rate", "margin": 0.1}, {"name": "request-duration"}]
    }
    v = judge(canary, margins, judge="rolloutlab")
    assert v.decision == "rollback"
    spec = charts.evidence(v).to_dict()
    errors = spec["vconcat"][0]["hconcat"]
    p_line = next(x for x in views(errors[0]) if mark_type(x) == "line")
    assert p_line["encoding"]["y"]["scale"] == {"type": "log"}
    assert min(r["p_value"] for r in rows(spec, p_line)) <= 0.05  # crossed α: rolled back
    refs = next(x for x in views(errors[1]) if mark_type(x) == "rule" and "y" in x["encoding"])
    labels = ["no effect", "rollback margin", "promotion bound"]
    assert [r["label"] for r in rows(spec, refs)] == labels
    assert [r["ref"] for r in rows(spec, refs)] == pytest.approx([1.0, 1.1, 1.5])
    latency = spec["vconcat"][1]["hconcat"]
    lat_refs = next(x for x in views(latency[1]) if mark_type(x) == "rule" and "y" in x["encoding"])
    assert [r["ref"] for r in rows(spec, lat_refs)] == pytest.approx([0.0, 0.05, 0.1])
    band = next(x for x in views(errors[1]) if mark_type(x) == "area")
    assert all(r["lo"] <= r["estimate"] <= r["hi"] for r in rows(spec, band))


def test_evidence_thins_long_histories():
    spec = charts.evidence(verdict(n=5000), max_points=500).to_dict()
    assert max(len(r) for r in spec["datasets"].values()) <= 500


def test_evidence_without_numbers_says_so():
    empty = Verdict("flagger", "continue", None, (), "no ticks")
    spec = charts.evidence(empty).to_dict()
    assert mark_type(spec) == "text"
    assert "no per-tick evidence" in spec["datasets"][spec["data"]["name"]][0]["text"]


def test_scorecard_colours_by_classification():
    spec = charts.scorecard(verdict()).to_dict()
    assert spec["title"] == "Scorecard: rolloutlab says rollback"
    assert len(spec["vconcat"]) == 2
    assert scale_colors(spec) == palette.CLASSIFICATION_COLORS
    points = [v for v in views(spec) if mark_type(v) == "point"]
    assert [rows(spec, p)[0]["classification"] for p in points] == ["fail", "pass"]
    assert {"request-success-rate (ratio)", "request-duration (ms)"} <= set(titles(spec))


def test_scorecard_shows_a_judges_threshold():
    flagger = MetricResult(
        "request-success-rate", "fail", "95% < 99%", 95.0, unit="%", details={"min": 99.0}
    )
    spec = charts.scorecard(Verdict("flagger", "rollback", T0, (flagger,), "")).to_dict()
    rule = next(v for v in views(spec) if mark_type(v) == "rule" and "x2" not in v["encoding"])
    assert rows(spec, rule) == [{"ref": 99.0, "label": "threshold min"}]


def test_scorecard_survives_missing_numbers():
    broken = MetricResult("cpu", "nodata", "no data", None, None, None)
    spec = charts.scorecard(Verdict("kayenta", "continue", None, (broken,), "")).to_dict()
    (text,) = list(views(spec))
    assert rows(spec, text)[0]["text"] == "cpu: nodata, no estimate (no data)"


def test_timeline_merges_runs_per_judge():
    spec = charts.timeline([verdict(), verdict("flagger", "promote", n=15)]).to_dict()
    data = pl.DataFrame(spec["datasets"][spec["data"]["name"]])
    assert data.filter(pl.col("judge") == "rolloutlab")["decision"].to_list() == [
        "continue",
        "rollback",
    ]
    assert data.height == 4
    assert spec["encoding"]["color"]["scale"]["range"] == list(palette.DECISION_COLORS.values())


def test_timeline_of_a_replay_shows_each_judges_state(canary):
    rp = replay(canary)
    spec = charts.timeline(rp).to_dict()
    data = pl.DataFrame(spec["datasets"][spec["data"]["name"]])
    assert set(data["judge"]) == {"flagger", "kayenta", "rolloutlab"}
    tooltips = {t["field"] for t in spec["encoding"]["tooltip"]}
    assert {"failed_checks", "score", "min_p_value"} <= tooltips
    flagger = data.filter(pl.col("judge") == "flagger")
    assert flagger["decision"].to_list()[-1] == rp.decisions["flagger"].decision
    assert (
        flagger["failed_checks"].to_list()[-1]
        == rp.verdicts["flagger"].ticks[-1].state["failed_checks"]
    )


# -- experiments ---------------------------------------------------------------------


def lift_table() -> pl.DataFrame:
    """Shaped like ``ExperimentReport.table()`` (the columns lift() reads)."""
    return pl.DataFrame(
        {
            "metric": ["conversion", "conversion", "error-rate", "error-rate"],
            "role": ["goal", "goal", "guardrail", "guardrail"],
            "arm": ["B", "C", "B", "C"],
            "rel_lift": [0.041, -0.01, 0.002, float("nan")],
            "rel_ci_low": [0.012, -0.04, -0.03, None],
            "rel_ci_high": [0.070, 0.02, 0.03, None],
            "rel_cs_low": [0.002, -0.06, -0.05, None],
            "rel_cs_high": [0.080, 0.04, 0.05, None],
            "p_value": [0.006, 0.5, 0.9, None],
        }
    )


def test_lift_in_percent_with_no_effect_line():
    spec = charts.lift(lift_table()).to_dict()
    assert spec["title"] == "Lift per metric (95% interval)"
    assert scale_colors(spec) == {"B": ORANGE, "C": palette.TREATMENT_COLORS[1]}
    point = next(v for v in views(spec) if mark_type(v) == "point")
    assert point["encoding"]["x"]["title"] == "relative lift vs control (%)"
    assert point["encoding"]["yOffset"]["field"] == "arm"
    first = rows(spec, point)[0]
    assert first["metric"] == "conversion (goal)"
    assert (first["estimate"], first["lo"], first["hi"]) == pytest.approx((4.1, 1.2, 7.0))
    assert rows(spec, point)[3]["estimate"] is None  # NaN becomes a gap, not an error
    zero = next(v for v in views(spec) if mark_type(v) == "rule" and "x2" not in v["encoding"])
    assert [r["ref"] for r in rows(spec, zero)] == [0.0]


def test_lift_follows_the_reports_sequential_setting_and_names_missing_columns():
    class Spec_:
        sequential, alpha = True, 0.1

    class Report:
        spec = Spec_()

        def table(self) -> pl.DataFrame:
            return lift_table()

    spec = charts.lift(Report()).to_dict()
    assert spec["title"] == "Lift per metric (90% always-valid interval)"
    point = next(v for v in views(spec) if mark_type(v) == "point")
    assert rows(spec, point)[0]["lo"] == pytest.approx(0.2)  # rel_cs_low, in %
    with pytest.raises(ValueError, match="rel_ci_high"):
        charts.lift(lift_table().drop("rel_ci_high"))


def test_variant_colours_agree_across_charts(canary):
    specs = [charts.timeseries(canary).to_dict(), charts.latency_cdf(canary).to_dict()]
    specs.append(charts.srm(canary).to_dict())
    assert all(scale_colors(s) == {"primary": BLUE, "canary": ORANGE} for s in specs)
