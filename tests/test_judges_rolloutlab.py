"""RolloutlabJudge: promotion is earned (evidence, bake phase, deadline), broken data never
pass, the sample-ratio check holds, the false-rollback guarantee on real-traffic stressors,
latency as a shift, and that its batched tests are PoissonRatioSequential's.

Bad canaries are judged through Flagger's most common plan (interval 1m, stepWeight 10,
maxWeight 50), which completes after 5 ticks: the case that used to promote them.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from rolloutlab.errors import SpecError
from rolloutlab.frames import TickTable
from rolloutlab.judges import judge
from rolloutlab.judges.rolloutlab import RolloutlabJudge, _RatioTests, error_budget
from rolloutlab.sources.recording import Recording
from rolloutlab.sources.simulate import simulate
from rolloutlab.specs import MetricSpec, Spec, default_metrics
from rolloutlab.stats import PoissonRatioSequential

#: request-success-rate with a 10% tolerated margin (the default tolerates none)
ERRORS = replace(default_metrics()[0], margin=0.1)
START = datetime(2026, 1, 12, 10, tzinfo=UTC)
PLAN = {"interval_s": 60}  # the simulator's plan: 10% more every minute up to 50%
HOLD = Spec(on_inconclusive="hold")  # A/A at a fixed weight: look for the whole 3 h


def counts_table(
    rng: np.random.Generator, *, ticks=180, rpm=1000.0, canary=0.1, error_rate=0.01, ratio=1.0
) -> TickTable:
    """A lean TickTable of requests and errors (no simulator, no polars) for many replicates."""
    total = rng.poisson(rpm, ticks)
    req_c = rng.binomial(total, canary)
    req_p = total - req_c
    err_c = rng.binomial(req_c, error_rate * ratio)
    err_p = rng.binomial(req_p, error_rate)
    ends = tuple(START + timedelta(minutes=k + 1) for k in range(ticks))
    every = {"primary": np.ones(ticks, bool), "canary": np.ones(ticks, bool)}
    return TickTable(
        ends=ends,
        interval_s=60.0,
        variants=("primary", "canary"),
        counters={
            "requests": {"primary": req_p.astype(float), "canary": req_c.astype(float)},
            "errors": {"primary": err_p.astype(float), "canary": err_c.astype(float)},
        },
        edges={},
        buckets={},
        gauges={},
        weights={
            "primary": np.full(ticks, 100 * (1 - canary)),
            "canary": np.full(ticks, 100 * canary),
        },
        rows={"requests": every, "errors": every},
    )


def run(spec: Spec, table: TickTable) -> RolloutlabJudge:
    j = RolloutlabJudge(spec, control="primary", treatment="canary")
    for k in range(len(table)):
        if j.observe(table, k).decision != "continue":
            break
    return j


def minutes(verdict) -> float:
    return (verdict.decided_at - START).total_seconds() / 60 if verdict.decided_at else math.inf


def edit(rec: Recording, value: float, *, metric: str, variant: str, after_min: float = 0):
    """The recording with ``metric`` of ``variant`` set to ``value`` from ``after_min`` on."""
    when = START + timedelta(minutes=after_min)
    hit = (pl.col("metric") == metric) & (pl.col("variant") == variant)
    hit = hit & (pl.col("timestamp") > when)
    frame = rec.frame.with_columns(
        pl.when(hit).then(value).otherwise(pl.col("value")).alias("value")
    )
    return Recording(frame, rec.meta)


def without(rec: Recording, metric: str, variant: str | None = None) -> Recording:
    drop = pl.col("metric") == metric
    if variant is not None:
        drop = drop & (pl.col("variant") == variant)
    return Recording(rec.frame.filter(~drop), rec.meta)


# -- the batched tests are PoissonRatioSequential's ----------------------------------------


def test_batched_tests_equal_the_public_sequential_test():
    rng = np.random.default_rng(5)
    configs = [("greater", 1.1, 0.025), ("less", 1.5, 0.05), ("greater", 1.0, 0.01)]
    tests = _RatioTests()
    streams = [tests.add(((alt, b),), a) for alt, b, a in configs]
    tests.start()
    public = [
        PoissonRatioSequential(b, alternative=alt, alpha=a, robust=True, prior_sd=0.5, recent=True)
        for alt, b, a in configs
    ]
    for _ in range(60):
        rows = np.column_stack(
            [
                rng.poisson(3, len(configs)),
                rng.integers(50, 150, len(configs)),
                rng.poisson(12, len(configs)),
                rng.integers(500, 1000, len(configs)),
            ]
        ).astype(float)
        rows[rng.random(len(configs)) < 0.1, 1] = math.nan  # invalid ticks add nothing
        tests.step(rows)
        for s, test, row in zip(streams, public, rows, strict=True):
            state = test.update(*row) if np.isfinite(row).all() else test.state
            assert tests.lists["harm_p"][s] == pytest.approx(state.p_value, rel=1e-9)
            assert tests.lists["phi"][s] == pytest.approx(state.dispersion, rel=1e-9)
            low, high = tests.lists["ci_low"][s], tests.lists["ci_high"][s]
            assert (low, high) == pytest.approx(state.ci)


def test_error_budget_is_split_over_critical_metrics():
    assert error_budget(Spec()) == {"request-success-rate": 0.025, "request-duration": 0.025}
    cpu = MetricSpec("cpu", "gauge", "cpu", critical=False)
    own = replace(ERRORS, alpha=0.04)
    budget = error_budget(Spec(metrics=(own, default_metrics()[1], cpu)))
    assert budget == pytest.approx(
        {"request-success-rate": 0.04, "request-duration": 0.01, "cpu": 0.05}
    )
    with pytest.raises(SpecError, match="lower the per-metric alphas"):
        error_budget(Spec(metrics=(replace(ERRORS, alpha=0.05), default_metrics()[1])))


# -- promotion is earned -------------------------------------------------------------------


def test_a_healthy_canary_is_promoted_on_evidence_after_baking():
    verdict = judge(simulate("healthy", seed=3, **PLAN))
    assert verdict.decision == "promote"
    assert 5 < minutes(verdict) <= 60  # the plan alone takes 5 minutes
    assert "shown within its promotion bound" in verdict.reason
    assert "at most 1.5× the primary's" in verdict.reason
    assert "at most +10% slower" in verdict.reason
    baking = [t for t in verdict.ticks if t.hold and t.hold.startswith("bake:")]
    assert baking and baking[0].timestamp == START + timedelta(minutes=5)
    assert "waiting for promotion evidence on" in baking[0].hold
    assert "a person is asked in 1h without it" in baking[0].hold  # and when
    assert all(t.decision == "continue" for t in verdict.ticks[:-1])


@pytest.mark.parametrize(
    "change, label",
    [({"error_ratio": (1.0, 2.0)}, "errors x2"), ({"latency_shift": (0.0, 0.15)}, "latency +15%")],
)
def test_bad_canaries_are_not_promoted_when_the_plan_completes(change, label):
    # The case from the issue: Flagger's common plan, 1,000 req/min, 1% errors, 40 runs.
    # Before, 24/40 (errors x2) and 27/40 (latency +15%) were promoted at the plan's end.
    decisions = [judge(simulate("healthy", seed=s, **PLAN, **change)).decision for s in range(40)]
    assert decisions.count("promote") <= 1, (label, decisions.count("promote"))
    assert decisions.count("rollback") >= 36, (label, decisions.count("rollback"))


def test_without_evidence_the_canary_bakes_then_on_inconclusive_decides():
    quiet = simulate("healthy", seed=4, requests_per_min=60.0, **PLAN)  # 1 error in 2 min
    verdict = judge(quiet, {"onInconclusive": "rollback"})
    assert verdict.decision == "rollback"
    assert minutes(verdict) == 65  # the plan (5 min) + the default bake of 1 h
    assert verdict.reason.startswith("rollback: no promotion evidence after 65m of analysis")
    assert "request-success-rate needs at most 1.5× the primary's" in verdict.reason
    bake = verdict.ticks[10].hold  # 10:11, 54 minutes before the deadline
    assert bake.startswith("bake: the plan is complete; waiting for promotion evidence on")
    assert "rollback in 54m" in bake
    held = judge(quiet)  # the default: hold, say so, keep judging
    assert held.decision == "continue"
    assert "no promotion evidence after 65m" in held.reason
    assert "holding for a person to promote or roll back" in held.reason
    assert "a person is asked in 54m" in held.ticks[10].hold
    promoted = judge(quiet, {"onInconclusive": "promote", "maxAnalysisTime": "30m"})
    assert (promoted.decision, minutes(promoted)) == ("promote", 30)
    with pytest.raises(SpecError, match="shorter than the weight plan"):
        Spec.load({"maxAnalysisTime": "3m"})


def test_holding_at_the_deadline_still_rolls_back_on_harm():
    # 30 req/min: no promotion evidence by the deadline (65 min); errors x10 from minute 70
    quiet_bad = simulate(
        "healthy",
        seed=5,
        requests_per_min=30.0,
        error_ratio=(1.0, 10.0),
        regression_start_min=70,
        **PLAN,
    )
    verdict = judge(quiet_bad)
    assert "no promotion evidence after 65m" in verdict.ticks[68].hold
    assert verdict.decision == "rollback" and minutes(verdict) > 70
    assert verdict.metric("request-success-rate").classification == "fail"


def test_promotion_plan_is_flaggers_rule():
    rec = simulate("healthy", seed=3, **PLAN)
    verdict = judge(rec, {"promotion": "plan"})
    assert (verdict.decision, minutes(verdict)) == ("promote", 5)
    assert verdict.reason == "promote: the weight plan completed with no alarm"


def test_without_recorded_weights_the_plan_still_needs_evidence():
    rec = without(simulate("healthy", seed=8, **PLAN), "weight")
    verdict = judge(rec)
    assert verdict.decision == "promote" and minutes(verdict) > len(Spec().weight_plan())
    assert verdict.ticks[-1].weight is None


def test_min_exposure_is_part_of_the_evidence():
    verdict = judge(simulate("healthy", seed=3, **PLAN), {"minExposure": 1e9})
    assert verdict.decision == "continue"
    assert "1e+09 canary requests (minExposure)" in verdict.ticks[20].hold


# -- no data is never a pass ----------------------------------------------------------------


def test_a_recording_without_error_series_rolls_back_for_no_data():
    verdict = judge(without(simulate("healthy", seed=3, **PLAN), "errors"))
    assert verdict.decision == "rollback" and minutes(verdict) == Spec().threshold
    errors = verdict.metric("request-success-rate")
    assert errors.classification == "fail"
    assert errors.reason.startswith("no valid data for request-success-rate since 10:00:00 UTC")
    assert "no canary errors" in errors.reason


@pytest.mark.parametrize(
    "metric, variant, value, problem",
    [
        ("errors", "canary", math.nan, "canary errors is NaN"),
        ("requests", "canary", math.inf, "canary requests is infinite"),
        ("latency_ms", "primary", math.nan, "primary latency_ms has NaN or infinite buckets"),
    ],
)
def test_nan_and_infinite_values_never_promote(metric, variant, value, problem):
    # broken from minute 3 on while the canary really fails twice as often
    rec = simulate("healthy", seed=5, error_ratio=(1.0, 2.0), **PLAN)
    verdict = judge(edit(rec, value, metric=metric, variant=variant, after_min=3))
    assert verdict.decision == "rollback"
    assert all(t.decision == "continue" for t in verdict.ticks[:-1])
    broken = [t for t in verdict.ticks if t.timestamp > START + timedelta(minutes=3)]
    assert all(t.hold and "no valid data" in t.hold for t in broken[:-1])
    reasons = " ".join(m.reason for m in verdict.metrics)
    assert problem in reasons or verdict.metric("request-success-rate").classification == "fail"


def test_a_missing_latency_histogram_blocks_promotion_without_must_have_data():
    verdict = judge(without(simulate("healthy", seed=5, **PLAN), "latency_ms", "canary"))
    assert verdict.decision == "rollback" and minutes(verdict) == Spec().threshold
    assert "no valid data for request-duration" in verdict.reason


def test_invalid_ticks_hold_and_add_no_evidence():
    rng = np.random.default_rng(3)
    table = counts_table(rng, ticks=60, rpm=20_000.0, canary=0.5)
    table.counters["errors"]["canary"][::3] = math.nan  # every third tick broken
    table.counters["requests"]["primary"][1::3] = -5.0  # and a negative increase
    j = run(Spec(metrics=(ERRORS,), max_weight=50.0), table)
    states = j.history
    assert all(s.hold and "no valid data" in s.hold for s in states[::3])
    assert states[1].hold and "primary requests is negative" in states[1].metrics[0].reason
    assert all(s.decision != "rollback" for s in states)  # never threshold ticks in a row
    assert j.verdict().decision == "promote"  # the valid ticks carry the evidence
    assert (states[-1].timestamp.minute - 1) % 3 == 2  # decided on a valid tick


def test_no_decision_before_the_canary_serves():
    rec = simulate("healthy", seed=6, **PLAN)
    late = rec.frame.with_columns(pl.col("timestamp") + timedelta(minutes=10))
    primary_only = simulate("aa", seed=7, duration_min=10.0).frame.filter(
        pl.col("variant") == "primary"
    )
    combined = Recording(pl.concat([primary_only, late]), rec.meta)
    verdict = judge(combined)
    assert all(t.hold == "the canary serves no traffic" for t in verdict.ticks[:10])
    assert verdict.decision == "promote" and minutes(verdict) > 15


# -- the sample-ratio check -----------------------------------------------------------------


def _relabel(rec: Recording, factor: float) -> Recording:
    """Recorded weights ``factor`` times what the canary really got (a routing bug)."""
    weights = rec.frame.filter(pl.col("metric") == "weight").pivot(
        on="variant", index="timestamp", values="value"
    )
    claimed = weights.with_columns(canary=pl.col("canary") * factor).with_columns(
        primary=100.0 - pl.col("canary")
    )
    long = claimed.unpivot(index="timestamp", variable_name="variant").with_columns(
        metric=pl.lit("weight"), kind=pl.lit("gauge"), le=pl.lit(None, pl.Float64)
    )
    frame = pl.concat(
        [rec.frame.filter(pl.col("metric") != "weight"), long.select(rec.frame.columns)]
    )
    return Recording(frame, rec.meta)


def test_a_routing_mismatch_during_the_plan_holds_and_never_promotes():
    rec = _relabel(simulate("healthy", seed=2, **PLAN), 1.5)  # canary gets 2/3 of its weight
    verdict = judge(rec, {"onInconclusive": "hold"})
    assert verdict.decision == "continue"
    fired = [t for t in verdict.ticks if t.state["srm"]]
    assert fired and fired[0].timestamp <= START + timedelta(minutes=10)
    assert all("sample-ratio mismatch" in t.hold for t in fired)
    assert "check the traffic routing" in verdict.reason


def test_clear_harm_rolls_back_despite_a_routing_mismatch():
    rec = _relabel(simulate("healthy", seed=2, error_ratio=(1.0, 3.0), **PLAN), 1.5)
    verdict = judge(rec)
    assert verdict.decision == "rollback" and minutes(verdict) <= 15
    assert verdict.metric("request-success-rate").classification == "fail"


def test_weight_steps_raise_no_false_mismatch():
    fired = sum(
        judge(simulate("healthy", seed=s, **PLAN)).ticks[-1].state["srm"] for s in range(30)
    )
    assert fired == 0


def test_without_recorded_weights_the_mismatch_is_judged_against_the_plan():
    rec = simulate("healthy", seed=2, weights=(90.0, 10.0))  # fixed 10%, the plan steps up
    verdict = judge(without(rec, "weight"), {"onInconclusive": "hold"})
    assert verdict.ticks[-1].state["srm"] and verdict.decision == "continue"


# -- the false-rollback guarantee on real traffic -------------------------------------------

STRESSORS = {
    "retry bursts": {"retries": 2, "retry_fail_p": 1.0},
    "transient incidents": {"incident_rate_per_h": 1.0},
    "cold start": {"cold_start_shift": 0.5},
}


@pytest.mark.parametrize("rpm", [1000.0, 10000.0])
def test_a_canary_that_starts_failing_late_is_rolled_back_within_minutes(rpm):
    """Healthy for 30 min at a fixed 20%, then 5x the primary's errors. Pooled over every
    tick, the test must first outweigh the healthy half hour, and the Pearson dispersion
    read the jump as noise: at 10,000 req/min such runs were never rolled back in 2 h
    (23 to 39 minutes late at 1,000). Measured now: 9 to 16 minutes after the onset."""
    for seed in range(3):
        rec = simulate(
            "healthy",
            seed=seed,
            requests_per_min=rpm,
            weights=(80.0, 20.0),
            duration_min=120,
            error_ratio=(1.0, 5.0),
            regression_start_min=30,
        )
        verdict = judge(rec, HOLD)
        assert verdict.decision == "rollback" and 30 < minutes(verdict) <= 50, seed


def _aa_decision(task: tuple[str, int]) -> str:
    stressor, seed = task
    rec = simulate(
        "healthy", seed=seed, weights=(80.0, 20.0), duration_min=120, **STRESSORS[stressor]
    )
    return judge(rec, HOLD).decision


@pytest.mark.slow
@pytest.mark.parametrize("stressor", list(STRESSORS))
def test_aa_false_rollbacks_stay_within_alpha_on_real_traffic(stressor):
    """Identical variants at a fixed 20% canary for 2 h, judged every minute with the
    default spec (holding instead of deciding at the deadline, so the tests look for the
    whole 2 h): 200 seeded runs roll back at most alpha plus three standard errors. (The
    Poisson tests this judge used before rolled back 26% and 21% of such runs; the
    benchmark covers the other stressors.)"""
    reps = 200
    decisions = [_aa_decision((stressor, 70_000 + s)) for s in range(reps)]
    rate = decisions.count("rollback") / reps
    assert rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / reps), f"{stressor}: {rate:.3f}"


@pytest.mark.slow
def test_false_rollback_rate_at_the_margin_is_at_most_alpha_looking_every_tick():
    """The hardest null: the canary's error rate exactly 1 + margin times the primary's;
    the error metric's harm test gets 0.025 of the budget (300 runs of 3 h)."""
    rng = np.random.default_rng(2026)
    spec = Spec(metrics=(ERRORS,), max_weight=100.0, alpha=0.025, on_inconclusive="hold")
    reps = 300
    rollbacks = sum(
        run(spec, counts_table(rng, ratio=1.1)).verdict().decision == "rollback"
        for _ in range(reps)
    )
    rate, se = rollbacks / reps, math.sqrt(0.025 * 0.975 / reps)
    assert rate <= 0.025 + 3 * se, f"{rate:.3f} false rollbacks (SE {se:.3f})"


def test_double_error_rate_is_rolled_back():
    rng = np.random.default_rng(7)
    times = [minutes(run(HOLD, counts_table(rng, ratio=2.0)).verdict()) for _ in range(40)]
    assert all(math.isfinite(t) for t in times)
    assert np.median(times) <= 25  # about 17 min at a 10% canary and 1,000 req/min


def test_rollback_verdict_explains_itself():
    verdict = judge(simulate("aa", seed=1, error_ratio=(1.0, 5.0)))
    assert verdict.decision == "rollback"
    errors = verdict.metric("request-success-rate")
    assert errors.classification == "fail" and errors.critical
    assert errors.ci[0] > 1.0 and errors.ci[0] <= errors.estimate <= errors.ci[1]
    assert errors.p_value <= 0.05
    assert "canary errors/requests" in errors.reason and "beyond the tolerated 1×" in errors.reason
    assert verdict.reason.startswith("rollback: canary errors/requests")
    state = verdict.ticks[-1].state
    assert state["weight"] == 10.0 and 0 <= state["srm_p"] <= 1
    assert state["evidence"]["request-success-rate"]["p_harm"] <= 0.025
    json.dumps(verdict.to_dict())


# -- latency on the whole distribution ------------------------------------------------------


def test_a_latency_shift_is_caught_and_reported_as_a_shift():
    verdict = judge(simulate("healthy", seed=9, latency_shift=(0.0, 0.2), **PLAN))
    assert verdict.decision == "rollback" and minutes(verdict) <= 15
    latency = verdict.metric("request-duration")
    assert latency.unit == "latency shift" and latency.classification == "fail"
    low, high = latency.ci
    assert 0.05 < low < 0.2 < high  # the interval covers the true +20%
    assert latency.reason.startswith("canary latency +")
    assert "beyond the tolerated +5%" in latency.reason


def test_a_tail_regression_is_caught_by_the_tail_test():
    verdict = judge(simulate("healthy", seed=4, tail_shift=(0.0, 1.0), **PLAN))
    assert verdict.decision == "rollback"
    latency = verdict.metric("request-duration")
    assert latency.details["tail_edge_ms"] == 500.0  # above the p99 of an 80 ms median
    assert "share slower than 500 ms" in latency.reason


def test_a_nan_bucket_in_the_first_scrape_never_fixes_the_scores():
    rec = simulate("healthy", seed=10, latency_shift=(0.0, 0.25), **PLAN)
    first = rec.frame["timestamp"].min()
    poisoned = rec.frame.with_columns(
        pl.when(
            (pl.col("metric") == "latency_ms")
            & (pl.col("variant") == "primary")
            & (pl.col("timestamp") == first)
            & (pl.col("le") == 100.0)
        )
        .then(math.nan)
        .otherwise(pl.col("value"))
        .alias("value")
    )
    verdict = judge(Recording(poisoned, rec.meta))
    assert verdict.decision == "rollback" and minutes(verdict) <= 15
    assert verdict.metric("request-duration").details["tail_edge_ms"] == 500.0
    assert verdict.ticks[0].hold and "latency_ms has NaN" in verdict.ticks[0].hold + " ".join(
        m.reason for m in verdict.ticks[0].metrics
    )


# -- other kinds and directions ------------------------------------------------------------


def test_critical_gauge_is_compared_on_block_means_and_flagged_approximate():
    cpu = MetricSpec("cpu", "gauge", "cpu", margin=0.1)
    spec = Spec(metrics=(ERRORS, cpu), max_weight=100.0, on_inconclusive="hold")
    hot = judge(simulate("aa", seed=1, cpu_shift=(0.0, 0.2)), spec)
    assert hot.decision == "rollback"
    result = hot.metric("cpu")
    assert result.classification == "fail" and result.approximate
    assert result.details["block_size"] >= 1 and "approximate" in result.reason


def test_decrease_direction_and_counter_without_denominator():
    rec = simulate("aa", seed=6)
    successes = rec.frame.filter(pl.col("metric") == "requests").with_columns(
        pl.lit("served").alias("metric"),
        pl.when(pl.col("variant") == "canary")
        .then(pl.col("value") * 0.5)
        .otherwise(pl.col("value"))
        .alias("value"),
    )
    rec = Recording(pl.concat([rec.frame, successes]), rec.meta)
    served = MetricSpec("served", "counter", "served", direction="decrease", margin=0.1)
    verdict = judge(rec, Spec(metrics=(served,), max_weight=100.0))
    assert verdict.decision == "rollback"
    result = verdict.metric("served")
    assert result.estimate < 0.7 and result.ci[1] < 0.9


def test_observing_after_the_decision_changes_nothing():
    table = counts_table(np.random.default_rng(0), ratio=5.0)
    j = run(Spec(), table)
    n, last = len(j.history), j.history[-1]
    assert j.observe(table, n) is last and len(j.history) == n
