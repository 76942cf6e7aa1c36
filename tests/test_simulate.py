"""The simulator's truth: what a scenario says is what the data show."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import polars as pl
import pytest
from scipy import stats

import rolloutlab
from rolloutlab.errors import SpecError
from rolloutlab.frames import tick_table
from rolloutlab.sources.simulate import SCENARIOS


def test_same_seed_same_data_other_seed_other_data():
    a = rolloutlab.simulate("healthy", seed=1)
    assert a.frame.equals(rolloutlab.simulate("healthy", seed=1).frame)
    assert not a.frame.equals(rolloutlab.simulate("healthy", seed=2).frame)


def test_weight_plan_is_flagger_like():
    rec = rolloutlab.simulate("healthy", seed=0, interval_s=300, step_weight=10, max_weight=50)
    table = tick_table(rec.frame, 300)
    assert table.weight("canary").tolist()[:7] == [10, 20, 30, 40, 50, 50, 50]
    assert np.allclose(table.weight("primary") + table.weight("canary"), 100)


def test_error_ratio_is_the_truth():
    rec = rolloutlab.simulate("error-regression", seed=4)
    t = tick_table(rec.frame, 60)
    c_err, c_n = t.counter("errors", "canary").sum(), t.counter("requests", "canary").sum()
    p_err, p_n = t.counter("errors", "primary").sum(), t.counter("requests", "primary").sum()
    # exact conditional binomial test of the rate ratio (independent reference: scipy)
    share = 3 * c_n / (3 * c_n + p_n)
    assert stats.binomtest(int(c_err), int(c_err + p_err), share).pvalue > 0.001


def test_requests_split_follows_weight():
    rec = rolloutlab.simulate("aa", seed=5)
    t = tick_table(rec.frame, 60)
    canary, total = t.counter("requests", "canary").sum(), t.counter("requests", "primary").sum()
    total += canary
    assert stats.binomtest(int(canary), int(total), 0.10).pvalue > 0.001


@pytest.mark.parametrize("name", ["latency-regression", "tail-latency-regression"])
def test_latency_regressions_move_the_right_part(name):
    rec = rolloutlab.simulate(name, seed=6, requests_per_min=5000)
    t = tick_table(rec.frame, 60)
    edges = t.edges["latency_ms"]
    cdf = {v: np.cumsum(t.histogram("latency_ms", v).sum(0)) for v in ("primary", "canary")}
    cdf = {v: c / c[-1] for v, c in cdf.items()}
    median_bin = np.searchsorted(edges, 100.0)  # the 100 ms edge, near the median
    slow_bin = np.searchsorted(edges, 500.0)  # beyond the primary's p95 (~215 ms)
    if name == "latency-regression":
        assert cdf["canary"][median_bin] < cdf["primary"][median_bin] - 0.03
    else:
        assert abs(cdf["canary"][median_bin] - cdf["primary"][median_bin]) < 0.01
        assert cdf["canary"][slow_bin] < cdf["primary"][slow_bin] - 0.005


def test_ab_scenario_has_conversions_and_a_lift():
    rec = rolloutlab.simulate("ab", seed=1)
    totals = rec.summary().filter(pl.col("metric").is_in(["visitors", "conversions"]))
    assert set(totals["variant"]) == {"A", "B"}
    assert rec.meta["roles"] == {"control": "A", "treatment": ["B"]}
    assert rec.meta["kind"] == "experiment"


def test_ar1_gauge_is_autocorrelated():
    rec = rolloutlab.simulate("aa", seed=8, cpu_phi=0.8)
    cpu = tick_table(rec.frame, 60).gauge("cpu", "primary")
    lag1 = np.corrcoef(cpu[:-1], cpu[1:])[0, 1]
    assert 0.65 < lag1 < 0.9


def test_bad_scenarios_say_how_to_fix():
    with pytest.raises(SpecError, match="unknown scenario 'nope'. Choose one of"):
        rolloutlab.simulate("nope")
    with pytest.raises(SpecError, match="Scenario fields are"):
        rolloutlab.simulate("healthy", request_rate=5)
    with pytest.raises(SpecError, match="one per variant"):
        rolloutlab.simulate("healthy", error_ratio=(1.0,))


# -- the pre-realism output is pinned --------------------------------------------------

#: Digests of ``simulate(...).frame`` computed *before* the realism fields were added
#: (commit 4191abe): they pin the pre-realism output, so a scenario that leaves the new
#: fields off must still draw exactly the same numbers (the bundled data/*.parquet files
#: and other tests rely on it).
PRE_REALISM_DIGESTS = {
    ("healthy", 0): "11b8d8b3c2ace230",
    ("healthy", 7): "9a1f1fdfbf2226e2",
    ("aa", 0): "5442c586cd6d9262",
    ("aa", 7): "860ff01d45d89885",
    ("error-regression", 0): "5ba98ea02fe5ad19",
    ("error-regression", 7): "8b31a8cead26633b",
    ("latency-regression", 0): "31009a714fab12a6",
    ("latency-regression", 7): "fe5d4b473bf00fd5",
    ("tail-latency-regression", 0): "eaa53393b137d44d",
    ("tail-latency-regression", 7): "2f494cbd6f60636a",
    ("low-traffic", 0): "7ac488ef9c90b221",
    ("low-traffic", 7): "194bd09c1c5f2bcd",
    ("ab", 0): "406c2a88e57630a6",
    ("ab", 7): "32dd5e8c2d6e84bc",
}
PRE_REALISM_CALLS = {
    "4892909f458f1257": (
        "healthy",
        3,
        {"diurnal_amplitude": 0.8, "interval_s": 60, "requests_per_min": 100.0},
    ),
    "7e6637b8277fa153": (
        "aa",
        4,
        {
            "error_ratio": (1.0, 2.0),
            "latency_shift": (0.0, 0.1),
            "cpu_shift": (0.0, 0.1),
            "duration_min": 60,
        },
    ),
    "fdd8c9fe700410d6": (
        "healthy",
        5,
        {"tail_shift": (0.0, 1.0), "weights": (80.0, 20.0), "step_s": 30, "duration_min": 30},
    ),
}


def _digest(frame: pl.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(frame["value"].to_numpy().tobytes())
    h.update(frame["le"].fill_null(-1.0).to_numpy().tobytes())
    h.update(frame["timestamp"].dt.epoch("us").to_numpy().tobytes())
    h.update("\n".join(frame["variant"].to_list()).encode())
    h.update("\n".join(frame["metric"].to_list()).encode())
    return h.hexdigest()[:16]


def test_every_scenario_is_bit_for_bit_what_it_was_before_realism():
    assert {name for name, _ in PRE_REALISM_DIGESTS} == set(SCENARIOS)
    for (name, seed), digest in PRE_REALISM_DIGESTS.items():
        assert _digest(rolloutlab.simulate(name, seed=seed).frame) == digest, (name, seed)
    for digest, (name, seed, overrides) in PRE_REALISM_CALLS.items():
        assert _digest(rolloutlab.simulate(name, seed=seed, **overrides).frame) == digest


def test_realism_is_off_by_default_and_recorded_in_meta():
    rec = rolloutlab.simulate("healthy", seed=1, duration_min=10)
    sc = rec.meta["scenario"]
    assert sc["retries"] == 0 and sc["pods"] == 1 and sc["missing_scrapes"] == 0.0
    assert sc["incident_min"] == (1.0, 5.0) and sc["truth"] == {}


# -- realism ---------------------------------------------------------------------------

EVEN = {"weights": (50.0, 50.0)}


def _dispersion(t, variant: str) -> float:
    """Mean squared Pearson residual of per-tick errors against a binomial (1 = binomial)."""
    err, n = t.counter("errors", variant), t.counter("requests", variant)
    p = err.sum() / n.sum()
    return float(np.mean((err - n * p) ** 2 / (n * p * (1 - p))))


def test_retries_multiply_failures_into_bursts():
    plain = tick_table(rolloutlab.simulate("aa", seed=3, **EVEN).frame, 60)
    burst = tick_table(rolloutlab.simulate("aa", seed=3, retries=2, **EVEN).frame, 60)
    for v in ("primary", "canary"):
        # retry draws come after the root draws: each root failure is 3 errors in 3 requests
        root_err, root_n = plain.counter("errors", v), plain.counter("requests", v)
        assert np.array_equal(burst.counter("errors", v), 3 * root_err)
        assert np.array_equal(burst.counter("requests", v), root_n + 2 * root_err)
        latency_total = burst.histogram("latency_ms", v).sum(axis=1)
        assert np.array_equal(latency_total, burst.counter("requests", v))


@pytest.mark.parametrize("retries", [0, 1, 2])
def test_retries_overdisperse_error_counts_by_one_plus_retries(retries):
    # 3000 ticks x 2 variants: over 25 seeds the dispersion's sd was 0.026, 0.05 and 0.074
    # (for 0, 1, 2 retries), so 15% is 5 sd or more
    rec = rolloutlab.simulate("aa", seed=21, duration_min=3000, retries=retries, **EVEN)
    t = tick_table(rec.frame, 60)
    for v in ("primary", "canary"):
        assert _dispersion(t, v) == pytest.approx(1 + retries, rel=0.15)


def test_partial_retries_add_the_expected_attempts():
    # retry_fail_p 0.5, 2 retries: a root failure costs 1.5 more attempts and 0.75 more errors
    rec = rolloutlab.simulate("aa", seed=4, duration_min=1200, retries=2, retry_fail_p=0.5)
    root = rolloutlab.simulate("aa", seed=4, duration_min=1200)
    t, t0 = tick_table(rec.frame, 60), tick_table(root.frame, 60)
    for v in ("primary", "canary"):
        root_err = t0.counter("errors", v).sum()
        extra_n = t.counter("requests", v).sum() - t0.counter("requests", v).sum()
        extra_err = t.counter("errors", v).sum() - root_err
        assert extra_n / root_err == pytest.approx(1.5, abs=0.1)
        assert extra_err / root_err == pytest.approx(0.75, abs=0.1)


def _inside(t_end_min: np.ndarray, windows: list[tuple[float, float]], step_min: float):
    """(ticks wholly inside some window, ticks touching none)."""
    start = t_end_min - step_min
    inside = np.zeros(t_end_min.size, bool)
    touched = np.zeros(t_end_min.size, bool)
    for a, b in windows:
        inside |= (start >= a) & (t_end_min <= b)
        touched |= (t_end_min > a) & (start < b)
    return inside, ~touched


def test_incidents_are_in_truth_and_raise_only_their_variants_rate_inside_them():
    rec = rolloutlab.simulate(
        "aa",
        seed=5,
        duration_min=600,
        requests_per_min=20000.0,
        incident_rate_per_h=1.0,
        incident_min=(3.0, 8.0),
        incident_error_ratio=6.0,
        incident_latency_shift=1.0,
        **EVEN,
    )
    incidents = rec.meta["scenario"]["truth"]["incidents"]
    assert {i["variant"] for i in incidents} == {"primary", "canary"}
    assert all(3.0 <= i["end_min"] - i["start_min"] <= 8.0 for i in incidents)
    t = tick_table(rec.frame, 60)
    minutes = np.arange(1, len(t) + 1, dtype=float)
    for v in ("primary", "canary"):
        mine = [(i["start_min"], i["end_min"]) for i in incidents if i["variant"] == v]
        inside, outside = _inside(minutes, mine, 1.0)
        assert inside.sum() >= 10 and outside.sum() >= 300
        rate = t.counter("errors", v) / t.counter("requests", v)
        assert rate[inside].mean() == pytest.approx(0.06, rel=0.05)
        assert rate[outside].mean() == pytest.approx(0.01, rel=0.05)
        fast = t.histogram("latency_ms", v)[:, : np.searchsorted(t.edges["latency_ms"], 100.0) + 1]
        fast_share = fast.sum(1) / t.counter("requests", v)
        # doubled latency: P(L <= 100 ms) falls from 0.645 to 0.217
        assert fast_share[inside].mean() == pytest.approx(0.217, abs=0.02)
        assert fast_share[outside].mean() == pytest.approx(0.645, abs=0.01)


def test_incidents_come_at_their_rate_for_both_variants_alike():
    counts = {"primary": 0, "canary": 0}
    for seed in range(20):
        truth = rolloutlab.simulate(
            "aa", seed=seed, duration_min=300, incident_rate_per_h=2.0, requests_per_min=10.0
        ).meta["scenario"]["truth"]
        for i in truth["incidents"]:
            counts[i["variant"]] += 1
    # 200 expected per variant (20 runs x 5 h x 2/h); Poisson sd 14
    assert all(140 < c < 260 for c in counts.values())


def test_uneven_pods_keep_the_mean_rate_and_inflate_tick_to_tick_variance():
    kw = {"duration_min": 2000, "requests_per_min": 20000.0, **EVEN}
    even = tick_table(rolloutlab.simulate("aa", seed=6, **kw).frame, 60)
    rec = rolloutlab.simulate("aa", seed=6, pods=8, pod_spread=1.0, pod_balance=5.0, **kw)
    uneven = tick_table(rec.frame, 60)
    multipliers = rec.meta["scenario"]["truth"]["pod_error_multipliers"]
    for v in ("primary", "canary"):
        m = np.asarray(multipliers[v])
        assert m.size == 8 and m.mean() == pytest.approx(1.0, rel=1e-12)
        rate = uneven.counter("errors", v).sum() / uneven.counter("requests", v).sum()
        assert rate == pytest.approx(0.01, rel=0.03)
        # a symmetric Dirichlet(5) split over 8 pods adds var(m) / (8 * 5 + 1) to the
        # per-tick rate's relative variance: the dispersion is 1 + n p var(m) / 41 / (1 - p)
        n = uneven.counter("requests", v).mean()
        expected = 1 + n * 0.01 * m.var() / 41 / 0.99
        assert expected > 1.5
        assert _dispersion(uneven, v) == pytest.approx(expected, rel=0.15)
        assert _dispersion(even, v) == pytest.approx(1.0, abs=0.15)


def _slow_share(t, variant: str, edge_ms: float = 100.0) -> np.ndarray:
    """Per tick, the share of requests slower than ``edge_ms``."""
    hist = t.histogram("latency_ms", variant)
    fast = hist[:, : np.searchsorted(t.edges["latency_ms"], edge_ms) + 1].sum(axis=1)
    return 1.0 - fast / hist.sum(axis=1)


def test_cold_start_slows_only_the_treatment_at_first_and_fades():
    rec = rolloutlab.simulate(
        "aa",
        seed=7,
        duration_min=60,
        requests_per_min=20000.0,
        cold_start_shift=1.0,
        cold_start_min=5.0,
        **EVEN,
    )
    t = tick_table(rec.frame, 60)
    canary, primary = _slow_share(t, "canary"), _slow_share(t, "primary")
    # first minute: latency x1.906 (the step's mean), P(L > 100 ms) 0.758 instead of 0.355
    assert canary[0] == pytest.approx(0.758, abs=0.03)
    assert np.all(np.diff(canary[:10]) < 0)
    assert canary[40:].mean() == pytest.approx(0.355, abs=0.01)
    assert primary[:5].mean() == pytest.approx(0.355, abs=0.015)
    assert primary[40:].mean() == pytest.approx(0.355, abs=0.01)


def test_cold_start_slows_every_treatment_never_the_control():
    rec = rolloutlab.simulate(
        "aa",
        seed=7,
        duration_min=30,
        requests_per_min=20000.0,
        variants=("A", "B", "C"),
        weights=(50.0, 25.0, 25.0),
        error_ratio=(1.0, 1.0, 1.0),
        latency_shift=(0.0, 0.0, 0.0),
        tail_shift=(0.0, 0.0, 0.0),
        cpu_shift=(0.0, 0.0, 0.0),
        cold_start_shift=1.0,
        cold_start_min=5.0,
    )
    t = tick_table(rec.frame, 60)
    assert _slow_share(t, "A")[0] == pytest.approx(0.355, abs=0.02)
    for v in ("B", "C"):
        assert _slow_share(t, v)[0] == pytest.approx(0.758, abs=0.03)


def test_diurnal_latency_moves_both_variants_alike():
    kw = {"duration_min": 24 * 60, "step_s": 600, "requests_per_min": 2000.0, **EVEN}
    rec = rolloutlab.simulate("aa", seed=8, diurnal_latency=0.5, **kw)
    flat = rolloutlab.simulate("aa", seed=8, **kw)
    t, t0 = tick_table(rec.frame, 600), tick_table(flat.frame, 600)
    hours = np.arange(1, len(t) + 1) * 600 / 3600.0
    trough, peak = hours <= 1.5, np.abs(hours - 12) <= 1
    for v in ("primary", "canary"):
        slow = _slow_share(t, v)
        # the median about x0.53 near the trough, x1.5 at the peak: P(L > 100 ms) about
        # 0.07 and 0.62 instead of 0.355
        assert slow[trough].mean() == pytest.approx(0.07, abs=0.015)
        assert slow[peak].mean() == pytest.approx(0.62, abs=0.02)
        assert np.ptp(_slow_share(t0, v)) < 0.05
    assert np.abs(_slow_share(t, "canary") - _slow_share(t, "primary")).max() < 0.05


def test_missing_scrapes_drop_whole_variant_steps_never_weights():
    rec = rolloutlab.simulate("aa", seed=9, duration_min=1800, missing_scrapes=0.1)
    truth = rec.meta["scenario"]["truth"]["missing_steps"]
    frame = rec.frame
    n_ticks = 1800
    weights = frame.filter(pl.col("metric") == "weight")
    assert weights.height == 2 * n_ticks
    dropped = sum(len(m) for m in truth.values())
    assert 0.08 < dropped / (2 * n_ticks) < 0.12  # 360 expected, sd 18
    start = frame["timestamp"].min()
    per_step = (
        frame.filter(pl.col("metric") != "weight")
        .group_by("timestamp", "variant")
        .agg(pl.len().alias("rows"), pl.col("metric").n_unique().alias("metrics"))
    )
    assert set(per_step["metrics"]) == {4}  # a step is all there or all gone
    for v in ("primary", "canary"):
        present = per_step.filter(pl.col("variant") == v)["timestamp"]
        present_min = {round((ts - start).total_seconds() / 60.0) + 1 for ts in present.to_list()}
        assert present_min.isdisjoint(truth[v])
        assert len(present_min) + len(truth[v]) == n_ticks


def test_regression_starts_at_its_minute():
    rec = rolloutlab.simulate(
        "aa",
        seed=10,
        duration_min=120,
        requests_per_min=20000.0,
        error_ratio=(1.0, 3.0),
        latency_shift=(0.0, 0.5),
        cpu_shift=(0.0, 0.3),
        regression_start_min=60.0,
        **EVEN,
    )
    t = tick_table(rec.frame, 60)
    before, after = slice(0, 60), slice(60, 120)

    def rate(v, part):
        return t.counter("errors", v)[part].sum() / t.counter("requests", v)[part].sum()

    assert rate("canary", before) / rate("primary", before) == pytest.approx(1.0, abs=0.05)
    assert rate("canary", after) / rate("primary", after) == pytest.approx(3.0, rel=0.05)
    slow_c, slow_p = _slow_share(t, "canary"), _slow_share(t, "primary")
    assert abs(slow_c[before].mean() - slow_p[before].mean()) < 0.005
    # latency x1.5: P(L > 100 ms) 0.62 instead of 0.355
    assert slow_c[after].mean() == pytest.approx(0.62, abs=0.01)
    cpu_c, cpu_p = t.gauge("cpu", "canary"), t.gauge("cpu", "primary")
    assert abs(cpu_c[before].mean() - cpu_p[before].mean()) < 0.05
    assert cpu_c[after].mean() - cpu_p[after].mean() == pytest.approx(0.3, abs=0.05)


def test_a_step_straddling_the_regression_start_is_a_mixture():
    kw = {"duration_min": 10, "step_s": 600, "requests_per_min": 10000.0, **EVEN}
    half = rolloutlab.simulate(
        "aa", seed=11, error_ratio=(1.0, 5.0), regression_start_min=5.0, **kw
    )
    t = tick_table(half.frame, 600)
    ratio = t.counter("errors", "canary")[0] / t.counter("errors", "primary")[0]
    assert ratio == pytest.approx(3.0, rel=0.1)  # half the step at x1, half at x5


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("retries", -1),
        ("retries", 1.5),
        ("retry_fail_p", 1.2),
        ("retry_fail_p", -0.1),
        ("incident_rate_per_h", -1.0),
        ("incident_min", (5.0, 1.0)),
        ("incident_min", (0.0, 1.0)),
        ("incident_min", (1.0,)),
        ("incident_error_ratio", -2.0),
        ("incident_latency_shift", -1.0),
        ("pods", 0),
        ("pod_spread", -0.1),
        ("pod_balance", 0.0),
        ("cold_start_shift", -0.5),
        ("cold_start_min", 0.0),
        ("diurnal_latency", 1.0),
        ("missing_scrapes", 1.0),
        ("missing_scrapes", -0.1),
        ("regression_start_min", -3.0),
        ("regression_start_min", float("nan")),
    ],
)
def test_bad_realism_values_name_the_field_and_the_fix(field, value):
    with pytest.raises(SpecError, match=rf"{field}=.*; give "):
        rolloutlab.simulate("healthy", **{field: value})


def test_every_realism_feature_at_once_is_fast_and_valid():
    everything = {
        "retries": 2,
        "retry_fail_p": 0.5,
        "incident_rate_per_h": 1.0,
        "pods": 4,
        "pod_spread": 0.3,
        "cold_start_shift": 0.3,
        "diurnal_amplitude": 0.3,
        "diurnal_latency": 0.1,
        "missing_scrapes": 0.01,
        "regression_start_min": 3.0,
        "error_ratio": (1.0, 2.0),
        "interval_s": 60,
    }
    rolloutlab.simulate("healthy", seed=0, **everything)  # warm
    start = time.perf_counter()
    for seed in range(10):
        rec = rolloutlab.simulate("healthy", seed=seed, **everything)
    assert (time.perf_counter() - start) / 10 < 0.05
    assert json.loads(json.dumps(rec.meta))["scenario"]["truth"].keys() == {
        "incidents",
        "pod_error_multipliers",
        "missing_steps",
    }
