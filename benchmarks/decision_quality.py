"""Decision quality of the flagger, kayenta and rolloutlab judges on realistic rollouts.

Every run is a seeded 3 h recording at 1-minute steps from ``rolloutlab.simulate``
(1% baseline errors, log-normal latency with an 80 ms median in Istio's buckets, an
AR(1) CPU gauge), judged through ``rolloutlab.judges.judge(recording, spec, judge=name,
**options)``, which stops at the judge's first terminal decision. Decisions and times
come from the ``Verdict`` (``decision``, ``decided_at``); minutes are counted from the
start of the recording (the start of its first step). Three traffic levels (100, 1,000
and 10,000 requests/min, each the run's mean: with diurnal traffic the simulator's rate is
scaled so the 3 h average is the level), one table each.

Plans (the simulator moves the canary weight, the judges tick at the spec's interval):

* common: Flagger's usual plan, interval 1m, stepWeight 10, maxWeight 50 (the weight
  reaches 50% at minute 5);
* slow: the same steps every 5m (50% at minute 25), judged at 5m ticks. The recording's
  step stays 1 minute.

After the plan the weight stays at maxWeight for the rest of the 3 h (the judge's bake
phase); a run its judge has not decided within the 3 h is "undecided".

Realistic profile, applied to every regression and healthy row and to the "realistic" A/A
row (simulator fields; see ``rolloutlab.sources.simulate.Scenario``): mild mesh retries
(``retries=2, retry_fail_p=0.5``), transient incidents at 0.3 per hour per variant
(1-5 min, errors x4, latency +30%), 4 pods per variant with ``pod_spread=0.3`` (and
``pod_balance=20``), a canary cold start of +30% latency fading in 1 minute
(``cold_start_shift=0.3, cold_start_min=1``), diurnal traffic ``diurnal_amplitude=0.3``
with ``diurnal_latency=0.1``, and 0.5% of variant-steps missing (``missing_scrapes``).

Rows:

* A/A: identical variants at a FIXED 20% canary weight for 3 h (the plan never completes,
  so every judge keeps looking for the whole 3 h), judged with the common plan's spec
  (1-minute ticks): the share of runs rolled back ± its Monte-Carlo SE (floored at one
  event's), and the share promoted. Variants: independent counts (the idealised model),
  the realistic profile, and one stressor each, stronger, on top of the idealised model:
  retry bursts (retries 2, retry_fail_p 1), transient incidents (1 per hour), uneven pods
  (3 pods, spread 0.5, balance 5), cold start (+50%), diurnal traffic and latency
  (amplitude 0.8, latency 0.3), missing scrapes (5%); and, on the idealised model, the
  90/10 split, and the AR(1) CPU gauge (phi 0.8) judged as an extra critical gauge metric
  ``cpu`` (margin 10%, Flagger max 0.55). rolloutlab holds instead of deciding at its
  analysis deadline in these rows (``onInconclusive: hold``), so they measure its tests'
  false alarms over the whole 3 h, not the deadline.
* Regressions during the real plans (realistic profile, both plans): errors x1.5, x2, x5;
  latency +5%, +10%, +20% (the whole distribution); tail x2 (above the p95); errors x2
  starting mid-plan (minute 3 of the common plan, 15 of the slow one); and errors x5
  from minute 30 at a fixed 20% (1-minute ticks: a canary that fails only after half an
  hour of health, which a test pooled over every tick catches late). Cell: share
  promoted (a bad canary promoted), share rolled back, and median / p90 minutes to
  rollback over all runs (">180" when fewer than half / 90% were rolled back in 3 h).
* Healthy rollouts on both plans (realistic profile): share promoted, median / p90 minutes
  to promotion, share rolled back, share still undecided at 3 h.

Judges, each set up as a careful user would for a 1% baseline error rate:

* flagger: request-success-rate min 98 (%), request-duration max 1.5x the baseline p99
  of the simulator's log-normal (p99 323 ms, so max 485 ms; see ``FLAGGER_MAX_MS``),
  threshold 5, metric lookback 1m, ``follow_recorded_weights=True`` so it sees the same
  traffic as the others (it promotes at a passing tick at maxWeight);
* kayenta: NetflixACAJudge defaults on the recording's 1-minute points (the step a
  Kayenta user queries), judging every plan interval (``KayentaSettings.
  judgment_interval_s`` = 60 or 300 s) on the growing window, lifetime the whole
  recording (its final judgment, the only one that can promote, is at 3 h). On the common
  plan its first judgment, at minute 1, sees one point per variant;
* rolloutlab: the default ``Spec()`` with the plan's interval, stepWeight and maxWeight,
  nothing tuned per scenario.

Then a "targets" table for the rolloutlab judge at 1,000 req/min on the common plan
(measured value, met/missed): bad canaries promoted, errors x2 <= 2%, x1.5 <= 10%,
latency +10% <= 5%, tail x2 <= 5%; healthy canaries promoted >= 97% with a median <= 20
min to promotion; A/A false rollbacks <= 5% on every A/A row (the worst is shown); median
minutes to rollback, errors x2 <= 10 and latency +10% <= 15. The same targets follow at
100 and 10,000 req/min, for information.

A judge that raises shows as ``ERROR`` in its cell (with the count and the first
message), never as a decision.

Seeds: two disjoint sets, so a judge tuned on one is reported on the other. Run ``r`` of
a row uses ``crc32("<traffic>|<row id>") * 10**7 + 2 r + s`` with ``s = 0`` for ``--seeds
tune`` (even seeds) and ``s = 1`` for ``--seeds report`` (odd seeds, the default); the
same command always prints the same table.

    .venv/bin/python benchmarks/decision_quality.py                     # 200 runs per row
    .venv/bin/python benchmarks/decision_quality.py --quick             # 30 runs per row
    .venv/bin/python benchmarks/decision_quality.py --seeds tune --only "errors x2"
    .venv/bin/python benchmarks/decision_quality.py --quick --only "@1000 req"
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing as mp
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
from scipy import stats as sps

from rolloutlab.judges import judge
from rolloutlab.sources.recording import Recording
from rolloutlab.sources.simulate import Scenario, simulate
from rolloutlab.specs import KayentaSettings, MetricSpec, Spec, default_metrics

HOURS3 = 180.0
STEP_S = 60  # the recording's step, whatever the plan
TRAFFIC = (100.0, 1000.0, 10000.0)
BASELINE = Scenario()  # 1% errors, log-normal latency (80 ms median, sigma 0.6)
BASELINE_P99_MS = float(
    sps.lognorm(s=BASELINE.latency_sigma, scale=BASELINE.latency_median_ms).ppf(0.99)
)
FLAGGER_MIN_SUCCESS = 98.0
FLAGGER_MAX_MS = round(1.5 * BASELINE_P99_MS)

REALISTIC: dict[str, Any] = {
    "retries": 2,
    "retry_fail_p": 0.5,
    "incident_rate_per_h": 0.3,
    "pods": 4,
    "pod_spread": 0.3,
    "cold_start_shift": 0.3,
    "cold_start_min": 1.0,
    "diurnal_amplitude": 0.3,
    "diurnal_latency": 0.1,
    "missing_scrapes": 0.005,
}
CPU = MetricSpec("cpu", "gauge", "cpu", margin=0.1, threshold_max=0.55)

# load the rolloutlab judge before the workers fork (if it cannot load, every cell says so)
with contextlib.suppress(Exception):
    import rolloutlab.judges.rolloutlab  # noqa: F401


@dataclass(frozen=True)
class Plan:
    """A weight plan: the simulator's interval and the judges' tick (the spec's interval)."""

    name: str
    interval_s: int
    label: str
    regression_start_min: float  # "mid-plan" for the late regression row


PLANS = {
    "common": Plan("common", 60, "1m plan", 3.0),
    "slow": Plan("slow", 300, "5m plan", 15.0),
}
STEP_WEIGHT, MAX_WEIGHT = 10.0, 50.0


@dataclass(frozen=True)
class Case:
    """One row: what to simulate (on top of the plan), the spec's extra metrics, its kind."""

    id: str  # stable: seeds and targets refer to it
    label: str
    kind: str  # "aa", "regression", "healthy"
    plan: str
    overrides: dict[str, Any] = field(default_factory=dict)
    extra_metrics: tuple[MetricSpec, ...] = ()


def _cases() -> tuple[Case, ...]:
    fixed20 = {"weights": (80.0, 20.0)}
    aa = [
        ("aa-independent", "A/A independent counts (idealised)", {}),
        ("aa-realistic", "A/A realistic profile", REALISTIC),
        (
            "aa-retries",
            "A/A retry bursts (retries 2, fail p 1)",
            {"retries": 2, "retry_fail_p": 1.0},
        ),
        ("aa-incidents", "A/A transient incidents (1/h)", {"incident_rate_per_h": 1.0}),
        (
            "aa-pods",
            "A/A uneven pods (3, spread 0.5, balance 5)",
            {"pods": 3, "pod_spread": 0.5, "pod_balance": 5.0},
        ),
        ("aa-cold-start", "A/A cold start (+50%)", {"cold_start_shift": 0.5}),
        (
            "aa-diurnal",
            "A/A diurnal traffic 0.8 and latency 0.3",
            {"diurnal_amplitude": 0.8, "diurnal_latency": 0.3},
        ),
        ("aa-missing", "A/A missing scrapes (5%)", {"missing_scrapes": 0.05}),
        ("aa-90-10", "A/A 90/10 split", {"weights": (90.0, 10.0)}),
    ]
    cases = [Case(i, label, "aa", "common", {**fixed20, **kw}) for i, label, kw in aa]
    cases.append(
        Case("aa-cpu", "A/A + AR(1) CPU gauge (phi 0.8) judged", "aa", "common", fixed20, (CPU,))
    )
    for plan in PLANS.values():
        regressions = [
            ("errors-1.5x", "errors x1.5", {"error_ratio": (1.0, 1.5)}),
            ("errors-2x", "errors x2", {"error_ratio": (1.0, 2.0)}),
            ("errors-5x", "errors x5", {"error_ratio": (1.0, 5.0)}),
            ("latency-5", "latency +5%", {"latency_shift": (0.0, 0.05)}),
            ("latency-10", "latency +10%", {"latency_shift": (0.0, 0.10)}),
            ("latency-20", "latency +20%", {"latency_shift": (0.0, 0.20)}),
            ("tail-2x", "tail x2 (above p95)", {"tail_shift": (0.0, 1.0)}),
            (
                "errors-2x-late",
                f"errors x2 from minute {plan.regression_start_min:g}",
                {"error_ratio": (1.0, 2.0), "regression_start_min": plan.regression_start_min},
            ),
        ]
        for i, label, kw in regressions:
            cases.append(
                Case(
                    f"{i}@{plan.name}",
                    f"{label} ({plan.label})",
                    "regression",
                    plan.name,
                    {**REALISTIC, **kw},
                )
            )
        if plan.name == "common":  # healthy for half an hour at a fixed 20%, then failing
            late = {"error_ratio": (1.0, 5.0), "regression_start_min": 30.0, **fixed20}
            cases.append(
                Case(
                    "errors-5x-from-30-fixed@common",
                    "errors x5 from minute 30, fixed 20% (1m ticks)",
                    "regression",
                    "common",
                    {**REALISTIC, **late},
                )
            )
        cases.append(
            Case(
                f"healthy@{plan.name}",
                f"healthy ({plan.label})",
                "healthy",
                plan.name,
                dict(REALISTIC),
            )
        )
    return tuple(cases)


CASES = _cases()
COLUMNS = ("flagger", "kayenta", "rolloutlab")


def _with_bounds(metrics: tuple[MetricSpec, ...]) -> tuple[MetricSpec, ...]:
    """Flagger's thresholds as a careful user sets them for a 1% baseline error rate."""
    bounds = {
        "request-success-rate": {"threshold_min": FLAGGER_MIN_SUCCESS},
        "request-duration": {"threshold_max": float(FLAGGER_MAX_MS)},
    }
    return tuple(replace(m, **bounds.get(m.name, {})) for m in metrics)


def judges_for(case: Case) -> dict[str, tuple[str, Spec, dict[str, Any]]]:
    """Column -> (judge name, spec, judge options) for one row."""
    plan = PLANS[case.plan]
    base = Spec(
        interval_s=float(plan.interval_s),
        step_weight=STEP_WEIGHT,
        max_weight=MAX_WEIGHT,
        metrics=default_metrics() + case.extra_metrics,
    )
    # Kayenta reads one point per spec interval: give it the recording's 1-minute points
    # (the step a Kayenta user queries) and judge every plan interval
    kayenta = replace(
        base,
        interval_s=float(STEP_S),
        kayenta=KayentaSettings(judgment_interval_s=float(plan.interval_s)),
    )
    return {
        "flagger": (
            "flagger",
            replace(base, metrics=_with_bounds(base.metrics)),
            {"follow_recorded_weights": True},
        ),
        "kayenta": ("kayenta", kayenta, {}),
        # A/A rows measure the tests' false alarms over the whole 3 h: rolloutlab holds at
        # its deadline there instead of rolling back an inconclusive canary
        "rolloutlab": (
            "rolloutlab",
            replace(base, on_inconclusive="hold") if case.kind == "aa" else base,
            {},
        ),
    }


Outcome = tuple[str, float]  # (decision or "error: ...", minutes from the start; inf if none)


def _diurnal_mean(amplitude: float) -> float:
    """The simulator's mean diurnal traffic factor over the 3 h (its sine starts at the
    trough), so a row's traffic level is the run's mean, not the day's."""
    minutes = np.arange(HOURS3) + 1
    return float(np.mean(1 + amplitude * np.sin(2 * np.pi * (minutes / 1440 - 0.25))))


def simulate_case(case: Case, traffic: float, seed: int) -> Recording:
    """One 3 h run of a row at a mean ``traffic`` (req/min)."""
    plan = PLANS[case.plan]
    return simulate(
        "healthy",
        seed=seed,
        duration_min=HOURS3,
        step_s=STEP_S,
        requests_per_min=traffic / _diurnal_mean(case.overrides.get("diurnal_amplitude", 0.0)),
        interval_s=plan.interval_s,
        step_weight=STEP_WEIGHT,
        max_weight=MAX_WEIGHT,
        **case.overrides,
    )


def judge_run(rec: Recording, name: str, spec: Spec, options: dict[str, Any]) -> Outcome:
    """A judge's decision on one run and its minute ("error: ..." if it failed)."""
    try:
        verdict = judge(rec, spec, judge=name, **options)
    except Exception as exc:  # noqa: BLE001  (any failure must show in the table)
        return (f"error: {type(exc).__name__}: {exc}", math.nan)
    if verdict.decision != "continue" and verdict.decided_at is None:
        return (f"error: {verdict.decision} without decided_at", math.nan)
    if verdict.decision == "continue":
        return (verdict.decision, math.inf)
    origin = datetime.fromisoformat(rec.meta["scenario"]["start"]).timestamp()
    return (verdict.decision, (verdict.decided_at.timestamp() - origin) / 60.0)


def run_one(task: tuple[int, float, int]) -> tuple[int, float, dict[str, Outcome]]:
    """Simulate row ``i`` at ``traffic`` with ``seed`` and judge it with every judge."""
    i, traffic, seed = task
    case = CASES[i]
    rec = simulate_case(case, traffic, seed)
    out = {
        column: judge_run(rec, name, spec, options)
        for column, (name, spec, options) in judges_for(case).items()
    }
    return i, traffic, out


# -- summaries -----------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """One cell's numbers (shares in [0, 1], minutes; inf = not within the 3 h)."""

    n: int
    errors: int
    first_error: str
    promoted: float
    rolled_back: float
    undecided: float
    se_rolled_back: float
    rollback_min: tuple[float, float]  # median, p90 over all runs
    promote_min: tuple[float, float]


def summarise(runs: list[Outcome]) -> Summary:
    n = len(runs)
    decisions = [d for d, _ in runs]
    errors = [d for d in decisions if d.startswith("error")]
    rolled = np.array([d == "rollback" for d in decisions])
    promoted = np.array([d == "promote" for d in decisions])
    undecided = np.array([d == "continue" for d in decisions])
    rate = float(rolled.mean()) if n else math.nan
    se = math.sqrt(max(rate * (1 - rate), 1.0 / n) / n) if n else math.nan

    def quantiles(hit: np.ndarray) -> tuple[float, float]:
        if not n:
            return (math.nan, math.nan)
        times = np.array([t if h else math.inf for (_, t), h in zip(runs, hit, strict=True)])
        return tuple(float(np.quantile(times, q, method="inverted_cdf")) for q in (0.5, 0.9))

    return Summary(
        n=n,
        errors=len(errors),
        first_error=errors[0][len("error: ") :] if errors else "",
        promoted=float(promoted.mean()) if n else math.nan,
        rolled_back=rate,
        undecided=float(undecided.mean()) if n else math.nan,
        se_rolled_back=se,
        rollback_min=quantiles(rolled),
        promote_min=quantiles(promoted),
    )


def _minutes(x: float) -> str:
    return f"{x:.0f}" if math.isfinite(x) else f">{HOURS3:.0f}"


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def cell(kind: str, s: Summary) -> str:
    if s.errors:
        message = s.first_error.replace("|", "/").replace("\n", " ")[:80]
        return f"ERROR in {s.errors}/{s.n} runs ({message})"
    if kind == "aa":
        return (
            f"rolled back {100 * s.rolled_back:.1f}% ± {100 * s.se_rolled_back:.1f}"
            f" · promoted {_pct(s.promoted)}"
        )
    if kind == "regression":
        med, p90 = s.rollback_min
        return (
            f"promoted {_pct(s.promoted)} · rolled back {_pct(s.rolled_back)}"
            f" · {_minutes(med)} / {_minutes(p90)} min"
        )
    med, p90 = s.promote_min
    return (
        f"promoted {_pct(s.promoted)} · {_minutes(med)} / {_minutes(p90)} min"
        f" · rolled back {_pct(s.rolled_back)} · undecided {_pct(s.undecided)}"
    )


# -- targets (rolloutlab judge, common plan) -------------------------------------------


@dataclass(frozen=True)
class Target:
    label: str
    case_id: str | None  # None: the worst A/A row
    measure: Callable[[Summary], float]
    show: Callable[[float], str]
    limit: float
    at_most: bool = True


def _share(x: float) -> str:
    return f"{100 * x:.1f}%"


TARGETS = (
    Target(
        "bad canary promoted: errors x2", "errors-2x@common", lambda s: s.promoted, _share, 0.02
    ),
    Target(
        "bad canary promoted: errors x1.5", "errors-1.5x@common", lambda s: s.promoted, _share, 0.10
    ),
    Target(
        "bad canary promoted: latency +10%", "latency-10@common", lambda s: s.promoted, _share, 0.05
    ),
    Target("bad canary promoted: tail x2", "tail-2x@common", lambda s: s.promoted, _share, 0.05),
    Target(
        "healthy canaries promoted",
        "healthy@common",
        lambda s: s.promoted,
        _share,
        0.97,
        at_most=False,
    ),
    Target(
        "healthy: median minutes to promotion",
        "healthy@common",
        lambda s: s.promote_min[0],
        _minutes,
        20.0,
    ),
    Target("A/A false rollbacks (worst A/A row)", None, lambda s: s.rolled_back, _share, 0.05),
    Target(
        "median minutes to rollback: errors x2",
        "errors-2x@common",
        lambda s: s.rollback_min[0],
        _minutes,
        10.0,
    ),
    Target(
        "median minutes to rollback: latency +10%",
        "latency-10@common",
        lambda s: s.rollback_min[0],
        _minutes,
        15.0,
    ),
)


def target_rows(summaries: dict[str, Summary]) -> list[str]:
    """Markdown rows: target, limit, measured, met/missed (for one traffic level)."""
    rows = []
    for t in TARGETS:
        bound = ("≤ " if t.at_most else "≥ ") + t.show(t.limit)
        if t.case_id is None:
            aa = {i: s for i, s in summaries.items() if i.startswith("aa-")}
            if not aa:
                rows.append(f"| {t.label} | {bound} | not run | |")
                continue
            failed = [i for i in aa if aa[i].errors]
            worst = failed[0] if failed else max(aa, key=lambda i: (t.measure(aa[i]), i))
            s = aa[worst]
            label = next(c.label for c in CASES if c.id == worst)
            shown = f"{t.show(t.measure(s))} ± {100 * s.se_rolled_back:.1f} ({label})"
        else:
            s = summaries.get(t.case_id)
            if s is None:
                rows.append(f"| {t.label} | {bound} | not run | |")
                continue
            shown = t.show(t.measure(s))
        if s.errors:
            rows.append(f"| {t.label} | {bound} | ERROR in {s.errors}/{s.n} runs | missed |")
            continue
        value = t.measure(s)
        met = value <= t.limit if t.at_most else value >= t.limit
        rows.append(f"| {t.label} | {bound} | {shown} | {'met' if met else 'missed'} |")
    return rows


# -- main ------------------------------------------------------------------------------


def seed_for(case: Case, traffic: float, r: int, seeds: str) -> int:
    """Run ``r`` of a row: even seeds for ``tune``, odd for ``report`` (disjoint sets)."""
    row = zlib.crc32(f"{traffic:g}|{case.id}".encode())
    return row * 10**7 + 2 * r + (0 if seeds == "tune" else 1)


def _traffic_label(traffic: float) -> str:
    return f"{traffic:,.0f} req/min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicates", type=int, default=200, help="runs per row (200)")
    parser.add_argument("--quick", action="store_true", help="30 runs per row, a smoke test")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--seeds",
        choices=("tune", "report"),
        default="report",
        help="held-out seed sets: tune (even seeds) for tuning, report (odd) for RESULTS.md",
    )
    parser.add_argument(
        "--only",
        metavar="SUBSTRING",
        help="run only rows whose '<label> @<traffic> req/min' contains it "
        "(case-insensitive), e.g. 'errors x2', '@1000 req', 'A/A', '5m plan'",
    )
    args = parser.parse_args()
    reps = 30 if args.quick else args.replicates
    if not 0 < reps < 5 * 10**6:
        parser.error("--replicates must be between 1 and 4,999,999")

    def wanted(case: Case, traffic: float) -> bool:
        text = f"{case.label} @{traffic:g} req/min".lower()
        return args.only is None or args.only.lower() in text

    rows = [(i, tr) for tr in TRAFFIC for i, c in enumerate(CASES) if wanted(c, tr)]
    if not rows:
        parser.error(f"--only {args.only!r} matches no row")
    tasks = [(i, tr, seed_for(CASES[i], tr, r, args.seeds)) for i, tr in rows for r in range(reps)]
    results: dict[tuple[int, float], list[dict[str, Outcome]]] = {row: [] for row in rows}
    start = time.perf_counter()
    with mp.get_context("fork").Pool(args.processes, maxtasksperchild=500) as pool:
        for i, traffic, out in pool.imap_unordered(run_one, tasks, chunksize=4):
            results[(i, traffic)].append(out)
    elapsed = time.perf_counter() - start

    print(
        f"seed set: {args.seeds} ({'even' if args.seeds == 'tune' else 'odd'} seeds) · "
        f"{reps} runs per row · {len(tasks)} rollouts · {elapsed / 60:.1f} min "
        f"({elapsed:.0f} s) on {args.processes} processes"
    )
    print(
        f"flagger: success rate min {FLAGGER_MIN_SUCCESS:g}%, request-duration max "
        f"{FLAGGER_MAX_MS} ms (1.5 x the baseline p99 {BASELINE_P99_MS:.0f} ms), threshold 5; "
        "kayenta: 1-minute points, a judgment every plan interval; rolloutlab: Spec() defaults\n"
    )
    summaries: dict[float, dict[str, Summary]] = {}
    for traffic in TRAFFIC:
        here = [(i, tr) for i, tr in rows if tr == traffic]
        if not here:
            continue
        print(f"### {_traffic_label(traffic)}, 1% baseline errors ({args.seeds} seeds)\n")
        print("| scenario | " + " | ".join(COLUMNS) + " |")
        print("|---|" + "---|" * len(COLUMNS))
        for i, tr in here:
            case = CASES[i]
            per_judge = {c: summarise([r[c] for r in results[(i, tr)]]) for c in COLUMNS}
            summaries.setdefault(traffic, {})[case.id] = per_judge["rolloutlab"]
            cells = [cell(case.kind, per_judge[c]) for c in COLUMNS]
            print(f"| {case.label} | " + " | ".join(cells) + " |")
        print()

    order = [1000.0, 100.0, 10000.0]
    for traffic in order:
        if traffic not in summaries:
            continue
        note = "" if traffic == 1000.0 else " (informational)"
        print(
            f"### targets: rolloutlab judge, {_traffic_label(traffic)}, common plan "
            f"({args.seeds} seeds){note}\n"
        )
        print("| target | limit | measured | |")
        print("|---|---|---|---|")
        for line in target_rows(summaries[traffic]):
            print(line)
        print()
    print(f"run time: {elapsed:.0f} s")


if __name__ == "__main__":
    main()
