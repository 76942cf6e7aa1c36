"""RolloutlabJudge: the error guarantees under continuous monitoring, speed of detection,
promotion, SRM holds, nodata, and that its batched tests are PoissonRatioSequential's."""

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
from rolloutlab.judges.spec import MetricSpec, Spec, default_metrics
from rolloutlab.sources.recording import Recording
from rolloutlab.sources.simulate import simulate
from rolloutlab.stats import PoissonRatioSequential

#: request-success-rate with a 10% tolerated margin (the default tolerates none)
ERRORS = replace(default_metrics()[0], margin=0.1)
START = datetime(2026, 1, 12, 10, tzinfo=UTC)


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
    )


def run(spec: Spec, table: TickTable) -> RolloutlabJudge:
    j = RolloutlabJudge(spec, control="primary", treatment="canary")
    for k in range(len(table)):
        if j.observe(table, k).decision != "continue":
            break
    return j


def minutes(verdict) -> float:
    return (verdict.decided_at - START).total_seconds() / 60 if verdict.decided_at else math.inf


# -- the batched tests are PoissonRatioSequential ------------------------------------------


def test_batched_tests_equal_the_public_sequential_test():
    rng = np.random.default_rng(5)
    configs = [
        ("greater", 1.1, 0.025),
        ("less", 1.1, 0.05),
        ("greater", 1.0, 0.01),
        ("less", 0.9, 0.05),
        ("two-sided", 1.0, 0.001),
    ]
    tests = _RatioTests()
    streams = [tests.add(((alt, b),), a, None) for alt, b, a in configs]
    tests.start()
    public = [PoissonRatioSequential(b, alternative=alt, alpha=a) for alt, b, a in configs]
    for _ in range(60):
        rows = np.column_stack(
            [
                rng.poisson(3, len(configs)),
                rng.integers(50, 150, len(configs)),
                rng.poisson(12, len(configs)),
                rng.integers(500, 1000, len(configs)),
            ]
        ).astype(float)
        rows[rng.random(len(configs)) < 0.1, 1] = 0.0  # nodata ticks are skipped by both
        tests.step(rows)
        for s, test, row in zip(streams, public, rows, strict=True):
            state = test.update(*row) if row[1] > 0 else test.state
            assert tests.harm_p[s] == pytest.approx(state.p_value, rel=1e-9)
            assert (tests.ci_low[s], tests.ci_high[s]) == pytest.approx(state.ci)
            assert tests.ratio[s] == pytest.approx(state.estimate)


# -- the error budget --------------------------------------------------------------------


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


# -- guarantees under continuous monitoring ------------------------------------------------


@pytest.mark.slow
def test_false_rollback_rate_at_the_margin_is_at_most_alpha_looking_every_tick():
    """The hardest null: the canary's error rate is exactly 1 + margin times the primary's.

    The harm test of request-success-rate gets 0.025 of the 0.05 budget; 300 runs of 3 h,
    every tick judged, reject at most that often (SE ≈ 0.9 point).
    """
    rng = np.random.default_rng(2026)
    spec = Spec(metrics=(ERRORS, default_metrics()[1]), max_weight=100.0)
    reps = 300
    rollbacks = sum(
        run(spec, counts_table(rng, ratio=1.1)).verdict().decision == "rollback"
        for _ in range(reps)
    )
    rate, se = rollbacks / reps, math.sqrt(0.025 * 0.975 / reps)
    assert rate <= 0.025 + 2 * se, f"{rate:.3f} false rollbacks (SE {se:.3f})"


@pytest.mark.slow
def test_aa_false_rollback_rate_with_the_default_spec_is_at_most_alpha():
    """A/A on the simulator (errors and latency histograms), 10% canary fixed for 3 h so the
    plan never completes: 200 runs, every tick judged (SE of a 5% rate: 1.5 points)."""
    reps, spec = 200, Spec()
    decisions = [
        judge(simulate("aa", seed=seed), spec, judge="rolloutlab").decision for seed in range(reps)
    ]
    rate = decisions.count("rollback") / reps
    assert rate <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / reps)


def test_double_error_rate_is_rolled_back():
    rng = np.random.default_rng(7)
    times = [minutes(run(Spec(), counts_table(rng, ratio=2.0)).verdict()) for _ in range(40)]
    assert all(math.isfinite(t) for t in times)
    assert np.median(times) <= 25  # about 17 min at 10% canary and 1,000 req/min


def test_rollback_verdict_explains_itself():
    verdict = judge(simulate("aa", seed=1, error_ratio=(1.0, 5.0)), judge="rolloutlab")
    assert verdict.decision == "rollback"
    errors = verdict.metric("request-success-rate")
    assert errors.classification == "fail" and errors.critical
    assert errors.ci[0] > 1.0 and errors.ci[0] <= errors.estimate <= errors.ci[1]
    assert errors.p_value <= 0.05
    assert "canary errors/requests" in errors.reason and "beyond the tolerated 1×" in errors.reason
    assert verdict.reason.startswith("rollback: canary errors/requests")
    state = verdict.ticks[-1].state
    assert state["weight"] == 10.0 and 0 <= state["srm_p"] <= 1
    assert state["evidence"]["request-success-rate"]["log_e_harm"] >= math.log(40)
    json.dumps(verdict.to_dict())


def test_tail_latency_regression_is_caught_at_the_p99_edge():
    verdict = judge(simulate("aa", seed=4, tail_shift=(0.0, 1.0)), judge="rolloutlab")
    assert verdict.decision == "rollback"
    latency = verdict.metric("request-duration")
    assert latency.classification == "fail" and latency.unit == "slow-share ratio"
    assert "slower than 500 ms" in latency.reason and "P(canary slower)" in latency.reason
    assert latency.details["edges_ms"] == [100.0, 250.0, 500.0]  # p50, p90, p99 of 80 ms median


# -- promotion -------------------------------------------------------------------------------


def test_healthy_rollout_is_promoted_when_the_plan_completes_not_later():
    for interval_s, plan_done_min in ((60, 5), (300, 21)):
        rec = simulate("healthy", seed=3, interval_s=interval_s)
        ours = judge(rec, judge="rolloutlab")
        assert ours.decision == "promote"
        assert minutes(ours) == plan_done_min
        assert "weight plan completed" in ours.reason


def test_early_promotion_when_every_critical_metric_is_shown_within_its_margin():
    rng = np.random.default_rng(1)
    busy = counts_table(rng, rpm=200_000.0, canary=0.5, error_rate=0.05)
    spec = Spec(metrics=(ERRORS,), max_weight=100.0)
    verdict = run(spec, busy).verdict()
    assert verdict.decision == "promote" and minutes(verdict) < 30
    assert verdict.metric("request-success-rate").classification == "pass"
    assert "every critical metric is within its margin" in verdict.reason
    held = run(
        replace(spec, min_exposure=1e12),
        counts_table(
            np.random.default_rng(1), rpm=200_000.0, canary=0.5, error_rate=0.05, ticks=30
        ),
    ).verdict()
    assert held.decision == "continue"


# -- data problems: SRM, nodata ------------------------------------------------------------


def _relabel_weights(rec: Recording, canary: float) -> Recording:
    """The same traffic with a different recorded weight (a routing bug)."""
    frame = rec.frame.with_columns(
        pl.when(pl.col("metric") == "weight")
        .then(pl.when(pl.col("variant") == "canary").then(canary).otherwise(100.0 - canary))
        .otherwise(pl.col("value"))
        .alias("value")
    )
    return Recording(frame, rec.meta)


def test_sample_ratio_mismatch_holds_instead_of_promoting_or_blaming():
    rec = _relabel_weights(simulate("aa", seed=2, weights=(93.0, 7.0)), 10.0)
    spec = Spec(max_weight=10.0, step_weight=2.0)  # the plan completes after 5 ticks
    verdict = judge(rec, spec, judge="rolloutlab")
    assert verdict.decision == "continue"
    assert verdict.ticks[-1].state["srm"] is True
    assert verdict.reason.startswith("hold: the canary's share of requests does not match")
    assert judge(simulate("aa", seed=2), spec, judge="rolloutlab").decision == "promote"


def test_missing_latency_is_nodata_and_blocks_promotion_only_if_it_must_have_data():
    rec = simulate("healthy", seed=5, interval_s=60)
    no_latency = Recording(rec.frame.filter(pl.col("metric") != "latency_ms"), rec.meta)
    verdict = judge(no_latency, judge="rolloutlab")
    assert verdict.decision == "promote"
    assert verdict.metric("request-duration").classification == "nodata"
    strict = Spec(metrics=(ERRORS, replace(default_metrics()[1], must_have_data=True)))
    blocked = judge(no_latency, strict, judge="rolloutlab")
    assert blocked.decision == "continue"
    assert "request-duration, which must have data" in blocked.reason


def test_ticks_without_traffic_add_nothing():
    rng = np.random.default_rng(3)
    table = counts_table(rng, ticks=30)
    for arrays in table.counters.values():
        for values in arrays.values():
            values[10:20] = 0.0
    j = run(Spec(metrics=(ERRORS,), max_weight=100.0), table)
    assert j.verdict().decision == "continue"
    assert all(t.metrics[0].classification != "fail" for t in j.history)


# -- other kinds and directions ------------------------------------------------------------


def test_critical_gauge_is_compared_on_block_means_and_flagged_approximate():
    cpu = MetricSpec("cpu", "gauge", "cpu", margin=0.1)
    spec = Spec(metrics=(ERRORS, cpu), max_weight=100.0)
    hot = judge(simulate("aa", seed=1, cpu_shift=(0.0, 0.2)), spec, judge="rolloutlab")
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
    verdict = judge(rec, Spec(metrics=(served,), max_weight=100.0), judge="rolloutlab")
    assert verdict.decision == "rollback"
    result = verdict.metric("served")
    assert result.estimate < 0.7 and result.ci[1] < 0.9


def test_observing_after_the_decision_changes_nothing():
    table = counts_table(np.random.default_rng(0), ratio=5.0)
    j = run(Spec(), table)
    n, last = len(j.history), j.history[-1]
    assert j.observe(table, n) is last and len(j.history) == n


def test_without_recorded_weights_the_plan_length_decides_promotion():
    rec = simulate("healthy", seed=8, interval_s=60)
    no_weights = Recording(rec.frame.filter(pl.col("metric") != "weight"), rec.meta)
    verdict = judge(no_weights, judge="rolloutlab")
    assert verdict.decision == "promote" and minutes(verdict) == len(Spec().weight_plan())
    assert verdict.ticks[-1].weight is None
