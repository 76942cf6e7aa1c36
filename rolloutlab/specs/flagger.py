"""Flagger: a ``Canary``'s ``spec.analysis`` as a :class:`Spec`, and the
``MetricTemplate`` queries of its metrics rendered for the canary and the primary."""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from rolloutlab.durations import parse_duration
from rolloutlab.errors import SpecError
from rolloutlab.sources.presets import flagger_names
from rolloutlab.specs.documents import (
    CREDENTIALS_HINT,
    Document,
    ManifestWarning,
    _TemplateIndex,
    _warn_unsupported,
)
from rolloutlab.specs.model import (
    BUILTIN_METRICS,
    ROUTER_KINDS,
    Direction,
    KayentaSettings,
    MetricSpec,
    Spec,
    default_metrics,
)
from rolloutlab.specs.native import _build, _resolve_steps
from rolloutlab.specs.schema import (
    _fail,
    _Field,
    _field_for,
    _join,
    _number,
    _read,
    _show,
    _text,
    _threshold_range,
    _weights,
    _whole,
)

FLAGGER_API = "flagger.app/"
FLAGGER_METRIC_INTERVAL_S = 60.0
FLAGGER_MIN_INTERVAL_S = 10.0
FLAGGER_KUBERNETES_PROVIDER = "kubernetes"
FLAGGER_KUBERNETES_ITERATIONS = 10
FLAGGER_TEMPLATE = "MetricTemplate"
#: Flagger renders ``{{ interval }}`` from the metric's interval, "1m" when it has none.
FLAGGER_DEFAULT_INTERVAL = "1m"
_GO_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")

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


def router_kind(provider: str | None) -> str | None:
    """The router kind of a Flagger provider (``smi:v1alpha2:linkerd`` is
    ``smi:v1alpha2``, the mesh is Flagger's), None when rolloutlab has no router for it."""
    kind = ":".join(provider.split(":")[:2]) if provider else None
    return kind if kind in ROUTER_KINDS else None


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


def canary_spec(data: Mapping[str, Any]) -> Spec:
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
    given = str(spec_part.get("provider") or "")
    provider = given.partition(":")[0] or None
    if provider == FLAGGER_KUBERNETES_PROVIDER:
        # Flagger's scheduler: no traffic shifting without a mesh, so blue/green with
        # iterations (10 when unset) and no A/B match (pkg/controller/scheduler.go)
        raw["iterations"] = raw["iterations"] or FLAGGER_KUBERNETES_ITERATIONS
        raw["ab_testing"] = False
    if raw["iterations"]:
        # iterations make it blue/green or A/B, which never step the weight
        # (Canary.DeploymentStrategy in pkg/apis/flagger/v1beta1/canary.go)
        raw.update(step_weight=0.0, step_weights=())
    raw.update(provider=provider, router=router_kind(given))
    raw["names"] = tuple(flagger_names(data).items())
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


def canary_with_templates(canary: Document, templates: Sequence[Document]) -> Spec:
    """The Canary's spec with each template metric's query rendered per variant."""
    try:
        spec = canary_spec(canary.data)
    except SpecError as exc:
        raise SpecError(f"{canary.where}: {exc}") from None
    body = canary.data["spec"]
    analysis = body.get("analysis") or body.get("canaryAnalysis")
    index = _TemplateIndex(templates, canary)
    kept, skipped, same, secured = [], [], [], []
    for metric, raw in zip(spec.metrics, analysis.get("metrics") or [], strict=True):
        if metric.template is None or ("templateRef" in raw and not templates):
            kept.append(metric)  # a lone Canary: the recording must hold the metric
            continue
        query, provider, template, secret = _flagger_query(raw, canary, index)
        if provider != "prometheus":
            skipped.append(f"{metric.name} ({template}, provider {provider})")
            continue
        model = _flagger_model(canary, raw)
        target = model["target"]
        primary, canary_query = (
            render_query(query, {**model, "target": name}, metric.name, canary.where)
            for name in (f"{target}-primary", target)
        )
        if primary == canary_query:  # the query never names the target: one series
            same.append(metric.name)
            queries: tuple[tuple[str, str], ...] = (("canary", canary_query),)
        else:
            queries = (("primary", primary), ("canary", canary_query))
        kept.append(dataclasses.replace(metric, queries=queries, template=template))
        secured += [f"{metric.name} (Secret {secret})"] * bool(secret)
    _warn_unsupported(skipped, canary.where)
    if secured:
        warnings.warn(
            f"{canary.where}: {', '.join(secured)} query Prometheus with the credentials of a "
            f"Secret (provider.secretRef): {CREDENTIALS_HINT}.",
            ManifestWarning,
            stacklevel=3,
        )
    if same:
        warnings.warn(
            f"{canary.where}: {', '.join(same)}: the query does not use {{{{ target }}}}, so it "
            "reads the same series for primary and canary; rolloutlab fetches it for the "
            "canary only (its thresholdRange is checked; there is no primary to compare).",
            ManifestWarning,
            stacklevel=3,
        )
    return dataclasses.replace(spec, metrics=tuple(kept))


def _flagger_query(
    raw: Mapping[str, Any], canary: Document, index: _TemplateIndex
) -> tuple[str, str, str, str | None]:
    """(query, provider type, description, credentials Secret) of a template or
    inline-query metric."""
    if "templateRef" not in raw:
        return str(raw["query"]), "prometheus", "inline query", None
    ref = raw["templateRef"]
    namespace = ref.get("namespace") or canary.meta.get("namespace")
    template = index.find((FLAGGER_TEMPLATE,), ref["name"], namespace)
    body = template.data.get("spec") or {}
    provider_spec = body.get("provider") or {}
    if not isinstance(provider_spec, Mapping):
        raise SpecError(
            f"{template.where}: MetricTemplate {template.name} spec.provider is "
            f"{provider_spec!r:.80}; Flagger reads a mapping: provider: {{type: prometheus, "
            "address: http://prometheus:9090}."
        )
    provider = provider_spec.get("type") or "prometheus"
    if "query" not in body:
        raise SpecError(f"{template.where}: MetricTemplate {template.name} has no spec.query.")
    ns = template.meta.get("namespace") or namespace
    described = f"MetricTemplate {ns}/{template.name}" if ns else f"MetricTemplate {template.name}"
    ref = provider_spec.get("secretRef")
    secret = ref.get("name") if isinstance(ref, Mapping) else None
    return str(body["query"]), str(provider), described, secret


def _flagger_model(canary: Document, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Flagger's template variables for this Canary and metric (toMetricModel)."""
    body = canary.data["spec"]
    target = (body.get("targetRef") or {}).get("name") or ""
    service = (body.get("service") or {}).get("name") or target
    interval = raw.get("interval") or FLAGGER_DEFAULT_INTERVAL
    return {
        "name": canary.name or "",
        "namespace": canary.meta.get("namespace") or "",
        "target": target,
        "service": service,
        "ingress": (body.get("ingressRef") or {}).get("name") or target,
        "route": (body.get("routeRef") or {}).get("name") or target,
        "interval": str(interval),
        "variables": _template_variables(
            raw.get("templateVariables"), f"{canary.where}: metric {raw.get('name')!r}"
        ),
    }


def _template_variables(value: Any, where: str) -> dict[str, Any]:
    """A metric's ``templateVariables`` (a map of strings in Flagger's CRD)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(
            f"{where}: templateVariables is {value!r:.80}; Flagger reads a mapping of names to "
            "values, e.g. templateVariables: {cluster: dev}."
        )
    return dict(value)


def render_query(query: str, model: Mapping[str, Any], metric: str, where: str) -> str:
    """Render the Go-template actions Flagger's queries use: ``{{ target }}``,
    ``{{ variables.x }}`` and ``{{ printf "fmt %s" a b }}``; others are an error."""

    def value(word: str) -> str:
        head, _, key = word.partition(".")
        if head == "variables" and key:
            if key not in model["variables"]:
                raise SpecError(
                    f"{where}: metric {metric!r} uses {{{{ variables.{key} }}}} but its "
                    f"templateVariables have no {key!r}. Add templateVariables: {{{key}: ...}}."
                )
            return str(model["variables"][key])
        if head == "namespace" and not key and not model["namespace"]:
            raise SpecError(
                f"{where}: metric {metric!r} uses {{{{ namespace }}}} and the Canary has no "
                "metadata.namespace (Flagger renders the namespace it runs in). Add "
                "metadata.namespace to the Canary."
            )
        if head in model and not key and head != "variables":
            return str(model[head])
        helm = (
            " It looks like a Helm value: render the chart first (helm template)."
            if word.startswith(".")
            else ""
        )
        raise SpecError(
            f"{where}: metric {metric!r}: cannot render {{{{ {word} }}}}. Flagger's template "
            f"variables are {', '.join(sorted(model))} (variables.<key>).{helm}"
        )

    def action(match: re.Match[str]) -> str:
        text = match.group(1)
        printf = re.fullmatch(r'printf\s+"((?:[^"\\]|\\.)*)"((?:\s+[\w.]+)*)', text)
        if printf:
            return (
                printf.group(1)
                .replace("%s", "{}")
                .format(*(value(w) for w in printf.group(2).split()))
            )
        return value(text)

    return _GO_ACTION.sub(action, query)
