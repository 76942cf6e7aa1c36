"""rolloutlab's own spec YAML: its field tables, reading, writing, and :func:`_build`,
the checks every format's spec goes through."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, get_args

from rolloutlab.durations import format_duration, parse_duration
from rolloutlab.specs.model import (
    JUDGE_NAMES,
    ROUTER_KINDS,
    Direction,
    EffectSizeMeasure,
    KayentaSettings,
    MetricKind,
    MetricSpec,
    NanStrategy,
    OnInconclusive,
    Promotion,
    Spec,
    default_metrics,
)
from rolloutlab.specs.schema import (
    _PROBABILITY,
    _WEIGHT,
    _canonical,
    _choice,
    _dump,
    _fail,
    _Field,
    _flag,
    _group_weights,
    _groups,
    _join,
    _number,
    _optional,
    _pairs,
    _queries,
    _read,
    _show,
    _text,
    _threshold_range,
    _weights,
    _whole,
)

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
    _Field("kayenta", "kayenta", lambda value, path: _kayenta(value, path, _KAYENTA_METRIC)),
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
#: what a metric may set for itself (Kayenta's per-metric analysisConfigurations)
_KAYENTA_METRIC: tuple[_Field, ...] = tuple(
    f
    for f in _KAYENTA_FIELDS
    if f.attr
    not in ("pass_score", "marginal_score", "judgment_interval_s", "lifetime_s", "group_weights")
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
    _Field("names", "names", _pairs("kind: name", ("service", "ingress", "route"))),
    _Field("metrics", "metrics", lambda value, path: value),
    _Field("kayenta", "kayenta", lambda value, path: value),
)


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


def _kayenta(data: Any, path: str, fields: tuple[_Field, ...] = _KAYENTA_FIELDS) -> KayentaSettings:
    raw = _read(data, path, fields)
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


def _dump_metric(metric: MetricSpec) -> dict[str, Any]:
    out = _dump(metric, _METRIC_FIELDS)
    if metric.kayenta is not None:
        out["kayenta"] = _dump(metric.kayenta, _KAYENTA_METRIC)
    bounds = {"min": metric.threshold_min, "max": metric.threshold_max}
    bounds = {k: v for k, v in bounds.items() if v is not None}
    if bounds:
        out["thresholdRange"] = bounds
    return out


def to_dict(spec: Spec) -> dict[str, Any]:
    """``spec`` in rolloutlab's own schema (camelCase keys)."""
    out = _dump(spec, _SPEC_FIELDS)
    out["metrics"] = [_dump_metric(m) for m in spec.metrics]
    out["kayenta"] = _dump(spec.kayenta, _KAYENTA_FIELDS)
    return out


def replace(spec: Spec, changes: Mapping[str, Any]) -> Spec:
    """A validated copy of ``spec`` with ``changes`` (see :meth:`Spec.replace`)."""
    data = to_dict(spec)
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
    return _from_rolloutlab(data)
