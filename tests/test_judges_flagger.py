"""Flagger replay: timing of rollback and promotion, the check rules, histogram_quantile.

Recordings are built by hand, one row per minute, so the tick where Flagger decides is
known in advance: tick k (0-based) ends at START + (k + 1) minutes.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from rolloutlab.frames import SCHEMA, tick_table
from rolloutlab.judges import judge
from rolloutlab.judges.flagger import FlaggerJudge, histogram_quantile
from rolloutlab.sources.recording import Recording
from rolloutlab.sources.simulate import simulate
from rolloutlab.specs import MetricSpec, Spec

START = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)
EDGES = (25.0, 50.0, 100.0, 250.0, 500.0, math.inf)
RATE = MetricSpec("request-success-rate", "ratio", "errors", "requests", threshold_min=99.0)
DURATION = MetricSpec("request-duration", "latency", "latency_ms", threshold_max=500.0)
SPEC = Spec(interval_s=60, threshold=3, max_weight=50, step_weight=10, metrics=(RATE, DURATION))
HEALTHY = (100, 0)  # canary requests, errors in one minute: 100% success
BAD = (100, 5)  # 95% success


def at(k: int) -> datetime:
    """When tick k ends."""
    return START + timedelta(minutes=k + 1)


def recording(
    canary: list[tuple[float, float]],
    *,
    latency: list[list[float]] | None = None,
    weights: list[float] | None = None,
) -> Recording:
    """Per minute: the canary's (requests, errors), optional bucket counts and weights.

    Without ``latency`` every canary request lands in the first bucket (<= 25 ms). The
    primary serves 1000 requests with 1 error and the same fast latency every minute.
    """
    rows = []
    for i, (requests, errors) in enumerate(canary):
        ts = at(i)
        buckets = latency[i] if latency else [requests, 0, 0, 0, 0, 0]
        for variant, req, err, counts in (
            ("primary", 1000, 1, [1000, 0, 0, 0, 0, 0]),
            ("canary", requests, errors, buckets),
        ):
            rows += [(ts, variant, "requests", "counter", None, float(req))]
            rows += [(ts, variant, "errors", "counter", None, float(err))]
            rows += [
                (ts, variant, "latency_ms", "bucket", le, float(c))
                for le, c in zip(EDGES, np.cumsum(counts), strict=True)
            ]
        if weights is not None:
            rows += [(ts, "canary", "weight", "gauge", None, float(weights[i]))]
            rows += [(ts, "primary", "weight", "gauge", None, 100.0 - weights[i])]
    frame = pl.DataFrame(rows, schema=SCHEMA, orient="row")
    return Recording(frame, {"roles": {"control": "primary", "treatment": ["canary"]}})


def flagger(rec: Recording, spec: Spec = SPEC, **options):
    return judge(rec, spec, judge="flagger", **options)


def column(verdict, key: str) -> list:
    return [t.state[key] for t in verdict.ticks]


# -- timing ----------------------------------------------------------------------------


def test_rollback_after_threshold_failed_ticks():
    verdict = flagger(recording([BAD] * 10))
    # failures at ticks 0, 1, 2; the rollback is the first thing tick 3 does:
    # interval x threshold = 3 min after the first failing check at tick 0
    assert verdict.decision == "rollback"
    assert verdict.decided_at == at(3) == at(0) + timedelta(minutes=3)
    assert column(verdict, "failed_checks") == [1, 2, 3, 3]
    assert column(verdict, "phase") == ["Progressing"] * 3 + ["Failed"]
    assert column(verdict, "weight") == [10, 10, 10, 10]  # a failing tick never advances
    assert "success rate 95% < 99% (min)" in verdict.reason
    assert verdict.metric("request-success-rate").classification == "fail"


def test_promotion_once_the_plan_reaches_max_weight():
    verdict = flagger(recording([HEALTHY] * 10))
    # 5 steps (10..50): the check at weight 50 passes at tick 4 and Flagger promotes:
    # interval x maxWeight / stepWeight = 5 min after the start
    assert verdict.decision == "promote"
    assert verdict.decided_at == at(4) == START + timedelta(minutes=5)
    assert column(verdict, "weight") == [10, 20, 30, 40, 50]
    assert column(verdict, "phase")[-1] == "Promoting"
    assert verdict.metric("request-success-rate").details["value"] == 100.0


def test_weight_overshoots_max_weight():
    spec = SPEC.replace(max_weight=50, step_weight=20)
    verdict = flagger(recording([HEALTHY] * 10), spec)
    assert column(verdict, "weight") == [20, 40, 60]
    assert (verdict.decision, verdict.decided_at) == ("promote", at(2))


def test_step_weights_plan():
    verdict = flagger(recording([HEALTHY] * 10), SPEC.replace(step_weights=[1, 5, 25]))
    assert column(verdict, "weight") == [1, 5, 25]
    assert verdict.decided_at == at(2)


def test_failed_checks_are_cumulative_across_passes():
    verdict = flagger(recording([BAD, HEALTHY, BAD, HEALTHY, BAD, HEALTHY, HEALTHY]))
    # failures at ticks 0, 2, 4 reach the threshold 3: rollback at tick 5
    assert column(verdict, "failed_checks") == [1, 1, 2, 2, 3, 3]
    assert column(verdict, "weight") == [10, 10, 20, 20, 30, 30]
    assert (verdict.decision, verdict.decided_at) == ("rollback", at(5))


def test_a_failed_check_holds_the_weight():
    # Flagger's scheduler returns right after counting a failed analysis, before it steps
    # the weight (fluxcd/flagger pkg/controller/scheduler.go, advanceCanary: "if ok :=
    # c.runAnalysis(cd); !ok { SetStatusFailedChecks(...); return }", commit 15bd6ad5).
    verdict = flagger(recording([HEALTHY, BAD, HEALTHY, HEALTHY]))
    holds = [t.hold for t in verdict.ticks]
    assert holds[0] is None and holds[2] is None
    assert holds[1].startswith("failed check (1 of 3): ")
    assert "does not advance the weight" in holds[1]


def test_no_values_is_a_failure():
    verdict = flagger(recording([(0, 0)] * 10))
    assert (verdict.decision, verdict.decided_at) == ("rollback", at(3))
    first = verdict.ticks[0].metrics[0]
    assert first.classification == "fail"
    assert first.reason.startswith("no values found for request-success-rate")
    assert math.isnan(first.details["value"])


def test_evaluation_stops_at_the_first_failing_check():
    slow = [[0, 0, 0, 0, 0, 100]] * 10  # every request above 500 ms
    verdict = flagger(recording([BAD] * 10, latency=slow))
    rate, duration = verdict.ticks[0].metrics
    assert rate.classification == "fail"
    assert duration.classification == "inconclusive"
    assert "not evaluated" in duration.reason
    assert column(verdict, "failed_checks") == [1, 2, 3, 3]  # one failure per tick


def test_latency_check_uses_p99_in_ms():
    # 100 requests: 10, 40, 30, 15, 4, 1 per bucket; p99 rank 99 ends the (250, 500]
    # bucket exactly: 250 + 250 * (99 - 95) / 4 = 500 ms
    counts = [[10, 40, 30, 15, 4, 1]] * 10
    spec = SPEC.replace(metrics=[{"name": "request-duration", "thresholdRange": {"max": 499}}])
    verdict = flagger(recording([HEALTHY] * 10, latency=counts), spec)
    result = verdict.ticks[0].metrics[0]
    assert result.details["value"] == 500.0
    assert result.reason == "p99 latency 500 ms > 499 ms (max)"
    assert verdict.decision == "rollback"


def duration_spec(max_ms: float) -> Spec:
    metric = MetricSpec("request-duration", "latency", "latency_ms", threshold_max=max_ms)
    return Spec(interval_s=60, threshold=3, max_weight=50, step_weight=10, metrics=(metric,))


def test_request_duration_and_its_bounds_are_whole_ms_as_in_flagger():
    """scheduler_metrics.go (fluxcd/flagger 15bd6ad) compares time.Duration values: the
    observer's int64(ms) and time.Duration(*thresholdRange.Max) ms, both truncated."""
    rec = recording([(1000, 0)] * 3, latency=[[0, 0, 0, 0, 1000, 0]] * 3)  # p99 497.5 ms
    passed = flagger(rec, duration_spec(497.2)).ticks[0].metrics[0]
    assert passed.classification == "pass"
    assert passed.estimate == 497.0
    assert passed.reason == "p99 latency 497 ms within max 497 ms"
    failed = flagger(rec, duration_spec(496.9)).ticks[0].metrics[0]
    assert failed.reason == "p99 latency 497 ms > 496 ms (max)"


def test_mean_duration_when_the_recording_has_the_histogram_sum():
    """nginx.go and skipper.go (fluxcd/flagger 15bd6ad): request-duration is _sum / _count."""
    rec = recording([(1000, 0)] * 3, latency=[[0, 0, 0, 0, 1000, 0]] * 3)
    sums = pl.DataFrame(
        [
            (at(i), v, "latency_ms_sum", "counter", None, 300_700.0)
            for i in range(3)
            for v in ("primary", "canary")
        ],
        schema=SCHEMA,
        orient="row",
    )
    with_sum = Recording(pl.concat([rec.frame, sums]), rec.meta)
    result = flagger(with_sum, duration_spec(400)).ticks[0].metrics[0]
    assert result.classification == "pass"  # the p99 (497.5 ms) would fail
    assert result.estimate == 300.0  # 300.7 ms truncated
    assert result.reason == "mean latency 300 ms within max 400 ms"


def test_metric_interval_sums_the_ticks_it_covers():
    # 2 errors in the third minute: 98% over 1m, but 2/300 = 99.33% over 3m
    minutes = [HEALTHY, HEALTHY, (100, 2)] + [HEALTHY] * 5
    one_minute = flagger(recording(minutes), SPEC.replace(metrics=[RATE]))
    three = flagger(recording(minutes), SPEC.replace(metrics=[{**_dump(RATE), "interval": "3m"}]))
    assert one_minute.ticks[2].metrics[0].details["value"] == pytest.approx(98.0)
    assert three.ticks[2].metrics[0].details["value"] == pytest.approx(100 * (1 - 2 / 300))
    assert column(one_minute, "failed_checks")[2] == 1
    assert column(three, "failed_checks")[2] == 0


def test_metric_interval_shorter_than_a_tick_uses_the_tick():
    spec = SPEC.replace(metrics=[{**_dump(RATE), "interval": "10s"}])
    verdict = flagger(recording([(100, 2)] * 3), spec)
    assert verdict.ticks[0].metrics[0].details["value"] == pytest.approx(98.0)


def test_following_recorded_weights():
    weights = [0, 0, 10, 30, 50, 50, 50]
    verdict = flagger(recording([HEALTHY] * 7, weights=weights), follow_recorded_weights=True)
    assert column(verdict, "weight") == [0, 0, 10, 30, 50]
    assert [len(t.metrics) for t in verdict.ticks] == [0, 0, 2, 2, 2]  # no checks at weight 0
    assert (verdict.decision, verdict.decided_at) == ("promote", at(4))


def test_ab_testing_promotes_after_iterations_checks():
    spec = SPEC.replace(iterations=3, ab_testing=True)
    verdict = flagger(recording([HEALTHY] * 10), spec)
    assert verdict.decided_at == at(2)
    assert column(verdict, "weight") == [100, 100, 100]


def test_blue_green_needs_one_more_check_at_full_traffic():
    verdict = flagger(recording([HEALTHY] * 10), SPEC.replace(iterations=3))
    assert verdict.decided_at == at(3)
    assert column(verdict, "weight") == [0, 0, 0, 100]


def test_blue_green_manifest_without_step_weight():
    spec = Spec.load(
        """
        apiVersion: flagger.app/v1beta1
        kind: Canary
        metadata: {name: app}
        spec:
          targetRef: {name: app}
          analysis: {interval: 1m, threshold: 2, iterations: 2}
        """
    )
    assert (spec.step_weight, spec.weight_plan()) == (0, ())
    verdict = flagger(recording([HEALTHY] * 5), spec)
    assert verdict.decided_at == at(2)


def test_kubernetes_provider_is_blue_green_with_no_traffic_to_the_canary():
    """fluxcd/flagger 15bd6ad pkg/controller/scheduler.go: for ``provider: kubernetes``
    advanceCanary drops the A/B match and sets ``iterations: 10`` when unset, and
    runBlueGreen never calls SetRoutes (``if provider != "kubernetes"``): the last check
    runs with no traffic routed to the canary, then Promote."""
    spec = Spec.load(
        """
        apiVersion: flagger.app/v1beta1
        kind: Canary
        metadata: {name: app}
        spec:
          provider: kubernetes
          targetRef: {name: app}
          analysis:
            interval: 1m
            threshold: 2
            stepWeight: 10
            match: [{headers: {x-canary: {exact: insider}}}]
        """
    )
    verdict = flagger(recording([HEALTHY] * 14), spec)
    assert (verdict.decision, verdict.decided_at) == ("promote", at(10))
    assert column(verdict, "weight") == [0] * 11
    mesh = flagger(recording([HEALTHY] * 14), spec.replace(provider="istio"))
    assert column(mesh, "weight") == [0] * 10 + [100]


def test_template_metric_missing_from_the_recording():
    spec = Spec.load(
        """
        apiVersion: flagger.app/v1beta1
        kind: Canary
        metadata: {name: app, namespace: prod}
        spec:
          targetRef: {name: app}
          analysis:
            stepWeight: 10
            threshold: 2
            metrics:
            - name: error-rate
              templateRef: {name: error-rate}
              thresholdRange: {max: 1}
        """
    )
    verdict = flagger(recording([HEALTHY] * 5), spec)
    assert (verdict.decision, verdict.decided_at) == ("rollback", at(2))
    assert "MetricTemplate prod/error-rate" in verdict.metrics[0].reason


def test_a_template_value_is_read_at_the_check_never_from_an_earlier_tick():
    """fluxcd/flagger 15bd6ad pkg/controller/scheduler_metrics.go (runMetricChecks) runs
    the template query at the check; its ``[{{ interval }}]`` already covers the lookback.
    A 5m template whose series is absent at minute 4 is "no values" there, even though
    minute 3 had one: a stale value never passes a check."""
    base = recording([HEALTHY] * 5)
    gauges = pl.DataFrame(
        [(at(k), "canary", "cpu", "gauge", None, 0.2) for k in (0, 1, 2, 4)],
        schema=SCHEMA,
        orient="row",
    )
    rec = Recording(pl.concat([base.frame, gauges]), base.meta)
    cpu = MetricSpec(
        "cpu", "gauge", "cpu", threshold_max=0.5, interval_s=300, template="MetricTemplate cpu"
    )
    verdict = flagger(rec, SPEC.replace(metrics=[cpu]))
    assert [t.metrics[0].classification for t in verdict.ticks] == ["pass"] * 3 + ["fail", "pass"]
    assert "no values found for cpu" in verdict.ticks[3].metrics[0].reason


def test_built_in_checks_run_before_template_checks():
    """fluxcd/flagger 15bd6ad pkg/controller/scheduler.go calls runBuiltinMetricChecks
    (request-success-rate, request-duration and inline ``query`` metrics, in their
    order) before runMetricChecks (templateRef metrics); scheduler_metrics.go."""
    template = MetricSpec("cpu", "gauge", "cpu", threshold_max=0.5, template="MetricTemplate cpu")
    inline = MetricSpec("p50", "gauge", "p50", threshold_max=1, template="inline query")
    spec = SPEC.replace(metrics=[template, inline, RATE])
    p50, rate, cpu = flagger(recording([BAD] * 5), spec).ticks[0].metrics
    assert (p50.name, p50.classification) == ("p50", "fail")  # no values: not recorded
    assert (rate.name, rate.classification) == ("request-success-rate", "inconclusive")
    assert (cpu.name, cpu.classification) == ("cpu", "inconclusive")


def test_observe_after_the_decision_keeps_it():
    rec = recording([BAD] * 10)
    table = tick_table(rec.frame, 60)
    flag = FlaggerJudge(SPEC, control="primary", treatment="canary")
    states = [flag.observe(table, k) for k in range(6)]
    assert states[4] is states[3] and states[5] is states[3]
    assert flag.verdict().decided_at == at(3)


def test_simulated_error_regression_rolls_back_and_healthy_promotes():
    spec = SPEC.replace(threshold=5, metrics=[{**_dump(RATE), "thresholdRange": {"min": 95}}])
    bad = flagger(simulate("error-regression", seed=3, error_ratio=(1.0, 10.0)), spec)
    good = flagger(simulate("healthy", seed=3), spec)
    assert (bad.decision, bad.decided_at) == ("rollback", at(5))  # 10% errors fail every tick
    assert (good.decision, good.decided_at) == ("promote", at(4))


def _dump(metric: MetricSpec) -> dict:
    return Spec(metrics=(metric,)).to_dict()["metrics"][0]


# -- histogram_quantile -----------------------------------------------------------------
# Hand computation from Prometheus' bucketQuantile: rank = q * total; take the first
# bucket whose cumulative count reaches the rank; interpolate linearly between its lower
# bound (0 for the first bucket) and its upper bound.

COUNTS = [10, 40, 30, 15, 4, 1]  # cumulative 10, 50, 80, 95, 99, 100


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.05, 0 + 25 * (5 / 10)),  # rank 5 in (0, 25]: 12.5
        (0.5, 25 + 25 * (40 / 40)),  # rank 50 ends (25, 50]: 50
        (0.9, 100 + 150 * (10 / 15)),  # rank 90, 10 into the 15 of (100, 250]: 200
        (0.95, 100 + 150 * (15 / 15)),  # rank 95: 250
        (0.975, 250 + 250 * (2.5 / 4)),  # rank 97.5, 2.5 into the 4 of (250, 500]: 406.25
        (0.995, 500.0),  # rank 99.5 falls in +Inf: the last finite upper bound
        (0.0, 0.0),  # rank 0 in the first bucket
        (1.0, 500.0),
    ],
)
def test_histogram_quantile_by_hand(q, expected):
    assert histogram_quantile(q, np.array(EDGES), np.array(COUNTS)) == pytest.approx(expected)


def test_histogram_quantile_special_cases():
    edges = np.array(EDGES)
    assert math.isnan(histogram_quantile(0.5, edges, np.zeros(6)))  # no observations
    assert math.isnan(histogram_quantile(0.5, np.array([1.0, 2.0]), np.array([1, 1])))  # no +Inf
    assert math.isnan(histogram_quantile(math.nan, edges, np.array(COUNTS)))
    assert histogram_quantile(-0.1, edges, np.array(COUNTS)) == -math.inf
    assert histogram_quantile(1.1, edges, np.array(COUNTS)) == math.inf
    # a first bucket with upper bound <= 0 returns that bound
    assert histogram_quantile(0.25, np.array([0.0, 10.0, math.inf]), np.array([5, 5, 0])) == 0.0
    # rank 5 of [5, 5]: cumulative 5 reaches it in the first bucket (-inf, 0]
    assert histogram_quantile(0.5, np.array([0.0, 10.0, math.inf]), np.array([5, 5, 0])) == 0.0


def test_histogram_quantile_per_row():
    rows = np.array([COUNTS, [0] * 6, [0, 0, 0, 0, 1, 9]])
    got = histogram_quantile(0.5, np.array(EDGES), rows)
    assert got[0] == 50 and math.isnan(got[1]) and got[2] == 500
