"""experiment(): reference numbers, SRM invalidation, corrections, the ab scenario."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from statsmodels.stats.multitest import multipletests

from rolloutlab.errors import SpecError
from rolloutlab.experiments.analysis import ExperimentSpec, compare, experiment
from rolloutlab.judges.spec import MetricSpec
from rolloutlab.sources.recording import Recording
from rolloutlab.sources.simulate import simulate
from rolloutlab.stats import MeanStats, two_proportions, welch_t

START = datetime(2026, 1, 12, tzinfo=UTC)


def recording(counts: dict[str, dict[str, list[float]]], weights=None, steps=1) -> Recording:
    """Counters {metric: {arm: per-step values}} (and optional weight per arm) as a recording."""
    rows = []
    for metric, per_arm in counts.items():
        for arm, values in per_arm.items():
            for k, value in enumerate(values):
                rows.append((START + timedelta(hours=k + 1), arm, metric, "counter", None, value))
    for arm, w in (weights or {}).items():
        for k in range(steps):
            rows.append((START + timedelta(hours=k + 1), arm, "weight", "gauge", None, w))
    frame = pl.DataFrame(
        rows, schema=["timestamp", "variant", "metric", "kind", "le", "value"], orient="row"
    )
    arms = sorted({a for per in counts.values() for a in per})
    return Recording(frame, {"roles": {"control": arms[0], "treatment": arms[1:]}})


def conversion(c, cn, t, tn, **kw) -> Recording:
    return recording(
        {"conversions": {"A": [c], "B": [t]}, "visitors": {"A": [cn], "B": [tn]}}, **kw
    )


def test_reference_conversion_numbers_from_domain_doc():
    report = experiment(conversion(100, 1000, 120, 1000), ExperimentSpec(sequential=False))
    row = report.table().row(0, named=True)
    assert row["p_value"] == pytest.approx(0.1528654, abs=5e-8)
    assert (row["abs_ci_low"], row["abs_ci_high"]) == pytest.approx(
        (-0.0074282, 0.0474282), abs=5e-8
    )
    rel = two_proportions(100, 1000, 120, 1000, relative=True)
    assert (row["rel_ci_low"], row["rel_ci_high"]) == pytest.approx(rel.ci, rel=1e-9)
    assert report.status == "no-winner-yet" and report.winner is None


def test_reference_srm_number_invalidates_the_report():
    rec = conversion(100, 1000, 130, 1100, weights={"A": 50.0, "B": 50.0})
    report = experiment(rec)
    assert report.srm_p_value == pytest.approx(0.0290963, abs=5e-8)
    assert report.status != "invalid"  # 0.029 is above the SRM level 0.001
    strict = experiment(rec, ExperimentSpec(srm_alpha=0.05))
    assert strict.status == "invalid" and strict.winner is None
    assert "not as planned" in strict.summary()


def test_big_srm_is_invalid_even_with_a_huge_lift():
    rec = conversion(100, 10_000, 2000, 12_000, weights={"A": 50.0, "B": 50.0})
    report = experiment(rec)
    assert report.status == "invalid"
    assert report.table()["p_value"][0] < 1e-10  # the lift is there; the split is not


def test_reference_means_through_the_vectorised_core():
    c = compare(np.array([[1000.0, 1000.0]]), np.array([[10.0, 10.5]]), np.array([[25.0, 25.0]]))
    assert c.p_value[0, 0] == pytest.approx(0.0254573, abs=5e-8)
    assert tuple(c.abs_ci[0, 0]) == pytest.approx((0.0614731, 0.9385269), abs=5e-8)


def test_vectorised_core_matches_scalar_stats_functions():
    rng = np.random.default_rng(3)
    n = rng.integers(2, 5000, size=(40, 3)).astype(float)
    mean = rng.uniform(0.5, 20, size=(40, 3))
    var = rng.uniform(0.1, 30, size=(40, 3))
    c = compare(n, mean, var, alpha=0.1)
    for i in range(40):

        def stats(k, i=i):
            total = mean[i, k] * n[i, k]
            return MeanStats(n[i, k], total, var[i, k] * (n[i, k] - 1) + total**2 / n[i, k])

        control = stats(0)
        for j in (1, 2):
            ref = welch_t(control, stats(j), alpha=0.1)
            rel = welch_t(control, stats(j), alpha=0.1, relative=True)
            assert c.p_value[i, j - 1] == pytest.approx(ref.p_value, rel=1e-9, abs=1e-300)
            assert tuple(c.abs_ci[i, j - 1]) == pytest.approx(ref.ci, rel=1e-9)
            assert tuple(c.rel_ci[i, j - 1]) == pytest.approx(rel.ci, rel=1e-9)


def test_always_valid_p_value_matches_its_confidence_sequence():
    for lift in (0.002, 0.008, 0.012, 0.016, 0.03):
        mean = np.array([[0.10, 0.10 + lift]])
        c = compare(np.array([[5000.0, 5000.0]]), mean, mean * (1 - mean), alpha=0.05)
        p_av, low = c.p_always_valid[0, 0], c.abs_cs[0, 0, 0]
        assert p_av >= c.p_value[0, 0]  # looking any time costs some power
        assert (low > 0) == (p_av <= 0.05)


@pytest.mark.parametrize("method,sm", [("holm", "holm"), ("bh", "fdr_bh")])
def test_corrections_match_statsmodels(method, sm):
    rng = np.random.default_rng(7)
    counts = {"visitors": {}, "conversions": {}, "signups": {}, "errors": {}, "requests": {}}
    for arm, lift in (("A", 1.0), ("B", 1.06), ("C", 0.97)):
        counts["visitors"][arm] = [20_000.0]
        counts["conversions"][arm] = [float(rng.binomial(20_000, 0.1 * lift))]
        counts["signups"][arm] = [float(rng.binomial(20_000, 0.03 * lift))]
        counts["requests"][arm] = [60_000.0]
        counts["errors"][arm] = [float(rng.binomial(60_000, 0.01))]
    spec = ExperimentSpec(
        goals=(
            MetricSpec("conversion", "ratio", "conversions", "visitors", direction="decrease"),
            MetricSpec("signup", "ratio", "signups", "visitors", direction="decrease"),
        ),
        guardrails=(MetricSpec("errors", "ratio", "errors", "requests"),),
        correction=method,
    )
    table = experiment(recording(counts), spec).table()
    for raw, adjusted in (("p_value", "p_adjusted"), ("p_always_valid", "p_always_valid_adjusted")):
        expected = multipletests(table[raw].to_numpy(), method=sm)[1]
        assert table[adjusted].to_numpy() == pytest.approx(expected, rel=1e-12)


def test_ab_scenario_finds_b_with_true_lift_inside_the_interval():
    rec = simulate("ab", seed=11)
    report = experiment(rec)
    assert report.status == "winner" and report.winner == "B"
    row = report.table().filter(pl.col("metric") == "conversion").row(0, named=True)
    assert row["rel_cs_low"] < 0.05 < row["rel_cs_high"]
    assert row["rel_ci_low"] < 0.05 < row["rel_ci_high"]
    text = report.summary()
    assert text.startswith("B raises conversion by") and "no guardrail metric got worse" in text
    assert "as planned" in text
    json.dumps(report.to_dict())  # JSON-ready
    assert repr(report).startswith("<ExperimentReport winner B")


def test_guardrail_worse_blocks_the_winner():
    rec = recording(
        {
            "visitors": {"A": [50_000.0], "B": [50_000.0]},
            "conversions": {"A": [5000.0], "B": [5600.0]},
            "requests": {"A": [100_000.0], "B": [100_000.0]},
            "errors": {"A": [1000.0], "B": [1500.0]},
        }
    )
    report = experiment(rec)
    assert report.status == "no-winner-yet" and report.winner is None
    assert report.worse == {"B": ("error-rate",)}
    assert "guardrail worse: error-rate" in report.summary()


def test_no_detectable_difference_when_powered_and_flat():
    rec = conversion(20_000, 200_000, 20_050, 200_000)
    report = experiment(rec)
    assert report.status == "no-detectable-difference"
    assert report.table()["n_remaining"][0] == 0


def test_degenerate_data_is_neutral_not_an_error():
    flat = experiment(conversion(0, 1000, 0, 1000))
    row = flat.table().row(0, named=True)
    assert row["p_value"] == 1.0 and row["reason"] is not None
    assert flat.status == "no-winner-yet"
    empty = experiment(conversion(0, 0, 5, 100))
    row = empty.table().row(0, named=True)
    assert row["p_value"] == 1.0 and row["reason"] == "no data in an arm"
    assert row["rel_lift"] is None or math.isnan(row["rel_lift"])
    assert empty.status == "invalid"  # all traffic in one arm is a sample-ratio mismatch
    json.dumps(empty.to_dict())


def test_misuse_raises_spec_error_with_the_fix():
    with pytest.raises(SpecError, match="holm"):
        ExperimentSpec(correction="bonferroni")
    with pytest.raises(SpecError, match="direction='decrease'"):
        ExperimentSpec(goals=(MetricSpec("c", "ratio", "conversions", "visitors", "either"),))
    with pytest.raises(SpecError, match="gauge"):
        ExperimentSpec(guardrails=(MetricSpec("cpu", "gauge", "cpu"),))
    with pytest.raises(SpecError, match="planned_shares"):
        experiment(conversion(1, 10, 2, 10), ExperimentSpec(planned_shares={"A": 0.5}))


def test_latency_guardrail_uses_the_slow_share():
    rec = simulate("ab", seed=2, latency_shift=(0.0, 0.3), duration_min=2 * 24 * 60)
    report = experiment(rec)
    table = report.table().filter(pl.col("metric") == "latency")
    assert table["measure"][0].startswith("latency_ms > ")
    assert table["rel_lift"][0] > 0.2
    assert report.worse.get("B") == ("latency",)
    assert report.status == "no-winner-yet"


@pytest.mark.parametrize("sequential", [True, False])
def test_remaining_sample_reaches_the_target_power(sequential):
    mean = np.array([[0.10, 0.10]])
    n = np.array([[4000.0, 4000.0]])
    now = compare(n, mean, mean * (1 - mean), target_lift=0.05, sequential=sequential)
    assert now.power[0, 0] < 0.8 and now.n_remaining[0, 0] > 0
    grown = n * (1 + now.n_remaining[0, 0] / n.sum())
    later = compare(grown, mean, mean * (1 - mean), target_lift=0.05, sequential=sequential)
    assert later.power[0, 0] == pytest.approx(0.8, abs=0.002)
    assert later.mde_rel[0, 0] == pytest.approx(0.05, rel=0.01)
    fixed = compare(n, mean, mean * (1 - mean), sequential=False)
    assert compare(n, mean, mean * (1 - mean)).mde_rel[0, 0] > fixed.mde_rel[0, 0]


def test_a_rolloutlab_spec_gives_the_guardrails_and_alpha():
    spec = {
        "alpha": 0.01,
        "metrics": [
            {"name": "errs", "kind": "ratio", "metric": "errors", "denominator": "requests"}
        ],
    }
    report = experiment(simulate("ab", seed=3, duration_min=3 * 24 * 60), spec)
    assert report.spec.alpha == 0.01
    assert [m.name for m in report.metrics] == ["conversion", "errs"]
    assert report.roles == ("goal", "guardrail")


def test_summary_frame_reads_in_words_with_units():
    frame = experiment(simulate("ab", seed=11)).summary_frame()
    assert frame.columns[:3] == ["metric", "role", "arm"]
    row = frame.filter(pl.col("metric") == "conversion").row(0, named=True)
    assert row["control"].endswith("%") and row["lift"].startswith("+")
    assert row["status"] == "beats control"
    assert set(frame["role"]) == {"goal", "guardrail"}
