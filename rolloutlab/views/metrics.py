"""Verdicts as Prometheus series, named and labelled like Flagger's own.

Flagger's recorder (fluxcd/flagger ``pkg/metrics/recorder.go``, ``NewRecorder(controller)``
with the subsystem ``flagger``) exports ``<subsystem>_canary_status{name, namespace}``
(0 running, 1 successful, 2 failed: ``SetStatus``), ``<subsystem>_canary_weight{workload,
namespace}`` (the canary's weight on ``<target>`` and the primary's on ``<target>-primary``:
``SetWeight``) and ``<subsystem>_canary_metric_analysis{name, namespace, metric}`` (each
metric's last value: ``SetAnalysis``), where ``name`` is the Canary's target. rolloutlab
exports the same shapes under the subsystem ``rolloutlab``, so a Flagger dashboard or
alert works by changing the prefix, and adds what a statistical judge knows besides: the
decision, each metric's classification and whether the canary could be judged at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from rolloutlab.judges.verdict import CLASSIFICATIONS, DECISIONS, Decision, MetricResult

SUBSYSTEM = "rolloutlab"
#: Flagger's ``SetStatus`` codes, by rolloutlab decision.
STATUS_CODES: dict[Decision, int] = {"continue": 0, "promote": 1, "rollback": 2}
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class CanaryState:
    """What one canary's series say: ``target`` is Flagger's ``name`` label (the Canary's
    ``targetRef``), ``judged`` False when there was no data or Prometheus failed."""

    target: str
    namespace: str
    decision: Decision
    weight: float | None
    metrics: tuple[MetricResult, ...] = ()
    judged: bool = True


class VerdictCollector:
    """A ``prometheus_client`` collector over ``states()``, read at every scrape."""

    def __init__(self, states: Callable[[], Iterable[CanaryState]]) -> None:
        self.states = states

    def collect(self):
        p = SUBSYSTEM
        status = GaugeMetricFamily(
            f"{p}_canary_status",
            "Last canary analysis result (0 running, 1 successful, 2 failed), as Flagger's",
            labels=["name", "namespace"],
        )
        weight = GaugeMetricFamily(
            f"{p}_canary_weight",
            "The canary's and the primary's traffic weight judged last, as Flagger's",
            labels=["workload", "namespace"],
        )
        analysis = GaugeMetricFamily(
            f"{p}_canary_metric_analysis",
            "Last canary analysis estimate per metric (canary vs primary, in the metric's unit)",
            labels=["name", "namespace", "metric"],
        )
        decision = GaugeMetricFamily(
            f"{p}_canary_decision",
            "1 for the judge's current decision (promote, continue, rollback), else 0",
            labels=["name", "namespace", "decision"],
        )
        result = GaugeMetricFamily(
            f"{p}_canary_metric_result",
            "1 for each metric's classification (pass, fail, nodata, inconclusive), else 0",
            labels=["name", "namespace", "metric", "classification"],
        )
        judged = GaugeMetricFamily(
            f"{p}_canary_judged",
            "1 when the canary could be judged from data, 0 when data or Prometheus were missing",
            labels=["name", "namespace"],
        )
        for s in self.states():
            ids = [s.target, s.namespace]
            status.add_metric(ids, STATUS_CODES[s.decision])
            judged.add_metric(ids, 1.0 if s.judged else 0.0)
            for d in DECISIONS:
                decision.add_metric([*ids, d], 1.0 if d == s.decision else 0.0)
            if s.weight is not None:
                weight.add_metric([f"{s.target}-primary", s.namespace], 100.0 - s.weight)
                weight.add_metric([s.target, s.namespace], s.weight)
            for m in s.metrics:
                if m.estimate is not None and math.isfinite(m.estimate):
                    analysis.add_metric([*ids, m.name], m.estimate)
                for c in CLASSIFICATIONS:
                    result.add_metric([*ids, m.name, c], 1.0 if c == m.classification else 0.0)
        yield from (status, weight, analysis, decision, result, judged)


def registry(states: Callable[[], Iterable[CanaryState]]) -> CollectorRegistry:
    """A registry holding only the verdict series of ``states()``."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(VerdictCollector(states))
    return reg


def exposition(states: Iterable[CanaryState]) -> bytes:
    """The Prometheus text exposition of ``states`` (``/metrics``' body)."""
    listed = list(states)
    return generate_latest(registry(lambda: listed))


__all__ = ["CONTENT_TYPE", "CanaryState", "VerdictCollector", "exposition", "registry"]
