"""Decision quality of ``experiment()``: false winners under daily peeking, under
overdispersed counts, and power, at the bundled ``ab`` scenario's traffic.

1. A/A/A, three identical arms, the report read every day for 14 days: a run counts as a
   false winner if any day's report names a winner. Sequential (the default) against
   fixed-horizon p-values read the same way. Target: ≤ 5% sequential.
2. A/A with overdispersed counts (hourly conversion rates swinging with bursts and a
   diurnal cycle), one report at day 14: quasi-Poisson variance (the default) against
   Poisson. Target: ≤ 5% false winners.
3. Power for a +5% relative conversion lift in 14 days (both arms at the scenario's
   57,600 visitors a day, 10% conversion), fixed and sequential, read at day 14; for
   sequential, also the median day the winner is first named when read daily.

    .venv/bin/python benchmarks/experiment_quality.py --runs 200
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from rolloutlab.experiments import ExperimentSpec, experiment
from rolloutlab.sources.recording import Recording

START = datetime(2026, 1, 12, tzinfo=UTC)
DAYS, HOURS = 14, 14 * 24
VISITORS_PER_HOUR = 40 * 60  # the ab scenario: 40 visitors a minute in all
RATE = 0.10


def recording(visitors: np.ndarray, conversions: np.ndarray, arms: tuple[str, ...]) -> Recording:
    """Hourly visitors/conversions counters, arms × hours, as a recording."""
    stamps = [START + timedelta(hours=k + 1) for k in range(visitors.shape[1])]
    frame = pl.DataFrame(
        {
            "timestamp": stamps * len(arms) * 2,
            "variant": np.tile(np.repeat(arms, visitors.shape[1]), 2),
            "metric": np.repeat(["visitors", "conversions"], visitors.size),
            "kind": "counter",
            "le": None,
            "value": np.concatenate([visitors.ravel(), conversions.ravel()]).astype(float),
        },
        schema_overrides={"le": pl.Float64},
    )
    return Recording(frame, {"roles": {"control": arms[0], "treatment": list(arms[1:])}})


def traffic(rng: np.random.Generator, arms: int) -> np.ndarray:
    """Visitors per arm and hour, with the scenario's diurnal swing (±50%)."""
    hour = np.arange(HOURS)
    shape = 1 + 0.5 * np.sin(2 * np.pi * (hour / 24 - 0.25))
    return rng.multinomial(rng.poisson(VISITORS_PER_HOUR * shape), np.full(arms, 1 / arms)).T


def first_winner_day(rec: Recording, spec: ExperimentSpec) -> int | None:
    """The first day (1..14) whose report names a winner, reading daily."""
    for day in range(1, DAYS + 1):
        cut = Recording(
            rec.frame.filter(pl.col("timestamp") <= START + timedelta(days=day)), rec.meta
        )
        if experiment(cut, spec).winner is not None:
            return day
    return None


def peeking(runs: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    found = {"sequential": 0, "fixed horizon": 0}
    for _ in range(runs):
        n = traffic(rng, 3)
        rec = recording(n, rng.binomial(n, RATE), ("A", "B", "C"))
        for name, sequential in (("sequential", True), ("fixed horizon", False)):
            found[name] += first_winner_day(rec, ExperimentSpec(sequential=sequential)) is not None
    return {k: v / runs for k, v in found.items()}


def overdispersed(runs: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    found = {"quasi-poisson": 0, "batch-means": 0, "poisson": 0}
    hour = np.arange(HOURS)
    for _ in range(runs):
        n = traffic(rng, 2)
        diurnal = 1 + 0.3 * np.sin(2 * np.pi * hour / 24)  # shared by both arms
        bursts = rng.gamma(3.0, 1 / 3.0, n.shape)  # per arm and hour: bots, campaigns
        rec = recording(n, rng.poisson(n * RATE * diurnal * bursts), ("A", "B"))
        for variance in found:
            spec = ExperimentSpec(variance=variance)
            found[variance] += experiment(rec, spec).winner is not None
    return {k: v / runs for k, v in found.items()}


def power(runs: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    found = {"fixed horizon": 0, "sequential": 0}
    days = []
    for _ in range(runs):
        n = traffic(rng, 2)
        conv = rng.binomial(n, RATE * np.array([[1.0], [1.05]]))
        rec = recording(n, conv, ("A", "B"))
        found["fixed horizon"] += experiment(rec, ExperimentSpec(sequential=False)).winner == "B"
        found["sequential"] += experiment(rec).winner == "B"
        if len(days) < 50:
            days.append(first_winner_day(rec, ExperimentSpec()) or np.inf)
    out = {k: v / runs for k, v in found.items()}
    out["median first day (sequential, read daily; 50 runs)"] = float(np.median(days))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    for name, job, target in (
        ("A/A/A, read daily for 14 days: false winners", peeking, "≤ 5% sequential"),
        ("A/A overdispersed, day 14: false winners", overdispersed, "≤ 5%"),
        ("+5% lift, 14 days: winner found", power, "as high as can be"),
    ):
        began = time.perf_counter()
        for label, value in job(args.runs, args.seed).items():
            shown = f"{value:.1%}" if value <= 1 else f"day {value:g}"
            rows.append(f"| {name} | {label} | {shown} | {target} |")
        print(f"{name}: {time.perf_counter() - began:.0f} s", flush=True)
    print(f"\n{args.runs} runs each, seed {args.seed}\n")
    print("| experiment | design | result | target |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
