"""What a judge is asked: the analysis spec (Flagger's ``spec.analysis`` plus rolloutlab's own).

One :class:`Spec` serves every judge. It loads from a Flagger ``Canary`` manifest
(``apiVersion: flagger.app/v1beta1``, ``kind: Canary``; only ``spec.analysis`` and the
names are read) or from rolloutlab's own YAML, detected automatically by
:meth:`Spec.load`. rolloutlab's YAML, with every key optional (camelCase as shown, or
snake_case)::

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

A bad spec raises :class:`~rolloutlab.errors.SpecError` naming the field path (for a
manifest ``spec.analysis.metrics[1].thresholdRange.min``) and the fix; an unknown key is
an error with a did-you-mean suggestion.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, get_args

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
ROUTER_KINDS = ("istio", "gatewayapi", "smi", "linkerd", "osm", "nginx", "traefik", "contour")

FLAGGER_API = "flagger.app/"
FLAGGER_METRIC_INTERVAL_S = 60.0
FLAGGER_MIN_INTERVAL_S = 10.0
FLAGGER_KUBERNETES_PROVIDER = "kubernetes"
FLAGGER_KUBERNETES_ITERATIONS = 10
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
    direction: which change is harmful (``increase`` for errors and latency).
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
    groups: tuple[str, ...] = ()
    template: str | None = None
    promotion_margin: float | None = None
    queries: tuple[tuple[str, str], ...] = ()
    success_condition: str | None = None
    failure_condition: str | None = None
    count: int | None = None
    failure_limit: int | None = None
    inconclusive_limit: int | None = None

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
    judgment_interval_s: float = 1800.0
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
            "request-success-rate", "ratio", "errors", "requests", margin=0.0, threshold_min=99.0
        ),
        MetricSpec("request-duration", "latency", "latency_ms", margin=0.05, threshold_max=500.0),
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

    # -- loading -------------------------------------------------------------------

    @classmethod
    def load(
        cls, source: Spec | Mapping[str, Any] | str | Path | None, *, name: str | None = None
    ) -> Spec:
        """A spec from a Spec, a dict, YAML text, or the path of a file or folder of
        manifests (None: the defaults).

        A file may hold several YAML documents and a folder several files: the Flagger
        Canary, Argo Rollout or rolloutlab spec among them is used, with the templates it
        references (:mod:`rolloutlab.judges.manifests`); ``name`` picks one of several.
        """
        from rolloutlab.judges.manifests import load_manifests

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
        from rolloutlab.judges.manifests import parse_documents, spec_from_documents

        return spec_from_documents(parse_documents(text, source), source=source, name=name)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Spec:
        """A spec from a Flagger ``Canary`` manifest or rolloutlab's own schema (auto-detected)."""
        if not isinstance(data, Mapping):
            raise SpecError(f"expected a mapping for the spec, got {type(data).__name__}.")
        if data.get("kind") == "Canary" or str(data.get("apiVersion", "")).startswith(FLAGGER_API):
            return _from_flagger(data)
        return _from_rolloutlab(data)

    # -- writing -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """rolloutlab's own schema as plain data (camelCase keys); ``from_dict`` reads it back."""
        out = _dump(self, _SPEC_FIELDS)
        out["metrics"] = [_dump_metric(m) for m in self.metrics]
        out["kayenta"] = _dump(self.kayenta, _KAYENTA_FIELDS)
        return out

    def to_yaml(self) -> str:
        """:meth:`to_dict` as YAML."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def replace(self, **changes: Any) -> Spec:
        """A validated copy with fields changed (snake_case or camelCase names).

        ``metrics`` takes MetricSpecs or dicts; ``kayenta`` a KayentaSettings or a dict of
        the settings to change.
        """
        data = self.to_dict()
        changed = _canonical(changes, _SPEC_FIELDS, "")
        if "stepWeights" in changed and "stepWeight" not in changed:
            data.pop("stepWeight", None)  # new stepWeights replace a linear plan
        for key, value in changed.items():
            if key == "metrics":
                value = [_dump_metric(m) if isinstance(m, MetricSpec) else m for m in value]
            elif key == "kayenta" and isinstance(value, KayentaSettings):
                value = _dump(value, _KAYENTA_FIELDS)
            elif key == "kayenta":
                value = {**data["kayenta"], **_canonical(value, _KAYENTA_FIELDS, "kayenta")}
            data[key] = value
        return Spec.from_dict(data)


# -- field tables ------------------------------------------------------------------

Parser = Callable[[Any, str], Any]


@dataclass(frozen=True)
class _Field:
    """One documented key: its YAML name, the dataclass attribute, and how to read it."""

    key: str
    attr: str | None
    parse: Parser | None = None
    aliases: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        return (self.key, _snake(self.key), *self.aliases)


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def _fail(path: str, what: str, fix: str) -> SpecError:
    return SpecError(f"{path or 'spec'}: {what}." + (f" {fix}" if fix else ""))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _field_for(key: str, fields: Sequence[_Field], path: str) -> _Field:
    for f in fields:
        if key in f.names():
            return f
    known = [f.key for f in fields]
    close = difflib.get_close_matches(key, [n for f in fields for n in f.names()], n=1)
    hint = ""
    if close:
        hint = f"Did you mean '{next(f.key for f in fields if close[0] in f.names())}'? "
    raise _fail(
        _join(path, str(key)), "unknown field", f"{hint}Known fields here: {', '.join(known)}."
    )


def _canonical(data: Mapping[str, Any], fields: Sequence[_Field], path: str) -> dict[str, Any]:
    """The same mapping keyed by the documented names (snake_case accepted)."""
    return {_field_for(str(k), fields, path).key: v for k, v in data.items()}


def _read(data: Any, path: str, fields: Sequence[_Field]) -> dict[str, Any]:
    """Parse a mapping against ``fields``: attribute -> value for the keys present."""
    if not isinstance(data, Mapping):
        raise _fail(path, f"expected a mapping, got {_show(data)}", "Write key: value pairs here.")
    out: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for key, value in data.items():
        f = _field_for(str(key), fields, path)
        if f.key in seen:
            raise _fail(
                _join(path, str(key)),
                f"given twice (also as '{seen[f.key]}')",
                "Keep one of the two spellings.",
            )
        seen[f.key] = str(key)
        if f.attr is not None and f.parse is not None:
            out[f.attr] = f.parse(value, _join(path, f.key))
    return out


def _show(value: Any) -> str:
    return f"{value!r}" if isinstance(value, str | int | float | bool) else type(value).__name__


# -- value parsers -----------------------------------------------------------------


def _number(
    example: float,
    *,
    lo: float | None = None,
    hi: float | None = None,
    open_lo: bool = False,
    open_hi: bool = False,
) -> Parser:
    def parse(value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise _fail(path, f"expected a number like {example:g}, got {_show(value)}", "")
        number = float(value)
        low_bad = lo is not None and (number <= lo if open_lo else number < lo)
        high_bad = hi is not None and (number >= hi if open_hi else number > hi)
        if low_bad or high_bad:
            lo_txt = "" if lo is None else f"{'>' if open_lo else '>='} {lo:g}"
            hi_txt = "" if hi is None else f"{'<' if open_hi else '<='} {hi:g}"
            rule = " and ".join(t for t in (lo_txt, hi_txt) if t)
            raise _fail(path, f"{number:g} is out of range", f"It must be {rule}.")
        return number

    return parse


def _whole(example: int, *, lo: int = 0, hi: int | None = None) -> Parser:
    def parse(value: Any, path: str) -> int:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not float(value).is_integer():
            raise _fail(path, f"expected a whole number like {example}, got {_show(value)}", "")
        if value < lo or (hi is not None and value > hi):
            rule = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
            raise _fail(path, f"{int(value)} is out of range", f"It must be {rule}.")
        return int(value)

    return parse


def _optional(parse: Parser) -> Parser:
    return lambda value, path: None if value is None else parse(value, path)


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(path, f"expected a non-empty text, got {_show(value)}", "")
    return value


def _flag(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, f"expected true or false, got {_show(value)}", "")
    return value


def _choice(options: Sequence[str]) -> Parser:
    def parse(value: Any, path: str) -> str:
        if value not in options:
            close = difflib.get_close_matches(str(value), options, n=1)
            hint = f"Did you mean '{close[0]}'? " if close else ""
            raise _fail(path, f"unknown value {_show(value)}", f"{hint}Choose one of {options}.")
        return value

    return parse


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_S = {
    "ns": Fraction(1, 10**9),
    "us": Fraction(1, 10**6),
    "µs": Fraction(1, 10**6),
    "μs": Fraction(1, 10**6),
    "ms": Fraction(1, 1000),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3600),
}


def parse_duration(value: Any, path: str = "interval") -> float:
    """Seconds from a Go duration ("1m", "1m30s", "1.5h", "500ms") or a number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION.sub("", value.strip()) == "" and value.strip():
        parts = _DURATION.findall(value.strip())
        seconds = float(sum(Fraction(n) * _UNIT_S[u] for n, u in parts))
    else:
        raise _fail(
            path,
            f"expected a duration like '1m' or '30s', got {_show(value)}",
            "Use a Go duration (units h, m, s, ms) or a number of seconds.",
        )
    if not math.isfinite(seconds) or seconds <= 0:
        raise _fail(path, f"the duration must be positive, got {_show(value)}", "")
    return seconds


def format_duration(seconds: float) -> str | float:
    """A Go duration for whole seconds ("90s", "5m", "2h"), else the number of seconds."""
    if not float(seconds).is_integer() or not 0 < seconds < 1e15:
        return seconds
    whole = int(seconds)
    for unit, size in (("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def _weights(value: Any, path: str) -> tuple[float, ...]:
    if not isinstance(value, list | tuple):
        raise _fail(path, f"expected a list of weights like [5, 10, 25], got {_show(value)}", "")
    parse = _number(10, lo=0, hi=100, open_lo=True)
    steps = tuple(parse(v, f"{path}[{i}]") for i, v in enumerate(value))
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise _fail(path, f"weights {list(steps)} do not increase", "List them in rising order.")
    return steps


def _groups(value: Any, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise _fail(path, f"expected a list of group names, got {_show(value)}", "")
    return tuple(_text(v, f"{path}[{i}]") for i, v in enumerate(value))


def _group_weights(value: Any, path: str) -> tuple[tuple[str, float], ...]:
    if not isinstance(value, Mapping):
        raise _fail(path, f"expected a mapping group: percent, got {_show(value)}", "")
    parse = _number(50, lo=0, hi=100)
    pairs = tuple((str(k), parse(v, _join(path, str(k)))) for k, v in value.items())
    if sum(w for _, w in pairs) > 100 + 1e-9:
        raise _fail(path, "group weights add up to more than 100", "Make them sum to 100 at most.")
    return pairs


def _threshold_range(value: Any, path: str) -> tuple[float | None, float | None]:
    parse = _optional(_number(99))
    got = _read(value, path, (_Field("min", "min", parse), _Field("max", "max", parse)))
    low, high = got.get("min"), got.get("max")
    if low is not None and high is not None and low > high:
        raise _fail(path, f"min {low:g} is above max {high:g}", "Swap them.")
    return low, high


def _queries(value: Any, path: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise _fail(path, f"expected a mapping variant: PromQL, got {_show(value)}", "")
    return tuple((_text(k, path), _text(v, _join(path, str(k)))) for k, v in value.items())


_PROBABILITY = _number(0.05, lo=0, hi=1, open_lo=True, open_hi=True)
_WEIGHT = _number(10, lo=0, hi=100)

_METRIC_FIELDS = (
    _Field("name", "name", _text),
    _Field("kind", "kind", _choice(get_args(MetricKind))),
    _Field("metric", "metric", _text),
    _Field("denominator", "denominator", _optional(_text)),
    _Field("direction", "direction", _choice(get_args(Direction))),
    _Field("critical", "critical", _flag),
    _Field("margin", "margin", _number(0.1, lo=0)),
    _Field("alpha", "alpha", _optional(_PROBABILITY)),
    _Field("thresholdRange", "threshold_range", _optional(_threshold_range)),
    _Field("interval", "interval_s", parse_duration, ("interval_s",)),
    _Field("quantile", "quantile", _number(0.99, lo=0, hi=1)),
    _Field("mustHaveData", "must_have_data", _flag),
    _Field("groups", "groups", _groups),
    _Field("template", "template", _optional(_text)),
    _Field("promotionMargin", "promotion_margin", _optional(_number(0.5, lo=0))),
    _Field("queries", "queries", _queries),
    _Field("successCondition", "success_condition", _optional(_text)),
    _Field("failureCondition", "failure_condition", _optional(_text)),
    _Field("count", "count", _optional(_whole(5, lo=1))),
    _Field("failureLimit", "failure_limit", _optional(_whole(3))),
    _Field("inconclusiveLimit", "inconclusive_limit", _optional(_whole(0))),
)

_KAYENTA_FIELDS = (
    _Field("passScore", "pass_score", _number(95, lo=0, hi=100)),
    _Field("marginalScore", "marginal_score", _number(75, lo=0, hi=100)),
    _Field("confidence", "confidence", _number(0.98, lo=0, hi=1, open_lo=True, open_hi=True)),
    _Field("allowedIncrease", "allowed_increase", _number(1.0, lo=0)),
    _Field("allowedDecrease", "allowed_decrease", _number(1.0, lo=0)),
    _Field("criticalIncrease", "critical_increase", _number(1.0, lo=0)),
    _Field("criticalDecrease", "critical_decrease", _number(1.0, lo=0)),
    _Field("effectSizeRule", "effect_size_rule", _number(0.25, lo=0)),
    _Field("judgmentInterval", "judgment_interval_s", parse_duration, ("judgment_interval_s",)),
    _Field("lifetime", "lifetime_s", _optional(parse_duration), ("lifetime_s",)),
    _Field("removeOutliers", "remove_outliers", _flag),
    _Field("outlierFactor", "outlier_factor", _number(3, lo=0, open_lo=True)),
    _Field("nanStrategy", "nan_strategy", _choice(get_args(NanStrategy))),
    _Field("effectSizeMeasure", "effect_size_measure", _choice(get_args(EffectSizeMeasure))),
    _Field("groupWeights", "group_weights", _group_weights),
)

_SPEC_FIELDS = (
    _Field("name", "name", _optional(_text)),
    _Field("namespace", "namespace", _optional(_text)),
    _Field("target", "target", _optional(_text)),
    _Field("judge", "judge", _choice(JUDGE_NAMES)),
    _Field("interval", "interval_s", parse_duration, ("interval_s",)),
    _Field("threshold", "threshold", _whole(5, lo=1)),
    _Field("maxWeight", "max_weight", _number(50, lo=0, hi=100, open_lo=True)),
    _Field("stepWeight", "step_weight", _WEIGHT),
    _Field("stepWeights", "step_weights", _weights),
    _Field("stepWeightPromotion", "step_weight_promotion", _WEIGHT),
    _Field("iterations", "iterations", _optional(_whole(10, lo=1))),
    _Field("abTesting", "ab_testing", _flag),
    _Field("alpha", "alpha", _PROBABILITY),
    _Field("minExposure", "min_exposure", _number(1000, lo=0)),
    _Field("control", "control", _optional(_text)),
    _Field("treatment", "treatment", _optional(_text)),
    _Field("promotion", "promotion", _choice(get_args(Promotion))),
    _Field("maxAnalysisTime", "max_analysis_s", _optional(parse_duration), ("max_analysis_s",)),
    _Field("onInconclusive", "on_inconclusive", _choice(get_args(OnInconclusive))),
    _Field("provider", "provider", _optional(_text)),
    _Field("router", "router", _optional(_choice(ROUTER_KINDS))),
    _Field("metrics", "metrics", lambda value, path: value),
    _Field("kayenta", "kayenta", lambda value, path: value),
)


# -- rolloutlab's own schema -------------------------------------------------------


def _from_rolloutlab(data: Mapping[str, Any]) -> Spec:
    raw = _read(data, "", _SPEC_FIELDS)
    kayenta = _kayenta(raw.pop("kayenta", {}), "kayenta")
    if "metrics" in raw:
        value = raw.pop("metrics")
        if not isinstance(value, list | tuple):
            raise _fail("metrics", f"expected a list of metrics, got {_show(value)}", "")
        metrics = tuple(_metric(m, f"metrics[{i}]") for i, m in enumerate(value))
    else:
        metrics = default_metrics()
    _resolve_steps(raw, explicit_step="step_weight" in raw)
    return _build(raw, metrics, kayenta, "")


def _kayenta(data: Any, path: str) -> KayentaSettings:
    raw = _read(data, path, _KAYENTA_FIELDS)
    if raw.get("effect_size_measure") == "cles":  # Kayenta's neutral CLES is 0.5, not 1.0
        for side in ("allowed_increase", "allowed_decrease", "critical_increase"):
            raw.setdefault(side, 0.5)
        raw.setdefault("critical_decrease", 0.5)
    settings = KayentaSettings(**raw)
    if settings.marginal_score > settings.pass_score:
        raise _fail(
            _join(path, "marginalScore"),
            f"{settings.marginal_score:g} is above passScore {settings.pass_score:g}",
            "The marginal score must not exceed the pass score.",
        )
    return settings


def _metric(data: Any, path: str) -> MetricSpec:
    raw = _read(data, path, _METRIC_FIELDS)
    if "name" not in raw:
        raise _fail(_join(path, "name"), "missing", "Every metric needs a name.")
    builtin = {m.name: m for m in default_metrics()}.get(raw["name"])
    if "threshold_range" in raw:
        low_high = raw.pop("threshold_range") or (None, None)
        raw["threshold_min"], raw["threshold_max"] = low_high
    if builtin is not None:
        return _checked_metric(dataclasses.replace(builtin, **raw), path)
    if "kind" not in raw:
        raise _fail(
            _join(path, "kind"),
            f"missing for metric '{raw['name']}'",
            f"Say what it is: one of {get_args(MetricKind)}.",
        )
    raw.setdefault("metric", raw["name"])
    return _checked_metric(MetricSpec(**raw), path)


def _checked_metric(metric: MetricSpec, path: str) -> MetricSpec:
    if metric.kind == "ratio" and metric.denominator is None:
        raise _fail(
            _join(path, "denominator"),
            f"ratio metric '{metric.name}' has no denominator",
            "Name the counter it divides by, e.g. denominator: requests.",
        )
    if metric.promotion_margin is not None and metric.promotion_margin < metric.margin:
        raise _fail(
            _join(path, "promotionMargin"),
            f"{metric.promotion_margin:g} is below the rollback margin {metric.margin:g}",
            "A canary is promoted when shown below promotionMargin and rolled back when shown "
            "above margin: set promotionMargin >= margin.",
        )
    return metric


def _resolve_steps(raw: dict[str, Any], *, explicit_step: bool) -> None:
    """Flagger's rule: stepWeight > 0 wins over stepWeights, whose last value is maxWeight."""
    steps = raw.get("step_weights")
    if steps and explicit_step and raw.get("step_weight", 0) > 0:
        raw["max_weight"] = min(100.0, steps[-1])
        raw["step_weights"] = ()


def _build(
    raw: dict[str, Any], metrics: tuple[MetricSpec, ...], kayenta: KayentaSettings, path: str
) -> Spec:
    names = [m.name for m in metrics]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise _fail(_join(path, "metrics"), f"metric names {twice} appear twice", "Rename one.")
    spec = Spec(**raw, metrics=metrics, kayenta=kayenta)
    if spec.ab_testing and spec.iterations is None:
        raise _fail(
            _join(path, "iterations"), "A/B testing without iterations", "Set iterations: 10."
        )
    if spec.iterations is None and not spec.step_weights and spec.step_weight <= 0:
        raise _fail(
            _join(path, "stepWeight"),
            "no weight plan: stepWeight is 0 and there are no stepWeights or iterations",
            "Set stepWeight (e.g. 10), stepWeights (e.g. [5, 10, 25]) or iterations.",
        )
    if spec.max_analysis_s is not None and spec.max_analysis_s < spec.plan_duration_s():
        raise _fail(
            _join(path, "maxAnalysisTime"),
            f"{format_duration(spec.max_analysis_s)} is shorter than the weight plan itself "
            f"({format_duration(spec.plan_duration_s())})",
            "Give the analysis at least the plan's duration plus time to bake, or leave it "
            "unset (the plan + 1h).",
        )
    return spec


# -- Flagger Canary manifests ------------------------------------------------------

_FLAGGER_SPEC_KEYS = (
    *("provider", "metricsServer", "targetRef", "autoscalerRef", "ingressRef", "routeRef"),
    *("upstreamRef", "service", "analysis", "canaryAnalysis", "progressDeadlineSeconds"),
    *("skipAnalysis", "revertOnDeletion", "suspend"),
)
#: analysis fields Flagger has but a replay cannot use (webhooks, alerts, mirroring, ...)
_FLAGGER_IGNORED_ANALYSIS = (
    *("mirror", "mirrorWeight", "primaryReadyThreshold", "canaryReadyThreshold", "alerts"),
    *("webhooks", "match", "sessionAffinity"),
)


def _flagger_interval(value: Any, path: str) -> float:
    """Flagger clamps the analysis interval to at least 10 s."""
    return max(FLAGGER_MIN_INTERVAL_S, parse_duration(value, path))


_FLAGGER_ANALYSIS_FIELDS = (
    _Field("interval", "interval_s", _flagger_interval),
    _Field("threshold", "threshold", _whole(5)),
    _Field("maxWeight", "max_weight", _whole(50, hi=100)),
    _Field("stepWeight", "step_weight", _whole(10, hi=100)),
    _Field("stepWeights", "step_weights", _weights),
    _Field("stepWeightPromotion", "step_weight_promotion", _whole(10, hi=100)),
    _Field("iterations", "iterations", _whole(10)),
    _Field("metrics", "metrics", lambda value, path: value),
    *(_Field(key, None) for key in _FLAGGER_IGNORED_ANALYSIS),
)
_FLAGGER_METRIC_FIELDS = (
    _Field("name", "name", _text),
    _Field("interval", "interval_s", parse_duration),
    _Field("threshold", "threshold", _number(99)),
    _Field("thresholdRange", "threshold_range", _threshold_range),
    _Field("query", "query", _text),
    _Field("templateRef", "template_ref", lambda value, path: value),
    _Field("templateVariables", None),
)
_TEMPLATE_REF_FIELDS = (
    _Field("name", "name", _text),
    _Field("namespace", "namespace", _text),
    _Field("apiVersion", None),
    _Field("kind", None),
)


def _from_flagger(data: Mapping[str, Any]) -> Spec:
    api = str(data.get("apiVersion", ""))
    if not api.startswith(FLAGGER_API) or data.get("kind") != "Canary":
        raise _fail(
            "apiVersion",
            f"a Flagger manifest needs apiVersion flagger.app/v1beta1 and kind Canary, got "
            f"{api!r} and {data.get('kind')!r}",
            "Fix the header, or remove 'kind' for a rolloutlab spec.",
        )
    meta = data.get("metadata") or {}
    spec_part = data.get("spec")
    if not isinstance(spec_part, Mapping):
        raise _fail("spec", "missing or not a mapping", "A Canary needs spec.analysis.")
    for key in spec_part:
        _field_for(str(key), [_Field(k, None) for k in _FLAGGER_SPEC_KEYS], "spec")
    if spec_part.get("skipAnalysis"):
        raise _fail(
            "spec.skipAnalysis",
            "true: Flagger promotes without analysis, so there is nothing to judge",
            "Set skipAnalysis: false to replay the analysis.",
        )
    key = "analysis" if spec_part.get("analysis") is not None else "canaryAnalysis"
    path = f"spec.{key}"
    if spec_part.get(key) is None:
        raise _fail(
            "spec.analysis",
            "missing: Flagger skips the analysis of a Canary without one",
            "Add spec.analysis with interval, threshold, stepWeight and metrics.",
        )
    raw = _read(spec_part.get(key), path, _FLAGGER_ANALYSIS_FIELDS)
    # Flagger's zero values: threshold 0 means 1, maxWeight 0 means 100, no stepWeight is 0
    raw["threshold"] = raw.get("threshold") or 1
    raw["max_weight"] = float(raw.get("max_weight") or 100)
    raw["step_weight"] = float(raw.get("step_weight", 0))
    raw["step_weight_promotion"] = float(raw.get("step_weight_promotion", 0))
    raw["iterations"] = raw.get("iterations") or None
    raw["ab_testing"] = bool(spec_part[key].get("match")) and raw["iterations"] is not None
    provider = str(spec_part.get("provider") or "").partition(":")[0] or None
    if provider == FLAGGER_KUBERNETES_PROVIDER:
        # Flagger's scheduler: no traffic shifting without a mesh, so blue/green with
        # iterations (10 when unset) and no A/B match (pkg/controller/scheduler.go)
        raw["iterations"] = raw["iterations"] or FLAGGER_KUBERNETES_ITERATIONS
        raw.update(ab_testing=False, step_weight=0.0, step_weights=())
    raw.update(provider=provider, router=provider if provider in ROUTER_KINDS else None)
    _resolve_steps(raw, explicit_step=True)
    metrics_raw = raw.pop("metrics", None) or []
    if not isinstance(metrics_raw, list):
        raise _fail(f"{path}.metrics", f"expected a list, got {_show(metrics_raw)}", "")
    metrics = tuple(
        _flagger_metric(m, f"{path}.metrics[{i}]", meta.get("namespace"))
        for i, m in enumerate(metrics_raw)
    )
    target = spec_part.get("targetRef") or {}
    raw.update(
        name=meta.get("name"),
        namespace=meta.get("namespace"),
        target=target.get("name") if isinstance(target, Mapping) else None,
    )
    return _build(raw, metrics, KayentaSettings(), path)


def _flagger_metric(data: Any, path: str, namespace: str | None) -> MetricSpec:
    """A Flagger metric check as a MetricSpec.

    Without ``thresholdRange`` Flagger falls back to the deprecated ``threshold`` (a
    minimum for request-success-rate, a maximum otherwise, 0 when absent): the same
    bounds are set here, so a request-duration or template metric with neither fails on
    any positive value, as in Flagger.
    """
    raw = _read(data, path, _FLAGGER_METRIC_FIELDS)
    if "name" not in raw:
        raise _fail(_join(path, "name"), "missing", "Every metric needs a name.")
    name = raw["name"]
    interval = raw.get("interval_s", FLAGGER_METRIC_INTERVAL_S)
    low, high = raw.get("threshold_range") or (None, None)
    legacy = raw.get("threshold", 0.0)
    if "threshold_range" not in raw:
        low, high = (legacy or None, None) if name == "request-success-rate" else (None, legacy)
    template = _template(raw, path, namespace)
    bounds = {"threshold_min": low, "threshold_max": high, "interval_s": interval}
    if template is None and name in BUILTIN_METRICS:
        builtin = {m.name: m for m in default_metrics()}[name]
        return dataclasses.replace(builtin, **bounds)
    if template is None:
        raise _fail(
            path,
            f"metric '{name}' is not a Flagger built-in ({', '.join(BUILTIN_METRICS)}) and has "
            "no templateRef or query, so Flagger never checks it",
            "Add a templateRef, or remove the metric.",
        )
    direction: Direction = (
        "either"
        if low is not None and high is not None
        else "decrease"
        if low is not None
        else "increase"
    )
    return MetricSpec(name, "gauge", name, direction=direction, template=template, **bounds)


def _template(raw: Mapping[str, Any], path: str, namespace: str | None) -> str | None:
    if "template_ref" in raw:
        ref = _read(raw["template_ref"], _join(path, "templateRef"), _TEMPLATE_REF_FIELDS)
        if "name" not in ref:
            raise _fail(_join(path, "templateRef.name"), "missing", "Name the MetricTemplate.")
        ns = ref.get("namespace") or namespace
        return f"MetricTemplate {ns}/{ref['name']}" if ns else f"MetricTemplate {ref['name']}"
    if "query" in raw:
        return f"query {raw['query']}"
    return None


# -- writing helpers ---------------------------------------------------------------


_NOT_DUMPED = ("metrics", "kayenta", "threshold_range")


def _dump(obj: Any, fields: Sequence[_Field]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields:
        if f.attr is None or f.attr in _NOT_DUMPED:
            continue
        value = getattr(obj, f.attr)
        if value is None or value == ():
            continue
        if f.attr.endswith("_s"):
            value = format_duration(value)
        elif f.attr in ("group_weights", "queries"):
            value = dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.key] = value
    return out


def _dump_metric(metric: MetricSpec) -> dict[str, Any]:
    out = _dump(metric, _METRIC_FIELDS)
    bounds = {"min": metric.threshold_min, "max": metric.threshold_max}
    bounds = {k: v for k, v in bounds.items() if v is not None}
    if bounds:
        out["thresholdRange"] = bounds
    return out


def _looks_like_path(text: str) -> bool:
    return text.endswith((".yaml", ".yml", ".json")) or Path(text).exists()


__all__ = [
    "BUILTIN_METRICS",
    "DEFAULT_PROMOTION_MARGIN",
    "JUDGE_NAMES",
    "KayentaSettings",
    "MetricSpec",
    "Spec",
    "default_metrics",
    "format_duration",
    "parse_duration",
]
