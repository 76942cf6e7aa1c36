"""Seeded rollouts and experiments with known truth, for tests, notebooks and the demo.

Each tick draws Poisson request arrivals (optionally with a diurnal shape), splits them
by the weight in force, draws errors per variant from a per-variant rate, latencies from
a per-variant log-normal written as Istio's millisecond histogram buckets, and an AR(1)
CPU gauge. The weight follows a Flagger-like plan (interval, stepWeight, maxWeight) or a
fixed split. The truth (the scenario's parameters, and what chance decided: incidents,
pod multipliers, missing scrapes) travels in the recording's metadata.

That model is idealised: every request independent, every scrape present. The realism
fields of :class:`Scenario` (mesh retries, transient incidents, uneven pods, cold starts,
diurnal latency, missing scrapes, a regression starting mid-plan) are all off by default,
and a scenario that leaves them off draws exactly the random numbers it always drew, so
its recording is bit-for-bit the same for the same seed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
from scipy import special
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

    Realism (all off by default; an "incident", "pod" or "scrape" is per variant):

    ``retries``, ``retry_fail_p``
        Mesh retries. Every failed request is retried up to ``retries`` times; a retry
        of a failed request fails again with probability ``retry_fail_p`` and a
        successful retry ends the chain. Every attempt counts as a request (and is in
        the latency histogram), every failed attempt as an error: with ``retries=2,
        retry_fail_p=1`` one root failure is 3 errors among 3 requests, so the error
        counts' variance is about 3 times a binomial's. An experiment's visitors are the
        root requests.
    ``incident_rate_per_h``, ``incident_min``, ``incident_error_ratio``, ``incident_latency_shift``
        Transient incidents (a node hiccup). Each variant independently gets incidents
        as a Poisson process at ``incident_rate_per_h`` over the whole run, each lasting
        a uniform ``incident_min = (low, high)`` minutes; while one lasts, that variant's
        error rate is multiplied by ``incident_error_ratio`` and its latency by
        ``1 + incident_latency_shift`` (a step partly inside an incident gets that share
        of its requests affected). Both variants alike, so an A/A run stays A/A on
        average. The incidents drawn are in ``meta["scenario"]["truth"]["incidents"]``
        (variant, start and end minute from the start of the recording).
    ``pods``, ``pod_spread``, ``pod_balance``
        Uneven pods. Each variant has ``pods`` pods with error-rate multipliers
        ``exp(N(0, pod_spread))`` normalised to a mean of exactly 1 (the variant's
        expected rate is unchanged); each step the variant's requests are split over its
        pods by a symmetric ``Dirichlet(pod_balance)`` draw (uneven load balancing), so its
        per-step error rate varies more than a binomial's. The multipliers are in
        ``truth["pod_error_multipliers"]``.
    ``cold_start_shift``, ``cold_start_min``
        New canary pods are slow at first: each *treatment* variant's latency is
        multiplied by ``1 + cold_start_shift * exp(-t / cold_start_min)``, t the minutes
        since that variant first got traffic (weight > 0), averaged over each step.
    ``diurnal_latency``
        Every variant's latency median is multiplied by ``1 + diurnal_latency * s(t)``
        with ``s(t)`` the sine the traffic follows (traffic is ``1 + diurnal_amplitude *
        s(t)`` times ``requests_per_min``), so latency rises and falls with the load.
    ``missing_scrapes``
        Probability that a variant's step is missing: all that variant's rows at that
        step are dropped (as when a scrape gap leaves ``increase()`` empty), its weight
        row kept. The steps dropped are in ``truth["missing_steps"]`` (step end, minutes).
    ``regression_start_min``
        ``error_ratio``, ``latency_shift``, ``tail_shift`` and ``cpu_shift`` apply from this
        minute on; before it every variant behaves as the first (a regression starting
        mid-plan; a step straddling the start is affected for its share after it).
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
    # realism (see the class docstring); every default leaves the idealised model as it was
    retries: int = 0
    retry_fail_p: float = 1.0
    incident_rate_per_h: float = 0.0
    incident_min: tuple[float, float] = (1.0, 5.0)
    incident_error_ratio: float = 4.0
    incident_latency_shift: float = 0.3
    pods: int = 1
    pod_spread: float = 0.0
    pod_balance: float = 20.0
    cold_start_shift: float = 0.0
    cold_start_min: float = 1.0
    diurnal_latency: float = 0.0
    missing_scrapes: float = 0.0
    regression_start_min: float = 0.0

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
        self._check_realism()

    def _check_realism(self) -> None:
        def bad(field_name: str, rule: str) -> SpecError:
            value = getattr(self, field_name)
            return SpecError(f"scenario '{self.name}': {field_name}={value!r}; {rule}.")

        for name in ("retries", "pods"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise bad(name, "give a whole number")
        if self.retries < 0:
            raise bad("retries", "give 0 (no retries) or more")
        if self.pods < 1:
            raise bad("pods", "give 1 (one even pod) or more")
        checks = (
            ("retry_fail_p", 0.0 <= self.retry_fail_p <= 1.0, "give a probability in [0, 1]"),
            ("incident_rate_per_h", self.incident_rate_per_h >= 0, "give 0 (none) or more"),
            ("incident_error_ratio", self.incident_error_ratio >= 0, "give 0 or more"),
            ("incident_latency_shift", self.incident_latency_shift > -1, "give more than -1"),
            ("pod_spread", self.pod_spread >= 0, "give 0 (even pods) or more"),
            ("pod_balance", self.pod_balance > 0, "give more than 0 (20: fairly even)"),
            ("cold_start_shift", self.cold_start_shift >= 0, "give 0 (none) or more"),
            ("cold_start_min", self.cold_start_min > 0, "give a positive number of minutes"),
            ("diurnal_latency", 0 <= self.diurnal_latency < 1, "give a value in [0, 1)"),
            ("missing_scrapes", 0 <= self.missing_scrapes < 1, "give a probability in [0, 1)"),
            ("regression_start_min", self.regression_start_min >= 0, "give 0 or more minutes"),
        )
        for name, ok, rule in checks:
            if not ok:  # NaN fails every comparison, so it lands here too
                raise bad(name, rule)
        span = self.incident_min
        if not (
            isinstance(span, tuple | list) and len(span) == 2 and 0 < span[0] <= span[1] < math.inf
        ):
            raise bad(
                "incident_min", "give (shortest, longest) minutes with 0 < shortest <= longest"
            )

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
    """Simulate a rollout or experiment; the truth is in ``recording.meta['scenario']``.

    Draw order (a feature that is off draws nothing): incidents, pod multipliers, the
    requests, their split, errors (per pod with uneven pods), retries, latency buckets,
    the CPU gauge, conversions, missing scrapes.
    """
    sc = scenario(name, **overrides)
    rng = np.random.default_rng(seed)
    n_ticks, n_var = sc.ticks, len(sc.variants)
    t_end = (np.arange(n_ticks) + 1) * sc.step_s
    start = np.datetime64(sc.start.astimezone(UTC).replace(tzinfo=None), "us")
    timestamps = start + (t_end * 1_000_000).astype("timedelta64[us]")
    truth: dict[str, Any] = {}

    weights = sc.weight_plan()
    sine = np.sin(2 * np.pi * (t_end / 86400.0 - 0.25))
    incident = _incidents(rng, sc, truth) if sc.incident_rate_per_h > 0 else None
    regressed = _regressed_share(sc, t_end) if sc.regression_start_min > 0 else None
    pod_mult = _pod_multipliers(rng, sc, truth) if sc.pods > 1 else None

    shape = 1.0 + sc.diurnal_amplitude * sine
    total = rng.poisson(sc.requests_per_min * sc.step_s / 60.0 * shape)
    requests = rng.multinomial(total, weights / 100.0)

    ratio = np.asarray(sc.error_ratio, float)
    if regressed is not None:  # before the start every variant has the first one's rate
        ratio = ratio[0] + regressed[:, None] * (ratio - ratio[0])
    if incident is not None:
        ratio = ratio * (1.0 + incident * (sc.incident_error_ratio - 1.0))
    error_p = np.clip(sc.error_rate * ratio, 0.0, 1.0)
    if pod_mult is None:
        errors = rng.binomial(requests, error_p)
    else:
        errors = _pod_errors(rng, sc, requests, error_p, pod_mult)
    visitors = requests
    if sc.retries > 0:
        requests, errors = _retries(rng, sc, requests, errors)

    edges = np.asarray(ISTIO_BUCKETS_MS)
    scale = _latency_scale(sc, sine, weights)
    if scale is None and incident is None and regressed is None:
        bin_p = [_latency_bins(sc, v, edges) for v in range(n_var)]
    else:
        bin_p = [
            _latency_bins_per_tick(sc, v, edges, scale, incident, regressed) for v in range(n_var)
        ]
    latency = np.stack(
        [rng.multinomial(requests[:, v], bin_p[v]) for v in range(n_var)], axis=1
    )  # ticks × variants × bins
    cumulative = latency.cumsum(axis=2)

    cpu_shift = np.asarray(sc.cpu_shift)
    if regressed is not None:
        cpu_shift = cpu_shift[0] + regressed[:, None] * (cpu_shift - cpu_shift[0])
    cpu = _ar1(rng, n_ticks, n_var, sc) + cpu_shift

    parts = [
        ("requests", "counter", requests),
        ("errors", "counter", errors),
        ("weight", "gauge", weights),
        ("cpu", "gauge", cpu),
        ("latency_ms", "bucket", cumulative),
    ]
    if sc.conversion_rate is not None:
        lift = np.asarray(sc.conversion_lift or (0.0,) * n_var)
        conv_p = np.clip(sc.conversion_rate * (1.0 + lift), 0.0, 1.0)
        conversions = rng.binomial(visitors, conv_p)
        parts += [("visitors", "counter", visitors), ("conversions", "counter", conversions)]
    keep = None
    if sc.missing_scrapes > 0:
        missing = rng.random((n_ticks, n_var)) < sc.missing_scrapes
        keep = ~missing
        truth["missing_steps"] = {
            v: (t_end[missing[:, i]] / 60.0).tolist() for i, v in enumerate(sc.variants)
        }
    frame = pl.concat(
        [
            _bucket_rows(timestamps, sc.variants, metric, edges, values, keep)
            if kind == "bucket"
            else _rows(
                timestamps, sc.variants, metric, kind, values, None if metric == "weight" else keep
            )
            for metric, kind, values in parts
        ],
        how="vertical",
    )
    meta = {
        "source": "simulator",
        "scenario": {"seed": seed, **_jsonable(dataclasses.asdict(sc)), "truth": truth},
        "roles": {"control": sc.variants[0], "treatment": list(sc.variants[1:])},
        "step_s": float(sc.step_s),
        "kind": "experiment" if sc.conversion_rate is not None else "rollout",
    }
    return Recording(frame, meta, source=f"simulate({sc.name!r})")


def _overlap(starts: np.ndarray, ends: np.ndarray, a: float, b: float) -> np.ndarray:
    """Share of each step ``[starts, ends]`` (seconds) inside ``[a, b]``."""
    inside = np.clip(np.minimum(ends, b) - np.maximum(starts, a), 0.0, None)
    return inside / (ends - starts)


def _incidents(rng: np.random.Generator, sc: Scenario, truth: dict[str, Any]) -> np.ndarray:
    """Per step and variant, the share of the step inside an incident (ticks × variants)."""
    t_end = (np.arange(sc.ticks) + 1) * float(sc.step_s)
    share = np.zeros((sc.ticks, len(sc.variants)))
    listed = []
    low, high = sc.incident_min
    for v, variant in enumerate(sc.variants):
        count = rng.poisson(sc.incident_rate_per_h * sc.duration_min / 60.0)
        begin = rng.uniform(0.0, sc.duration_min, count)
        length = rng.uniform(low, high, count)
        for b, d in zip(begin.tolist(), length.tolist(), strict=True):
            share[:, v] += _overlap(t_end - sc.step_s, t_end, 60.0 * b, 60.0 * (b + d))
            listed.append({"variant": variant, "start_min": b, "end_min": b + d})
    truth["incidents"] = sorted(listed, key=lambda i: i["start_min"])
    return np.minimum(share, 1.0)  # overlapping incidents of one variant count once


def _regressed_share(sc: Scenario, t_end: np.ndarray) -> np.ndarray:
    """Per step, the share of it after ``regression_start_min``."""
    return _overlap(
        t_end - float(sc.step_s), t_end.astype(float), 60.0 * sc.regression_start_min, math.inf
    )


def _pod_multipliers(rng: np.random.Generator, sc: Scenario, truth: dict[str, Any]) -> np.ndarray:
    """Each variant's pod error-rate multipliers (variants × pods), mean exactly 1."""
    mult = np.exp(rng.normal(0.0, sc.pod_spread, (len(sc.variants), sc.pods)))
    mult /= mult.mean(axis=1, keepdims=True)
    truth["pod_error_multipliers"] = {v: mult[i].tolist() for i, v in enumerate(sc.variants)}
    return mult


def _pod_errors(
    rng: np.random.Generator,
    sc: Scenario,
    requests: np.ndarray,
    error_p: np.ndarray,
    pod_mult: np.ndarray,
) -> np.ndarray:
    """Errors when each step's requests are split unevenly over pods of unequal error rates."""
    n_ticks, n_var = requests.shape
    share = rng.dirichlet(np.full(sc.pods, sc.pod_balance), (n_ticks, n_var))
    per_pod = rng.multinomial(requests, share)  # ticks × variants × pods
    p = np.broadcast_to(error_p, (n_ticks, n_var))[:, :, None] * pod_mult[None, :, :]
    return rng.binomial(per_pod, np.clip(p, 0.0, 1.0)).sum(axis=2)


def _retries(
    rng: np.random.Generator, sc: Scenario, requests: np.ndarray, errors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Requests and errors once every failure is retried (attempts, failed attempts)."""
    failing = errors  # chains still failing, i.e. retried next
    attempts, failed = requests.copy(), errors.copy()
    for _ in range(sc.retries):
        attempts += failing
        failing = rng.binomial(failing, sc.retry_fail_p)
        failed += failing
    return attempts, failed


def _latency_scale(sc: Scenario, sine: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """Latency multiplier per step and variant from diurnal load and cold starts (None: 1)."""
    if not sc.diurnal_latency and not sc.cold_start_shift:
        return None
    n_ticks, n_var = weights.shape
    scale = np.ones((n_ticks, n_var)) * (1.0 + sc.diurnal_latency * sine)[:, None]
    if sc.cold_start_shift:
        step_min, tau = sc.step_s / 60.0, sc.cold_start_min
        for v in range(1, n_var):  # treatments only
            served = np.flatnonzero(weights[:, v] > 0)
            if not served.size:
                continue
            a = (np.arange(n_ticks) - served[0]) * step_min  # minutes at the step's start
            # exp(-t / tau) averaged over the step [a, a + step]
            mean = tau / step_min * (np.exp(-a / tau) - np.exp(-(a + step_min) / tau))
            scale[:, v] *= np.where(a >= 0, 1.0 + sc.cold_start_shift * mean, 1.0)
    return scale


def _latency_bins_per_tick(
    sc: Scenario,
    v: int,
    edges: np.ndarray,
    scale: np.ndarray | None,
    incident: np.ndarray | None,
    regressed: np.ndarray | None,
) -> np.ndarray:
    """Bucket probabilities of variant ``v`` per step (ticks × bins): a mixture over the
    step's share before/after the regression starts and inside/outside an incident."""
    n_ticks = sc.ticks
    mult = np.ones(n_ticks) if scale is None else scale[:, v]

    def bins(u: int, m: np.ndarray) -> np.ndarray:
        return _lognormal_bins(sc, sc.latency_shift[u], sc.tail_shift[u], m, edges)

    def regression_mixture(m: np.ndarray) -> np.ndarray:
        if regressed is None or v == 0:
            return bins(v, m)
        r = regressed[:, None]
        return r * bins(v, m) + (1.0 - r) * bins(0, m)

    p = regression_mixture(mult)
    if incident is not None:
        f = incident[:, v, None]
        p = (1.0 - f) * p + f * regression_mixture(mult * (1.0 + sc.incident_latency_shift))
    p = np.clip(p, 0.0, None)
    return p / p.sum(axis=1, keepdims=True)


def _lognormal_bins(
    sc: Scenario, shift: float, tail: float, mult: np.ndarray, edges: np.ndarray
) -> np.ndarray:
    """As :func:`_latency_bins`, with the latency also multiplied by ``mult`` per step."""
    x = edges[None, :] / ((1.0 + shift) * mult[:, None])
    if tail:
        q = sps.lognorm.ppf(sc.tail_quantile, s=sc.latency_sigma, scale=sc.latency_median_ms)
        x = np.where(x > q, q + (x - q) / (1.0 + tail), x)
    with np.errstate(divide="ignore"):
        z = np.log(x / sc.latency_median_ms) / sc.latency_sigma
    cdf = special.ndtr(z)
    cdf[:, -1] = 1.0
    return np.diff(cdf, axis=1, prepend=0.0)


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


def _rows(
    timestamps, variants, metric: str, kind: str, values: np.ndarray, keep: np.ndarray | None
) -> pl.DataFrame:
    """One row per step and variant; ``keep`` (ticks × variants) drops the False ones."""
    n_ticks, n_var = values.shape
    columns = {
        "timestamp": np.repeat(timestamps, n_var),
        "variant": np.tile(np.array(variants), n_ticks),
        "value": values.astype(float).ravel(),
    }
    if keep is not None:
        columns = {k: c[keep.ravel()] for k, c in columns.items()}
    return pl.DataFrame(columns).select(
        pl.col("timestamp").dt.replace_time_zone("UTC"),
        "variant",
        pl.lit(metric).alias("metric"),
        pl.lit(kind).alias("kind"),
        pl.lit(None, pl.Float64).alias("le"),
        "value",
    )


def _bucket_rows(timestamps, variants, metric, edges, cumulative, keep) -> pl.DataFrame:
    """One row per step, variant and bucket edge; ``keep`` as in :func:`_rows`."""
    n_ticks, n_var, n_bins = cumulative.shape
    columns = {
        "timestamp": np.repeat(timestamps, n_var * n_bins),
        "variant": np.tile(np.repeat(np.array(variants), n_bins), n_ticks),
        "le": np.tile(edges, n_ticks * n_var),
        "value": cumulative.astype(float).ravel(),
    }
    if keep is not None:
        rows = np.repeat(keep.ravel(), n_bins)
        columns = {k: c[rows] for k, c in columns.items()}
    return pl.DataFrame(columns).select(
        pl.col("timestamp").dt.replace_time_zone("UTC"),
        "variant",
        pl.lit(metric).alias("metric"),
        pl.lit("bucket").alias("kind"),
        "le",
        "value",
    )


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in d.items()}


__all__ = ["ISTIO_BUCKETS_MS", "SCENARIOS", "Scenario", "scenario", "simulate"]
