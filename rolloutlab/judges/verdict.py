"""The result types every judge shares: per-metric results, per-tick states, the verdict."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from rolloutlab import _html

Decision = Literal["promote", "continue", "rollback"]
Classification = Literal["pass", "fail", "nodata", "inconclusive"]
DECISIONS: tuple[Decision, ...] = ("promote", "continue", "rollback")
CLASSIFICATIONS: tuple[Classification, ...] = ("pass", "fail", "nodata", "inconclusive")


@dataclass(frozen=True)
class MetricResult:
    """One metric's evidence at one tick.

    ``estimate``/``ci`` are in ``unit`` (e.g. ``"ratio"`` for canary/primary error-rate
    ratio, ``"ms"``, ``"%"``). ``reason`` is a plain-language sentence for people.
    ``details`` holds judge-specific values (Kayenta's label, Flagger's raw value, ...).
    """

    name: str
    classification: Classification
    reason: str
    estimate: float | None = None
    ci: tuple[float, float] | None = None
    p_value: float | None = None
    unit: str = ""
    critical: bool = True
    approximate: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    def __repr__(self) -> str:
        est = (
            "" if self.estimate is None else f" {self.estimate:.4g}{self.unit and ' ' + self.unit}"
        )
        return f"<{self.name}: {self.classification}{est}>"

    @_html.never_raises
    def _repr_html_(self) -> str:
        """A card: name, classification badge, estimate with interval, p-value, reason."""
        rows = {
            "result": _html.badge(self.classification),
            "estimate": _html.estimate(self.estimate, self.unit),
            "interval": _html.interval(self.ci, self.unit),
            "p-value": _html.pvalue(self.p_value),
            "why": self.reason,
        }
        if not self.critical:
            rows["critical"] = "no (reported, does not decide)"
        if self.approximate:
            rows["approximate"] = "yes (see why)"
        return _html.card(f"metric {self.name}", _html.kv_table(rows))


@dataclass(frozen=True)
class TickState:
    """What a judge saw and decided at the end of one tick (the replay timeline's row).

    ``state`` carries the judge's running state in plain numbers (Flagger's
    ``failed_checks``, Kayenta's ``score``, rolloutlab's per-metric evidence).
    ``hold`` is why the weight must not advance after a ``continue`` (invalid data, a
    sample-ratio mismatch, a failed check, the bake phase), None when it may.
    """

    timestamp: datetime
    weight: float | None
    decision: Decision
    metrics: tuple[MetricResult, ...] = ()
    state: dict[str, Any] = field(default_factory=dict)
    hold: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class Verdict:
    """A judge's decision on a rollout up to some tick.

    ``decided_at`` is the tick where the decision was reached (None for continue);
    ``metrics`` the per-metric results at that tick (or the last one); ``ticks`` the
    whole per-tick history, which is what a replay shows.
    """

    judge: str
    decision: Decision
    decided_at: datetime | None
    metrics: tuple[MetricResult, ...]
    reason: str
    ticks: tuple[TickState, ...] = ()
    spec: Any = None
    details: dict[str, Any] = field(default_factory=dict)

    def metric(self, name: str) -> MetricResult:
        """The result for metric ``name`` (KeyError listing the names otherwise)."""
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(
            f"no metric {name!r} in this verdict; it has {[m.name for m in self.metrics]}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: decision, when, why, per-metric results and the tick history."""
        return _jsonable(
            {
                "judge": self.judge,
                "decision": self.decision,
                "decided_at": self.decided_at,
                "reason": self.reason,
                "metrics": [m.to_dict() for m in self.metrics],
                "ticks": [t.to_dict() for t in self.ticks],
                "details": self.details,
            }
        )

    def __repr__(self) -> str:
        when = f" at {self.decided_at:%Y-%m-%d %H:%M} UTC" if self.decided_at else ""
        return f"<Verdict {self.judge}: {self.decision}{when} · {len(self.metrics)} metrics>"

    @_html.never_raises
    def _repr_html_(self) -> str:
        """A card: decision badge, judge, when, why, and the per-metric table."""
        last = f", last tick {_html.when(self.ticks[-1].timestamp)}" if self.ticks else ""
        facts = {
            "when": _html.when(self.decided_at) if self.decided_at else f"not decided yet{last}",
            "why": self.reason,
            "history": f"{len(self.ticks)} ticks",
        }
        title = _html.Html(f"{_html.badge(self.decision)} {_html.esc(self.judge)} judge")
        return _html.card(title, _html.kv_table(facts), _html.metric_table(self.metrics))


def _jsonable(value: Any) -> Any:
    """Datetimes to ISO strings, tuples to lists, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _jsonable(value.item())
    return value
