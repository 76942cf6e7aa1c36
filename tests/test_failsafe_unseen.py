"""The default judge's fail-safe properties on scenarios its benchmark does not run.

Each test builds a rollout the decision-quality benchmark and the judge's own tests do
not cover (a different histogram layout per variant, a regression that starts during
the bake, a plan to 100%, Flagger's ``stepWeights``, data gaps and broken primary data,
a gauge-only spec, a bimodal latency regression, a 0.1% baseline) and checks what a
user relies on: a bad canary is not promoted, a healthy one is not rolled back, broken
data never promote, and the verdict says why. Simulations are seeded; rates are bounded
with enough runs that the bound means something.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from rolloutlab.judges import judge
from rolloutlab.sources.recording import Recording
from rolloutlab.sources.simulate import ISTIO_BUCKETS_MS, simulate
from rolloutlab.specs import MetricSpec, Spec, default_metrics

START = datetime(2026, 1, 12, 10, tzinfo=UTC)
COMMON = Spec(interval_s=60)  # Flagger's common plan: 10% a minute up to 50%


def rollout(seed: int, minutes: float = 90.0, **scenario) -> Recording:
    """A 1-minute-step rollout on the common plan (1,000 req/min, 1% errors)."""
    plan = {"interval_s": 60, "step_weight": 10, "max_weight": 50}
    return simulate("healthy", seed=seed, duration_min=minutes, step_s=60, **plan | scenario)


def decisions(recordings, spec: Spec = COMMON) -> list[str]:
    return [judge(rec, spec).decision for rec in recordings]


def between(lo_min: float, hi_min: float = 10**6) -> pl.Expr:
    """Rows of the steps ending after minute ``lo_min`` and up to ``hi_min``."""
    t = pl.col("timestamp")
    return (t > START + timedelta(minutes=lo_min)) & (t <= START + timedelta(minutes=hi_min))


def edited(rec: Recording, frame: pl.DataFrame) -> Recording:
    return Recording(frame, rec.meta)


# -- histograms on different bucket layouts --------------------------------------------

#: A client library's own layout: shares only 10, 50, 100 ms and +Inf with Istio's.
COARSE_MS = (10.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, math.inf)


def coarse(rec: Recording, variant: str) -> Recording:
    """``variant``'s latency histogram on COARSE_MS (its cumulative counts at the Istio
    edges it shares; its own other edges are not in the simulation, so it reports fewer)."""
    hist = (pl.col("metric") == "latency_ms") & (pl.col("variant") == variant)
    return edited(rec, rec.frame.filter(~(hist & ~pl.col("le").is_in(list(COARSE_MS)))))


@pytest.mark.parametrize("coarse_variant", ["primary", "canary"])
def test_variants_on_different_bucket_layouts_are_compared_on_the_edges_they_share(
    coarse_variant,
):
    # On the union of the edges, the coarse variant counted 0 at the edges it lacks, so
    # its fast requests moved up and its total grew: a 20% slower canary against a
    # coarse primary was promoted in every run, a healthy coarse canary rolled back.
    slow = [coarse(rollout(s, latency_shift=(0, 0.2)), coarse_variant) for s in range(8)]
    healthy = [coarse(rollout(100 + s), coarse_variant) for s in range(8)]
    assert "promote" not in decisions(slow)
    assert "rollback" not in decisions(healthy)
    verdict = judge(slow[0], COMMON)
    assert verdict.decision == "rollback" and "latency" in verdict.reason
    assert "different bucket edges" in verdict.reason
    assert "compared on the 4 edges all of them report" in verdict.details["notes"][0]


def test_flaggers_canary_only_checks_ignore_the_primarys_bucket_layout():
    # Flagger reads the canary's own p99: cutting its buckets to the primary's coarser
    # edges would change what Flagger sees, so only the comparing judge cuts them.
    rec = rollout(9, latency_shift=(0, 0.2))
    as_is, cut = (judge(r, COMMON, judge="flagger") for r in (rec, coarse(rec, "primary")))
    assert [t.metrics for t in cut.ticks] == [t.metrics for t in as_is.ticks]
    assert cut.reason == as_is.reason and "notes" not in cut.details


# -- a canary that regresses during the bake -------------------------------------------


def test_a_canary_that_regresses_during_the_bake_is_not_promoted_on_earlier_evidence():
    # Healthy up to minute 10 (the plan reaches 50% at minute 5), then 20% slower. The
    # latency safety test had shown "within +10%" on the healthy minutes; promotion came
    # once the error evidence arrived, on the latched latency evidence (26/60 promoted).
    runs = [rollout(7000 + r, latency_shift=(0, 0.2), regression_start_min=10) for r in range(40)]
    verdicts = [judge(rec, COMMON) for rec in runs]
    promoted = sum(v.decision == "promote" for v in verdicts)
    assert promoted <= 2  # <= 5% of 40; it was 43%
    assert sum(v.decision == "rollback" for v in verdicts) >= 36
    # a healthy canary still earns promotion on the same plan and seeds
    healthy = decisions(rollout(7000 + r) for r in range(20))
    assert healthy.count("promote") >= 18 and "rollback" not in healthy


# -- plans Flagger users write ------------------------------------------------------


def test_a_plan_to_100_percent_bakes_at_its_last_weight_below_it():
    # At 100% the primary serves nothing to compare with: no evidence either way. Doubled
    # errors at 100% were held (34 of 40), with all traffic on the bad canary; now the
    # judge bakes at 90% (the loop holds there) and decides on the evidence.
    spec = Spec(interval_s=60, max_weight=100)
    healthy = [judge(rollout(s, max_weight=90), spec) for s in range(8)]
    assert sum(v.decision == "promote" for v in healthy) >= 6
    assert "rollback" not in [v.decision for v in healthy]
    bad = decisions((rollout(s, max_weight=90, error_ratio=(1, 2)) for s in range(8)), spec)
    assert bad == ["rollback"] * 8
    baking = judge(rollout(0, minutes=12, max_weight=90), spec)
    assert baking.decision == "continue" and "bake at 90% (at 100% the primary" in baking.reason
    # a recording whose weights did reach 100% (Flagger's plan ran) never promotes there
    for seed in range(4):
        verdict = judge(rollout(seed, max_weight=100, error_ratio=(1, 2)), spec)
        assert verdict.decision != "promote"


def test_without_a_critical_metric_the_judge_never_promotes_and_says_why():
    # errors x5 on metrics marked non-critical: nothing may promote, and the reason used
    # to say "every critical metric is shown within its bound" when there was none
    metrics = tuple(replace(m, critical=False) for m in default_metrics())
    verdict = judge(rollout(6, error_ratio=(1, 5)), Spec(interval_s=60, metrics=metrics))
    assert verdict.decision == "continue"
    assert "no metric is critical" in verdict.reason
    assert "shown within its bound" not in verdict.reason
    assert all("no metric is critical" in t.hold for t in verdict.ticks[5:])


def test_a_service_without_errors_is_not_called_as_good_as_the_primary():
    # no errors in either variant: the ratio is undefined (it read "1x primary")
    verdict = judge(rollout(7, error_rate=0.0), COMMON)
    assert verdict.decision == "continue"
    reason = verdict.metric("request-success-rate").reason
    assert "no errors counted in either variant yet" in reason and "1×" not in reason
    assert "no estimate yet" in verdict.ticks[10].hold


def step_weights_rollout(seed: int, weights: tuple[float, ...], **scenario) -> Recording:
    """Flagger's ``stepWeights`` plan: one fixed-weight minute per step, then the last."""
    parts, minute = [], 0.0
    for i, weight in enumerate(weights):
        length = 1.0 if i < len(weights) - 1 else 90.0 - minute
        rec = simulate(
            "healthy",
            seed=seed * 100 + i,
            duration_min=length,
            start=START + timedelta(minutes=minute),
            weights=(100.0 - weight, weight),
            **scenario,
        )
        parts.append(rec.frame)
        minute += length
    return Recording(pl.concat(parts), {"roles": {"control": "primary", "treatment": ["canary"]}})


def test_step_weights_plan_starting_at_one_percent():
    weights = (1.0, 5.0, 10.0, 25.0, 50.0)
    spec = Spec(interval_s=60, step_weights=weights)
    bad = decisions((step_weights_rollout(s, weights, error_ratio=(1, 2)) for s in range(8)), spec)
    healthy = decisions((step_weights_rollout(50 + s, weights) for s in range(8)), spec)
    assert bad == ["rollback"] * 8
    assert "rollback" not in healthy and healthy.count("promote") >= 7


# -- data that vanish or break ---------------------------------------------------------


def test_a_gap_in_the_canary_data_during_the_bake_rolls_back_for_no_data():
    rec = rollout(3)
    gap = (pl.col("variant") == "canary") & (pl.col("metric") != "weight") & between(10, 25)
    verdict = judge(edited(rec, rec.frame.filter(~gap)), COMMON)
    assert verdict.decision == "rollback"
    assert "no valid data for request-success-rate since 10:10:00 UTC" in verdict.reason
    assert "no canary errors" in verdict.reason


@pytest.mark.parametrize(
    ("metric", "value", "problem"),
    [("errors", math.nan, "primary errors is NaN"), ("requests", None, "no primary requests")],
)
def test_broken_primary_data_never_promote_a_bad_canary(metric, value, problem):
    rec = rollout(4, error_ratio=(1, 2))
    hit = (pl.col("metric") == metric) & (pl.col("variant") == "primary") & between(2)
    frame = (
        rec.frame.filter(~hit)
        if value is None
        else rec.frame.with_columns(
            pl.when(hit).then(value).otherwise(pl.col("value")).alias("value")
        )
    )
    verdict = judge(edited(rec, frame), COMMON)
    assert verdict.decision == "rollback"
    assert problem in verdict.reason and "since 10:02:00 UTC" in verdict.reason


CPU = MetricSpec("cpu", "gauge", "cpu", margin=0.1)


def test_a_gauge_only_spec_needs_its_gauge():
    spec = Spec(interval_s=60, metrics=(CPU,))
    healthy = decisions((rollout(200 + s) for s in range(10)), spec)
    assert "rollback" not in healthy  # A/A on an AR(1) gauge
    rec = rollout(5)
    nan = (pl.col("metric") == "cpu") & (pl.col("variant") == "canary")
    broken = edited(
        rec,
        rec.frame.with_columns(
            pl.when(nan).then(math.nan).otherwise(pl.col("value")).alias("value")
        ),
    )
    verdict = judge(broken, spec)
    assert verdict.decision == "rollback" and "canary cpu is NaN or infinite" in verdict.reason


# -- regressions the benchmark does not simulate ------------------------------------


def bimodal(rec: Recording, share: float, add_ms: float, seed: int) -> Recording:
    """``share`` of the canary's requests each minute made ``add_ms`` slower (moved from
    their bucket to the one holding the bucket's middle plus ``add_ms``)."""
    rng = np.random.default_rng(seed)
    edges = np.asarray(ISTIO_BUCKETS_MS)
    hist = (pl.col("metric") == "latency_ms") & (pl.col("variant") == "canary")
    canary = rec.frame.filter(hist).sort("timestamp", "le")
    counts = np.diff(canary["value"].to_numpy().reshape(-1, edges.size), axis=1, prepend=0.0)
    lower = np.concatenate([[0.0], edges[:-1]])
    target = np.searchsorted(
        edges, np.where(np.isfinite(edges), (lower + edges) / 2, lower) + add_ms
    )
    moved = rng.binomial(counts.astype(int), share)
    counts -= moved
    np.add.at(counts.T, target, moved.T)
    canary = canary.with_columns(pl.Series("value", counts.cumsum(axis=1).ravel()))
    return edited(rec, pl.concat([rec.frame.filter(~hist), canary]))


def test_a_bimodal_latency_regression_is_rolled_back_by_the_tail_test():
    # 5% of requests 500 ms slower moves the median little (overall shift about +7%)
    runs = [bimodal(rollout(300 + s), 0.05, 500.0, s) for s in range(10)]
    verdicts = [judge(rec, COMMON) for rec in runs]
    assert all(v.decision == "rollback" for v in verdicts)
    assert all("share slower than 500 ms" in v.reason for v in verdicts)


def test_doubled_errors_at_a_low_baseline_are_never_promoted():
    # 0.1% errors at 1,000 req/min: about one error a minute in all
    runs = (rollout(400 + s, minutes=120, error_rate=0.001, error_ratio=(1, 2)) for s in range(20))
    assert "promote" not in decisions(runs)
