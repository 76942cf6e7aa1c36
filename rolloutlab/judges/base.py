"""The judge interface and the driver that walks a recording tick by tick.

A judge is incremental: ``observe(table, k)`` consumes tick ``k`` (every earlier tick
has been observed) and returns that tick's :class:`TickState`. The same object serves
a recorded rollout (the driver below) and a live loop (which appends ticks as they
arrive), and the cost of one tick does not grow with the rollout's length.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import ClassVar

from rolloutlab.frames import TickTable
from rolloutlab.judges.verdict import TickState, Verdict
from rolloutlab.specs import Spec


class Judge(ABC):
    """Base of the flagger, kayenta and rolloutlab judges."""

    name: ClassVar[str]
    #: Whether the judge compares the variants' histogram buckets with each other: the
    #: driver then cuts them to the edges both report (:func:`~rolloutlab.frames.common_buckets`).
    #: Flagger's and Kayenta's read each variant's own quantile, so they leave them be.
    compares_buckets: ClassVar[bool] = False

    def __init__(self, spec: Spec, *, control: str, treatment: str) -> None:
        self.spec = spec
        self.control = control
        self.treatment = treatment
        self.history: list[TickState] = []

    @abstractmethod
    def observe(self, table: TickTable, k: int) -> TickState:
        """Judge tick ``k`` of ``table`` and remember its state."""

    @property
    def decided(self) -> bool:
        return bool(self.history) and self.history[-1].decision != "continue"

    def verdict(self) -> Verdict:
        """The decision so far: the first terminal tick's, else continue at the last tick."""
        if not self.history:
            return Verdict(self.name, "continue", None, (), "no complete tick yet", (), self.spec)
        last = self.history[-1]
        decided_at: datetime | None = last.timestamp if last.decision != "continue" else None
        return Verdict(
            judge=self.name,
            decision=last.decision,
            decided_at=decided_at,
            metrics=last.metrics,
            reason=self.explain(last),
            ticks=tuple(self.history),
            spec=self.spec,
        )

    def explain(self, state: TickState) -> str:
        """One plain-language sentence for the verdict (judges refine this)."""
        failing = [m for m in state.metrics if m.classification == "fail"]
        if state.decision == "rollback" and failing:
            return f"rollback: {failing[0].reason}"
        return f"{state.decision}: " + "; ".join(m.reason for m in state.metrics[:3])
