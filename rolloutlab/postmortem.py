"""Replay a recorded rollout tick by tick under several judges, and ask "what if".

A post-mortem wants three things side by side: what the weight was, what each judge saw
and decided at every tick, and what would have happened under another spec. A replay
runs every judge over the same ticks; ``what_if`` re-runs them over a grid of spec values
so a team can tune its Canary manifest on its own past rollouts.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Literal, cast

import polars as pl

from rolloutlab import _html
from rolloutlab.errors import SpecError
from rolloutlab.frames import tick_table
from rolloutlab.judges import Spec, Verdict, judge, roles
from rolloutlab.sources.flagger import STATUS_METRIC
from rolloutlab.sources.recording import Recording

DEFAULT_JUDGES = ("flagger", "kayenta", "rolloutlab")
WeightSource = Literal["recorded", "plan"]
_VERBS = {"promote": "promotes", "rollback": "rolls back"}


@dataclass(frozen=True)
class Decision:
    """A judge's final decision on the replayed rollout, and when it came."""

    judge: str
    decision: str
    at: datetime | None
    minutes: float | None
    reason: str

    def sentence(self) -> str:
        """One plain sentence, e.g. "rolloutlab rolls back at 10:17 (16 min in) on ..."."""
        why = self.reason.removeprefix(f"{self.decision}: ")
        if self.at is None:
            return f"{self.judge} had not decided by the end of the recording: {why}"
        start = self.at - timedelta(minutes=self.minutes or 0)
        same_day = start.date() == self.at.date()
        when = f"{self.at:%H:%M} UTC" if same_day else f"{self.at:%Y-%m-%d %H:%M} UTC"
        return (
            f"{self.judge} {_VERBS.get(self.decision, self.decision)} at {when} "
            f"({self.minutes:g} min in): {why}"
        )


@dataclass(frozen=True, eq=False)
class Replay:
    """Every judge's verdict (with its per-tick history) on one recording and spec."""

    recording: Recording
    spec: Spec
    verdicts: Mapping[str, Verdict]
    weights: WeightSource = "plan"
    origin: datetime | None = field(default=None, repr=False)

    @cached_property
    def decisions(self) -> dict[str, Decision]:
        """Judge name → its final :class:`Decision`."""
        return {name: self._decision(v) for name, v in self.verdicts.items()}

    @cached_property
    def timeline(self) -> pl.DataFrame:
        """One row per judge and tick: weight in force, decision, and the judge's state
        (Flagger's failed checks, Kayenta's score, rolloutlab's smallest always-valid
        p-value) plus which metrics failed."""
        recorded = self._recorded_weights()
        rows = []
        for name, verdict in self.verdicts.items():
            for tick in verdict.ticks:
                weight = recorded.get(tick.timestamp, tick.weight)
                p_values = [m.p_value for m in tick.metrics if m.p_value is not None]
                rows.append(
                    {
                        "timestamp": tick.timestamp,
                        "judge": name,
                        "weight": _float(weight),
                        "decision": tick.decision,
                        "failed_checks": tick.state.get("failed_checks"),
                        "score": _float(tick.state.get("score")),
                        "min_p_value": min(p_values) if p_values else None,
                        "failing": ", ".join(
                            m.name for m in tick.metrics if m.classification == "fail"
                        ),
                    }
                )
        schema: dict[str, pl.DataType | type[pl.DataType]] = {
            "timestamp": pl.Datetime("us", "UTC"),
            "judge": pl.String,
            "weight": pl.Float64,
            "decision": pl.String,
            "failed_checks": pl.Int64,
            "score": pl.Float64,
            "min_p_value": pl.Float64,
            "failing": pl.String,
        }
        return pl.DataFrame(rows, schema=schema, orient="row")

    @cached_property
    def evidence(self) -> pl.DataFrame:
        """One row per judge, tick and metric: classification, estimate, interval, p-value."""
        rows = [
            {
                "timestamp": tick.timestamp,
                "judge": name,
                "metric": m.name,
                "classification": m.classification,
                "estimate": _float(m.estimate),
                "ci_low": _float(m.ci[0]) if m.ci else None,
                "ci_high": _float(m.ci[1]) if m.ci else None,
                "p_value": _float(m.p_value),
                "unit": m.unit,
            }
            for name, verdict in self.verdicts.items()
            for tick in verdict.ticks
            for m in tick.metrics
        ]
        schema: dict[str, pl.DataType | type[pl.DataType]] = {
            "timestamp": pl.Datetime("us", "UTC"),
            "judge": pl.String,
            "metric": pl.String,
            "classification": pl.String,
            "estimate": pl.Float64,
            "ci_low": pl.Float64,
            "ci_high": pl.Float64,
            "p_value": pl.Float64,
            "unit": pl.String,
        }
        return pl.DataFrame(rows, schema=schema, orient="row")

    def summary(self) -> str:
        """One sentence per judge, e.g. "flagger promotes at 10:42 (...); rolloutlab ...",
        and what Flagger itself did when the recording holds its series."""
        lines = [d.sentence() for d in self.decisions.values()]
        recorded = self._flagger_recorded()
        return "\n".join([*lines, recorded] if recorded else lines)

    def _flagger_recorded(self) -> str | None:
        """One sentence from Flagger's own series (fetched with ``flagger=True``), if any."""
        frame = self.recording.frame
        status = frame.filter(pl.col("metric") == STATUS_METRIC).sort("timestamp")
        if status.is_empty():
            return None
        weights = frame.filter((pl.col("metric") == "weight") & (pl.col("variant") == "canary"))
        # the value column is Float64; polars types max() widely
        top = cast(float | None, weights["value"].max()) if weights.height else None
        failed = status.filter(pl.col("value") == 2)
        if failed.height:
            outcome = f"failed at {failed['timestamp'][0]:%H:%M} UTC"
        else:
            outcome = "still progressing" if status["value"][-1] == 0 else "did not fail"
        reach = f"weight up to {top:g}%, " if top is not None else ""
        return f"Flagger itself (recorded): {reach}{outcome}"

    def what_if(self, **grid: Any) -> pl.DataFrame:
        """Re-run the judges over every combination of spec values.

        Keys are spec fields in Flagger's or snake_case spelling (``threshold``,
        ``interval``, ``stepWeight``, ``maxWeight``, ``stepWeights``, ``alpha``, ...) plus
        ``margin`` (every metric's tolerated margin); each value is one value or a list.
        Returns one row per combination and judge with the decision and the minutes from
        the start of the rollout to it.
        """
        if not grid:
            raise SpecError("what_if needs at least one spec field, e.g. what_if(threshold=[2, 5])")
        rows = []
        for changes in grid_points(grid):
            other = replay(
                self.recording,
                changed_spec(self.spec, changes),
                judges=tuple(self.verdicts),
                weights=self.weights,
            )
            for d in other.decisions.values():
                rows.append(
                    {
                        **{k: grid_cell(v) for k, v in changes.items()},
                        "judge": d.judge,
                        "decision": d.decision,
                        "decided_at": d.at,
                        "minutes_to_decision": d.minutes,
                    }
                )
        return pl.DataFrame(rows)

    def _decision(self, verdict: Verdict) -> Decision:
        minutes = None
        if verdict.decided_at is not None and self.origin is not None:
            minutes = round((verdict.decided_at - self.origin) / timedelta(minutes=1), 2)
        return Decision(
            verdict.judge, verdict.decision, verdict.decided_at, minutes, verdict.reason
        )

    def _recorded_weights(self) -> dict[datetime, float]:
        if self.weights != "recorded":
            return {}
        control, treatment = roles(self.recording, self.spec)
        table = tick_table(
            self.recording.frame, self.spec.interval_s, variants=(control, treatment)
        )
        return dict(zip(table.ends, table.weight(treatment).tolist(), strict=True))

    def __repr__(self) -> str:
        parts = ", ".join(f"{d.judge} {d.decision}" for d in self.decisions.values())
        return f"<Replay {parts}>"

    @_html.never_raises
    def _repr_html_(self) -> str:
        rows = [
            (
                _html.esc(d.judge),
                _html.badge(d.decision),
                _html.when(d.at) if d.at else "not decided",
                _html.num(d.minutes) if d.minutes is not None else _html.DASH,
                d.reason.removeprefix(f"{d.decision}: "),
            )
            for d in self.decisions.values()
        ]
        table = _html.table(("judge", "decision", "when", "minutes in", "why"), rows)
        title = f"Replay of {self.recording.start:%Y-%m-%d %H:%M} UTC · weights: {self.weights}"
        return _html.card(title, table)


def replay(
    recording: Recording,
    spec: Spec | Mapping[str, Any] | str | None = None,
    judges: Sequence[str] = DEFAULT_JUDGES,
    *,
    weights: WeightSource | None = None,
) -> Replay:
    """Run ``judges`` over ``recording`` tick by tick.

    ``weights="recorded"`` makes Flagger follow the recording's own weight timeline (a
    real rollout that was recorded); ``"plan"`` steps the spec's plan. By default the
    recording's timeline is followed when no spec is given and the recording has one.
    """
    if isinstance(judges, str):
        judges = (judges,)
    if weights is None:
        weights = "recorded" if spec is None and "weight" in recording.metrics else "plan"
    if weights not in ("recorded", "plan"):
        raise SpecError(f"weights must be 'recorded' or 'plan', got {weights!r}")
    spec = Spec.load(spec)
    verdicts = {}
    for name in judges:
        options: dict[str, Any] = (
            {"follow_recorded_weights": True} if name == "flagger" and weights == "recorded" else {}
        )
        verdicts[name] = judge(recording, spec, judge=name, **options)
    start = recording.start  # None for an empty recording (no judge runs on one)
    origin = (
        None if start is None else start - timedelta(seconds=recording.step_s or spec.interval_s)
    )
    return Replay(recording, spec, verdicts, weights, origin)


def grid_points(grid: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every combination of ``grid``'s values, in order (a value that is not a list is
    one value): ``{"threshold": [2, 5], "margin": 0.1}`` gives two points."""
    axes = {k: list(v) if _is_list(v) else [v] for k, v in grid.items()}
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def changed_spec(spec: Spec, changes: Mapping[str, Any]) -> Spec:
    """``spec`` with ``changes`` (spec fields, or ``margin`` for every metric's margin)."""
    changes = dict(changes)
    margin = changes.pop("margin", None)
    if margin is not None:
        changes["metrics"] = tuple(replace(m, margin=float(margin)) for m in spec.metrics)
    return spec.replace(**changes)


def _is_list(value: Any) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping)


def grid_cell(value: Any) -> Any:
    """A grid value as a table cell: lists and mappings as text."""
    return str(value) if isinstance(value, list | tuple | dict) else value


def _float(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x
