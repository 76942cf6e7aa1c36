"""Judge a live canary from Prometheus now: the evaluation behind every endpoint.

An evaluation fetches the canary's metrics over its revision's analysis window (from its
start to the last complete tick on the spec's epoch-aligned grid) and judges them, as the
live loop does, on Flagger's own weight timeline when Prometheus has it. The start is
where Flagger's ``flagger_canary_weight`` shows the canary's traffic began, else the first
call naming the revision, and is kept in the :class:`~rolloutlab.serve.store.RevisionStore`;
the engine holds no other state, so replicas give the same answer. Results are
cached per tick, and concurrent calls for one tick wait for a single evaluation, so a
burst of webhooks costs one fetch and one judgment.

Fail safe: a window with no complete tick is ``pending``, a canary without data
``nodata`` and a Prometheus that cannot be read ``unavailable``; none of them promotes.
"""

from __future__ import annotations

import logging
import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal

from rolloutlab import _html
from rolloutlab.errors import EmptyResult, RolloutlabError
from rolloutlab.judges import judge
from rolloutlab.judges.verdict import Decision, MetricResult, Verdict
from rolloutlab.serve.catalog import Canary
from rolloutlab.serve.store import RevisionStore
from rolloutlab.sources.flagger import queries as flagger_queries
from rolloutlab.sources.flagger import with_flagger
from rolloutlab.sources.prometheus import Prometheus
from rolloutlab.sources.recording import Recording
from rolloutlab.specs.fetch import fetch_for_spec
from rolloutlab.views.metrics import CanaryState

log = logging.getLogger(__name__)

Status = Literal["judged", "pending", "nodata", "unavailable"]
#: Lock stripes for single-flight evaluation (concurrent evaluations of distinct canaries).
FLIGHTS = 256
#: What :meth:`Engine._traffic_since` says when Flagger gives the canary no traffic yet.
NO_TRAFFIC = "no traffic"
#: The revision of calls that name none (the verdict endpoint, an Argo template without one).
DEFAULT_REVISION = "current"


@dataclass(frozen=True)
class Evaluation:
    """What the judge says about one canary revision at one tick.

    ``status`` is ``judged`` (``verdict`` holds the judge's decision), ``pending`` (no
    complete tick in the window yet), ``nodata`` (no series for the canary) or
    ``unavailable`` (Prometheus could not be read: ``problem`` says why). Only a judged
    evaluation can promote or roll back; the others say ``continue``.
    """

    namespace: str
    name: str
    target: str
    revision: str
    status: Status
    window_start: datetime
    tick_end: datetime
    plan: tuple[float, ...]
    verdict: Verdict | None = None
    problem: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def decision(self) -> Decision:
        return self.verdict.decision if self.status == "judged" and self.verdict else "continue"

    @property
    def reason(self) -> str:
        if self.verdict is not None and self.status == "judged":
            return self.verdict.reason
        return self.problem or self.status

    @property
    def hold(self) -> str | None:
        """Why the weight must not advance now (None when it may)."""
        if self.status == "pending":
            return None
        if self.status != "judged":
            return self.reason
        last = self.verdict.ticks[-1] if self.verdict and self.verdict.ticks else None
        return last.hold if last is not None else None

    @property
    def metrics(self) -> tuple[MetricResult, ...]:
        return self.verdict.metrics if self.verdict is not None else ()

    @property
    def weight(self) -> float | None:
        """The canary weight of the last tick judged: recorded, else the plan's at that
        tick (as the judges read it), None before any tick."""
        ticks = self.verdict.ticks if self.verdict else ()
        if not ticks:
            return None
        recorded = ticks[-1].weight
        if recorded is not None and math.isfinite(recorded):
            return float(recorded)
        return float(self.plan[min(len(ticks), len(self.plan)) - 1]) if self.plan else None

    @property
    def step(self) -> int:
        """How many of the plan's steps the canary has reached (0 before traffic)."""
        weight = self.weight
        if weight is None:
            return 0
        return sum(1 for w in self.plan if w <= weight + 1e-9)

    def __repr__(self) -> str:
        return (
            f"<Evaluation {self.namespace}/{self.name}@{self.revision}: {self.decision} "
            f"({self.status}) at {self.tick_end:%Y-%m-%d %H:%M} UTC>"
        )

    @_html.never_raises
    def _repr_html_(self) -> str:
        """A card: decision badge, status, window, weight and step, why, per-metric table."""
        facts = {
            "status": self.status,
            "window": f"{_html.when(self.window_start)} to {_html.when(self.tick_end)}",
            "weight": "unknown" if self.weight is None else f"{self.weight:g}%",
            "step": f"{self.step} of {len(self.plan)}",
            "why": self.reason,
        }
        title = _html.Html(
            f"{_html.badge(self.decision)} {_html.esc(self.namespace)}/{_html.esc(self.name)}"
        )
        return _html.card(title, _html.kv_table(facts), _html.metric_table(self.metrics))

    def state(self) -> CanaryState:
        """The series ``/metrics`` exports for this canary."""
        return CanaryState(
            self.target,
            self.namespace,
            self.decision,
            self.weight,
            self.metrics,
            judged=self.status == "judged",
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON of every endpoint: decision, reason, status, window, per-metric results."""
        return {
            "namespace": self.namespace,
            "name": self.name,
            "target": self.target,
            "revision": self.revision,
            "decision": self.decision,
            "reason": self.reason,
            "status": self.status,
            "hold": self.hold,
            "window_start": self.window_start.isoformat(),
            "tick_end": self.tick_end.isoformat(),
            "weight": self.weight,
            "step": self.step,
            "steps": len(self.plan),
            "judge": self.verdict.judge if self.verdict else None,
            "metrics": [m.to_dict() for m in self.metrics],
            "notes": list(self.notes),
        }


def _now() -> datetime:
    return datetime.now(UTC)


class Engine:
    """Evaluations of the canaries of ``catalog`` from the Prometheus at ``url``.

    ``catalog`` has ``get(namespace, name) -> Canary`` (a folder or the cluster);
    ``store`` keeps each revision's window start; ``clock`` returns the current UTC time
    (tests pass a fake one). ``judge`` overrides the spec's judge; ``headers``, ``bearer``
    and ``timeout_s`` go to every Prometheus request. The cache keeps the current tick's
    evaluation of the ``cache_size`` revisions evaluated last (the clock only moves
    forward, so older ticks are never asked for again).
    """

    def __init__(
        self,
        url: str,
        catalog: Any,
        store: RevisionStore,
        *,
        clock: Callable[[], datetime] = _now,
        judge: str | None = None,
        headers: Mapping[str, str] | None = None,
        bearer: str | None = None,
        timeout_s: float = 10.0,
        cache_size: int = 1024,
    ) -> None:
        self.url = url
        self.catalog = catalog
        self.store = store
        self.clock = clock
        self.judge = judge
        self.headers = dict(headers or {})
        self.bearer = bearer
        self.timeout_s = timeout_s
        self.cache_size = cache_size
        self.evaluations = 0  # how many were computed (not served from the cache)
        self._cache: OrderedDict[tuple[str, str, str], Evaluation] = OrderedDict()
        self._latest: dict[tuple[str, str], Evaluation] = {}
        self._flights = [threading.Lock() for _ in range(FLIGHTS)]
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Engine {self.url} · {self.catalog!r} · {self.store!r}>"

    def latest(self) -> list[Evaluation]:
        """The last evaluation of every canary evaluated so far (for ``/metrics``)."""
        with self._lock:
            return list(self._latest.values())

    def evaluate(
        self,
        namespace: str,
        name: str,
        revision: str | None = None,
        *,
        start: datetime | None = None,
    ) -> Evaluation:
        """The evaluation of ``namespace/name`` at the current tick (cached per tick).

        ``revision`` defaults to the revision seen last (else :data:`DEFAULT_REVISION`);
        a revision seen for the first time starts its window now, or at ``start``.
        Raises :class:`~rolloutlab.serve.catalog.UnknownCanary` for a canary not known.
        """
        canary = self.catalog.get(namespace, name)
        revision = revision or self.store.latest(namespace, name) or DEFAULT_REVISION
        interval_s = canary.spec.interval_s
        seen = self.store.get(namespace, name, revision)
        if seen is None:
            if start is None:
                try:
                    since = self._traffic_since(canary)
                except RolloutlabError as exc:  # nothing stored: the next call asks again
                    why = f"cannot judge: {str(exc).splitlines()[0]}"
                    return self._unstarted(canary, revision, "unavailable", why)
                if isinstance(since, str):  # NO_TRAFFIC
                    why = "Flagger gives the canary no traffic yet (flagger_canary_weight 0)"
                    return self._unstarted(canary, revision, "pending", why)
                start = since
            seen = self.store.start(namespace, name, revision, start or self.clock())
        window_start = _on_grid(seen, interval_s, math.ceil)
        tick_end = max(window_start, _on_grid(self.clock(), interval_s, math.floor))
        key = (namespace, name, revision)
        cached = self._cached(key, tick_end)
        if cached is not None:
            return cached
        # one evaluation per revision at a time (lock striping): the others wait for it
        with self._flights[hash(key) % FLIGHTS]:
            cached = self._cached(key, tick_end)
            if cached is not None:
                return cached
            result = self._evaluate(canary, revision, window_start, tick_end)
            with self._lock:
                self.evaluations += 1
                self._cache[key] = result
                self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
                self._latest[(namespace, name)] = result
        return result

    def _traffic_since(self, canary: Canary) -> datetime | None | str:
        """When the canary's traffic began, by Flagger's own ``flagger_canary_weight``: the
        first sample of its last run above 0 (within the analysis' length), so replicas
        and restarts without the state file agree on the window; :data:`NO_TRAFFIC` when
        the weight is 0 now; None without the series (the first call then starts it)."""
        spec = canary.spec
        now = self.clock()
        lookback = timedelta(seconds=spec.analysis_deadline_s() + 2 * spec.interval_s)
        query = flagger_queries(canary.target, canary.namespace)["weight"]
        with Prometheus(
            self.url, headers=self.headers, auth=self.bearer, timeout=self.timeout_s
        ) as prom:
            series = prom.query_range(query, now - lookback, now, min(spec.interval_s, 60))
        values: list[Any] = next(
            (s["values"] for s in series if s["metric"].get("workload") == canary.target), []
        )
        if not values:
            return None
        if float(values[-1][1]) <= 0:
            return NO_TRAFFIC
        first = len(values) - 1
        while first > 0 and float(values[first - 1][1]) > 0:
            first -= 1
        return datetime.fromtimestamp(float(values[first][0]), UTC)

    def _unstarted(self, canary: Canary, revision: str, status: Status, why: str) -> Evaluation:
        """An evaluation of a revision whose window has not begun (nothing stored)."""
        now = _on_grid(self.clock(), canary.spec.interval_s, math.floor)
        return Evaluation(
            namespace=canary.namespace,
            name=canary.name,
            target=canary.target,
            revision=revision,
            status=status,
            window_start=now,
            tick_end=now,
            plan=canary.spec.weight_plan(),
            problem=why,
        )

    def _cached(self, key: tuple[str, str, str], tick_end: datetime) -> Evaluation | None:
        with self._lock:
            cached = self._cache.get(key)
        return cached if cached is not None and cached.tick_end == tick_end else None

    def _evaluate(
        self, canary: Canary, revision: str, window_start: datetime, tick_end: datetime
    ) -> Evaluation:
        spec = canary.spec
        made = partial(
            Evaluation,
            namespace=canary.namespace,
            name=canary.name,
            target=canary.target,
            revision=revision,
            window_start=window_start,
            tick_end=tick_end,
            plan=spec.weight_plan(),
        )
        first_end = window_start + timedelta(seconds=spec.interval_s)
        if tick_end < first_end:
            return made(status="pending", problem="no complete tick in the window yet")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                recording = fetch_for_spec(
                    self.url,
                    spec,
                    start=first_end,
                    end=tick_end,
                    step=spec.interval_s,
                    preset=canary.preset,
                    target=canary.target,
                    namespace=canary.namespace,
                    headers=self.headers,
                    bearer=self.bearer,
                    timeout=self.timeout_s,
                )
                recording, note = self._flagger_weights(recording, canary)
                verdict = judge(recording, spec, judge=self.judge)
            except EmptyResult as exc:
                problem = f"no data: {str(exc).splitlines()[0]}"
                return made(status="nodata", problem=problem)
            except RolloutlabError as exc:
                problem = f"cannot judge: {str(exc).splitlines()[0]}"
                log.warning("%s: %s", canary.key, problem)
                return made(status="unavailable", problem=problem)
            except Exception as exc:  # a bug must not promote either
                log.exception("%s: evaluation failed", canary.key)
                problem = f"cannot judge: unexpected {type(exc).__name__}"
                return made(status="unavailable", problem=problem)
        notes = tuple(str(w.message).splitlines()[0] for w in caught) + ((note,) if note else ())
        return made(status="judged", verdict=verdict, notes=notes)

    def _flagger_weights(
        self, recording: Recording, canary: Canary
    ) -> tuple[Recording, str | None]:
        """The recording with Flagger's own weight timeline (``flagger_canary_weight``: the
        weights really in force, holds included) when Prometheus has it; else as it is,
        judged on the plan's weights, with a note saying so."""
        with Prometheus(
            self.url, headers=self.headers, auth=self.bearer, timeout=self.timeout_s
        ) as prom:
            try:
                return with_flagger(
                    recording,
                    prom,
                    target=canary.target,
                    namespace=canary.namespace,
                    step=canary.spec.interval_s,
                ), None
            except EmptyResult:
                return recording, "no flagger_canary_weight series: the plan's weights assumed"


def _on_grid(when: datetime, interval_s: float, rounding: Callable[[float], int]) -> datetime:
    """``when`` rounded to the epoch-aligned grid of ``interval_s`` (Prometheus' step grid)."""
    return datetime.fromtimestamp(rounding(when.timestamp() / interval_s) * interval_s, UTC)
