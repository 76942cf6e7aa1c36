"""Argo Rollouts: a canary ``Rollout`` (steps, step and background analysis,
``trafficRouting``) and its ``AnalysisTemplate`` / ``ClusterAnalysisTemplate`` Prometheus
metrics as a :class:`Spec`."""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from rolloutlab.durations import parse_duration
from rolloutlab.errors import SpecError
from rolloutlab.specs.documents import Document, ManifestWarning, _TemplateIndex, _warn_unsupported
from rolloutlab.specs.model import Direction, KayentaSettings, MetricSpec, Spec
from rolloutlab.specs.native import _build

ARGO_API = "argoproj.io/"
ARGO_TEMPLATES = ("AnalysisTemplate", "ClusterAnalysisTemplate")
#: Argo ``trafficRouting`` keys whose route objects rolloutlab's routers can patch.
ARGO_ROUTERS = {"istio": "istio", "smi": "smi", "nginx": "nginx", "traefik": "traefik"}
#: Argo measures a metric without ``interval`` once; rolloutlab ticks every minute then.
ARGO_DEFAULT_INTERVAL_S = 60.0

#: Argo's ``podTemplateHashValue`` sources and the variant whose hash each names.
POD_TEMPLATE_HASHES = {"Latest": "canary", "Stable": "stable"}
_HASH_PLACEHOLDER = re.compile(r"\{\{ podTemplateHash\.(canary|stable) \}\}")
_ARGO_ARG = re.compile(r"\{\{\s*args\.([\w.-]+?)\s*\}\}")
_CONDITION = re.compile(
    r"^\s*(?:len\(result\)\s*==\s*0\s*\|\|\s*|isNaN\(result\)\s*\|\|\s*)?"
    r"(?:result\[0\]|result|asFloat\(result\)|asInt\(result\))\s*(>=|>|<=|<)\s*"
    r"(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*$"
)


def rollout_spec(rollout: Document, templates: Sequence[Document]) -> Spec:
    """A spec from a Rollout's canary strategy and the analysis templates it names."""
    body = rollout.data.get("spec") or {}
    strategy = body.get("strategy") or {}
    where = rollout.where
    if "canary" not in strategy:
        kinds = ", ".join(strategy) or "none"
        raise SpecError(
            f"{where}: Rollout {rollout.name} has strategy {kinds}; rolloutlab judges a "
            "canary split (spec.strategy.canary). A blue-green Rollout sends the new version "
            "no traffic before promotion: judge its preview with a canary Rollout or a "
            "rolloutlab spec instead."
        )
    canary = strategy["canary"] or {}
    index = _TemplateIndex(templates, rollout)
    weights: list[float] = []
    pauses: list[float] = []
    analyses: list[Mapping[str, Any]] = []
    ignored: list[str] = []
    for i, step in enumerate(canary.get("steps") or []):
        path = f"spec.strategy.canary.steps[{i}]"
        if not isinstance(step, Mapping):
            raise SpecError(f"{where}: {path} is {step!r}; a step is a mapping, e.g. setWeight: 20")
        if "setWeight" in step:
            weight = _argo_weight(step["setWeight"], weights, f"{where}: {path}")
            weights.extend([] if weight is None else [weight])
        elif "pause" in step:
            pause = step.get("pause") or {}
            if not isinstance(pause, Mapping):
                raise SpecError(
                    f"{where}: {path}.pause is {pause!r}; Argo's pause is a mapping: "
                    "'pause: {duration: 1m}', or 'pause: {}' to wait for a promotion"
                )
            duration = pause.get("duration")
            if duration is not None:
                pauses.append(parse_duration(duration, f"{where}: {path}.pause.duration"))
        elif "analysis" in step:
            analyses.append(step["analysis"] or {})
        else:
            ignored.extend(f"{k} ({path})" for k in step)
    if canary.get("analysis"):
        analyses.append(canary["analysis"])
    metrics: list[MetricSpec] = []
    skipped: list[str] = []
    for analysis in analyses:
        for metric in _argo_metrics(analysis, rollout, canary, index, skipped):
            if any(m.name == metric.name for m in metrics):
                continue  # the same template at several steps
            metrics.append(metric)
    _warn_unsupported(skipped, where)
    if ignored:
        warnings.warn(
            f"{where}: rolloutlab does not replay the steps {', '.join(ignored)}.",
            ManifestWarning,
            stacklevel=3,
        )
    intervals = [m.interval_s for m in metrics] or pauses or [ARGO_DEFAULT_INTERVAL_S]
    limits = [m.failure_limit or 0 for m in metrics]
    routing = canary.get("trafficRouting") or {}
    router = next((ARGO_ROUTERS[k] for k in routing if k in ARGO_ROUTERS), None)
    raw = {
        "interval_s": min(intervals),
        "threshold": min(limits, default=0) + 1,
        "step_weights": tuple(weights) or (100.0,),
        "name": rollout.name,
        "namespace": rollout.meta.get("namespace"),
        "target": rollout.name,
        "router": router,
    }
    try:
        return _build(raw, tuple(metrics), KayentaSettings(), "spec.strategy.canary")
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None


def _argo_weight(value: Any, before: Sequence[float], where: str) -> float | None:
    """The step's canary weight; None for ``setWeight: 0`` (no canary traffic yet)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise SpecError(f"{where}.setWeight: expected a percent in [0, 100], got {value!r}.")
    if value == 0 and not before:
        return None
    if before and value <= before[-1]:
        raise SpecError(
            f"{where}.setWeight: {value} after {before[-1]}: rolloutlab replays rising weights "
            "only. Remove the step that lowers the weight."
        )
    return float(value)


def _argo_metrics(
    analysis: Mapping[str, Any],
    rollout: Document,
    canary: Mapping[str, Any],
    index: _TemplateIndex,
    skipped: list[str],
) -> list[MetricSpec]:
    """The metrics of one analysis (a step's or the background one), per template."""
    given = {a.get("name"): a for a in analysis.get("args") or []}
    out = []
    for ref in analysis.get("templates") or []:
        kind = ("ClusterAnalysisTemplate",) if ref.get("clusterScope") else ("AnalysisTemplate",)
        namespace = None if ref.get("clusterScope") else rollout.meta.get("namespace")
        template = index.find(kind, ref.get("templateName"), namespace)
        body = template.data.get("spec") or {}
        args = {a.get("name"): a for a in body.get("args") or []} | given
        for m in body.get("metrics") or []:
            provider = next(iter(m.get("provider") or {}), "none")
            label = f"{m.get('name')} ({template.kind} {template.name}, provider {provider})"
            if provider != "prometheus":
                skipped.append(label)
                continue
            queries = _argo_queries(m, args, rollout, canary, template, skipped, label)
            if queries is not None:
                out.append(_argo_metric(m, queries, template))
    return out


def _argo_queries(
    metric: Mapping[str, Any],
    args: Mapping[str, Mapping[str, Any]],
    rollout: Document,
    canary: Mapping[str, Any],
    template: Document,
    skipped: list[str],
    label: str,
) -> tuple[tuple[str, str], ...] | None:
    """The query per variant; the primary's names the stableService where the canary's
    names the canaryService (only the canary's when they would be the same query)."""
    query = str((metric["provider"]["prometheus"] or {}).get("query", ""))
    used = sorted(set(_ARGO_ARG.findall(query)))
    values: dict[str, str] = {}
    for name in used:
        arg = args.get(name)
        if arg is None or ("value" not in arg and "valueFrom" not in arg):
            raise SpecError(
                f"{rollout.where}: {template.kind} {template.name} needs the argument {name!r} "
                f"and the Rollout {rollout.name} gives none. Add args: [{{name: {name}, "
                "value: ...}] to its analysis."
            )
        source = arg.get("valueFrom") or {}
        if "value" in arg:
            values[name] = str(arg["value"])
        elif source.get("podTemplateHashValue") in POD_TEMPLATE_HASHES:
            values[name] = _hash_placeholder(POD_TEMPLATE_HASHES[source["podTemplateHashValue"]])
        else:
            skipped.append(f"{label}: argument {name!r} comes from {next(iter(source))}")
            return None
    canary_svc, stable_svc = canary.get("canaryService"), canary.get("stableService")
    canary_hash, stable_hash = _hash_placeholder("canary"), _hash_placeholder("stable")
    # Without a stableService the primary has no name of its own: the canary's query only.
    stable = {
        k: str(stable_svc)
        if canary_svc and stable_svc and v == canary_svc
        else stable_hash
        if v == canary_hash
        else v
        for k, v in values.items()
    }

    def render(bound: Mapping[str, str]) -> str:
        return _ARGO_ARG.sub(lambda m: bound[m.group(1)], query)

    primary, canary_query = render(stable), render(values)
    if primary == canary_query:
        return (("canary", canary_query),)
    return (("primary", primary), ("canary", canary_query))


def _hash_placeholder(variant: str) -> str:
    return f"{{{{ podTemplateHash.{variant} }}}}"


def fill_pod_template_hashes(
    metric: str, queries: tuple[tuple[str, str], ...], hashes: Mapping[str, str] | None
) -> tuple[tuple[str, str], ...]:
    """``queries`` with the stable and canary ``rollouts-pod-template-hash`` values filled in
    (arguments Argo takes from ``podTemplateHashValue: Stable`` / ``Latest``)."""
    needed = sorted({m for _, q in queries for m in _HASH_PLACEHOLDER.findall(q)})
    known = hashes or {}
    missing = [v for v in needed if not known.get(v)]
    if missing:
        raise SpecError(
            f"metric {metric!r} selects pods by rollouts-pod-template-hash and needs the "
            f"{' and '.join(missing)} hash. Pass them, e.g. --pod-template-hash "
            "stable=6c8bd4f9d4,canary=5f7c9b8d6b (kubectl argo rollouts get rollout NAME "
            "lists the ReplicaSets' hashes)."
        )

    def fill(match: re.Match[str]) -> str:
        return known[match.group(1)]

    return tuple((variant, _HASH_PLACEHOLDER.sub(fill, query)) for variant, query in queries)


def _argo_metric(
    metric: Mapping[str, Any], queries: tuple[tuple[str, str], ...], template: Document
) -> MetricSpec:
    """An Argo metric: its conditions' plain bounds become thresholds."""
    success, failure = metric.get("successCondition"), metric.get("failureCondition")
    low = high = None
    for condition, passes in ((success, True), (failure, False)):
        bound = _bound(condition) if condition else None
        if bound is None:
            continue
        op, number = bound
        # "success when result >= x" and "failure when result < x" both mean min x
        if (op in (">=", ">")) == passes:
            low = number
        else:
            high = number
    direction: Direction = (
        "either"
        if low is not None and high is not None
        else ("decrease" if low is not None else "increase")
    )
    interval = metric.get("interval")
    return MetricSpec(
        name=str(metric["name"]),
        kind="gauge",
        metric=str(metric["name"]),
        direction=direction,
        threshold_min=low,
        threshold_max=high,
        interval_s=parse_duration(interval, template.where)
        if interval
        else ARGO_DEFAULT_INTERVAL_S,
        template=f"{template.kind} {template.name}",
        queries=queries,
        success_condition=success,
        failure_condition=failure,
        count=_optional_int(metric.get("count")),
        failure_limit=_optional_int(metric.get("failureLimit")),
        inconclusive_limit=_optional_int(metric.get("inconclusiveLimit")),
    )


def _bound(condition: str) -> tuple[str, float] | None:
    """(operator, number) of a condition such as ``result[0] >= 0.95``, else None."""
    match = _CONDITION.match(condition)
    return (match.group(1), float(match.group(2))) if match else None


def _optional_int(value: Any) -> int | None:
    """Argo's intstr fields (count, failureLimit) as an int; None when unset or templated."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None
