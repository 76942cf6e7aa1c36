"""Error rates and detection times of the count-based sequential tests, by simulation.

Run: .venv/bin/python benchmarks/stats_sequential_sim.py   (about 10 s)

Setting (domain.md section 7): 1000 requests/min, 1 % errors, one look per minute for
180 minutes, alpha = 0.05. Prints the share of runs that ever reject and the median and
90th percentile minute of the first rejection.
"""

from __future__ import annotations

import math

import numpy as np

from rolloutlab.stats.sequential import DEFAULT_GRID, PoissonRatioBatch, _dm_log_bf

TICKS, LOG20 = 180, math.log(20)


def dirichlet_multinomial(ratio: float, runs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k = 100, shares (primary 0.9, canary 0.1), canary error rate multiplied by ratio."""
    rng = np.random.default_rng(seed)
    canary = rng.binomial(100, 0.01 * ratio, size=(runs, TICKS))
    primary = rng.binomial(900, 0.01, size=(runs, TICKS))
    counts = np.stack([primary, canary], axis=-1).cumsum(axis=1).astype(float)
    shares = np.array([0.9, 0.1])
    reject = _dm_log_bf(counts, 100 * shares, np.log(shares)) >= LOG20
    first = np.where(reject.any(axis=1), reject.argmax(axis=1) + 1, np.inf)
    return reject.any(axis=1), first


def poisson_ratio(
    ratio: float, null: float, alternative: str, runs: int, seed: int, weights=(0.1,)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PoissonRatioSequential's engine on ``runs`` streams; weights step evenly."""
    rng = np.random.default_rng(seed)
    engine = PoissonRatioBatch(DEFAULT_GRID, null, alternative, batch_shape=(runs,))
    truth = int(np.argmin(abs(DEFAULT_GRID - ratio)))
    weight = np.repeat(weights, TICKS // len(weights))
    first, covered = np.full(runs, np.inf), np.ones(runs, dtype=bool)
    for t in range(TICKS):
        x = np.full(runs, 1000.0 * weight[t])
        y = 1000.0 - x
        engine.step(rng.poisson(x * 0.01 * ratio) * 1.0, x, rng.poisson(y * 0.01) * 1.0, y)
        first = np.where(np.isinf(first) & (engine.max_log_e >= LOG20), t + 1, first)
        covered &= engine.cs_log_e[:, truth] < LOG20
    return np.isfinite(first), first, covered


def row(name: str, rejected: np.ndarray, first: np.ndarray, extra: str = "") -> None:
    hit = first[np.isfinite(first)]
    timing = (
        f"{np.median(first):6.0f} {np.percentile(hit, 90):6.0f}" if hit.size else "     -      -"
    )
    print(f"{name:58} {rejected.mean():7.2%} {timing}  {extra}")


def main() -> None:
    print(f"{'scenario':58} {'reject':>7} {'median':>6} {'p90':>6}")
    row("Dirichlet-multinomial A/A (4000 runs)", *dirichlet_multinomial(1.0, 4000, 1))
    for r in (1.5, 2.0, 5.0):
        row(f"Dirichlet-multinomial canary errors x{r}", *dirichlet_multinomial(r, 2000, 2))
    steps = (0.1, 0.2, 0.3, 0.4, 0.5)
    for alt in ("two-sided", "greater"):
        rejected, first, covered = poisson_ratio(1.0, 1.0, alt, 2000, 3, steps)
        row(
            f"Poisson ratio {alt} A/A, weight 10->50 %",
            rejected,
            first,
            f"CS covers truth: {covered.mean():.1%}",
        )
    rejected, first, _ = poisson_ratio(1.0, 1.5, "greater", 2000, 4, steps)
    row("Poisson ratio greater, H0 ratio<=1.5, truth 1", rejected, first)
    for alt in ("greater", "two-sided"):
        for r in (1.5, 2.0, 5.0):
            rejected, first, _ = poisson_ratio(r, 1.0, alt, 1000, 5)
            row(f"Poisson ratio {alt}, 10 % canary, errors x{r}", rejected, first)


if __name__ == "__main__":
    main()
