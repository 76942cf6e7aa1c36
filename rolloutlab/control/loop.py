"""The rollout loop: every interval, fetch the last window, judge it, move the weight.

One :meth:`Rollout.step` is one tick of the analysis:

1. fetch the ticks that ended since the last step from Prometheus (one query range),
   append them to everything seen so far, with the canary weight that was in force;
2. feed the judge only the new ticks (judges are incremental);
3. act on the spec's weight plan: advance to the next plan weight on a passing tick,
   hold, promote (a promotion hook, then all traffic back to the primary) or roll
   back (canary weight 0). In ``manual`` mode, or while paused, nothing is written:
   the step records what it *would* do (:attr:`Rollout.advice`) and people act.

Ticks lie on the epoch-aligned grid of the spec's interval (the grid Prometheus
evaluates ``query_range`` on), starting at the first boundary after the canary got
traffic; a step runs ``lag_s`` after a boundary so that the last scrape is in. Ticks
at the end of the range with no data for any variant are not there yet (Prometheus'
clock behind the loop's, or slow ingestion): they are judged at a later step, once
they are in, never read as missing data; an answer with no data at all is a failed step.

The weight advances only when the judge says ``continue`` with no hold; a hold from
the judge (invalid data, a sample-ratio mismatch, the bake phase: ``TickState.hold``)
keeps the weight and says why, and the judge's own rules decide when bad data rolls
back. Failure is safe by construction: a step that cannot see (a fetch that fails,
whatever the source raised) or whose judge raises holds the weight and counts a
failure; ``failure_limit`` consecutive failures roll back. Every write is a single
``router.set_weight`` call (atomic), so stopping at any point leaves the routes as
the last completed write left them.

People can always take over: a step fetches, judges and notifies outside the lock that
router writes and manual actions take, so :meth:`Rollout.rollback` or
:meth:`Rollout.pause` happens at once even while Prometheus or the chat hangs or the
judge works through hours of ticks, and the step, once it has judged, writes only if
the rollout is still running and acting.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import polars as pl

from rolloutlab import frames
from rolloutlab.config import redact
from rolloutlab.control.audit import AuditRecord
from rolloutlab.control.notify import Event, EventKind, Notifier
from rolloutlab.control.routers import Change, Router
from rolloutlab.errors import ActuationError, RolloutlabError, SpecError
from rolloutlab.judges.base import Judge
from rolloutlab.judges.verdict import Decision, TickState, Verdict
from rolloutlab.sources.gauges import with_gauges
from rolloutlab.sources.recording import Recording
from rolloutlab.specs import Spec
from rolloutlab.specs.fetch import template_queries

log = logging.getLogger(__name__)

Mode = Literal["auto", "manual"]
Phase = Literal["ready", "progressing", "promoted", "rolled_back"]
Action = Literal["start", "wait", "advance", "hold", "promote", "rollback"]
CONTROL, TREATMENT = "primary", "canary"
#: What a step saw: the states judged and the fetch's warnings, or why it could not see.
_Seen = tuple[list[TickState], tuple[str, ...]] | str
_ADVICE = {
    "advance": "advance to {weight}%",
    "hold": "hold at {weight}%",
    "promote": "promote",
    "rollback": "roll back",
}


class Source(Protocol):
    """Where the loop gets its data: :class:`rolloutlab.sources.prometheus.Prometheus`."""

    def fetch(
        self,
        preset: Any,
        *,
        start: Any,
        end: Any,
        step: Any,
        target: str | None,
        namespace: str | None,
    ) -> Recording:
        """Both variants' per-step increments for ``[start, end]`` on the step grid, for the
        workload ``target`` in ``namespace``."""
        ...

    def query_range(self, query: str, start: Any, end: Any, step: Any) -> list[Any]:
        """One query's series (the spec's template metrics, fetched as gauges)."""
        ...


class Promoter(Protocol):
    """Promotes or rolls back the workloads themselves (e.g. a ``DeploymentCanary``)."""

    def promote(self, *, reason: str) -> object: ...

    def rollback(self, *, reason: str) -> object: ...


@dataclass(frozen=True)
class TickRecord:
    """One step of the loop: what it saw, what the judge said, what was (or would be) done.

    ``tick`` is the last tick judged in this step (None when none was), ``weight`` the
    canary weight in force during it, ``new_weight`` the weight after the step's action
    (unchanged when nothing was written), ``applied`` whether the action was written
    (False for advice in manual mode or while paused), ``failures`` the consecutive
    failure count after the step.
    """

    time: datetime
    tick: int | None
    weight: int | None
    decision: Decision | None
    action: Action
    new_weight: int | None
    applied: bool
    failures: int = 0
    error: str | None = None
    state: TickState | None = None
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (times as ISO strings, the judge state as its own dict)."""
        return {
            "time": self.time.isoformat(),
            "tick": self.tick,
            "weight": self.weight,
            "decision": self.decision,
            "action": self.action,
            "new_weight": self.new_weight,
            "applied": self.applied,
            "failures": self.failures,
            "error": self.error,
            "state": self.state.to_dict() if self.state else None,
            "notes": list(self.notes),
        }


def _now() -> datetime:
    return datetime.now(UTC)


class Rollout:
    """A live canary rollout: ``source`` (Prometheus) → ``judge`` → ``router``.

    ``target``/``namespace``/``preset`` say which series to fetch (Flagger naming:
    ``<target>-primary`` is the primary, ``<target>`` the canary). ``judge`` is a name
    in :data:`rolloutlab.judges.JUDGES` or a :class:`Judge`. ``promoter``, if given, is
    called to promote or roll back the workloads before the route goes back to the
    primary. ``clock`` returns the current UTC time (tests pass a fake one).
    ``max_ticks`` bounds :meth:`run` (default: the spec's whole analysis, its plan and
    bake up to ``maxAnalysisTime``, plus slack). The spec's template metrics are fetched
    as per-variant gauges (``source.query_range``) beside the preset's series; one whose
    query returns no series reads as no data (a hold). ``pod_template_hashes`` fill an
    Argo template's ``podTemplateHashValue`` arguments (``{"stable": ..., "canary": ...}``).
    """

    def __init__(
        self,
        source: Source,
        router: Router,
        spec: Spec,
        judge: str | Judge = "rolloutlab",
        *,
        target: str,
        namespace: str,
        preset: str = "istio",
        mode: Mode = "auto",
        notifier: Notifier | None = None,
        promoter: Promoter | None = None,
        failure_limit: int = 3,
        lag_s: float = 2.0,
        max_ticks: int | None = None,
        clock: Callable[[], datetime] = _now,
        pod_template_hashes: Mapping[str, str] | None = None,
    ) -> None:
        if mode not in ("auto", "manual"):
            raise SpecError(f"mode must be 'auto' or 'manual', got {mode!r}")
        if failure_limit < 1:
            raise SpecError(f"failure_limit must be at least 1, got {failure_limit}")
        interval = spec.interval_s
        if interval < 1 or not float(interval).is_integer():
            raise SpecError(
                f"the live loop needs a whole-second interval ≥ 1 s (Prometheus' step grid), "
                f"got interval_s={interval}"
            )
        plan = spec.weight_plan()
        if not plan:
            raise SpecError(
                "the live loop steps a canary's weight: the spec needs stepWeight or stepWeights "
                "(blue/green and A/B iterations are not supported)"
            )
        if any(not float(w).is_integer() for w in plan):
            raise SpecError(
                f"the live loop needs whole-percent plan weights (routers take integers), "
                f"got {list(plan)}; fix stepWeight/stepWeights/maxWeight"
            )
        self.source = source
        self.router = router
        self.spec = spec
        self.judge = _make_judge(judge, spec)
        self.target = target
        self.namespace = namespace
        self.preset = preset
        self.mode: Mode = mode
        self.notifier = notifier
        self.promoter = promoter
        self.failure_limit = failure_limit
        self.lag_s = lag_s
        self.plan: tuple[int, ...] = tuple(int(w) for w in plan)
        self.gauges = template_queries(spec, "the spec", pod_template_hashes)
        analysis = math.ceil(spec.analysis_deadline_s() / interval)
        self.max_ticks = max_ticks or analysis + failure_limit + 10
        self.clock = clock
        self.history: list[TickRecord] = []
        self.phase: Phase = "ready"
        self.paused = False
        self.failures = 0
        self.origin: datetime | None = None
        self._interval = timedelta(seconds=interval)
        self._next_tick = 0
        self._last_step: datetime | None = None
        self._frame = frames.empty()
        self._meta: dict[str, Any] = {}
        self._audit: list[dict[str, Any]] = []
        self._timeline: list[tuple[datetime, int]] = []  # (since, canary weight), known to us
        self._outbox: list[Event] = []  # events to send once the lock is released
        self._hold_topic: str | None = None  # what the judge's current hold is about
        self._lock = threading.RLock()  # state and router writes; never held for a fetch
        self._stepping = threading.Lock()  # one step at a time
        self._stop = threading.Event()

    def __repr__(self) -> str:
        return f"<Rollout {self.name} · {self.status}>"

    @property
    def name(self) -> str:
        return f"{self.namespace}/{self.target}"

    # -- what it knows -------------------------------------------------------------

    @property
    def acting(self) -> bool:
        """True when steps write: auto mode and not paused."""
        return self.mode == "auto" and not self.paused

    @property
    def done(self) -> bool:
        """Promoted or rolled back."""
        return self.phase in ("promoted", "rolled_back")

    @property
    def advice(self) -> str | None:
        """What the last step would have done but did not (manual mode, paused), else None."""
        last = self.history[-1] if self.history else None
        if last is None or last.applied or last.action not in _ADVICE:
            return None
        return _ADVICE[last.action].format(weight=last.new_weight)

    def next_weight(self, current: int | None = None) -> int | None:
        """The plan's next weight above ``current`` (the router's weight by default)."""
        current = self.router.weights().canary if current is None else current
        return next((w for w in self.plan if w > current), None)

    def verdict(self) -> Verdict:
        """The judge's verdict so far (evidence per tick, decision)."""
        return self.judge.verdict()

    @property
    def recording(self) -> Recording:
        """Everything fetched so far, with the weight in force per tick and the audit trail."""
        with self._lock:
            meta = {
                **self._meta,
                "roles": {"control": CONTROL, "treatment": [TREATMENT]},
                "step_s": self._interval.total_seconds(),
                "start": self.origin.isoformat() if self.origin else None,
                "end": self._tick_end(self._next_tick - 1).isoformat()
                if self.origin and self._next_tick
                else None,
                "audit": list(self._audit),
                "rollout": {
                    "judge": self.judge.name,
                    "mode": self.mode,
                    "plan": list(self.plan),
                    "phase": self.phase,
                    "history": [r.to_dict() for r in self.history],
                },
            }
            return Recording(self._frame, meta, source=f"rollout {self.name}")

    @property
    def status(self) -> str:
        """One line: phase, weight, last tick and decision, next action, last error."""
        with self._lock:
            last = self.history[-1] if self.history else None
            parts = [self.phase + (" (paused)" if self.paused else "")]
            weight = self._timeline[-1][1] if self._timeline else None
            if weight is not None:
                parts.append(f"canary {weight}%")
            if last is not None and last.tick is not None:
                parts.append(f"tick {last.tick}: {self.judge.name} says {last.decision}")
                if last.decision == "continue" and last.state and last.state.hold:
                    parts.append(f"hold: {last.state.hold}")
            if self.advice:
                parts.append(f"advice: {self.advice}")
            if self.failures:
                parts.append(f"failures {self.failures}/{self.failure_limit}")
            if last is not None and last.error:
                parts.append(f"error: {last.error}")
            return redact(" · ".join(parts))

    # -- acting by hand ------------------------------------------------------------

    def set_weight(self, canary_percent: int, *, reason: str = "manual") -> Change:
        """Write a canary weight (recorded in the history's timeline and the audit trail)."""
        with self._locked():
            return self._write(canary_percent, reason)

    def next_step(self, *, reason: str = "manual: next step of the plan") -> Change:
        """Move to the plan's next weight; ValueError at the end of the plan."""
        with self._locked():
            weight = self.next_weight()
            if weight is None:
                raise ValueError(
                    f"the canary is at or past the plan's last weight {self.plan[-1]}%; "
                    "promote or roll back"
                )
            return self._write(weight, reason)

    def promote(self, *, reason: str = "manual promotion") -> Change:
        """Promote: the promoter (if any), then all traffic to the primary."""
        with self._locked():
            return self._finish("promote", reason)

    def rollback(self, *, reason: str = "manual rollback") -> Change:
        """Roll back: the promoter's rollback (if any), then canary weight 0."""
        with self._locked():
            return self._finish("rollback", reason)

    def pause(self) -> None:
        """Keep watching and judging, but write nothing until :meth:`resume` (a write under
        way completes before this returns; none follows)."""
        with self._lock:
            self.paused = True

    def resume(self) -> None:
        self.paused = False

    # -- the loop ------------------------------------------------------------------

    def step(self) -> TickRecord:
        """Run one tick now: fetch what ended since the last step, judge, act (or advise).

        Returns the step's record. A step before any tick is complete, or after the
        rollout is done (also when it was rolled back or promoted during the fetch),
        returns a ``wait`` record that is not added to the history. Never raises for a
        bad fetch or a failing judge: that is a failed step.
        """
        with self._stepping:
            with self._locked():
                now = self.clock()
                if self.done:
                    return self._over(now)
                if self.origin is None:
                    return self._keep(now, self._start(now))
                first = self._next_tick
                lagged = now - timedelta(seconds=self.lag_s)
                last = _ticks_between(self.origin, lagged, self._interval) - 1
                if last < first:
                    return self._keep(now, TickRecord(now, None, None, None, "wait", None, False))
            seen = self._see(first, last)  # without the lock: network I/O, then judging
            with self._locked():
                if self.done:
                    return self._over(now)
                return self._keep(now, self._tick(now, seen))

    def run(
        self,
        *,
        max_ticks: int | None = None,
        on_tick: Callable[[TickRecord], object] | None = None,
    ) -> Phase:
        """Step at every tick boundary until a decision, :meth:`stop`, Ctrl-C or ``max_ticks``.

        A decision is a promotion or rollback, or (in manual mode, or paused) the advice
        to promote or roll back. ``on_tick`` gets each new history record. Ctrl-C ends
        the loop and returns; the routes stay as the last completed write left them.
        Returns the phase.
        """
        budget = max_ticks or self.max_ticks
        steps = 0
        try:
            while not self.done:
                if steps >= budget:
                    with self._locked():
                        self._notify(
                            "halt", f"no decision after {steps} ticks; weights left as they are"
                        )
                    break
                # at most an interval at a time: a clock set back and then put right again
                # is caught up with within an interval, not after the time it was off by
                wait_s = (self._due() - self.clock()).total_seconds()
                if self._stop.wait(min(max(0.0, wait_s), self._interval.total_seconds())):
                    break
                before = len(self.history)
                record = self.step()
                if len(self.history) == before:
                    continue
                steps += 1
                if on_tick is not None:
                    on_tick(record)
                if record.action in ("promote", "rollback") and not record.applied:
                    break  # advice given: people decide
        except KeyboardInterrupt:
            log.warning("rollout %s interrupted; routes left as the last write set them", self.name)
        finally:
            self._stop.clear()
        return self.phase

    def stop(self) -> None:
        """Make the running :meth:`run` (in another thread), or the next one if it has not
        started yet, return after its current step."""
        self._stop.set()

    # -- internals -----------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the lock for state and router writes, then send the events queued meanwhile
        outside it (never nest it), so that a slow notifier never holds up a manual action."""
        try:
            with self._lock:
                yield
        finally:
            self._deliver()

    def _keep(self, now: datetime, record: TickRecord) -> TickRecord:
        """Note that a step ran; add its record to the history unless it is a plain wait."""
        if record.action != "wait" or record.error:
            self.history.append(record)
        self._last_step = now
        return record

    def _over(self, now: datetime) -> TickRecord:
        """The record of a step after the rollout is done."""
        return TickRecord(now, None, None, None, "wait", None, False, notes=(self.phase,))

    def _tick_end(self, k: int) -> datetime:
        assert self.origin is not None
        return self.origin + (k + 1) * self._interval

    def _due(self) -> datetime:
        """When to step next: ``lag_s`` after the next boundary not yet stepped on; before
        the start, at once and then every interval."""
        if self._last_step is None:
            return self.clock()
        if self.origin is None:
            return self._last_step + self._interval
        lag = timedelta(seconds=self.lag_s)
        k = max(self._next_tick, _ticks_between(self.origin, self._last_step - lag, self._interval))
        return self._tick_end(k) + lag

    def _begin(self, when: datetime) -> None:
        """Start the tick grid at the first interval boundary after ``when``."""
        seconds = self._interval.total_seconds()
        self.origin = datetime.fromtimestamp(math.ceil(when.timestamp() / seconds) * seconds, UTC)
        self.phase = "progressing"

    def _weight_at(self, when: datetime) -> int:
        """The canary weight in force at ``when``, as far as the rollout knows."""
        weight = self._timeline[0][1] if self._timeline else 0
        for since, value in self._timeline:
            if since > when:
                break
            weight = value
        return weight

    def _observe_weight(self, now: datetime) -> int:
        """The router's weight now, noted in the timeline if someone else changed it."""
        current = self.router.weights().canary
        if not self._timeline or self._timeline[-1][1] != current:
            self._timeline.append((now, current))
        return current

    def _start(self, now: datetime) -> TickRecord:
        """Give the canary the plan's first weight (auto) and start the tick grid."""
        try:
            current = self._observe_weight(now)
            if current == 0 and self.acting:
                current = self._write(self.plan[0], "start: first step of the plan").after.canary
        except ActuationError as exc:
            return self._failure(now, None, None, f"router: {exc}")
        if current == 0:
            return TickRecord(now, None, 0, None, "wait", 0, False, notes=("canary weight is 0",))
        if self.origin is None:
            self._begin(now)
        return TickRecord(now, None, current, None, "start", current, self.acting)

    def _see(self, first: int, last: int) -> _Seen:
        """Fetch ticks ``first..last``, keep them and judge them: the states judged and the
        fetch's warnings, or the error text of a step that could not see.

        Called without the lock: a fetch can take up to the source's timeout, and judging
        many ticks at once (after an outage, or a clock that jumped) takes a while.
        Neither touches what manual actions change, and the ticks lie before any write
        made meanwhile. Whatever the source or the judge raises fails the step safely.
        """
        try:
            recording, notes = self._fetch(first, last)
            newest = self._append(first, last, recording)
        except Exception as exc:
            return _problem("Prometheus", exc)
        if newest is None:
            return (
                f"Prometheus: no data for ticks {first}..{last} in its answer "
                f"({self._tick_end(first):%H:%M:%S} to {self._tick_end(last):%H:%M:%S} UTC)"
            )
        if newest < last:  # not there yet: judged once they are, never read as no data
            notes += (
                f"ticks {newest + 1}..{last}: no data for any variant yet (Prometheus' clock "
                "behind this one, or slow ingestion); judged when they come in",
            )
        try:
            return self._judge(first, newest), notes
        except Exception as exc:  # a live loop survives a judge's bug: a failed step
            return _problem(f"judge {self.judge.name}", exc)

    def _tick(self, now: datetime, seen: _Seen) -> TickRecord:
        """Act on the ticks judged (or fail with the step's error).

        Advances only on ``continue`` with no hold in any tick judged; the hold's reason
        goes into the record's notes.
        """
        try:
            current = self._observe_weight(now)
        except ActuationError as exc:
            return self._failure(now, None, None, f"router: {exc}")
        if isinstance(seen, str):
            return self._failure(now, None, current, seen)
        states, notes = seen
        state, hold = states[-1], None
        if state.decision == "continue":  # a hold in any tick judged holds the weight
            state = next((s for s in states if s.hold), state)
            hold = state.hold
        k = self._next_tick - 1
        tick = _Tick(
            now,
            k,
            self._weight_at(self._tick_end(k)),
            state,
            notes + ((f"hold: {hold}",) if hold else ()),
        )
        self.failures = 0
        if state.decision != "continue":
            return self._act(tick, state, state.decision, 0, current)
        self._say_hold(hold, current)
        advance_to = None if hold else self.next_weight(current)
        if advance_to is None:
            return self._act(tick, state, "hold", current, current)
        return self._act(tick, state, "advance", advance_to, current)

    def _say_hold(self, hold: str | None, weight: int) -> None:
        """Notify a judge's hold once, when it starts or its cause changes (its first
        words: the bake, invalid data, a sample-ratio mismatch, a person asked for at the
        deadline): a rollout held for good must not wait in silence."""
        topic = " ".join(hold.split()[:3]) if hold else None
        if topic is not None and topic != self._hold_topic:
            self._notify("halt", f"holding at {weight}%: {hold}")
        self._hold_topic = topic

    def _act(
        self, tick: _Tick, state: TickState, action: Action, target: int, current: int
    ) -> TickRecord:
        """Carry out ``action`` towards canary weight ``target`` (or only advise it when not
        acting), and record the step judged ``state``."""
        why = f"tick {tick.k}: {self.judge.name} says {state.decision}"
        if not self.acting:
            if action in ("promote", "rollback"):
                self._notify(action, f"{why}; advice only ({self._not_acting()})")
            return tick.record(action, target, applied=False, failures=self.failures)
        try:
            if action == "advance":
                self._write(target, why)
            elif action in ("promote", "rollback"):
                self._finish(action, f"{why}: {self._explain(state)}")
        except ActuationError as exc:
            return self._failure(tick.now, tick, current, f"router: {action} failed: {exc}")
        return tick.record(action, self._timeline[-1][1], applied=True, failures=self.failures)

    def _explain(self, state: TickState) -> str:
        """The judge's sentence for ``state``; a bug there never stops the decision."""
        try:
            return self.judge.explain(state)
        except Exception as exc:
            return _problem(f"judge {self.judge.name} could not explain it", exc)

    def _failure(
        self, now: datetime, tick: _Tick | None, current: int | None, error: str
    ) -> TickRecord:
        """A step that could not see or act: hold and count; roll back at the limit."""
        self.failures += 1
        tick = tick or _Tick(now, None, current, None, ())
        if self.failures < self.failure_limit or self.origin is None:
            if self.failures == 1:  # once per streak; reaching the limit notifies again
                self._notify("failure", f"{error}; holding the weight")
            return tick.record(
                "hold", current, applied=self.acting, failures=self.failures, error=error
            )
        reason = f"{self.failures} consecutive failures (limit {self.failure_limit}); last: {error}"
        if not self.acting:
            self._notify("failure", f"{reason}; advice: roll back ({self._not_acting()})")
            return tick.record("rollback", 0, applied=False, failures=self.failures, error=error)
        try:
            self._finish("rollback", reason)
        except ActuationError as exc:
            self._notify("failure", f"{reason}; the rollback failed too: {exc}")
            error = f"{error}; rollback failed: {exc}"
            return tick.record(
                "rollback", current, applied=False, failures=self.failures, error=error
            )
        return tick.record("rollback", 0, applied=True, failures=self.failures, error=error)

    def _not_acting(self) -> str:
        return "paused" if self.paused else "manual mode"

    def _fetch(self, first: int, last: int) -> tuple[Recording, tuple[str, ...]]:
        """Ticks ``first..last`` from the source, with its warnings (e.g. partial data).
        Network I/O: called without the lock."""
        step = int(self._interval.total_seconds())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            recording = self.source.fetch(
                self.preset,
                start=self._tick_end(first),
                end=self._tick_end(last),
                step=step,
                target=self.target,
                namespace=self.namespace,
            )
            if self.gauges:
                recording = with_gauges(
                    recording, self.source, self.gauges, step=step, empty="warn"
                )
        return recording, tuple(str(w.message) for w in caught)

    def _append(self, first: int, last: int, recording: Recording) -> int | None:
        """Keep ticks ``first..last`` of ``recording`` (replacing those kept by an earlier
        step that did not judge them all), with the canary weight in force at each tick's
        end. Returns the last of them with any data (None: none has)."""
        start, end = self._tick_end(first), self._tick_end(last)
        rows = recording.frame.filter(
            pl.col("timestamp").is_between(start, end) & (pl.col("metric") != "weight")
        )
        ends = [self._tick_end(k) for k in range(first, last + 1)]
        canary = [float(self._weight_at(t)) for t in ends]
        weights = pl.DataFrame(
            {
                "timestamp": ends * 2,
                "variant": [TREATMENT] * len(ends) + [CONTROL] * len(ends),
                "metric": ["weight"] * 2 * len(ends),
                "kind": ["gauge"] * 2 * len(ends),
                "le": [None] * 2 * len(ends),
                "value": canary + [100.0 - w for w in canary],
            },
            schema=frames.SCHEMA,
        )
        kept = self._frame.filter(pl.col("timestamp") < start)
        self._frame = pl.concat([kept, rows, weights], how="vertical")
        if not self._meta:
            skip = ("start", "end", "created_at", "audit", "missing_steps")
            self._meta = {k: v for k, v in recording.meta.items() if k not in skip}
        newest = rows["timestamp"].max()
        if not isinstance(newest, datetime):  # no rows
            return None
        assert self.origin is not None
        return _ticks_between(self.origin, newest, self._interval) - 1

    def _judge(self, first: int, last: int) -> list[TickState]:
        """Feed the judge ticks ``first..last`` in order, up to its first decision.

        ``_next_tick`` follows each tick judged, so the next step fetches again, and
        judges, the tick the judge raised on or the ticks after its decision.
        """
        frame = self._frame
        if self.judge.compares_buckets:  # a canary on other bucket edges, as judge() does
            frame, _ = frames.common_buckets(frame, (CONTROL, TREATMENT))
        table = frames.tick_table(
            frame, self._interval.total_seconds(), variants=(CONTROL, TREATMENT), origin=self.origin
        )
        states: list[TickState] = []
        for k in range(first, last + 1):
            states.append(self.judge.observe(table, k))
            self._next_tick = k + 1
            if states[-1].decision != "continue":
                break
        return states

    def _write(self, canary_percent: int, reason: str) -> Change:
        """One atomic router write, then the weight timeline and the audit trail.

        A write that fails, or is made but cannot be audited, re-reads the router so
        that the timeline (what the loop believes) is what the route holds, then raises.
        """
        try:
            change = self.router.set_weight(canary_percent, reason=reason)
        except ActuationError as exc:
            record = getattr(exc, "record", None)  # AuditFailed: the change was made
            if record is not None:
                self._audit.append(record.to_dict())
            # if the route cannot be read either, the timeline keeps the last known weight
            with contextlib.suppress(ActuationError):
                self._observe_weight(self.clock())
            raise
        now = self.clock()
        if not self._timeline or self._timeline[-1][1] != change.after.canary:
            self._timeline.append((now, change.after.canary))
        if change.changed:
            self._audit.append((change.record or self._record(change)).to_dict())
        if self.origin is None and change.after.canary > 0:
            self._begin(now)
        return change

    def _record(self, change: Change) -> AuditRecord:
        """The audit record of a change made by a router that returned none."""
        return AuditRecord.now(
            kind=change.router.split(" ")[0],
            namespace=self.namespace,
            name=getattr(self.router, "name", self.target),
            action="set_weight",
            before=change.before.as_dict(),
            after=change.after.as_dict(),
            reason=change.reason,
            dry_run=change.dry_run,
        )

    def _finish(self, action: Literal["promote", "rollback"], reason: str) -> Change:
        """Promote or roll back: the promoter first (if any), then all traffic to the primary."""
        if self.done:
            raise ActuationError(f"rollout {self.name} is already {self.phase.replace('_', ' ')}")
        if self.promoter is not None:
            try:
                done = getattr(self.promoter, action)(reason=reason)
            finally:  # its steps may have moved the route (a DeploymentCanary's do)
                with contextlib.suppress(ActuationError):
                    self._observe_weight(self.clock())
            for result in getattr(done, "results", ()):  # its audit records, one type
                record = result.record if isinstance(result, Change) else result
                if isinstance(record, AuditRecord):
                    self._audit.append(record.to_dict())
        change = self._write(0, f"{action}: {reason}")
        self.phase = "promoted" if action == "promote" else "rolled_back"
        self._notify(action, reason)
        return change

    def _notify(self, kind: EventKind, message: str) -> None:
        """Queue an event (under the lock); :meth:`_locked` sends it after the lock."""
        if self.notifier is not None:
            weight = self._timeline[-1][1] if self._timeline else None
            self._outbox.append(Event(kind, self.name, message, weight))

    def _deliver(self) -> None:
        """Send the queued events; called without the lock."""
        with self._lock:
            events, self._outbox = self._outbox, []
        for event in events:
            try:
                self.notifier.notify(event)  # type: ignore[union-attr]  # queued only with one
            except Exception:  # a notifier must never stop a rollout
                log.exception("notifier %r failed", self.notifier)


@dataclass(frozen=True)
class _Tick:
    """What a step saw, before it knows what it will do."""

    now: datetime
    k: int | None
    weight: int | None
    state: TickState | None
    notes: tuple[str, ...]

    def record(
        self,
        action: Action,
        new_weight: int | None,
        *,
        applied: bool,
        failures: int,
        error: str | None = None,
    ) -> TickRecord:
        return TickRecord(
            time=self.now,
            tick=self.k,
            weight=self.weight,
            decision=self.state.decision if self.state else None,
            action=action,
            new_weight=new_weight,
            applied=applied,
            failures=failures,
            error=error,
            state=self.state,
            notes=self.notes,
        )


def _problem(what: str, exc: Exception) -> str:
    """A failed step's error text; an unexpected exception (a bug rather than bad data or
    a failed request) is logged with its traceback."""
    if isinstance(exc, RolloutlabError):
        return redact(f"{what}: {exc}")
    log.error("%s failed unexpectedly", what, exc_info=exc)
    return redact(f"{what}: unexpected {type(exc).__name__}: {exc}")


def _ticks_between(origin: datetime, when: datetime, interval: timedelta) -> int:
    """How many whole ticks from ``origin`` have ended by ``when``."""
    return max(0, math.floor((when - origin) / interval))


def _make_judge(judge: str | Judge, spec: Spec) -> Judge:
    """A judge of the live variants: a name in :data:`rolloutlab.judges.JUDGES`, or as given."""
    if isinstance(judge, Judge):
        return judge
    from rolloutlab.judges import judge_class

    return judge_class(judge)(spec, control=CONTROL, treatment=TREATMENT)
