"""Per-update cost of the sequential tests early and late in a stream (should be flat).

Run: .venv/bin/python benchmarks/stats_sequential.py
Prints microseconds per update over ticks 1-200 and over ticks 9801-10000 and their
ratio (the baseline is the same object's early cost, measured in the same run).
"""

from __future__ import annotations

import time

import numpy as np

from rolloutlab.stats import (
    MSPRT,
    AsymptoticCS,
    DirichletMultinomialTest,
    MeanStats,
    PoissonRatioSequential,
)

TICKS, WINDOW = 10_000, 200


def per_update_us(update) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    costs = np.empty(TICKS)
    for i in range(TICKS):
        start = time.perf_counter()
        update(i)
        costs[i] = time.perf_counter() - start
    return 1e6 * costs[:WINDOW].mean(), 1e6 * costs[-WINDOW:].mean()


def main() -> None:
    rng = np.random.default_rng(0)
    errors = rng.poisson([1.0, 9.0], size=(TICKS, 2)).astype(float)
    batch = MeanStats.from_values(rng.normal(size=20))
    cases = {
        "PoissonRatioSequential two-sided": PoissonRatioSequential(),
        "PoissonRatioSequential greater": PoissonRatioSequential(alternative="greater"),
        "DirichletMultinomialTest": DirichletMultinomialTest([0.9, 0.1]),
        "MSPRT": MSPRT(1.0, 0.5),
        "AsymptoticCS": AsymptoticCS(),
    }
    updates = {
        "PoissonRatioSequential two-sided": lambda t, i: t.update(
            errors[i, 0], 100, errors[i, 1], 900
        ),
        "PoissonRatioSequential greater": lambda t, i: t.update(
            errors[i, 0], 100, errors[i, 1], 900
        ),
        "DirichletMultinomialTest": lambda t, i: t.update(errors[i, ::-1]),
        "MSPRT": lambda t, i: t.update(batch, batch),
        "AsymptoticCS": lambda t, i: t.update(batch, batch),
    }
    print(f"{'test':36} {'early us':>9} {'late us':>9} {'late/early':>10}")
    for name, test in cases.items():
        early, late = per_update_us(lambda i, t=test, u=updates[name]: u(t, i))
        print(f"{name:36} {early:9.1f} {late:9.1f} {late / early:10.2f}")


if __name__ == "__main__":
    main()
