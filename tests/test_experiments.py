"""experiment(): reference numbers, SRM, corrections over goals, non-inferiority guardrails,
monotone sequential results, the winner rule, overdispersion, the Bayesian view."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from statsmodels.stats.multitest import multipletests

from rolloutlab.errors import SpecError
from rolloutlab.experiments.analysis import ExperimentSpec, experiment
from rolloutlab.sources.recording import Recording
from rolloutlab.sources.simulate import simulate
from rolloutlab.specs import MetricSpec
from rolloutlab.stats import two_proportions

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


def arrays_recording(counts: dict[str, np.ndarray], arms=("A", "B"), step_h: float = 1.0):
    """Counters {metric: array (arms, buckets)} as a recording with one step per bucket."""
    parts = []
    for metric, values in counts.items():
        values = np.asarray(values, dtype=float)
        stamps = [START + timedelta(hours=step_h * (k + 1)) for k in range(values.shape[1])]
        parts.append(
            pl.DataFrame(
                {
                    "timestamp": stamps * len(arms),
                    "variant": np.repeat(arms, values.shape[1]),
                    "metric": metric,
                    "kind": "counter",
                    "le": None,
                    "value": values.ravel(),
                },
                schema_overrides={"le": pl.Float64},
            )
        )
    meta = {"roles": {"control": arms[0], "treatment": list(arms[1:])}}
    return Recording(pl.concat(parts), meta)


def binomial_arms(rng, rates, visitors=2000, buckets=24 * 14):
    """Visitors and conversions per arm and hourly bucket, at the given conversion rates."""
    n = rng.poisson(visitors, (len(rates), buckets))
    conv = rng.binomial(n, np.asarray(rates)[:, None])
    return {"visitors": n, "conversions": conv}


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


def test_reference_conversion_numbers_from_domain_doc():
    report = experiment(conversion(100, 1000, 120, 1000), ExperimentSpec(sequential=False))
    row = report.table().row(0, named=True)
    assert (row["abs_ci_low"], row["abs_ci_high"]) == pytest.approx(
        (-0.0074282, 0.0474282), abs=5e-8
    )
    rel = two_proportions(100, 1000, 120, 1000, relative=True)
    assert row["p_value"] == pytest.approx(rel.p_value, rel=1e-9)  # the relative lift's test
    assert (row["rel_ci_low"], row["rel_ci_high"]) == pytest.approx(rel.ci, rel=1e-9)
    assert report.status == "no-winner-yet" and report.winner is None
    assert row["variance"].startswith("poisson/binomial (too few time buckets")


@pytest.mark.parametrize("method,sm", [("holm", "holm"), ("bh", "fdr_bh")])
def test_corrections_run_over_goals_and_arms_only(method, sm):
    rng = np.random.default_rng(7)
    counts = {"visitors": {}, "conversions": {}, "signups": {}, "errors": {}, "requests": {}}
    for arm, lift in (("A", 1.0), ("B", 1.06), ("C", 0.97)):
        counts["visitors"][arm] = [20_000.0]
        counts["conversions"][arm] = [float(rng.binomial(20_000, 0.1 * lift))]
        counts["signups"][arm] = [float(rng.binomial(20_000, 0.03 * lift))]
        counts["requests"][arm] = [60_000.0]
        counts["errors"][arm] = [float(rng.binomial(60_000, 0.01))]
    goals = (
        MetricSpec("conversion", "ratio", "conversions", "visitors", direction="decrease"),
        MetricSpec("signup", "ratio", "signups", "visitors", direction="decrease"),
    )
    guard = (MetricSpec("errors", "ratio", "errors", "requests"),)
    with_guard = experiment(recording(counts), ExperimentSpec(goals, guard, correction=method))
    without = experiment(recording(counts), ExperimentSpec(goals, (), correction=method))
    table = with_guard.table()
    goal_rows = table.filter(pl.col("role") == "goal")
    for raw, adjusted in (("p_value", "p_adjusted"), ("p_always_valid", "p_always_valid_adjusted")):
        expected = multipletests(goal_rows[raw].to_numpy(), method=sm)[1]
        assert goal_rows[adjusted].to_numpy() == pytest.approx(expected, rel=1e-12)
        # a guardrail costs the goals nothing
        assert without.table()[adjusted].to_numpy() == pytest.approx(expected, rel=1e-12)
    assert table.filter(pl.col("role") == "guardrail")["p_adjusted"].is_nan().all()


@pytest.mark.parametrize("sequential", [True, False])
def test_goal_intervals_agree_with_the_adjusted_significance(sequential):
    rng = np.random.default_rng(12)
    agree = 0
    for _ in range(25):
        lifts = 1 + rng.normal(0, 0.04, 3)
        data = binomial_arms(rng, 0.1 * np.r_[1.0, lifts], visitors=300, buckets=48)
        data["signups"] = rng.binomial(data["visitors"], 0.05)
        goals = tuple(
            MetricSpec(name, "ratio", metric, "visitors", direction="decrease")
            for name, metric in (("conversion", "conversions"), ("signup", "signups"))
        )
        rec = arrays_recording(data, arms=("A", "B", "C", "D"))
        table = experiment(rec, ExperimentSpec(goals, (), sequential=sequential)).table()
        low, high = ("rel_cs_low", "rel_cs_high") if sequential else ("rel_ci_low", "rel_ci_high")
        excludes = (table[low] > 0) | (table[high] < 0)
        assert (excludes == table["significant"]).all()
        agree += int(table["significant"].any())
        unadjusted = "rel_cs_unadjusted" if sequential else "rel_ci_unadjusted"
        width = table[high] - table[low]
        assert (width >= table[f"{unadjusted}_high"] - table[f"{unadjusted}_low"] - 1e-12).all()
    assert 0 < agree < 25  # both outcomes were exercised


def test_sequential_results_never_go_back_as_days_pass():
    rng = np.random.default_rng(3)
    data = binomial_arms(rng, [0.10, 0.104], visitors=400)
    rec = arrays_recording(data)
    previous_p, previous_cs = 1.0, (-np.inf, np.inf)
    for day in range(2, 15):
        window = Recording(
            rec.frame.filter(pl.col("timestamp") <= START + timedelta(days=day)), rec.meta
        )
        row = experiment(window).table().row(0, named=True)
        assert row["p_always_valid"] <= previous_p + 1e-15
        assert row["p_always_valid"] <= row["p_always_valid_now"] + 1e-15
        assert previous_cs[0] - 1e-12 <= row["rel_cs_low"] <= row["rel_cs_high"]
        assert row["rel_cs_high"] <= previous_cs[1] + 1e-12
        previous_p, previous_cs = row["p_always_valid"], (row["rel_cs_low"], row["rel_cs_high"])


def test_ab_scenario_finds_b_with_true_lift_inside_the_interval():
    rec = simulate("ab", seed=11)
    report = experiment(rec)
    assert report.status == "winner" and report.winner == "B"
    row = report.table().filter(pl.col("metric") == "conversion").row(0, named=True)
    assert row["rel_cs_low"] < 0.05 < row["rel_cs_high"]
    assert row["rel_ci_low"] < 0.05 < row["rel_ci_high"]
    assert row["chance_to_beat_control"] > 0.99 and row["expected_loss"] < 1e-3
    text = report.summary()
    assert text.startswith("B raises conversion by")
    assert "even when checked every day" in text and "chance B beats A" in text
    assert "No guardrail metric got worse beyond its margin" in text and "as planned" in text
    assert report.guardrails == {"B": {"error-rate": "not worse", "latency": "not worse"}}
    json.dumps(report.to_dict())  # JSON-ready
    assert repr(report).startswith("<ExperimentReport winner B")


def test_guardrail_worse_blocks_the_winner_and_is_named():
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
    assert report.beat_control == ("B",)
    assert report.worse == {"B": ("error-rate",)}
    assert "B beats A (+12.0%) but error-rate got worse" in report.summary()


def test_guardrail_is_a_one_sided_non_inferiority_test_against_its_margin():
    rng = np.random.default_rng(5)
    data = binomial_arms(rng, [0.10, 0.11], visitors=1500, buckets=24 * 7)
    data["requests"] = data["visitors"] * 3
    data["errors"] = rng.binomial(data["requests"], 0.002)  # ~3,000 errors per arm
    rec = arrays_recording(data)
    goal = (MetricSpec("conversion", "ratio", "conversions", "visitors", direction="decrease"),)
    tight = MetricSpec("errors", "ratio", "errors", "requests", margin=0.02)
    loose = MetricSpec("errors", "ratio", "errors", "requests", margin=0.3)
    unproven = experiment(rec, ExperimentSpec(goal, (tight,)))
    assert unproven.guardrails["B"]["errors"] == "unproven"
    assert unproven.status == "no-winner-yet" and unproven.beat_control == ("B",)
    assert "errors is not yet shown to stay within its margin" in unproven.summary()
    proven = experiment(rec, ExperimentSpec(goal, (loose,)))
    assert proven.guardrails["B"]["errors"] == "not worse" and proven.winner == "B"
    row = proven.table().filter(pl.col("role") == "guardrail").row(0, named=True)
    assert row["margin"] == 0.3 and row["rel_cs_high"] < 0.3 and row["p_noninferiority"] <= 0.05
    # fixed horizon: the one-sided 95% bound is the two-sided 90% interval's upper end
    spec = ExperimentSpec(goal, (loose,), sequential=False, variance="poisson")
    fixed = experiment(rec, spec).table()
    row = fixed.filter(pl.col("role") == "guardrail").row(0, named=True)
    stats = two_proportions(*_totals(data, "errors", "requests"), alpha=0.10, relative=True)
    assert (row["rel_ci_low"], row["rel_ci_high"]) == pytest.approx(stats.ci, rel=1e-9)


def _totals(data, events, exposure):
    e, x = data[events].sum(axis=1), data[exposure].sum(axis=1)
    return e[0], x[0], e[1], x[1]


def test_winner_must_be_distinguishable_from_the_runner_up():
    rng = np.random.default_rng(9)
    close = arrays_recording(
        binomial_arms(rng, [0.10, 0.112, 0.113], visitors=3000), arms=("A", "B", "C")
    )
    report = experiment(close)
    assert report.status == "no-winner-yet" and report.winner is None
    assert set(report.beat_control) == {"B", "C"}
    text = report.summary()
    assert "B and C beat A" in text or "C and B beat A" in text
    assert "is not yet distinguishable from" in text
    apart = arrays_recording(
        binomial_arms(rng, [0.10, 0.104, 0.13], visitors=3000), arms=("A", "B", "C")
    )
    assert experiment(apart).winner == "C"


def test_no_detectable_difference_is_an_equivalence_statement():
    rec = conversion(20_000, 200_000, 20_050, 200_000)
    report = experiment(rec)
    assert report.status == "no-detectable-difference"
    row = report.table().row(0, named=True)
    assert row["rel_cs_low"] > -0.05 and row["rel_cs_high"] < 0.05
    assert "no arm changes conversion by more than ±5%" in report.summary().lower()
    wider = experiment(rec, ExperimentSpec(equivalence_margin=0.01))
    assert wider.status == "no-winner-yet"  # not shown within ±1%


def test_overdispersed_counts_widen_the_interval():
    rng = np.random.default_rng(21)
    n = rng.poisson(2000, (2, 24 * 14))
    burst = rng.gamma(4.0, 0.25, n.shape)  # per-bucket rate swings of ±50% (bots, campaigns)
    conv = rng.poisson(n * 0.1 * burst)
    rec = arrays_recording({"visitors": n, "conversions": conv})
    quasi = experiment(rec).table().row(0, named=True)
    poisson = experiment(rec, ExperimentSpec(variance="poisson")).table().row(0, named=True)
    batch = experiment(rec, ExperimentSpec(variance="batch-means")).table().row(0, named=True)
    assert quasi["dispersion"] > 10 and quasi["variance"].startswith("quasi-poisson (x")
    assert poisson["variance"] == "poisson/binomial"
    width = {
        k: r["rel_cs_high"] - r["rel_cs_low"]
        for k, r in (("q", quasi), ("p", poisson), ("b", batch))
    }
    assert width["q"] > 3 * width["p"] and width["b"] > 3 * width["p"]


def test_overdispersed_a_a_false_winners_stay_within_alpha():
    rng = np.random.default_rng(8)
    wins = {"quasi-poisson": 0, "poisson": 0}
    runs = 120
    for _ in range(runs):
        n = rng.poisson(500, (2, 24 * 4))
        burst = rng.gamma(2.0, 0.5, n.shape)
        rec = arrays_recording({"visitors": n, "conversions": rng.poisson(n * 0.1 * burst)})
        for variance in wins:
            spec = ExperimentSpec(variance=variance, sequential=False)
            wins[variance] += experiment(rec, spec).table()["significant"][0]
    assert wins["quasi-poisson"] / runs <= 0.08  # 5% nominal; 120 runs: +3% for noise
    assert wins["poisson"] / runs > 0.3  # what Poisson variance would have claimed


def test_bayesian_view_uses_the_documented_prior():
    rec = conversion(100, 1000, 120, 1000)
    flat = experiment(rec).table().row(0, named=True)
    assert flat["chance_to_beat_control"] == pytest.approx(
        1 - 0.5 * two_proportions(100, 1000, 120, 1000, relative=True).p_value, abs=0.01
    )
    shrunk = experiment(rec, ExperimentSpec(prior_var=0.01**2)).table().row(0, named=True)
    assert abs(shrunk["credible_high"] - shrunk["credible_low"]) < 0.05
    assert shrunk["chance_to_beat_control"] < flat["chance_to_beat_control"]
    assert flat["credible_low"] < flat["rel_lift"] < flat["credible_high"]


def test_experiment_command_prints_the_sentence_and_the_table_in_words(capsys):
    from rolloutlab.cli import main

    data = Path(__file__).resolve().parents[1] / "data" / "ab.parquet"
    assert main(["experiment", str(data)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("B raises conversion by")
    assert "beats control" in out and "not worse (by more than 10%)" in out


def test_new_settings_are_checked():
    with pytest.raises(SpecError, match="variance"):
        ExperimentSpec(variance="bootstrap")
    with pytest.raises(SpecError, match="guardrail_margin"):
        ExperimentSpec(guardrail_margin=0.0)
    with pytest.raises(SpecError, match="prior_var"):
        ExperimentSpec(prior_var=-1.0)
    with pytest.raises(SpecError, match="bucket_s"):
        ExperimentSpec(bucket_s=0)


def test_a_qualifying_arm_shown_worse_than_a_blocked_one_does_not_win():
    rng = np.random.default_rng(13)
    data = binomial_arms(rng, [0.10, 0.104, 0.13], visitors=3000)
    data["requests"] = data["visitors"]
    data["errors"] = rng.binomial(data["requests"], np.array([[0.01], [0.01], [0.015]]))
    rec = arrays_recording(data, arms=("A", "B", "C"))
    report = experiment(rec)
    assert report.guardrails["C"]["error-rate"] == "worse"
    assert report.guardrails["B"]["error-rate"] == "not worse"
    assert report.beat_control == ("C", "B") and report.winner is None
    assert (report.leader, report.runner_up) == ("B", "C")
    assert "C (+" in report.summary() and "held back by a guardrail" in report.summary()
