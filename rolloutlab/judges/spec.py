"""What a judge is asked: the analysis spec (Flagger's ``spec.analysis`` plus rolloutlab's own).

SKELETON written by the lead: the dataclasses and the weight plan are the contract the
judges share. Parsing (``Spec.load``/``from_dict``: Flagger Canary manifests and
rolloutlab YAML) is filled in by the judges work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MetricKind = Literal["ratio", "latency", "gauge", "counter"]
Direction = Literal["increase", "decrease", "either"]


@dataclass(frozen=True)
class MetricSpec:
    """One metric to judge.

    kind:
      ``ratio``   numerator/denominator counters, e.g. errors among requests (the request
                  is the unit; compared as a rate ratio canary/primary);
      ``latency`` a bucket histogram (e.g. ``latency_ms``), compared per request;
      ``gauge``   a level such as CPU, compared on autocorrelation-sized block means;
      ``counter`` a count per tick compared as a rate per unit of ``denominator``.
    direction: which change is harmful (``increase`` for errors and latency).
    margin: tolerated relative harm; rollback needs evidence that the harm exceeds it
      (errors: the canary/primary rate ratio is above ``1 + margin``).
    threshold_min/threshold_max/interval_s/quantile: Flagger's ``thresholdRange``, the
      metric's lookback interval, and the latency quantile (request-duration is p99).
    """

    name: str
    kind: MetricKind
    metric: str
    denominator: str | None = None
    direction: Direction = "increase"
    critical: bool = True
    margin: float = 0.0
    alpha: float | None = None
    threshold_min: float | None = None
    threshold_max: float | None = None
    interval_s: float = 60.0
    quantile: float = 0.99
    must_have_data: bool = False


@dataclass(frozen=True)
class KayentaSettings:
    """Kayenta's scoring and judgment schedule (NetflixACAJudge defaults)."""

    pass_score: float = 95.0
    marginal_score: float = 75.0
    confidence: float = 0.98
    allowed_increase: float = 1.0
    allowed_decrease: float = 1.0
    critical_increase: float = 1.0
    critical_decrease: float = 1.0
    effect_size_rule: float = 0.25
    judgment_interval_s: float = 1800.0
    lifetime_s: float | None = None
    remove_outliers: bool = False


def default_metrics() -> tuple[MetricSpec, ...]:
    """Errors, latency and success rate as Flagger users know them, judged canary vs primary."""
    return (
        MetricSpec(
            "request-success-rate", "ratio", "errors", "requests", margin=0.1, threshold_min=99.0
        ),
        MetricSpec("request-duration", "latency", "latency_ms", margin=0.1, threshold_max=500.0),
    )


@dataclass(frozen=True)
class Spec:
    """The analysis: tick interval, failure threshold, weight plan, metrics, error budget."""

    interval_s: float = 60.0
    threshold: int = 5
    max_weight: float = 50.0
    step_weight: float = 10.0
    step_weights: tuple[float, ...] = ()
    step_weight_promotion: float = 0.0
    iterations: int | None = None
    metrics: tuple[MetricSpec, ...] = field(default_factory=default_metrics)
    alpha: float = 0.05
    judge: str = "rolloutlab"
    min_exposure: float = 0.0
    control: str | None = None
    treatment: str | None = None
    name: str | None = None
    namespace: str | None = None
    kayenta: KayentaSettings = field(default_factory=KayentaSettings)

    def weight_plan(self) -> tuple[float, ...]:
        """Canary weights tick after tick until promotion, as Flagger steps them.

        ``stepWeights`` is used as given; otherwise steps of ``stepWeight`` until the
        weight reaches ``maxWeight`` (capped at 100, so it may overshoot maxWeight as
        Flagger does: max 50 step 20 gives 20, 40, 60).
        """
        if self.step_weights:
            return tuple(self.step_weights)
        plan, weight = [], 0.0
        while weight < self.max_weight:
            weight = min(weight + self.step_weight, 100.0)
            plan.append(weight)
        return tuple(plan)
