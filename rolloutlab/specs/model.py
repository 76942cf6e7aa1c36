"""What a judge is asked: the analysis spec (Flagger's ``spec.analysis`` plus rolloutlab's own).

One :class:`Spec` serves every judge. :meth:`Spec.load` reads a Flagger ``Canary``
(with its ``MetricTemplate`` objects), an Argo Rollouts ``Rollout`` (with its analysis
templates), or rolloutlab's own YAML, from text, a file of several documents or a folder
(:mod:`rolloutlab.specs.loading`). rolloutlab's YAML, with every key optional (camelCase
as shown, or snake_case)::

    name: podinfo              # names, for reports
    namespace: test
    target: podinfo
    judge: rolloutlab          # flagger | kayenta | rolloutlab
    interval: 1m               # tick: a Go duration ("30s", "1m30s") or seconds
    threshold: 5               # Flagger: failed checks before rollback
    maxWeight: 50              # Flagger weight plan: stepWeight up to maxWeight, or
    stepWeight: 10             #   stepWeights (then maxWeight is its last value; if both
    stepWeights: [5, 10, 25]   #   stepWeight > 0 and stepWeights are set, stepWeight wins)
    stepWeightPromotion: 0
    iterations: 10             # Flagger blue/green (or A/B with abTesting: true)
    alpha: 0.05                # the error budget shared by the metrics
    minExposure: 0             # canary requests before a promotion may be considered
    promotion: evidence        # evidence (every critical metric shown within its
                               #   promotionMargin) | plan (Flagger: the plan's end)
    maxAnalysisTime: 1h5m      # then onInconclusive decides (default: the plan + 1h)
    onInconclusive: hold       # hold (keep judging, ask a person) | rollback | promote
                               #   (promote only on valid data)
    control: primary           # variants (default: the recording's roles)
    treatment: canary
    kayenta: {passScore: 95, marginalScore: 75, confidence: 0.98, allowedIncrease: 1.0,
              allowedDecrease: 1.0, criticalIncrease: 1.0, criticalDecrease: 1.0,
              effectSizeRule: 0.25, judgmentInterval: 30m, lifetime: 3h,
              removeOutliers: false, outlierFactor: 3, nanStrategy: remove,
              effectSizeMeasure: meanRatio, groupWeights: {errors: 60, latency: 40}}
    metrics:
      - name: request-success-rate   # the built-in names take their defaults
        thresholdRange: {min: 99}
      - name: cpu
        kind: gauge                  # ratio | latency | gauge | counter
        metric: cpu                  # the recording's metric (default: name)
        denominator: null            # ratio/counter: the counter divided by
        direction: increase          # increase | decrease | either (which change harms)
        critical: true
        margin: 0.1                  # tolerated relative harm: rollback beyond it
        promotionMargin: 0.2         # promotion needs evidence of harm below it
        alpha: 0.01
        thresholdRange: {max: 0.9}   # Flagger judge
        interval: 1m                 # Flagger judge lookback
        quantile: 0.99               # latency
        mustHaveData: false          # Kayenta
        groups: [system]             # Kayenta groups
        queries:                     # a gauge's PromQL per variant (from a template)
          primary: avg(cpu{pod=~"podinfo-primary-.*"})
          canary: avg(cpu{pod=~"podinfo-[0-9a-z]+-[0-9a-z]+"})
    provider: istio                  # the query preset of the built-in metrics
    router: istio                    # the route object's kind

A bad spec raises :class:`~rolloutlab.errors.SpecError` naming the field path (for a
manifest ``spec.analysis.metrics[1].thresholdRange.min``) and the fix; an unknown key is
an error with a did-you-mean suggestion.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from rolloutlab.errors import SpecError

MetricKind = Literal["ratio", "latency", "gauge", "counter"]
Direction = Literal["increase", "decrease", "either"]
Promotion = Literal["evidence", "plan"]
OnInconclusive = Literal["rollback", "hold", "promote"]
NanStrategy = Literal["remove", "replace"]
EffectSizeMeasure = Literal["meanRatio", "cles"]

#: The judges a spec may name (the registry in :mod:`rolloutlab.judges` holds them).
JUDGE_NAMES = ("flagger", "kayenta", "rolloutlab")
#: The kinds of route object that carry a traffic split (:mod:`rolloutlab.control.routers`).
ROUTER_KINDS = (
    "istio",
    "gatewayapi",
    "gatewayapi:v1",
    "gatewayapi:v1beta1",
    "smi",
    "smi:v1alpha1",
    "smi:v1alpha2",
    "smi:v1alpha3",
    "linkerd",
    "osm",
    "nginx",
    "traefik",
    "contour",
)

#: Promotion margins by metric kind when a metric does not state one (the error rate at
#: most 1.5x the primary's, latency at most 10% slower); chosen with the benchmark in
#: benchmarks/decision_quality.py (see benchmarks/RESULTS.md).
DEFAULT_PROMOTION_MARGIN = {"ratio": 0.5, "counter": 0.5, "latency": 0.1, "gauge": 0.1}
#: How long the bake phase may last after the plan when maxAnalysisTime is not set.
DEFAULT_BAKE_S = 3600.0


@dataclass(frozen=True)
class MetricSpec:
    """One metric to judge.

    kind:
      ``ratio``   numerator/denominator counters, e.g. errors among requests (the request
                  is the unit; compared as a rate ratio canary/primary);
      ``latency`` a bucket histogram (e.g. ``latency_ms``), compared per request;
      ``gauge``   a level such as CPU, compared on autocorrelation-sized block means;
      ``counter`` a count per tick compared as a rate per unit of ``denominator``.
    direction/critical: which change is harmful (``increase`` for errors and latency) and
      whether a failure rolls back; None (unset) lets each judge apply its own default
      (rolloutlab and Flagger: increase and critical; Kayenta: either, not critical, as
      NetflixACAJudge), read with :meth:`direction_or` and :meth:`critical_or`.
    margin: tolerated relative harm; rollback needs evidence that the harm exceeds it
      (errors: the canary/primary rate ratio is above ``1 + margin``; latency: the
      canary's latency distribution is shifted by more than ``+margin``, e.g. 0.05 = 5%).
    promotion_margin: the promotion bound, at least ``margin``; promotion needs evidence
      that the harm is below it (errors at most ``1 + promotion_margin`` times the
      primary's). None: :data:`DEFAULT_PROMOTION_MARGIN` for the kind (or ``margin``
      if that is larger); :meth:`promotion_tolerance` resolves it.
    threshold_min/threshold_max/interval_s/quantile: Flagger's ``thresholdRange``, the
      metric's lookback interval, and the latency quantile (request-duration is p99).
    must_have_data/groups: Kayenta's ``mustHaveData`` and the metric's scoring groups
      (none: the group ``default``).
    template: where the value comes from when it is not a built-in (a Flagger
      ``MetricTemplate``, an Argo ``AnalysisTemplate`` or an inline query), for reports.
    queries: the PromQL per variant, rendered from that template (``(("primary", q),
      ("canary", q))``); ``rolloutlab fetch --spec`` records each as a gauge per tick under
      ``metric``. Empty: the recording must already hold the metric.
    success_condition/failure_condition/count/failure_limit/inconclusive_limit: an Argo
      metric's settings as written (the conditions' plain bounds are also set as
      ``threshold_min``/``threshold_max``).
    kayenta: this metric's own classifier settings (NaN strategy, outliers, effect sizes),
      as Kayenta reads them per metric; None: the spec's ``kayenta``.
    """

    name: str
    kind: MetricKind
    metric: str
    denominator: str | None = None
    direction: Direction | None = None
    critical: bool | None = None
    margin: float = 0.0
    alpha: float | None = None
    threshold_min: float | None = None
    threshold_max: float | None = None
    interval_s: float = 60.0
    quantile: float = 0.99
    must_have_data: bool = False
    groups: tuple[str, ...] = ()
    template: str | None = None
    promotion_margin: float | None = None
    queries: tuple[tuple[str, str], ...] = ()
    success_condition: str | None = None
    failure_condition: str | None = None
    count: int | None = None
    failure_limit: int | None = None
    inconclusive_limit: int | None = None
    kayenta: KayentaSettings | None = None

    def direction_or(self, default: Direction) -> Direction:
        """The direction stated, else the judge's ``default``."""
        return default if self.direction is None else self.direction

    def critical_or(self, default: bool) -> bool:
        """Whether the metric is critical as stated, else the judge's ``default``."""
        return default if self.critical is None else self.critical

    def promotion_tolerance(self) -> float:
        """The promotion margin in force: stated, or the kind's default; never below margin."""
        stated = self.promotion_margin
        return max(self.margin, DEFAULT_PROMOTION_MARGIN[self.kind] if stated is None else stated)


@dataclass(frozen=True)
class KayentaSettings:
    """Kayenta's scoring and judgment schedule (NetflixACAJudge defaults).

    ``effect_size_rule`` is the classifier's tolerance: an interval must clear
    ``effect_size_rule * |estimate|``. ``allowed_*``/``critical_*`` bound the effect size
    (``effect_size_measure``: the mean ratio, or the common-language effect size ``cles``,
    whose neutral value is 0.5). ``group_weights`` are percent per group as pairs.
    ``lifetime_s`` None means the end of the recording.
    """

    pass_score: float = 95.0
    marginal_score: float = 75.0
    confidence: float = 0.98
    allowed_increase: float = 1.0
    allowed_decrease: float = 1.0
    critical_increase: float = 1.0
    critical_decrease: float = 1.0
    effect_size_rule: float = 0.25
    judgment_interval_s: float | None = None
    lifetime_s: float | None = None
    remove_outliers: bool = False
    outlier_factor: float = 3.0
    nan_strategy: NanStrategy = "remove"
    effect_size_measure: EffectSizeMeasure = "meanRatio"
    group_weights: tuple[tuple[str, float], ...] = ()


def default_metrics() -> tuple[MetricSpec, ...]:
    """Errors and latency as Flagger users know them, judged canary vs primary.

    Rollback: any evidence of a higher error rate, or of latency more than 5% slower.
    Promotion: evidence that errors are at most 1.5x and latency at most 10% slower
    (the kinds' default promotion margins). Chosen with benchmarks/decision_quality.py.
    """
    return (
        MetricSpec(
            "request-success-rate",
            "ratio",
            "errors",
            "requests",
            direction="increase",
            critical=True,
            margin=0.0,
            threshold_min=99.0,
        ),
        MetricSpec(
            "request-duration",
            "latency",
            "latency_ms",
            direction="increase",
            critical=True,
            margin=0.05,
            threshold_max=500.0,
        ),
    )


BUILTIN_METRICS = ("request-success-rate", "request-duration")


@dataclass(frozen=True)
class Spec:
    """The analysis: tick interval, failure threshold, weight plan, metrics, error budget.

    With ``step_weights`` the plan follows them: ``step_weight`` is then 0 and
    ``max_weight`` their last value (capped at 100), as Flagger reads them.
    ``ab_testing`` marks a Flagger A/B analysis (``analysis.match`` with ``iterations``);
    ``iterations`` alone is blue/green.

    Promotion (rolloutlab's judge): with ``promotion="evidence"`` the plan's end is not
    enough; every critical metric must be shown within its promotion margin, and until
    then the canary bakes at the top weight. ``max_analysis_s`` bounds the whole
    analysis (None: the plan's duration plus :data:`DEFAULT_BAKE_S`); when it runs out
    without that evidence, ``on_inconclusive`` decides: ``hold`` (the default, as Argo
    Rollouts pauses on an inconclusive analysis) keeps the weight, says so, and keeps
    judging, so harm still rolls back and evidence still promotes; ``rollback`` ends
    it in the known-good state; ``promote`` promotes unless the data are invalid.
    ``promotion="plan"`` promotes at the plan's end as Flagger does.

    ``provider`` is the query preset the built-in metrics are fetched with (Flagger's
    ``spec.provider``; ``rolloutlab fetch --spec`` uses it) and ``router`` the kind of
    route object that carries the weights (Flagger's provider, Argo's ``trafficRouting``).
    ``names`` are the Canary's ``service``, ``ingress`` and ``route`` names, which some
    presets' queries use besides the target (nginx's ingress, contour's service).
    """

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
    target: str | None = None
    ab_testing: bool = False
    promotion: Promotion = "evidence"
    max_analysis_s: float | None = None
    on_inconclusive: OnInconclusive = "hold"
    provider: str | None = None
    router: str | None = None
    names: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.step_weights:
            object.__setattr__(self, "step_weight", 0.0)
            object.__setattr__(self, "max_weight", min(100.0, float(self.step_weights[-1])))

    def plan_duration_s(self) -> float:
        """How long the plan takes with every check passing (steps or iterations x interval)."""
        return self.interval_s * (self.iterations or len(self.weight_plan()))

    def analysis_deadline_s(self) -> float:
        """Seconds of analysis after which ``on_inconclusive`` decides."""
        if self.max_analysis_s is not None:
            return self.max_analysis_s
        return self.plan_duration_s() + DEFAULT_BAKE_S

    def weight_plan(self) -> tuple[float, ...]:
        """Canary weights tick after tick until promotion, as Flagger steps them.

        ``stepWeights`` is used as given; otherwise steps of ``stepWeight`` until the
        weight reaches ``maxWeight`` (capped at 100, so it may overshoot maxWeight as
        Flagger does: max 50 step 20 gives 20, 40, 60). Empty without a step (a Flagger
        blue/green or A/B analysis, driven by ``iterations``).
        """
        if self.step_weights:
            return tuple(self.step_weights)
        if self.step_weight <= 0:
            return ()
        plan, weight = [], 0.0
        while weight < self.max_weight:
            weight = min(weight + self.step_weight, 100.0)
            plan.append(weight)
        return tuple(plan)

    # -- loading and writing (rolloutlab.specs.loading and .native do the work) -----

    @classmethod
    def load(
        cls, source: Spec | Mapping[str, Any] | str | Path | None, *, name: str | None = None
    ) -> Spec:
        """A spec from a Spec, a dict, YAML text, or the path of a file or folder of
        manifests (None: the defaults).

        A file may hold several YAML documents and a folder several files: the Flagger
        Canary, Argo Rollout or rolloutlab spec among them is used, with the templates it
        references (:mod:`rolloutlab.specs.loading`); ``name`` picks one of several.
        """
        from rolloutlab.specs.loading import load_manifests

        if source is None:
            return cls()
        if isinstance(source, Spec):
            return source
        if isinstance(source, Mapping):
            return cls.from_dict(source)
        if isinstance(source, Path) or (
            isinstance(source, str) and "\n" not in source and _looks_like_path(source)
        ):
            return load_manifests(source, name=name)
        if isinstance(source, str):
            return cls.from_yaml(source, name=name)
        raise SpecError(
            f"cannot read a spec from {type(source).__name__}. Pass a Spec, a dict, "
            "YAML text or the path of a YAML file or folder."
        )

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<yaml>", name: str | None = None) -> Spec:
        """A spec from YAML text of one or several documents (see :meth:`load`)."""
        from rolloutlab.specs.loading import load_text

        return load_text(text, source=source, name=name)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Spec:
        """A spec from a Flagger ``Canary``, an Argo ``Rollout`` or rolloutlab's own schema."""
        from rolloutlab.specs.loading import spec_from_mapping

        return spec_from_mapping(data)

    def to_dict(self) -> dict[str, Any]:
        """rolloutlab's own schema as plain data (camelCase keys); ``from_dict`` reads it back."""
        from rolloutlab.specs.native import to_dict

        return to_dict(self)

    def to_yaml(self) -> str:
        """:meth:`to_dict` as YAML."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def replace(self, **changes: Any) -> Spec:
        """A validated copy with fields changed (snake_case or camelCase names).

        ``metrics`` takes MetricSpecs or dicts; ``kayenta`` a KayentaSettings or a dict of
        the settings to change.
        """
        from rolloutlab.specs.native import replace

        return replace(self, changes)


def _looks_like_path(text: str) -> bool:
    return text.endswith((".yaml", ".yml", ".json")) or Path(text).exists()
