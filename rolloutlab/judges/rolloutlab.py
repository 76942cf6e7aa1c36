"""rolloutlab's own judge: canary vs primary, counts as the unit, anytime-valid every tick.

Why: Flagger checks the canary alone against static thresholds and Kayenta's rank test
on scrape points loses its error control when it looks again and again. This judge
compares the variants request by request with tests whose guarantee holds at every
look, rolls back only on evidence that the harm exceeds a metric's ``margin``, and
promotes only on evidence that it stays below its ``promotion_margin``.

How each metric kind is tested (all O(1) per tick):

* ``ratio`` (errors among requests) and ``counter`` (a count per unit of a denominator,
  or per unit of traffic share without one): the canary/primary rate ratio with the
  robust (quasi-likelihood) :class:`~rolloutlab.stats.PoissonRatioBatch`. The *harm*
  test rejects ``ratio <= 1 + margin`` (rollback evidence), the *safety* test rejects
  ``ratio >= 1 + promotion_margin`` (promotion evidence). Exposures may change every
  tick (weight steps): the test conditions on each tick's total events. Overdispersion
  (retry bursts, uneven pods, incidents) is estimated from the ticks themselves.
* ``latency`` (bucket histograms, requests as the unit), on the whole distribution:
  each request gets its bucket's mid-rank score in the primary's first
  ``LATENCY_WARMUP_REQUESTS`` requests (Wilcoxon scores; evidence starts the tick
  after, so the choice cannot peek at the comparison), and the canary's mean score
  minus the primary's, tick by tick, goes through a robust normal-mixture test
  (:class:`~rolloutlab.stats.TickContrast`). Margins are latency shifts ("+5%"):
  a shift of the primary's distribution (interpolated log-linearly inside buckets) says
  which score difference it means, and estimates and intervals are reported back as
  shifts. A tail test (the share of requests above the primary's p99 edge, a rate
  ratio with Huber weights against ``(1 + margin) ** TAIL_DECAY``) catches a slower tail that barely moves
  the mean score. It can only roll back, since proving a 0.1% tail safe takes hours at
  common traffic, but while its evidence is building (``TAIL_WATCH``) it holds promotion.
  The shift tests of all latency metrics are rows of one batched engine, as the rate
  ratios are.
* ``gauge`` (CPU, ...): Welch on autocorrelation-sized block means
  (:func:`~rolloutlab.stats.welch_on_blocks`), flagged approximate. Tried at ticks
  8, 10, 13, 17, ... (25% apart, so the O(n) comparison costs O(1) amortised); one
  with at least ``GAUGE_MIN_BLOCKS`` blocks per variant is a look, and the j-th look
  spends 6α/(πj)², which sums to α.

Error budget: a false rollback is a rollback while every critical metric is within its
margin. ``spec.alpha`` is split by Bonferroni over the critical metrics (explicit
``alpha`` first), and inside a metric over its harm sub-tests. Promotion needs *every*
critical metric's safety test to reject (an intersection-union test), so each runs at
the metric's full α, on the ticks at the top weight only (a canary that degrades as its
traffic grows is not promoted on the evidence of its quieter start), and reads each
safety test's e-value *now*, not its running maximum: a canary shown safe in a healthy
spell that then regresses in the bake is not promoted on that spell's evidence once its
own later ticks contradict it (still anytime-valid: rejecting when e_t >= 1/α at the
tick of promotion is one of the events Ville's inequality bounds by α). Each result's
``p_value`` is its smallest harm p-value times the number of sub-tests, to compare with
``details["alpha"]``.

Fail-safe: a tick whose data for a critical metric are missing, NaN, infinite or
negative is a failed check for that metric (Flagger's rule): it adds no evidence, holds
the weight, and ``spec.threshold`` such ticks in a row roll back ("no valid data for X
since T"). The sample-ratio check compares each tick's canary requests with the weight
in force (between the previous and the current recorded weight, or the plan's); a
mismatch holds for good (the data are invalid) but never stops a rollback on clear harm.
When the plan ends without promotion evidence the canary bakes at the top weight, and
the judge says what is missing and how long it expects to need; after
``spec.analysis_deadline_s()`` ``spec.on_inconclusive`` decides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from rolloutlab.errors import SpecError
from rolloutlab.frames import TickTable
from rolloutlab.judges.base import Judge
from rolloutlab.judges.verdict import Decision, MetricResult, TickState
from rolloutlab.specs import MetricSpec, Spec, format_duration
from rolloutlab.stats import PoissonRatioBatch, TickContrast, welch_on_blocks
from rolloutlab.stats.power import minutes_to_evidence
from rolloutlab.stats.sequential import DEFAULT_GRID, Alternative

#: Level of the sequential sample-ratio test. A false SRM only holds the rollout, but it
#: holds it for good, so it is kept small (Eppo uses the same level for its SRM check).
SRM_ALPHA = 0.001
#: Primary requests needed before the latency scores and the tail edge are fixed.
LATENCY_WARMUP_REQUESTS = 1000.0
#: The tail test's edge: the smallest bucket edge at or above this primary quantile.
TAIL_QUANTILE = 0.99
#: Spread of the mixing prior on log(rate ratio): effects of ×1.2 to ×3 weigh most.
RATIO_PRIOR_SD = 0.5
#: The tail test's prior: tail regressions are large ratios (×2 to ×10) of rare events.
TAIL_PRIOR_SD = 1.0
#: How fast the share of slow requests grows with a latency shift at the tail edge
#: (S(x) ~ x^-3): a +5% latency margin tolerates 1.05^3 = 1.16 times the tail share.
TAIL_DECAY = 3.0
#: A tail test whose current e-value is at least this holds promotion: the tail alarm
#: may be on its way (P(e >= 5) <= 0.2 under the null at any one tick, by Markov).
TAIL_WATCH = 5.0
#: The most evidence one tick can add to a test, as a score at the null in standard
#: deviations (about HUBER^2 / 2 nats; see TickDispersion.weight): an incident on one
#: variant adds a bounded amount. Chosen on the benchmark's tune seeds: 2.5 let transient
#: incidents roll back 7% of A/A runs at 1,000 req/min, 2 held them at 2%, for 3 more
#: minutes to catch doubled errors. Safety tests allow more, since there every healthy
#: tick pulls the same way.
HUBER_HARM = 2.0
HUBER_SAFE = 4.0
#: The latency test's mixing scale, as the latency shift it is tuned for.
LATENCY_PRIOR_SHIFT = 0.1
#: First tick a gauge comparison is tried; the next ones come 25% later each time.
GAUGE_FIRST_LOOK = 8
GAUGE_LOOK_GROWTH = 1.25
#: Blocks per variant a gauge comparison needs before it counts as a look.
GAUGE_MIN_BLOCKS = 4
#: Ticks over which the information rate behind a bake-phase estimate is measured.
RATE_WINDOW = 10
#: Latency shifts on which score differences are tabulated (to convert both ways).
_SHIFTS = np.concatenate([np.linspace(-0.6, 0.0, 61)[:-1], np.linspace(0.0, 3.0, 301)])

#: Why a spec without a critical metric never earns promotion.
NO_CRITICAL = (
    "no metric is critical, and promotion is earned on the critical metrics: mark one "
    "critical (or set promotion: plan)"
)

_OPPOSITE: dict[Alternative, Alternative] = {"greater": "less", "less": "greater"}
_VERDICTS = {
    "fail": "beyond the tolerated",
    "pass": "within the promotion bound",
    "inconclusive": "not yet shown within the promotion bound",
}


def error_budget(spec: Spec) -> dict[str, float]:
    """α of each metric's harm tests: Bonferroni over the critical metrics (module doc).

    Critical metrics with an explicit ``alpha`` keep it; the others share the rest of
    ``spec.alpha`` equally. Non-critical metrics cannot trigger a rollback, so they are
    tested at their own ``alpha`` (or ``spec.alpha``) outside the budget.
    """
    critical = [m for m in spec.metrics if m.critical_or(True)]
    explicit = sum(m.alpha for m in critical if m.alpha is not None)
    shared = [m for m in critical if m.alpha is None]
    if explicit > spec.alpha + 1e-12 or (shared and explicit >= spec.alpha):
        raise SpecError(
            f"the critical metrics' own alphas sum to {explicit:g}, which leaves nothing of "
            f"spec.alpha={spec.alpha:g} for {[m.name for m in shared] or 'the others'}; "
            "lower the per-metric alphas or raise spec.alpha."
        )
    rest = (spec.alpha - explicit) / len(shared) if shared else 0.0
    return {
        m.name: (m.alpha if m.alpha is not None else rest if m.critical_or(True) else spec.alpha)
        for m in spec.metrics
    }


def _inside_grid(ratio: float) -> float:
    """A test boundary the rate-ratio grid can hold (between its second and last points)."""
    return float(min(max(ratio, DEFAULT_GRID[1]), DEFAULT_GRID[-2]))


def _sides(metric: MetricSpec, margin: float) -> tuple[tuple[Alternative, float], ...]:
    """(harm alternative, relative boundary) per harmful direction, at ``margin``."""
    up: tuple[Alternative, float] = ("greater", _inside_grid(1.0 + margin))
    down: tuple[Alternative, float] = ("less", _inside_grid(1.0 - margin))
    return {"increase": (up,), "decrease": (down,), "either": (up, down)}[
        metric.direction_or("increase")
    ]


def _problem(values: Sequence[float], present: Sequence[bool], what: Sequence[str]) -> str | None:
    """Why one tick's numbers cannot count (missing, NaN, infinite, negative), else None."""
    for value, there, name in zip(values, present, what, strict=True):
        if not there:
            return f"no {name}"
        if math.isnan(value):
            return f"{name} is NaN"
        if math.isinf(value):
            return f"{name} is infinite"
        if value < 0:
            return f"{name} is negative"
    return None


class _RatioTests:
    """Every rate-ratio stream of a judge with its harm and safety tests, stepped together.

    A stream is one count series (events and exposure per variant). Each harmful side
    gives it a harm test (H0: ratio within the rollback boundary) and a safety test
    (H0: ratio beyond the promotion boundary). Tests sharing a boundary and an
    alternative are rows of one robust :class:`~rolloutlab.stats.PoissonRatioBatch`,
    so a tick costs a handful of numpy calls however many metrics there are.
    """

    def __init__(self) -> None:
        # stream, harm, boundary, alternative, mode, prior sd, α
        self._tests: list[tuple[int, bool, float, Alternative, str, float, float]] = []
        self.n = 0

    def add(
        self,
        harm: Sequence[tuple[Alternative, float]],
        alpha_harm: float,
        safe: Sequence[tuple[Alternative, float]] = (),
        alpha_safe: float = 0.0,
        *,
        mode: str = "robust",
        prior_sd: float = RATIO_PRIOR_SD,
    ) -> int:
        """Register a stream (before the first tick); returns its index. ``mode`` is
        ``robust`` (Huber weights and a dispersion estimate, with a confidence interval),
        ``huber`` (the weights only: rare events, where no dispersion can be read) or
        ``plain`` (counts binomial by construction: requests split one by one)."""
        i = self.n
        self._tests += [(i, True, b, side, mode, prior_sd, alpha_harm) for side, b in harm]
        self._tests += [(i, False, b, side, mode, prior_sd, alpha_safe) for side, b in safe]
        self.n += 1
        return i

    def start(self) -> None:
        tests = self._tests
        self._stream = np.array([t[0] for t in tests], dtype=int)
        self._harm = np.array([t[1] for t in tests], dtype=bool)
        self._alpha = np.array([t[6] for t in tests])
        self._groups = []
        for key in sorted({t[1:6] for t in tests}):
            harm, b, alt, mode, prior_sd = key
            rows = np.array([i for i, t in enumerate(tests) if t[1:6] == key])
            engine = PoissonRatioBatch(
                DEFAULT_GRID,
                b,
                alt,
                (rows.size,),
                track_cs=mode == "robust",
                robust=mode != "plain",
                dispersion=mode == "robust",
                prior_sd=prior_sd,
                prior_ratio=None if harm else 1.0,  # safety: expect no difference
                huber=HUBER_HARM if harm else HUBER_SAFE,
                recent=harm,  # a canary that starts failing late is caught late, not never
            )
            self._groups.append((engine, rows))
        self.p = np.ones(len(tests))
        self.log_e = np.zeros(len(tests))  # at the last tick
        self.low = np.zeros(len(tests))
        self.high = np.full(len(tests), math.inf)
        self.phi = np.ones(len(tests))
        self.overdispersion = np.ones(len(tests))
        self.events = np.zeros((self.n, 2))  # treatment, control totals of valid ticks
        self.safe_events = np.zeros((self.n, 2))  # the same, of the ticks safety tests saw
        self._summarise()

    def step(self, rows: np.ndarray, *, safety: bool = True) -> None:
        """One tick: ``rows[stream] = (c, x, k, y)``; NaN rows (invalid data) add nothing,
        and neither does anything to the safety tests unless ``safety``."""
        valid = np.all(np.isfinite(rows), axis=1) & (rows[:, 1] > 0) & (rows[:, 3] > 0)
        rows = np.where(valid[:, None], rows, (0.0, 1.0, 0.0, 1.0))
        self.events += rows[:, [0, 2]]
        if safety:
            self.safe_events += rows[:, [0, 2]]
        per_test = rows[self._stream]
        if not safety:
            per_test[~self._harm] = (0.0, 1.0, 0.0, 1.0)
        last = DEFAULT_GRID.size - 1
        for engine, idx in self._groups:
            if not np.any(per_test[idx, 0] + per_test[idx, 2] > 0):
                continue
            engine.step(*per_test[idx].T)
            self.p[idx] = engine.p_value()
            self.log_e[idx] = engine.log_e
            self.phi[idx] = engine.phi
            if engine.dispersion is not None:
                self.overdispersion[idx] = engine.dispersion.overdispersion
            if not engine.track_cs:
                continue
            inside = engine.cs_log_e < -np.log(self._alpha[idx])[:, None]
            first = np.argmax(inside, axis=1)
            final = last - np.argmax(inside[:, ::-1], axis=1)
            empty = ~inside.any(axis=1)
            low = np.where((first == 0) | (engine.alternative == "less"), 0.0, DEFAULT_GRID[first])
            high = np.where(
                (final == last) | (engine.alternative == "greater"), math.inf, DEFAULT_GRID[final]
            )
            self.low[idx] = np.where(empty, -math.inf, low)
            self.high[idx] = np.where(empty, math.inf, high)
        self._summarise()

    def _summarise(self) -> None:
        """Per-stream lists the monitors read (min/max over each stream's tests)."""
        harm, n = self._harm, self.n
        rejected = (self.p <= self._alpha).astype(float)
        # safety: the e-value now, not its running max (module doc)
        safe_now = (self.log_e >= -np.log(self._alpha)).astype(float)
        every = np.ones_like(harm)
        self.lists = {
            "harm_p": _per_stream(np.minimum, self.p, self._stream, harm, n, 1.0),
            "harm_log_e": _per_stream(np.maximum, self.log_e, self._stream, harm, n, 0.0),
            "rejects_harm": _per_stream(np.maximum, rejected, self._stream, harm, n, 0.0) > 0,
            "shows_safe": _per_stream(np.minimum, safe_now, self._stream, ~harm, n, 1.0) > 0,
            "ci_low": _per_stream(np.maximum, self.low, self._stream, every, n, -math.inf),
            "ci_high": _per_stream(np.minimum, self.high, self._stream, every, n, math.inf),
            "phi": _per_stream(np.maximum, self.phi, self._stream, every, n, 1.0),
            "overdispersion": _per_stream(
                np.maximum, self.overdispersion, self._stream, every, n, 1.0
            ),
        }
        self.lists = {name: values.tolist() for name, values in self.lists.items()}


def _per_stream(
    ufunc: np.ufunc, values: np.ndarray, stream: np.ndarray, mask: np.ndarray, n: int, empty: float
) -> np.ndarray:
    out = np.full(n, empty)
    ufunc.at(out, stream[mask], values[mask])
    return out


class _ShiftTests:
    """Every latency metric's shift tests (harm and safety), stepped together: one
    :class:`~rolloutlab.stats.TickContrast` with a row per metric, as :class:`_RatioTests`
    batches the rate ratios. Monitors write a tick's difference, variance and nulls into
    ``d``, ``v`` and ``nulls`` (NaN ``d``: nothing this tick) and read the results back."""

    def __init__(self) -> None:
        self.n = 0
        self.alpha: list[float] = []  # the confidence sequence's level, per row

    def add(self, alpha: float) -> int:
        self.alpha.append(alpha)
        self.n += 1
        return self.n - 1

    def start(self) -> None:
        n = self.n
        self.contrast = TickContrast(
            np.ones(n), (+1, -1), huber=(HUBER_HARM, HUBER_SAFE), batch_shape=(n,)
        )
        self.d, self.v = np.full(n, np.nan), np.ones(n)
        self.nulls = np.zeros((2, n))
        self.harm_log_e = np.zeros(n)  # its running max: harm once shown stays shown
        self.safe_log_e = np.zeros(n)  # at the last tick (see the module doc)
        self.low, self.high = np.full(n, -math.inf), np.full(n, math.inf)
        self._refresh()

    def step(self, *, safety: bool) -> None:
        """One tick for every row; the safety tests take it only when ``safety``."""
        if self.n == 0:
            return
        stepped = np.isfinite(self.d)
        c = self.contrast
        c.step(self.d, self.v, self.nulls, take=(True, safety))
        harm, safe = c.log_e()
        np.maximum(self.harm_log_e, harm, out=self.harm_log_e)
        self.safe_log_e = safe
        width, estimate = c.half_width(np.asarray(self.alpha)), c.estimate
        np.maximum(self.low, np.where(stepped, estimate - width, -math.inf), out=self.low)
        np.minimum(self.high, np.where(stepped, estimate + width, math.inf), out=self.high)
        self.d[:] = np.nan
        self._refresh()

    def _refresh(self) -> None:
        """Plain lists of what the monitors read (cheap to index)."""
        c = self.contrast
        self.lists = {
            "harm": self.harm_log_e.tolist(),
            "safe": self.safe_log_e.tolist(),
            "estimate": c.estimate.tolist(),
            "information": c.information.tolist(),
            "overdispersion": np.broadcast_to(c.dispersion.overdispersion, (self.n,)).tolist(),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
        }


def _times(x: float, *, bare: bool = False) -> str:
    text = f"{x:.3g}" if x < math.inf else "∞"
    return text if bare else text + "×"


def _shift(x: float) -> str:
    return "+∞" if x == math.inf else "−∞" if x == -math.inf else f"{x:+.1%}"


class _Monitor:
    """What every metric monitor shares: its spec, variants, α and the tick's problem."""

    unit = ""

    def __init__(self, judge: RolloutlabJudge, metric: MetricSpec, alpha_harm: float) -> None:
        self.metric = metric
        self.alpha_harm = alpha_harm
        self.alpha_safe = metric.alpha if metric.alpha is not None else judge.spec.alpha
        self.treatment, self.control = judge.treatment, judge.control
        self.variants = (self.treatment, self.control)

    def feed(self, table: TickTable, k: int, rows: np.ndarray) -> str | None:
        """Read tick ``k`` (writing batched count rows); the reason it is invalid, or None."""
        raise NotImplementedError

    def result(self) -> MetricResult:
        raise NotImplementedError

    def evidence(self) -> dict[str, Any]:
        return {}

    def minutes_to_promotion(self, ticks_per_min: float) -> float | None:
        """Expected minutes until the safety test rejects at the current traffic (None:
        cannot tell)."""
        return None

    def _result(self, classification: str, reason: str, **fields: Any) -> MetricResult:
        return MetricResult(
            self.metric.name,
            classification,  # type: ignore[arg-type]
            reason,
            unit=self.unit,
            critical=self.metric.critical_or(True),
            **fields,
        )


class _InformationRate:
    """Information per tick over the last ``RATE_WINDOW`` ticks (for bake estimates)."""

    def __init__(self) -> None:
        self.history: list[float] = []

    def add(self, information: float) -> None:
        self.history.append(information)
        del self.history[: -RATE_WINDOW - 1]

    def per_tick(self) -> float:
        if len(self.history) < 2:
            return 0.0
        return (self.history[-1] - self.history[0]) / (len(self.history) - 1)


class _RatioMonitor(_Monitor):
    """Numerator events per unit of the denominator (or of traffic share) per variant."""

    unit = "ratio"

    def __init__(self, judge: RolloutlabJudge, metric: MetricSpec, alpha_harm: float) -> None:
        super().__init__(judge, metric, alpha_harm)
        harm = _sides(metric, metric.margin)
        safe = [(_OPPOSITE[s], b) for s, b in _sides(metric, metric.promotion_tolerance())]
        per_test = alpha_harm / len(harm)
        self.tests = judge.tests
        self.stream = judge.tests.add(harm, per_test, safe, self.alpha_safe)
        self.harm_bound = " or ".join(_times(b) for _, b in harm)
        self.safe_bound = " and ".join(
            f"{'≤' if s == 'less' else '≥'} {_times(b)}" for s, b in safe
        )
        self._level = f"{100 * (1 - len(harm) * per_test - self.alpha_safe):.3g}"
        self._n_harm = len(harm)
        self._subject = f"canary {metric.metric}/{metric.denominator or 'traffic share'}"
        self._rate = _InformationRate()
        self._table: TickTable | None = None
        self._sums = np.zeros(4)  # treatment events, exposure, control's, of valid ticks

    def feed(self, table: TickTable, k: int, rows: np.ndarray) -> str | None:
        if table is not self._table:  # the arrays and their validity, once per table
            self._look_up(table)
        if not self._valid[k]:
            values = [float(a[k]) for a in self._arrays]
            return _problem(values, [bool(p[k]) for p in self._present], self._names)
        row = tuple(float(a[k]) for a in self._arrays)
        rows[self.stream] = row
        self._sums += row
        return None

    def _look_up(self, table: TickTable) -> None:
        """Events and exposures per variant (treatment, control), whether each was reported,
        and the ticks where all four are there, finite and not negative."""
        m, (t, c) = self.metric, self.variants
        self._table = table
        if m.denominator:
            exposure = [table.counter(m.denominator, v) for v in (t, c)]
            exposure_present = [table.present(m.denominator, v) for v in (t, c)]
            exposure_name = m.denominator
        else:
            w_t, w_c = table.weight(t), table.weight(c)
            exposure = [w_t, np.where(np.isnan(w_c), 100.0 - w_t, w_c)]
            exposure_present = [~np.isnan(w) for w in exposure]
            exposure_name = "traffic weight"
        events = [table.counter(m.metric, v) for v in (t, c)]
        events_present = [table.present(m.metric, v) for v in (t, c)]
        self._arrays = [events[0], exposure[0], events[1], exposure[1]]
        self._present = [events_present[0], exposure_present[0]]
        self._present += [events_present[1], exposure_present[1]]
        self._names = [f"{t} {m.metric}", f"{t} {exposure_name}"]
        self._names += [f"{c} {m.metric}", f"{c} {exposure_name}"]
        with np.errstate(invalid="ignore"):
            pairs = zip(self._arrays, self._present, strict=True)
            fine = [np.isfinite(a) & (a >= 0) & p for a, p in pairs]
        self._valid = np.logical_and.reduce(fine)

    def information(self) -> float:
        """The safety test's information on the log ratio: 1 / (phi (1/C + 1/K)) with C, K
        the events it has seen (at the top weight)."""
        c, k = self.tests.safe_events[self.stream]
        if c <= 0 or k <= 0:
            return 0.0
        return 1.0 / (self.tests.lists["phi"][self.stream] * (1 / c + 1 / k))

    def result(self) -> MetricResult:
        t, i, m = self.tests.lists, self.stream, self.metric
        self._rate.add(self.information())
        if not (self._sums[1] > 0 and self._sums[3] > 0):
            return self._result("nodata", f"{m.name}: {self.no_data_reason()}")
        if self._sums[0] + self._sums[2] == 0:
            return self._result(
                "inconclusive",
                f"{m.name}: no {m.metric} counted in either variant yet, so their rate "
                "ratio, and any evidence on it either way, is undefined",
            )
        if t["rejects_harm"][i]:
            classification = "fail"
        elif t["shows_safe"][i]:
            classification = "pass"
        else:
            classification = "inconclusive"
        ci = (t["ci_low"][i], t["ci_high"][i])
        ratio = self.ratio()
        over = t["overdispersion"][i]
        bound = self.harm_bound if classification == "fail" else self.safe_bound
        reason = (
            f"{self._subject} {_times(ratio)} primary ({self._level}% CS "
            f"{_times(ci[0], bare=True)}–{_times(ci[1])}), {_VERDICTS[classification]} {bound}"
            + (f"; counts overdispersed ×{over:.2g}" if over > 1.1 else "")
        )
        return self._result(
            classification,
            reason,
            estimate=ratio,
            ci=ci,
            p_value=min(1.0, t["harm_p"][i] * self._n_harm),
            approximate=True,  # the dispersion is estimated
            details={"alpha": self.alpha_harm, "dispersion": over},
        )

    def ratio(self) -> float:
        """The pooled canary/primary rate ratio of the valid ticks."""
        c, x, k, y = self._sums
        if c + k == 0 or x == 0 or y == 0:
            return 1.0
        return math.inf if k == 0 else (c / x) / (k / y)

    def no_data_reason(self) -> str:
        m = self.metric
        return f"no {m.metric} or {m.denominator or 'traffic share'} counted in a variant yet"

    def evidence(self) -> dict[str, Any]:
        t, i = self.tests.lists, self.stream
        return {
            "p_harm": t["harm_p"][i],
            "shows_safe": t["shows_safe"][i],
            "dispersion": t["overdispersion"][i],
        }

    def minutes_to_promotion(self, ticks_per_min: float) -> float | None:
        m = self.metric
        ratio = self.ratio()
        if not (0 < ratio < math.inf) or self._sums[0] + self._sums[2] == 0:
            return None
        gaps = [
            (math.log(b) - math.log(ratio)) * (1 if s == "less" else -1)
            for s, b in ((_OPPOSITE[s], b) for s, b in _sides(m, m.promotion_tolerance()))
        ]
        return minutes_to_evidence(
            min(gaps),
            self.information(),
            self._rate.per_tick() * ticks_per_min,
            tau=RATIO_PRIOR_SD,
            alpha=self.alpha_safe,
        )


class _LatencyMonitor(_Monitor):
    """The whole latency distribution as a shift, plus a tail test (module docstring)."""

    unit = "latency shift"

    def __init__(self, judge: RolloutlabJudge, metric: MetricSpec, alpha_harm: float) -> None:
        super().__init__(judge, metric, alpha_harm)
        if metric.direction_or("increase") != "increase":
            raise SpecError(
                f"metrics.{metric.name}: a latency metric's harm is a slower canary; "
                f"direction {metric.direction!r} is not supported. Use direction: increase."
            )
        self.alpha_test = alpha_harm / 2  # the shift test and the tail test
        # the tail test: Huber weights (an incident's slow minutes add a bounded amount)
        # but no dispersion estimate (a few rare events per tick cannot show one, and its
        # estimate only inflated: tail x2 was caught 6 min later at 1,000 req/min)
        self.tail_bound = _inside_grid((1.0 + metric.margin) ** TAIL_DECAY)
        self.tests = judge.tests
        self.tail_stream = judge.tests.add(
            (("greater", self.tail_bound),), self.alpha_test, mode="huber", prior_sd=TAIL_PRIOR_SD
        )
        self.warmup = np.zeros(0)  # the primary's valid bins before the scores are fixed
        self.scores: np.ndarray | None = None
        self.primary = np.zeros(0)  # the primary's cumulative histogram since then
        self.sums = np.zeros((2, 3))  # per variant: requests, sum of scores, of squares
        self.shifts = judge.shifts
        self.row = judge.shifts.add(self.alpha_test + self.alpha_safe)
        self.tail_edge_ms = math.nan
        self.tail_events = np.zeros(2)
        self._deltas = np.zeros(_SHIFTS.size)
        self._rate = _InformationRate()
        self._ticks = 0  # ticks with evidence, for the doubling refreshes

    def feed(self, table: TickTable, k: int, rows: np.ndarray) -> str | None:
        name = self.metric.metric
        bins = [table.histogram(name, v)[k] for v in self.variants]
        present = [table.present(name, v)[k] for v in self.variants]
        for v, there, counts in zip(self.variants, present, bins, strict=True):
            if not there or counts.size == 0:
                return f"no {v} {name} histogram"
            if not np.all(np.isfinite(counts)):
                return f"{v} {name} has NaN or infinite buckets"
        if self.scores is None:
            self._warm_up(table.edges[name], bins[1])
            return None
        treatment, control = bins
        above = [float(b[self.tail_index + 1 :].sum()) for b in bins]
        n = [float(treatment.sum()), float(control.sum())]
        rows[self.tail_stream] = (above[0], n[0], above[1], n[1])
        self.tail_events += above
        self._contrast(treatment, control, n)
        return None

    def _contrast(self, treatment: np.ndarray, control: np.ndarray, n: list[float]) -> None:
        """The tick's mean-score difference and its variance, for the batched shift tests."""
        self.primary += control
        self._ticks += 1
        if self._ticks & (self._ticks - 1) == 0:  # at doubling ticks: O(1) amortised
            self._tabulate(self.primary + self.warmup)
        scores = self.scores
        assert scores is not None  # fixed by _warm_up before the first contrast
        s = [treatment @ scores, control @ scores]
        q = [treatment @ scores**2, control @ scores**2]
        self.sums += np.array([n, s, q]).T
        if n[0] > 0 and n[1] > 0:
            total, sum_s, sum_q = self.sums.T
            within = (sum_q - sum_s**2 / np.maximum(total, 1)).sum() / max(total.sum() - 2, 1)
            i, m = self.row, self.metric
            self.shifts.d[i] = s[0] / n[0] - s[1] / n[1]
            self.shifts.v[i] = max(within, 1e-12) * (1 / n[0] + 1 / n[1])
            self.shifts.nulls[:, i] = (self._delta(m.margin), self._delta(m.promotion_tolerance()))

    def _warm_up(self, edges: np.ndarray, control: np.ndarray) -> None:
        """Fix the scores and the tail edge once the primary has enough valid requests."""
        self.warmup = self.warmup + control if self.warmup.size else control.copy()
        total = self.warmup.sum()
        if self.warmup.size < 2 or total < LATENCY_WARMUP_REQUESTS:
            return
        below = np.cumsum(self.warmup) / total
        self.edges = edges
        self.scores = below - self.warmup / (2 * total)  # mid-ranks in (0, 1)
        self.primary = np.zeros_like(self.warmup)
        finite = np.flatnonzero(np.isfinite(edges[:-1]))
        reached = finite[below[finite] >= TAIL_QUANTILE - 1e-12]
        self.tail_index = int(reached[0] if reached.size else finite[-1])
        self.tail_edge_ms = float(edges[self.tail_index])
        self._tabulate(self.warmup)
        self.shifts.contrast.tau[self.row] = self._delta(LATENCY_PRIOR_SHIFT)

    # -- shifts and score differences ---------------------------------------------

    def _cdf(self, hist: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The histogram's CDF at ``x`` (ms), log-linear inside buckets, linear in the
        first; mass in the +Inf bucket stays beyond every finite point."""
        edges, cum = self.edges, np.cumsum(hist) / hist.sum()
        finite = np.isfinite(edges)
        e, f = edges[finite], cum[finite]
        out = np.interp(np.log(np.maximum(x, 1e-300)), np.log(e), f, left=np.nan, right=f[-1])
        first = x <= e[0]
        return np.where(first, f[0] * np.clip(x / e[0], 0, 1), out)

    def _shifted_bins(self, hist: np.ndarray, factors: np.ndarray) -> np.ndarray:
        """Bin probabilities of ``hist`` with every latency multiplied by each factor."""
        edges = np.where(np.isfinite(self.edges), self.edges, np.nan)
        cdf = self._cdf(hist, edges[None, :] / factors[:, None])
        cdf[:, ~np.isfinite(self.edges)] = 1.0
        return np.diff(cdf, axis=1, prepend=0.0)

    def _tabulate(self, hist: np.ndarray) -> None:
        """Score difference per tabulated shift, from the primary's histogram."""
        probs = self._shifted_bins(hist, 1.0 + _SHIFTS)
        base = hist / hist.sum()
        self._deltas = np.maximum.accumulate((probs - base) @ self.scores)

    def _delta(self, shift: float) -> float:
        return float(np.interp(shift, _SHIFTS, self._deltas))

    def _as_shift(self, delta: float) -> float:
        if delta >= self._deltas[-1]:
            return math.inf if delta > self._deltas[-1] + 1e-12 else float(_SHIFTS[-1])
        if delta <= self._deltas[0]:
            return -math.inf if delta < self._deltas[0] - 1e-12 else float(_SHIFTS[0])
        return float(np.interp(delta, self._deltas, _SHIFTS))

    def result(self) -> MetricResult:
        m, sh = self.metric, self.shifts.lists
        self._rate.add(sh["information"][self.row])
        if self.scores is None:
            return self._result("nodata", f"{m.name}: {self.no_data_reason()}")
        threshold = math.log(1 / self.alpha_test)
        t, i = self.tests.lists, self.tail_stream
        tail_fail = t["rejects_harm"][i]
        tail_watch = t["harm_log_e"][i] >= math.log(TAIL_WATCH)
        harm, safe = sh["harm"][self.row], sh["safe"][self.row]
        if harm >= threshold or tail_fail:
            classification = "fail"
        elif safe >= math.log(1 / self.alpha_safe) and not tail_watch:
            classification = "pass"
        else:
            classification = "inconclusive"
        shift = self._as_shift(sh["estimate"][self.row])
        ci = (self._as_shift(sh["low"][self.row]), self._as_shift(sh["high"][self.row]))
        tail_ratio = self._tail_observed()
        tail = f"share slower than {self.tail_edge_ms:g} ms {_times(tail_ratio)} primary"
        over = sh["overdispersion"][self.row]
        level = f"{100 * (1 - self.alpha_test - self.alpha_safe):.3g}"
        if tail_fail and harm < threshold:
            reason = (
                f"canary's {tail}, beyond the tolerated {_times(self.tail_bound)} "
                f"(latency overall {_shift(shift)})"
            )
        else:
            bound = (
                f"+{m.margin:.0%}"
                if classification == "fail"
                else f"+{m.promotion_tolerance():.0%}"
            )
            cs = (
                f"{_shift(ci[0])} to {_shift(ci[1])}"
                if ci[0] <= ci[1]  # running intersections part when the shift changed
                else "empty: the shift changed during the analysis"
            )
            reason = (
                f"canary latency {_shift(shift)} vs primary ({level}% CS {cs}), "
                f"{_VERDICTS[classification]} {bound}; {tail}"
            )
        if tail_watch and classification == "inconclusive":
            reason += " (under watch: tail evidence pending)"
        if over > 1.1:
            reason += f"; ticks overdispersed ×{over:.2g}"
        p_harm = min(1.0, min(math.exp(-harm), t["harm_p"][i]) * 2)
        return self._result(
            classification,
            reason,
            estimate=shift,
            ci=ci,
            p_value=p_harm,
            approximate=True,
            details={
                "alpha": self.alpha_harm,
                "tail_edge_ms": self.tail_edge_ms,
                "tail_ratio": tail_ratio,
                "dispersion": over,
            },
        )

    def _tail_observed(self) -> float:
        (c, k), (x, y) = self.tail_events, self.sums[:, 0]
        if c + k == 0 or x == 0 or y == 0:
            return 1.0
        return math.inf if k == 0 else (c / x) / (k / y)

    def no_data_reason(self) -> str:
        return (
            f"waiting for the primary's first {LATENCY_WARMUP_REQUESTS:g} valid "
            f"{self.metric.metric} requests to fix the latency scores"
        )

    def evidence(self) -> dict[str, Any]:
        sh, i = self.shifts.lists, self.row
        return {
            "harm": sh["harm"][i],
            "safe": sh["safe"][i],
            "tail_p": self.tests.lists["harm_p"][self.tail_stream],
            "dispersion": sh["overdispersion"][i],
        }

    def minutes_to_promotion(self, ticks_per_min: float) -> float | None:
        if self.scores is None:
            return None
        sh, i = self.shifts.lists, self.row
        return minutes_to_evidence(
            self._delta(self.metric.promotion_tolerance()) - sh["estimate"][i],
            sh["information"][i],
            self._rate.per_tick() * ticks_per_min,
            tau=float(self.shifts.contrast.tau[i]),
            alpha=self.alpha_safe,
        )


class _GaugeMonitor(_Monitor):
    """Block means of a level, compared at geometrically spaced looks; approximate."""

    unit = "relative change"

    def __init__(self, judge: RolloutlabJudge, metric: MetricSpec, alpha_harm: float) -> None:
        super().__init__(judge, metric, alpha_harm)
        self.next_look = GAUGE_FIRST_LOOK
        self.look = 0
        self.failed = False
        self.last = self._result(
            "nodata",
            f"{metric.name}: first comparison after {GAUGE_FIRST_LOOK} ticks",
            approximate=True,
        )
        self._k = -1

    def feed(self, table: TickTable, k: int, rows: np.ndarray) -> str | None:
        self._table, self._k = table, k
        name = self.metric.metric
        for v in self.variants:
            if not table.present(name, v)[k]:
                return f"no {v} {name}"
            ticks, values = table.gauges.get(name, {}).get(v, (np.zeros(0), np.zeros(0)))
            lo, hi = np.searchsorted(ticks, [k, k + 1])
            if not np.all(np.isfinite(values[lo:hi])):
                return f"{v} {name} is NaN or infinite"
        return None

    def result(self) -> MetricResult:
        k = self._k
        if k + 1 < self.next_look:
            return self.last
        m = self.metric
        control = self._table.gauge(m.metric, self.control, upto=k)
        treatment = self._table.gauge(m.metric, self.treatment, upto=k)
        control, treatment = control[np.isfinite(control)], treatment[np.isfinite(treatment)]
        self.next_look = math.ceil(self.next_look * GAUGE_LOOK_GROWTH)
        alpha = self.alpha_harm * 6 / (math.pi * (self.look + 1)) ** 2  # sums to α
        res = welch_on_blocks(control, treatment, alpha=alpha, relative=True)
        blocks = min(res.n_control, res.n_treatment)
        if res.reason is not None or blocks < GAUGE_MIN_BLOCKS:
            # not a look: it spends no α and cannot fail the metric
            why = res.reason or f"only {blocks:g} blocks of {res.block_size} steps so far"
            self.last = replace(self.last, reason=f"{m.name}: {why}; waiting for more data")
            return self.last
        self.look += 1
        low, high = res.ci
        harmful = [
            (s == "greater" and low > b - 1) or (s == "less" and high < b - 1)
            for s, b in _sides(m, m.margin)
        ]
        self.failed = self.failed or any(harmful)
        bound = m.promotion_tolerance()
        within = -bound < low and high < bound
        classification = "fail" if self.failed else "pass" if within else "inconclusive"
        verdict = {"fail": "beyond", "pass": "within", "inconclusive": "not yet within"}
        tolerance = m.margin if classification == "fail" else bound
        self.last = self._result(
            classification,
            f"canary {m.metric} {res.estimate:+.1%} vs primary (block means of "
            f"{res.block_size} steps, approximate; {100 * (1 - alpha):.3g}% CI {low:+.1%} to "
            f"{high:+.1%}), {verdict[classification]} ±{tolerance:.0%}",
            estimate=res.estimate,
            ci=res.ci,
            p_value=min(1.0, res.p_value * self.alpha_harm / alpha),
            approximate=True,
            details={"alpha": self.alpha_harm, "look": self.look, "block_size": res.block_size},
        )
        return self.last

    def evidence(self) -> dict[str, Any]:
        return {"look": self.look, "p": self.last.p_value}


_MONITORS: dict[str, type[_Monitor]] = {
    "ratio": _RatioMonitor,
    "counter": _RatioMonitor,
    "latency": _LatencyMonitor,
    "gauge": _GaugeMonitor,
}


def evidence_plan(spec: Spec) -> tuple[float, ...]:
    """The weights stepped through before the bake: the spec's plan, less its weights of
    100% when promotion needs evidence. At 100% the primary serves nothing to compare
    with, so the canary bakes at the plan's last weight below it and is promoted from
    there (a plan of 100% alone keeps it, and is held)."""
    plan = spec.weight_plan()
    below = tuple(w for w in plan if w < 100.0 - 1e-9)
    return below if spec.promotion == "evidence" and below else plan


class RolloutlabJudge(Judge):
    """Anytime-valid canary judge: see the module docstring for the tests and the rules."""

    name = "rolloutlab"
    compares_buckets = True  # the latency test scores canary and primary requests alike

    def __init__(self, spec: Spec, *, control: str, treatment: str) -> None:
        super().__init__(spec, control=control, treatment=treatment)
        budget = error_budget(spec)
        self.tests = _RatioTests()
        self.shifts = _ShiftTests()
        self.monitors = [_MONITORS[m.kind](self, m, budget[m.name]) for m in spec.metrics]
        # the canary over- and under-served, each against the most lenient share in force;
        # a router splits requests one by one, so the plain (binomial) test fits them
        self.srm_streams = (
            self.tests.add((("greater", 1.0),), SRM_ALPHA / 2, mode="plain"),
            self.tests.add((("less", 1.0),), SRM_ALPHA / 2, mode="plain"),
        )
        self.tests.start()
        self.shifts.start()
        self.srm_fired = False
        self.canary_requests = 0.0
        self.requests = np.zeros(2)  # canary, primary: valid ticks
        self.expected_share = 0.0  # sum over valid ticks of requests x expected share
        self.judged = 0  # ticks with the canary serving (not idle)
        self.started: datetime | None = None
        self.bad: dict[str, tuple[datetime, int, str]] = {}  # since, ticks, last problem
        self._plan = evidence_plan(spec)

    def observe(self, table: TickTable, k: int) -> TickState:
        """Judge tick ``k``; after a terminal decision, later ticks change nothing."""
        if self.decided:
            return self.history[-1]
        weights = self._weights(table, k)
        if self._idle(table, k):
            return self._record(
                table, k, weights[0], "continue", (), "the canary serves no traffic"
            )
        if self.started is None:
            self.started = table.ends[k] - timedelta(seconds=table.interval_s)
        rows = np.full((self.tests.n, 4), np.nan)
        problems = {mon.metric.name: mon.feed(table, k, rows) for mon in self.monitors}
        rows[list(self.srm_streams)] = self._srm_rows(table, k, weights)
        self.judged += 1
        # promotion evidence is gathered at the top weight only: a canary that degrades as
        # its traffic grows is not promoted on the evidence of its quieter start
        at_top = self._plan_complete(weights[0])
        self.tests.step(rows, safety=at_top)
        self.shifts.step(safety=at_top)
        metrics = tuple(self._checked(mon, problems, table.ends[k]) for mon in self.monitors)
        srm_p = min(self.tests.lists["harm_p"][i] for i in self.srm_streams) * 2
        self.srm_fired = self.srm_fired or any(
            self.tests.lists["rejects_harm"][i] for i in self.srm_streams
        )
        decision, hold, why = self._decide(metrics, weights[0], table.ends[k])
        return self._record(
            table, k, weights[0], decision, metrics, hold, why=why, srm_p=min(1.0, srm_p)
        )

    # -- what the tick holds ----------------------------------------------------------

    def _weights(self, table: TickTable, k: int) -> tuple[float, float, float]:
        """(recorded canary weight, lowest and highest canary share in force during tick k).

        Recorded weights are the weight at each tick's end; a tick right after a change
        may carry some of the previous weight (Prometheus windows straddle the change).
        Without recorded weights (NaN first), the plan's weights tick after tick."""
        recorded = table.weight(self.treatment)
        now = float(recorded[k])
        if not math.isnan(now):
            before = float(recorded[k - 1]) if k > 0 else now
            before = now if math.isnan(before) else before
            return now, min(now, before), max(now, before)
        if not self._plan:
            return math.nan, math.nan, math.nan
        step = min(self.judged, len(self._plan) - 1)  # this tick's, counted from 0
        planned, before = self._plan[step], self._plan[max(step - 1, 0)]
        return math.nan, min(planned, before), max(planned, before)

    def _idle(self, table: TickTable, k: int) -> bool:
        """No decision before the canary serves: weight 0, or unknown and no canary rows."""
        recorded = float(table.weight(self.treatment)[k])
        if not math.isnan(recorded):
            return recorded <= 0
        return not any(table.present(metric, self.treatment)[k] for metric in table.rows)

    def _srm_rows(self, table: TickTable, k: int, weights: tuple[float, float, float]) -> list:
        """Requests as events, traffic shares as exposure, one row per SRM direction."""
        _, low, high = weights
        requests = [float(table.counter("requests", v)[k]) for v in (self.treatment, self.control)]
        present = [bool(table.present("requests", v)[k]) for v in (self.treatment, self.control)]
        what = [f"{v} requests" for v in (self.treatment, self.control)]
        if math.isnan(low) or _problem(requests, present, what) is not None:
            return [(math.nan,) * 4] * 2
        r_t, r_c = requests
        self.canary_requests += r_t
        self.requests += requests
        self.expected_share += (r_t + r_c) * (low + high) / 200
        return [(r_t, high, r_c, 100.0 - high), (r_t, low, r_c, 100.0 - low)]

    def _checked(
        self, mon: _Monitor, problems: dict[str, str | None], when: datetime
    ) -> MetricResult:
        """The monitor's result, or a failed check when this tick's data are invalid."""
        result = mon.result()
        name = mon.metric.name
        problem = problems[name]
        if problem is None:
            self.bad.pop(name, None)
            return result
        began = when - timedelta(seconds=self.spec.interval_s)  # the tick's start
        since, ticks, _ = self.bad.get(name, (began, 0, problem))
        self.bad[name] = (since, ticks + 1, problem)
        limit = self.spec.threshold
        status = (
            f"no valid data for {name} since {since:%H:%M:%S} UTC ({ticks + 1} tick"
            f"{'s' if ticks else ''}: {problem})"
        )
        if ticks + 1 >= limit and mon.metric.critical_or(True):
            return replace(result, classification="fail", reason=status)
        return replace(
            result,
            classification="nodata",
            reason=f"{status}; rollback at {limit} in a row"
            if mon.metric.critical_or(True)
            else status,
        )

    # -- the decision -----------------------------------------------------------------

    def _decide(
        self, metrics: Sequence[MetricResult], weight: float, now: datetime
    ) -> tuple[Decision, str | None, str]:
        """(decision, hold, why): harm first, then invalid data, then evidence or the plan."""
        critical = [m for m in metrics if m.critical]
        failing = [m for m in critical if m.classification == "fail"]
        if failing:
            return "rollback", None, f"rollback: {failing[0].reason}"
        holds = []
        if self.srm_fired:
            holds.append(self._srm_reason())
        invalid = [m.name for m in critical if m.name in self.bad]
        if invalid:
            holds.append(f"no valid data for {', '.join(invalid)} at this tick")
        plan_done = self._plan_complete(weight)
        shown = all(m.classification == "pass" for m in critical) and bool(critical)
        exposed = self.canary_requests >= self.spec.min_exposure
        if plan_done and not holds:
            if self.spec.promotion == "plan":
                return "promote", None, "promote: the weight plan completed with no alarm"
            if shown and exposed:
                return "promote", None, "promote: " + self._shown(critical)
        assert self.started is not None
        elapsed = (now - self.started).total_seconds()
        deadline = self.spec.analysis_deadline_s()
        if elapsed >= deadline:
            choice = self.spec.on_inconclusive
            why = (
                f"no promotion evidence after {format_duration(deadline)} of analysis "
                f"(maxAnalysisTime; onInconclusive: {choice})"
            )
            missing = self._missing(critical) + self._no_primary(weight)
            if choice == "rollback":
                return "rollback", None, f"rollback: {why}: {missing}"
            if choice == "promote" and not holds:
                return "promote", None, f"promote: {why}"
            still = (
                "; nothing more can be learned at this weight"
                if self._no_primary(weight)
                else "; harm still rolls back and evidence still promotes"
                if critical
                else ""
            )
            holds.append(f"{why}: holding for a person to promote or roll back ({missing}){still}")
        elif plan_done and not holds:
            holds.append(self._bake(critical, deadline - elapsed, exposed, weight))
        hold = "; ".join(holds) or None
        detail = hold or "; ".join(m.reason for m in metrics[:3])
        return "continue", hold, f"continue: {detail}"

    def _plan_complete(self, weight: float) -> bool:
        """The weight reached the plan's top and the plan's ticks have passed (without a
        recorded weight, the plan's ticks alone; blue/green: its iterations)."""
        if self.spec.iterations:
            return self.judged >= self.spec.iterations
        top = min(self.spec.max_weight, self._plan[-1]) if self._plan else self.spec.max_weight
        return self.judged >= len(self._plan) and (math.isnan(weight) or weight >= top - 1e-9)

    def _shown(self, critical: Sequence[MetricResult]) -> str:
        parts = [f"{m.name} {self._bound_text(m)}" for m in critical]
        return (
            "every critical metric is shown within its promotion bound (" + "; ".join(parts) + ")"
        )

    def _bound_text(self, result: MetricResult) -> str:
        spec = next(s for s in self.spec.metrics if s.name == result.name)
        tolerance = spec.promotion_tolerance()
        if result.unit == "latency shift":
            return (
                f"at most +{tolerance:.0%} slower, interval up to {_shift(result.ci[1])}"
                if result.ci
                else ""
            )
        if result.unit == "ratio":
            high = f", interval up to {_times(result.ci[1])}" if result.ci else ""
            return f"at most {_times(1 + tolerance)} the primary's{high}"
        return f"within ±{tolerance:.0%}"

    def _missing(self, critical: Sequence[MetricResult]) -> str:
        """Which critical metrics lack promotion evidence, in words."""
        lacking = [m for m in critical if m.classification != "pass"]
        if not critical:
            return NO_CRITICAL
        if not lacking:
            return "every critical metric is shown within its bound"
        return "; ".join(f"{m.name} needs {self._bound_text(m)} ({m.reason})" for m in lacking)

    def _no_primary(self, weight: float) -> str:
        """Why no evidence can come when the primary serves no traffic, else ''."""
        top = weight if not math.isnan(weight) else (self._plan[-1] if self._plan else 0.0)
        if top < 100.0 - 1e-9:
            return ""
        return (
            "; at 100% the primary serves no traffic, so no evidence either way can come "
            "from here on: give the plan a top weight below 100 (maxWeight) to earn promotion"
        )

    def _bake(
        self, critical: Sequence[MetricResult], left_s: float, exposed: bool, weight: float
    ) -> str:
        """The bake-phase hold: what evidence is missing and how long it should take."""
        if not critical:
            return f"bake: the plan is complete, but {NO_CRITICAL}"
        per_min = 60.0 / self.spec.interval_s
        names = {m.name for m in critical if m.classification != "pass"}
        waits = [
            mon.minutes_to_promotion(per_min) for mon in self.monitors if mon.metric.name in names
        ]
        if not exposed:
            names.add(f"{self.spec.min_exposure:g} canary requests (minExposure)")
        known = [w for w in waits if w is not None]
        if self._no_primary(weight):
            expect = "none can come" + self._no_primary(weight)
        elif not known or any(w is None for w in waits):
            expect = "no estimate yet of how long it needs"
        elif max(known) == math.inf:
            expect = "not expected at the current estimates"
        else:
            expect = f"expected in about {max(1, round(max(known)))} min at the current traffic"
        left = format_duration(max(0.0, round(left_s)))
        top = (
            f" at {self._plan[-1]:g}% (at 100% the primary serves nothing to compare with)"
            if self._plan != self.spec.weight_plan()
            else ""
        )
        return (
            f"bake{top}: the plan is complete; waiting for promotion evidence on "
            f"{', '.join(sorted(names))} ({expect}); "
            + (
                f"{self.spec.on_inconclusive} in {left} without it"
                if self.spec.on_inconclusive != "hold"
                else f"a person is asked in {left} without it"
            )
        )

    def _srm_reason(self) -> str:
        served = self.requests[0] / max(self.requests.sum(), 1)
        expected = self.expected_share / max(self.requests.sum(), 1)
        return (
            f"sample-ratio mismatch: the canary served {served:.1%} of requests where its "
            f"weights gave {expected:.1%}; the data are invalid, so the canary is neither "
            "blamed nor promoted: check the traffic routing"
        )

    def _record(
        self,
        table: TickTable,
        k: int,
        weight: float,
        decision: Decision,
        metrics: tuple[MetricResult, ...],
        hold: str | None,
        *,
        why: str | None = None,
        srm_p: float = 1.0,
    ) -> TickState:
        state = TickState(
            timestamp=table.ends[k],
            weight=None if math.isnan(weight) else weight,
            decision=decision,
            metrics=metrics,
            hold=hold,
            state={
                "weight": weight,
                "srm_p": srm_p,
                "srm": self.srm_fired,
                "canary_requests": self.canary_requests,
                "reason": why or f"continue: {hold}",
                "evidence": {mon.metric.name: mon.evidence() for mon in self.monitors},
            },
        )
        self.history.append(state)
        return state

    def explain(self, state: TickState) -> str:
        """One sentence: what decided, or what holds the rollout."""
        return state.state.get("reason") or super().explain(state)
