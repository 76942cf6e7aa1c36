"""Seeded rollouts and experiments with known truth, for tests, notebooks and the demo.

Each tick draws Poisson request arrivals (optionally with a diurnal shape), splits them
by the weight in force, draws errors per variant from a per-variant rate, latencies from
a per-variant log-normal written as Istio's millisecond histogram buckets, and an AR(1)
CPU gauge. The weight follows a Flagger-like plan (interval, stepWeight, maxWeight) or a
fixed split. The truth (the scenario's parameters) travels in the recording's metadata.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
from scipy import stats as sps

from rolloutlab.errors import SpecError
from rolloutlab.sources.recording import Recording

#: Istio's default bucket edges for ``istio_request_duration_milliseconds`` (+Inf added).
ISTIO_BUCKETS_MS = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
    30000, 60000, 300000, 600000, 1800000, 3600000, float("inf"),
)  # fmt: skip


@dataclass(frozen=True)
class Scenario:
    """What to simulate. Times in seconds or minutes as named; rates are per minute.

    ``weights`` fixes each variant's traffic percent for the whole run; without it the
    canary (second variant) follows the Flagger-like plan ``step_weight`` every
    ``interval_s`` up to ``max_weight``, then holds there.
    """

    name: str = "custom"
    description: str = ""
    variants: tuple[str, ...] = ("primary", "canary")
    duration_min: float = 180.0
    step_s: int = 60
    start: datetime = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)
    requests_per_min: float = 1000.0
    diurnal_amplitude: float = 0.0
    # weights: fixed split, or the plan below for the canary
    weights: tuple[float, ...] | None = None
    interval_s: int = 300
    step_weight: float = 10.0
    max_weight: float = 50.0
    # errors
    error_rate: float = 0.01
    error_ratio: tuple[float, ...] = (1.0, 1.0)
    # latency: log-normal median and shape; treatment changes by multiplicative shift
    latency_median_ms: float = 80.0
    latency_sigma: float = 0.6
    latency_shift: tuple[float, ...] = (0.0, 0.0)
    tail_shift: tuple[float, ...] = (0.0, 0.0)
    tail_quantile: float = 0.95
    # an AR(1) CPU gauge per variant
    cpu_mean: float = 0.4
    cpu_sd: float = 0.05
    cpu_phi: float = 0.8
    cpu_shift: tuple[float, ...] = (0.0, 0.0)
    # experiments: a visitors/conversions counter pair per arm
    conversion_rate: float | None = None
    conversion_lift: tuple[float, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.variants)
        for name in ("error_ratio", "latency_shift", "tail_shift", "cpu_shift"):
            if len(getattr(self, name)) != n:
                raise SpecError(
                    f"scenario '{self.name}': {name} has {len(getattr(self, name))} values "
                    f"for {n} variants {list(self.variants)}; give one per variant."
                )
        if self.weights is not None and (
            len(self.weights) != n or abs(sum(self.weights) - 100) > 1e-9
        ):
            raise SpecError(
                f"scenario '{self.name}': weights {self.weights} must give one percent per "
                "variant and sum to 100."
            )
        if self.conversion_lift and len(self.conversion_lift) != n:
            raise SpecError(f"scenario '{self.name}': conversion_lift needs one value per arm.")
        if self.step_s <= 0 or self.duration_min * 60 < self.step_s:
            raise SpecError(f"scenario '{self.name}': need step_s > 0 and at least one step.")

    @property
    def ticks(self) -> int:
        return int(self.duration_min * 60 // self.step_s)

    def weight_plan(self) -> np.ndarray:
        """Traffic percent per tick, one column per variant."""
        t_end = (np.arange(self.ticks) + 1) * self.step_s
        if self.weights is not None:
            return np.tile(np.asarray(self.weights, float), (self.ticks, 1))
        steps_done = np.floor((t_end - 1e-9) / self.interval_s)  # weight in force during the tick
        canary = np.minimum(self.step_weight * (steps_done + 1), self.max_weight)
        canary = np.minimum(canary, 100.0)
        return np.column_stack([100.0 - canary, canary])


def _rollout(**kw: Any) -> Scenario:
    return Scenario(**kw)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        _rollout(name="healthy", description="Canary identical to primary; the plan completes."),
        _rollout(
            name="aa",
            description="A/A: identical variants at a fixed 10% canary for 3 h.",
            weights=(90.0, 10.0),
        ),
        _rollout(
            name="error-regression",
            description="Canary error rate 3x the primary's.",
            error_ratio=(1.0, 3.0),
        ),
        _rollout(
            name="latency-regression",
            description="Canary latency 25% slower across the distribution.",
            latency_shift=(0.0, 0.25),
        ),
        _rollout(
            name="tail-latency-regression",
            description="Canary slower only above the primary's p95 (tail x2).",
            tail_shift=(0.0, 1.0),
        ),
        _rollout(
            name="low-traffic",
            description="300 requests/min in all: at most 50/min reach the canary.",
            requests_per_min=300.0,
            max_weight=15.0,
            step_weight=5.0,
        ),
        _rollout(
            name="ab",
            description="A/B test, 50/50 for 14 days, B converts 5% better (relative).",
            variants=("A", "B"),
            weights=(50.0, 50.0),
            duration_min=14 * 24 * 60,
            step_s=3600,
            requests_per_min=40.0,
            diurnal_amplitude=0.5,
            error_ratio=(1.0, 1.0),
            latency_shift=(0.0, 0.0),
            tail_shift=(0.0, 0.0),
            cpu_shift=(0.0, 0.0),
            conversion_rate=0.10,
            conversion_lift=(0.0, 0.05),
        ),
    )
}


def scenario(name: str | Scenario, **overrides: Any) -> Scenario:
    """A named scenario (see :data:`SCENARIOS`), with fields replaced by ``overrides``."""
    if isinstance(name, Scenario):
        base = name
    elif name in SCENARIOS:
        base = SCENARIOS[name]
    else:
        raise SpecError(f"unknown scenario {name!r}. Choose one of {sorted(SCENARIOS)}.")
    try:
        return dataclasses.replace(base, **overrides) if overrides else base
    except TypeError as exc:
        fields = sorted(f.name for f in dataclasses.fields(Scenario))
        raise SpecError(f"{exc}. Scenario fields are: {fields}.") from None


def simulate(name: str | Scenario = "healthy", *, seed: int = 0, **overrides: Any) -> Recording:
    """Simulate a rollout or experiment; the truth is in ``recording.meta['scenario']``."""
    sc = scenario(name, **overrides)
    rng = np.random.default_rng(seed)
    n_ticks, n_var = sc.ticks, len(sc.variants)
    t_end = (np.arange(n_ticks) + 1) * sc.step_s
    start = np.datetime64(sc.start.astimezone(UTC).replace(tzinfo=None), "us")
    timestamps = start + (t_end * 1_000_000).astype("timedelta64[us]")

    weights = sc.weight_plan()
    shape = 1.0 + sc.diurnal_amplitude * np.sin(2 * np.pi * (t_end / 86400.0 - 0.25))
    total = rng.poisson(sc.requests_per_min * sc.step_s / 60.0 * shape)
    requests = rng.multinomial(total, weights / 100.0)

    error_p = np.clip(sc.error_rate * np.asarray(sc.error_ratio), 0.0, 1.0)
    errors = rng.binomial(requests, error_p)

    edges = np.asarray(ISTIO_BUCKETS_MS)
    bin_p = np.stack([_latency_bins(sc, v, edges) for v in range(n_var)])
    latency = np.stack(
        [rng.multinomial(requests[:, v], bin_p[v]) for v in range(n_var)], axis=1
    )  # ticks × variants × bins
    cumulative = latency.cumsum(axis=2)

    cpu = _ar1(rng, n_ticks, n_var, sc) + np.asarray(sc.cpu_shift)

    parts = [
        _rows(timestamps, sc.variants, "requests", "counter", requests),
        _rows(timestamps, sc.variants, "errors", "counter", errors),
        _rows(timestamps, sc.variants, "weight", "gauge", weights),
        _rows(timestamps, sc.variants, "cpu", "gauge", cpu),
        _bucket_rows(timestamps, sc.variants, "latency_ms", edges, cumulative),
    ]
    if sc.conversion_rate is not None:
        lift = np.asarray(sc.conversion_lift or (0.0,) * n_var)
        conv_p = np.clip(sc.conversion_rate * (1.0 + lift), 0.0, 1.0)
        conversions = rng.binomial(requests, conv_p)
        parts += [
            _rows(timestamps, sc.variants, "visitors", "counter", requests),
            _rows(timestamps, sc.variants, "conversions", "counter", conversions),
        ]
    frame = pl.concat(parts, how="vertical")
    meta = {
        "source": "simulator",
        "scenario": {"seed": seed, **_jsonable(dataclasses.asdict(sc))},
        "roles": {"control": sc.variants[0], "treatment": list(sc.variants[1:])},
        "step_s": float(sc.step_s),
        "kind": "experiment" if sc.conversion_rate is not None else "rollout",
    }
    return Recording(frame, meta, source=f"simulate({sc.name!r})")


def _latency_bins(sc: Scenario, v: int, edges: np.ndarray) -> np.ndarray:
    """Probability of each bucket for variant ``v`` (a log-normal, shifted or tail-stretched)."""
    base = sps.lognorm(s=sc.latency_sigma, scale=sc.latency_median_ms)
    x = edges / (1.0 + sc.latency_shift[v])
    if sc.tail_shift[v]:
        q = base.ppf(sc.tail_quantile)
        above = x > q
        x = np.where(above, q + (x - q) / (1.0 + sc.tail_shift[v]), x)
    cdf = base.cdf(x)
    cdf[-1] = 1.0
    return np.diff(cdf, prepend=0.0)


def _ar1(rng: np.random.Generator, n: int, k: int, sc: Scenario) -> np.ndarray:
    innovation_sd = sc.cpu_sd * np.sqrt(1.0 - sc.cpu_phi**2)
    out = np.empty((n, k))
    out[0] = rng.normal(0.0, sc.cpu_sd, k)
    noise = rng.normal(0.0, innovation_sd, (n, k))
    for t in range(1, n):
        out[t] = sc.cpu_phi * out[t - 1] + noise[t]
    return sc.cpu_mean + out


def _rows(timestamps, variants, metric: str, kind: str, values: np.ndarray) -> pl.DataFrame:
    n_ticks, n_var = values.shape
    return pl.DataFrame(
        {
            "timestamp": np.repeat(timestamps, n_var),
            "variant": np.tile(np.array(variants), n_ticks),
            "metric": metric,
            "kind": kind,
            "value": values.astype(float).ravel(),
        }
    ).select(
        pl.col("timestamp").dt.replace_time_zone("UTC"),
        "variant",
        "metric",
        "kind",
        pl.lit(None, pl.Float64).alias("le"),
        "value",
    )


def _bucket_rows(timestamps, variants, metric, edges, cumulative) -> pl.DataFrame:
    n_ticks, n_var, n_bins = cumulative.shape
    return pl.DataFrame(
        {
            "timestamp": np.repeat(timestamps, n_var * n_bins),
            "variant": np.tile(np.repeat(np.array(variants), n_bins), n_ticks),
            "metric": metric,
            "kind": "bucket",
            "le": np.tile(edges, n_ticks * n_var),
            "value": cumulative.astype(float).ravel(),
        }
    ).with_columns(pl.col("timestamp").dt.replace_time_zone("UTC"))


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in d.items()}


__all__ = ["ISTIO_BUCKETS_MS", "SCENARIOS", "Scenario", "scenario", "simulate"]
