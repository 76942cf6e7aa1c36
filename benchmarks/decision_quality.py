"""Decision quality of the flagger, kayenta and rolloutlab judges on simulated rollouts.

Every run is a seeded 3 h recording at 1-minute steps, judged tick by tick (interval 1m)
through ``rolloutlab.judges.judge`` until the first terminal decision:

* A/A (identical variants) at a *fixed* canary weight, so no judge ever sees the weight
  plan complete and each keeps looking for the whole 3 h: the share of runs rolled back
  is the false-rollback rate (± its Monte-Carlo standard error).
* Regressions at a fixed 10% canary weight and 1,000 requests/min: median and 90th
  percentile time to rollback (">180" when fewer than half / 90% of the runs were
  rolled back within the 3 h), and the share of runs ending promoted.
* Healthy rollouts following the plan (stepWeight 10 every minute up to maxWeight 50):
  time to promotion; the plan alone needs 5 minutes.

The spec is Flagger's typical one (interval 1m, threshold 5, maxWeight 50, stepWeight 10,
request-success-rate min 99, request-duration max 500 ms) plus, for rolloutlab, the
default margins (none on the error-rate ratio, 10% on the slow-request shares). The
Flagger judge follows the recorded weights (``follow_recorded_weights=True``) so all
judges see the same traffic. ``rolloutlab m=0.1`` is rolloutlab tolerating a 10% higher
error rate (the margin it had before: slower to catch doubled errors, see RESULTS.md).

    .venv/bin/python benchmarks/decision_quality.py                 # 500 runs per scenario
    .venv/bin/python benchmarks/decision_quality.py --quick         # 60 runs, a smoke test
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

import rolloutlab.judges.rolloutlab  # noqa: F401  (loaded before the workers fork)
from rolloutlab.errors import RolloutlabError
from rolloutlab.judges import judge
from rolloutlab.judges.spec import MetricSpec, Spec, default_metrics
from rolloutlab.sources.simulate import simulate

HOURS3 = 180.0
BASE = Spec()  # interval 60 s, threshold 5, maxWeight 50, stepWeight 10, default metrics
CPU = MetricSpec("cpu", "gauge", "cpu", margin=0.1, threshold_max=0.55)
JUDGES: dict[str, tuple[str, dict[str, Any], Any]] = {
    # column: (judge name, judge options, spec transform)
    "flagger": ("flagger", {"follow_recorded_weights": True}, lambda s: s),
    "kayenta": ("kayenta", {}, lambda s: s),
    "rolloutlab": ("rolloutlab", {}, lambda s: s),
    "rolloutlab m=0.1": ("rolloutlab", {}, lambda s: _errors(s, margin=0.1)),
}


def _errors(spec: Spec, **changes: Any) -> Spec:
    """The spec with request-success-rate's fields changed (e.g. its margin)."""
    metrics = tuple(
        replace(m, **changes) if m.name == "request-success-rate" else m for m in spec.metrics
    )
    return replace(spec, metrics=metrics)


@dataclass(frozen=True)
class Case:
    """One benchmark scenario: simulator overrides, the spec's extra metrics, its kind."""

    label: str
    kind: str  # "aa", "regression", "healthy"
    overrides: dict[str, Any] = field(default_factory=dict)
    extra_metrics: tuple[MetricSpec, ...] = ()


FIXED_10 = {"weights": (90.0, 10.0)}
CASES = (
    Case("A/A independent counts, 20% canary", "aa", {"weights": (80.0, 20.0)}),
    Case("A/A + AR(1) CPU gauge (phi 0.8) judged", "aa", {**FIXED_10}, (CPU,)),
    Case("A/A 90/10 split", "aa", {**FIXED_10}),
    Case(
        "A/A diurnal traffic (200→430 req/min)",
        "aa",
        {**FIXED_10, "diurnal_amplitude": 0.8},
    ),
    Case(
        "A/A low traffic (45 req/min to the canary)",
        "aa",
        {"weights": (85.0, 15.0), "requests_per_min": 300.0},
    ),
    Case("errors x1.5", "regression", {**FIXED_10, "error_ratio": (1.0, 1.5)}),
    Case("errors x2", "regression", {**FIXED_10, "error_ratio": (1.0, 2.0)}),
    Case("errors x5", "regression", {**FIXED_10, "error_ratio": (1.0, 5.0)}),
    Case(
        "latency +10% (whole distribution)", "regression", {**FIXED_10, "latency_shift": (0, 0.1)}
    ),
    Case("tail latency (above p95 x2)", "regression", {**FIXED_10, "tail_shift": (0.0, 1.0)}),
    Case("healthy rollout (plan 10→50, 1 step/min)", "healthy", {"interval_s": 60}),
)


def run_one(task: tuple[int, int]) -> tuple[int, dict[str, tuple[str, float]]]:
    """Simulate case ``i`` with ``seed`` and judge it: column -> (decision, minutes)."""
    i, seed = task
    case = CASES[i]
    rec = simulate("healthy", seed=seed, duration_min=HOURS3, **case.overrides)
    origin = rec.start.timestamp() - rec.step_s
    spec = replace(BASE, metrics=default_metrics() + case.extra_metrics)
    out = {}
    for column, (name, options, transform) in JUDGES.items():
        try:
            verdict = judge(rec, transform(spec), judge=name, **options)
        except (RolloutlabError, ImportError, NotImplementedError) as exc:
            out[column] = ("error: " + type(exc).__name__, math.nan)
            continue
        minutes = (
            (verdict.decided_at.timestamp() - origin) / 60.0 if verdict.decided_at else math.inf
        )
        out[column] = (verdict.decision, minutes)
    return i, out


def summarise(case: Case, runs: list[tuple[str, float]]) -> str:
    decisions = [d for d, _ in runs]
    if any(d.startswith("error") for d in decisions):
        return "not run (" + next(d for d in decisions if d.startswith("error")) + ")"
    n = len(runs)
    rolled = np.array([d == "rollback" for d in decisions])
    promoted = np.array([d == "promote" for d in decisions])
    if case.kind == "aa":
        rate = rolled.mean()
        se = math.sqrt(max(rate * (1 - rate), 1.0 / n) / n)  # floor: 0 events still has error
        return f"{100 * rate:.1f}% ± {100 * se:.1f} · {100 * promoted.mean():.0f}% promoted"
    target = rolled if case.kind == "regression" else promoted
    times = np.array([t if hit else math.inf for (_, t), hit in zip(runs, target, strict=True)])
    med, p90 = (np.quantile(times, q, method="inverted_cdf") for q in (0.5, 0.9))
    fmt = lambda x: f"{x:.0f}" if math.isfinite(x) else f">{HOURS3:.0f}"  # noqa: E731
    if case.kind == "regression":
        return f"{fmt(med)} / {fmt(p90)} · {100 * promoted.mean():.0f}% promoted"
    return f"{fmt(med)} / {fmt(p90)} · {100 * rolled.mean():.0f}% rolled back"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicates", type=int, default=500, help="runs per scenario")
    parser.add_argument("--quick", action="store_true", help="60 runs per scenario")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    reps = 60 if args.quick else args.replicates
    tasks = [(i, 1_000_003 * (i + 1) + r) for i in range(len(CASES)) for r in range(reps)]
    results: dict[int, list[dict[str, tuple[str, float]]]] = {i: [] for i in range(len(CASES))}
    start = time.perf_counter()
    with mp.get_context("fork").Pool(args.processes) as pool:
        for i, out in pool.imap_unordered(run_one, tasks, chunksize=8):
            results[i].append(out)
    elapsed = time.perf_counter() - start
    columns = list(JUDGES)
    print(
        f"{reps} runs per scenario, {len(tasks)} rollouts, {elapsed / 60:.1f} min on "
        f"{args.processes} processes\n"
    )
    print("| scenario | measure | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    measure = {
        "aa": "false rollbacks ± SE",
        "regression": "min to rollback: median / p90",
        "healthy": "min to promotion: median / p90",
    }
    for i, case in enumerate(CASES):
        cells = [summarise(case, [r[c] for r in results[i]]) for c in columns]
        print(f"| {case.label} | {measure[case.kind]} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
