"""Speed against safety: how the error-rate promotion margin sets the time to promote.

Runs the decision-quality benchmark's rows "healthy (1m plan)" and "errors x1.5 (1m plan)"
(the realistic profile: retries, incidents, uneven pods, cold starts, diurnal load,
missing scrapes) at 100, 1,000 and 10,000 req/min with the rolloutlab judge's default
spec, varying only the error metric's ``promotionMargin``: promotion needs evidence that
the canary's error rate is at most ``1 + margin`` times the primary's. Prints, per margin
and traffic, the share of healthy canaries promoted within 3 h and their median minutes
to promotion, and the share of x1.5 canaries promoted (a margin of 0.5 or more tolerates
them by design). Seeds: the benchmark's report set.

    .venv/bin/python benchmarks/promotion_margins.py --replicates 100
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import decision_quality as dq  # noqa: E402  (a sibling script, not a package)

MARGINS = (0.25, 0.5, 1.0)
ROWS = ("healthy@common", "errors-1.5x@common")


def _spec(case: dq.Case, margin: float) -> dq.Spec:
    _, spec, _ = dq.judges_for(case)["rolloutlab"]
    metrics = tuple(
        replace(m, promotion_margin=margin) if m.name == "request-success-rate" else m
        for m in spec.metrics
    )
    return replace(spec, metrics=metrics)


def run_one(task: tuple[str, float, int]) -> list[tuple[str, float, float, str, float]]:
    """One run of a row at a traffic level, judged under every margin."""
    row, traffic, seed = task
    case = next(c for c in dq.CASES if c.id == row)
    rec = dq.simulate_case(case, traffic, seed)
    return [
        (row, traffic, margin, *dq.judge_run(rec, "rolloutlab", _spec(case, margin), {}))
        for margin in MARGINS
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicates", type=int, default=100)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    cases = {c.id: c for c in dq.CASES}
    tasks = [
        (row, traffic, dq.seed_for(cases[row], traffic, r, "report"))
        for row in ROWS
        for traffic in dq.TRAFFIC
        for r in range(args.replicates)
    ]
    began = time.monotonic()
    with multiprocessing.Pool(args.processes) as pool:
        results = [x for chunk in pool.imap_unordered(run_one, tasks, chunksize=4) for x in chunk]
    print(
        f"{args.replicates} runs per cell, report seeds, {time.monotonic() - began:.0f} s "
        f"on {args.processes} processes\n"
    )
    print("| error promotion margin | traffic | healthy promoted | median min | x1.5 promoted |")
    print("|---|---|---|---|---|")
    for margin in MARGINS:
        for traffic in dq.TRAFFIC:

            def cell(row: str, m=margin, t=traffic) -> list[tuple[str, float]]:
                return [(d, mins) for r, tr, mg, d, mins in results if (r, tr, mg) == (row, t, m)]

            healthy, bad = cell("healthy@common"), cell("errors-1.5x@common")
            promoted = [mins for d, mins in healthy if d == "promote"]
            median = np.median([mins if d == "promote" else math.inf for d, mins in healthy])
            print(
                f"| {1 + margin:g}x | {traffic:,.0f} req/min | "
                f"{100 * len(promoted) / len(healthy):.0f}% | "
                f"{'>180' if not math.isfinite(median) else f'{median:.0f}'} | "
                f"{100 * sum(d == 'promote' for d, _ in bad) / len(bad):.0f}% |"
            )


if __name__ == "__main__":
    main()
