"""Kayenta canary configs (JSON or YAML) as a :class:`Spec` for rolloutlab's Kayenta judge.

A Kayenta canary config is recognised by its shape: no ``kind``, and a ``classifier`` or
``metrics`` holding a ``query`` or ``analysisConfigurations`` (:func:`is_kayenta_config`).
It becomes a spec judged by ``kayenta`` (rolloutlab's port of NetflixACAJudge-v1.0):

=========================================================  ===============================
Kayenta (spinnaker/kayenta)                                rolloutlab
=========================================================  ===============================
``name``                                                   ``Spec.name``
``metrics[].name``                                         ``MetricSpec.name`` and
                                                           ``.metric`` (a ``gauge``)
``metrics[].groups``                                       ``MetricSpec.groups``
``metrics[].query`` (``type: prometheus``)                 ``MetricSpec.queries``: control
                                                           → primary, experiment → canary
``analysisConfigurations.canary.direction``                ``MetricSpec.direction``
``...canary.critical`` / ``...canary.mustHaveData``        ``.critical`` / ``.must_have_data``
``...canary.muted: true``                                  left out (Kayenta does not score it)
``...canary.nanStrategy``                                  ``KayentaSettings.nan_strategy``
``...canary.outliers.strategy`` / ``.outlierFactor``       ``.remove_outliers`` / ``.outlier_factor``
``...canary.effectSize.measure``                           ``.effect_size_measure``
``...canary.effectSize.allowed*`` / ``critical*``          ``.allowed_*`` / ``.critical_*``
``classifier.groupWeights``                                ``KayentaSettings.group_weights``
request ``thresholds.pass`` / ``.marginal``                ``.pass_score`` / ``.marginal_score``
request ``lifetimeDurationMins`` / ``analysisIntervalMins``  ``.lifetime_s`` / ``.judgment_interval_s``
request ``scopes[0].step``                                 ``Spec.interval_s``
=========================================================  ===============================

Unset fields keep NetflixACAJudge's defaults (either direction, not critical, NaNs
removed, outliers kept, effect sizes 1.0, or 0.5 for ``cles``). The score thresholds come
from Kayenta's execution request; a config's own ``classifier.scoreThresholds`` (which
Spinnaker's UI stores) serve when no request is given. Like Kayenta, each metric keeps its
own ``nanStrategy``, ``outliers`` and ``effectSize`` (``MetricSpec.kayenta`` where they
differ from the first metric's, which the spec holds).

Scopes: a config names no service; Kayenta takes the control and experiment scopes from
the execution request. Give rolloutlab the same request, as a document beside the config
(in the same multi-document file, or a file in the same folder), in the shape of
Kayenta's standalone canary analysis request::

    scopes:
      - scopeName: default               # the metrics' scopeName (default "default")
        controlScope: podinfo-primary    # ${scope} for the primary's query
        experimentScope: podinfo         # ${scope} for the canary's query
        controlLocation: eu-west-1       # ${location} (optional)
        experimentLocation: eu-west-1
        step: 60                         # seconds: rolloutlab's tick interval
        extendedScopeParams: {namespace: test}   # any other ${name}
    thresholds: {pass: 95, marginal: 75}
    lifetimeDurationMins: 180
    analysisIntervalMins: 30

or the core request's ``scopes: {default: {controlScope: {scope, location,
extendedScopeParams, step}, experimentScope: {...}}}``; or both in one ad-hoc request
(``{canaryConfig: ..., executionRequest: ...}``, what Kayenta's
``/standalone_canary_analysis`` takes); or in Python ``kayenta_spec(config, request=...)``. Without a request the queries are not rendered
and the recording must already hold each metric, under its name.

Queries are built as Kayenta's PrometheusMetricsService.buildQuery does: a custom filter
(``customInlineTemplate``, else the template ``customFilterTemplate`` names) expanded with
``${scope}``, ``${location}``, ``${project}``, ``${resourceType}`` and the
``extendedScopeParams``; a filter starting ``PromQL:`` is the whole query; otherwise
``avg(metricName{filter,labelBindings}) by (groupByFields)``, or for ``resourceType``
``gce_instance`` / ``aws_ec2_instance`` Kayenta's scope and zone labels (with its default
``scopeLabel``, ``instance``). Metrics of other sources (Atlas, Datadog, Stackdriver, ...)
are left out, named in one :class:`~rolloutlab.specs.documents.ManifestWarning`.
Stricter than Kayenta, which falls back silently: an unknown ``direction``,
``nanStrategy``, ``outliers.strategy`` or ``effectSize.measure`` is an error, and unknown
keys (which Kayenta ignores) are named in a warning. Expanded values are not expanded
again (Kayenta's substitutor would).
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rolloutlab.errors import SpecError
from rolloutlab.specs.documents import Document, ManifestWarning, _warn_unsupported
from rolloutlab.specs.model import KayentaSettings, MetricSpec, Spec
from rolloutlab.specs.schema import (
    _choice,
    _closest,
    _fail,
    _flag,
    _group_weights,
    _groups,
    _join,
    _number,
    _show,
    _text,
)

#: The judge Kayenta names the algorithm rolloutlab's Kayenta judge ports.
NETFLIX_JUDGE = "NetflixACAJudge-v1.0"
#: Kayenta's default ``prometheus.scopeLabel`` (PrometheusConfigurationProperties).
SCOPE_LABEL = "instance"
#: The scope attributes Kayenta binds in templates (PrometheusMetricsService.buildQuery).
SCOPE_ATTRIBUTES = ("project", "resourceType", "scope", "location")

_QUERY_KEYS = (
    "type",
    "serviceType",
    "metricName",
    "labelBindings",
    "groupByFields",
    "customInlineTemplate",
    "customFilterTemplate",
    "resourceType",
)
_CANARY_KEYS = (
    "direction",
    "nanStrategy",
    "outliers",
    "critical",
    "mustHaveData",
    "muted",
    "effectSize",
)
_EFFECT_KEYS = (
    "measure",
    "allowedIncrease",
    "allowedDecrease",
    "criticalIncrease",
    "criticalDecrease",
)
_TEMPLATE_VARIABLE = re.compile(r"\$(\$?)\{([^}]*)\}")


def is_kayenta_config(data: Any) -> bool:
    """Whether ``data`` has a Kayenta canary config's shape (see the module docstring)."""
    if not isinstance(data, Mapping) or data.get("kind") or data.get("apiVersion"):
        return False
    if _adhoc(data):
        return True
    metrics = data.get("metrics")
    listed = isinstance(metrics, list) and any(
        isinstance(m, Mapping) and ("query" in m or "analysisConfigurations" in m) for m in metrics
    )
    return listed or isinstance(data.get("classifier"), Mapping)


def is_kayenta_request(data: Any) -> bool:
    """Whether ``data`` is a Kayenta execution request (scopes, no metrics)."""
    return (
        isinstance(data, Mapping)
        and not (data.get("kind") or data.get("apiVersion") or "metrics" in data)
        and isinstance(data.get("scopes"), list | Mapping)
    )


def _adhoc(data: Mapping[str, Any]) -> bool:
    """An ad-hoc request (CanaryAnalysisAdhocExecutionRequest): config and request in one."""
    return isinstance(data.get("canaryConfig"), Mapping) and isinstance(
        data.get("executionRequest"), Mapping
    )


@dataclass(frozen=True)
class Scope:
    """One side of a Kayenta scope pair: what ``${scope}``, ``${location}`` and the
    extended parameters expand to, and the step in seconds."""

    scope: str | None = None
    location: str | None = None
    extended: tuple[tuple[str, str], ...] = ()
    step_s: float | None = None

    def bindings(self) -> dict[str, str]:
        """Kayenta's template variables (QueryConfigUtils.expandCustomFilter): the scope's
        non-empty attributes, then the extended parameters."""
        extended = dict(self.extended)
        own = {
            "project": extended.get("project"),
            "resourceType": extended.get("resourceType"),
            "scope": self.scope,
            "location": self.location,
        }
        return {**{k: v for k, v in own.items() if v}, **extended}


def kayenta_with_request(main: Document, docs: Sequence[Document]) -> Spec:
    """The spec of the Kayenta config ``main``, with the execution request among ``docs``."""
    requests = [d for d in docs if is_kayenta_request(d.data)]
    if len(requests) > 1:
        listed = "; ".join(d.where for d in requests)
        raise SpecError(
            f"{main.where}: {len(requests)} Kayenta execution requests ({listed}). Keep the "
            "one whose scopes this canary config should be judged with."
        )
    request = requests[0] if requests else None
    try:
        return kayenta_spec(main.data, request=request.data if request else None, where=main.where)
    except SpecError as exc:
        if request is None or str(exc).startswith(main.where):
            raise
        raise SpecError(f"{main.where} with request {request.where}: {exc}") from None


def kayenta_spec(
    config: Mapping[str, Any],
    *,
    request: Mapping[str, Any] | None = None,
    where: str = "<kayenta config>",
) -> Spec:
    """A :class:`Spec` from a Kayenta canary config and, optionally, the execution
    request that gives its scopes, thresholds and schedule (see the module docstring)."""
    if not isinstance(config, Mapping):
        raise SpecError(f"{where}: expected a Kayenta canary config (a mapping).")
    if _adhoc(config):
        if request is not None:
            raise SpecError(
                f"{where}: an ad-hoc request holds its own executionRequest; give no other."
            )
        config, request = config["canaryConfig"], config["executionRequest"]
    metrics = config.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        raise _fail(f"{where}: metrics", "missing or empty", "List the metrics to compare.")
    judge = config.get("judge")
    judge = judge.get("name") if isinstance(judge, Mapping) else None
    if judge not in (None, NETFLIX_JUDGE):
        _warn(where, f"judge {judge!r} is judged as {NETFLIX_JUDGE} (rolloutlab's Kayenta judge)")
    scopes, schedule = _request(request, where) if request is not None else ({}, {})
    templates = config.get("templates") or {}
    kept: list[MetricSpec] = []
    settings: dict[str, dict[str, Any]] = {}
    skipped, muted = [], []
    for i, (raw, name) in enumerate(zip(metrics, _names(metrics, where), strict=True)):
        path = f"{where}: metrics[{i}]"
        query = raw.get("query")
        if not isinstance(query, Mapping) or not query.get("type"):
            raise _fail(
                _join(path, "query"),
                f"metric {name!r} has no query with a type",
                "Give query: {type: prometheus, metricName: ...}.",
            )
        canary, own = _analysis(raw.get("analysisConfigurations") or {}, path)
        if query["type"] != "prometheus":
            skipped.append(f"{name} (query type {query['type']})")
            continue
        if canary.pop("muted", False):
            muted.append(name)
            continue
        settings[name] = own
        scope_name = str(raw.get("scopeName") or "default")
        kept.append(
            MetricSpec(
                name,
                "gauge",
                name,
                groups=_groups(raw.get("groups") or [], _join(path, "groups")),
                template=_describe(query, rendered=bool(scopes)),
                queries=_queries(query, templates, scopes, scope_name, name, path),
                **canary,
            )
        )
    if muted:
        _warn(
            where,
            f"muted metric(s) {', '.join(muted)} are left out, as Kayenta leaves them out "
            "of the score",
        )
    if not kept:
        raise SpecError(
            f"{where}: no Prometheus metric rolloutlab can judge among {len(metrics)} "
            f"({'; '.join(skipped + [f'{m} (muted)' for m in muted])}). Add a metric with "
            "query type prometheus."
        )
    _warn_unsupported(skipped, where)
    if request is None and any(not m.queries for m in kept):
        _warn(
            where,
            "no Kayenta execution request given, so the queries are not rendered: the "
            "recording must hold each metric under its name. Add the request (its scopes) "
            "beside the config to fetch them",
        )
    base, own = _shared(settings)
    kept = [dataclasses.replace(m, kayenta=own.get(m.name)) for m in kept]
    kayenta = KayentaSettings(
        **base,
        **_thresholds(config, request, where),
        **schedule,
        group_weights=_weights(config, kept, len(skipped + muted) > 0, where),
    )
    step = next((s.step_s for pair in scopes.values() for s in pair if s.step_s), None)
    title = None if config.get("name") is None else str(config["name"])
    spec = Spec(name=title, judge="kayenta", metrics=tuple(kept), kayenta=kayenta)
    return dataclasses.replace(spec, interval_s=step) if step else spec


def _names(metrics: Sequence[Any], where: str) -> list[str]:
    """The metrics' names, unique as CanaryConfigController.validateMetricConfigNames wants."""
    names: list[str] = []
    for i, raw in enumerate(metrics):
        path = f"{where}: metrics[{i}]"
        if not isinstance(raw, Mapping):
            raise _fail(path, f"expected a metric mapping, got {_show(raw)}", "")
        name = _text(raw.get("name"), _join(path, "name"))
        if name in names:
            raise _fail(
                _join(path, "name"), f"{name!r} is duplicated", "Metric names must be unique."
            )
        names.append(name)
    return names


def _warn(where: str, what: str) -> None:
    warnings.warn(f"{where}: {what}.", ManifestWarning, stacklevel=4)


def _unknown(data: Mapping[str, Any], known: Sequence[str], path: str) -> None:
    """Warn of keys Kayenta ignores (a typo there silently changes the analysis)."""
    for key in data:
        if key not in known:
            close = _closest(str(key), known)
            hint = f" (did you mean {close!r}?)" if close else ""
            _warn(path, f"unknown key {key!r}{hint} is ignored, as Kayenta ignores it")


def _analysis(data: Any, path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the metric's own fields, its judge settings) from ``analysisConfigurations``,
    read as NetflixACAJudge.classifyMetric reads them."""
    path = _join(path, "analysisConfigurations.canary")
    canary = data.get("canary") if isinstance(data, Mapping) else None
    if canary is None:
        canary = {}
    if not isinstance(canary, Mapping):
        raise _fail(path, f"expected a mapping, got {_show(canary)}", "")
    _unknown(canary, _CANARY_KEYS, path)
    metric: dict[str, Any] = {}
    if "direction" in canary:
        metric["direction"] = _choice(("increase", "decrease", "either"))(
            canary["direction"], _join(path, "direction")
        )
    for key, attr in (
        ("critical", "critical"),
        ("mustHaveData", "must_have_data"),
        ("muted", "muted"),
    ):
        if key in canary:
            metric[attr] = _flag(canary[key], _join(path, key))
    own: dict[str, Any] = {}
    nan = _choice(("remove", "replace", "none"))(
        canary.get("nanStrategy", "none"), _join(path, "nanStrategy")
    )
    own["nan_strategy"] = "replace" if nan == "replace" else "remove"
    outliers = canary.get("outliers") or {}
    if not isinstance(outliers, Mapping):
        raise _fail(_join(path, "outliers"), f"expected a mapping, got {_show(outliers)}", "")
    _unknown(outliers, ("strategy", "outlierFactor"), _join(path, "outliers"))
    strategy = _choice(("remove", "keep", "none"))(
        outliers.get("strategy", "none"), _join(path, "outliers.strategy")
    )
    own["remove_outliers"] = strategy == "remove"
    own["outlier_factor"] = _number(3, lo=0, open_lo=True)(
        outliers.get("outlierFactor", 3.0), _join(path, "outliers.outlierFactor")
    )
    effect = canary.get("effectSize") or {}
    if not isinstance(effect, Mapping):
        raise _fail(_join(path, "effectSize"), f"expected a mapping, got {_show(effect)}", "")
    _unknown(effect, _EFFECT_KEYS, _join(path, "effectSize"))
    measure = _choice(("meanRatio", "cles"))(
        effect.get("measure", "meanRatio"), _join(path, "effectSize.measure")
    )
    own["effect_size_measure"] = measure
    neutral = 0.5 if measure == "cles" else 1.0
    for key, attr in (
        ("allowedIncrease", "allowed_increase"),
        ("allowedDecrease", "allowed_decrease"),
        ("criticalIncrease", "critical_increase"),
        ("criticalDecrease", "critical_decrease"),
    ):
        own[attr] = _number(neutral, lo=0)(
            effect.get(key, neutral), _join(path, f"effectSize.{key}")
        )
    return metric, own


def _shared(settings: Mapping[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The judge settings of the first metric, for the spec, and each metric's own
    :class:`KayentaSettings` where they differ (Kayenta reads them per metric)."""
    base = next(iter(settings.values()))
    own = {name: KayentaSettings(**s) for name, s in settings.items() if s != base}
    return base, own


def _thresholds(
    config: Mapping[str, Any], request: Mapping[str, Any] | None, where: str
) -> dict[str, Any]:
    """Pass and marginal scores: the request's thresholds, else the config's own."""
    found, path = (request or {}).get("thresholds"), f"{where}: request thresholds"
    if found is None:
        classifier = config.get("classifier") or {}
        found, path = classifier.get("scoreThresholds"), f"{where}: classifier.scoreThresholds"
    if found is None:
        return {}
    if not isinstance(found, Mapping):
        raise _fail(path, f"expected {{pass: 95, marginal: 75}}, got {_show(found)}", "")
    score = _number(75, lo=0, hi=100)
    out = {}
    for key, attr in (("pass", "pass_score"), ("marginal", "marginal_score")):
        if key in found:
            out[attr] = score(found[key], _join(path, key))
    if out.get("marginal_score", 75.0) > out.get("pass_score", 95.0):
        raise _fail(path, "marginal is above pass", "The marginal score must not exceed pass.")
    return out


def _weights(
    config: Mapping[str, Any], kept: Sequence[MetricSpec], dropped: bool, where: str
) -> tuple[tuple[str, float], ...]:
    """The classifier's group weights for the groups rolloutlab judges.

    Kayenta's CanaryClassifierConfig: "Weights must total 100"; groups without a weight
    share what is left (WeightedSumScorer), so when every group has one, the weights of
    the groups with metrics must total 100. Weights are kept as given (the scorer counts
    those of groups without metrics too); but once metrics are left out, only the groups
    still judged keep theirs, scaled up to 100 (with a warning) if they cover every group,
    so that a passing canary can still pass.
    """
    path = f"{where}: classifier.groupWeights"
    classifier = config.get("classifier") or {}
    pairs = _group_weights(classifier.get("groupWeights") or {}, path)
    used = {g for m in kept for g in (m.groups or ("default",))}
    covered = used <= {g for g, _ in pairs}
    kept_pairs = tuple((g, w) for g, w in pairs if g in used)
    kept_total = sum(w for _, w in kept_pairs)
    if not dropped:
        if covered and abs(kept_total - 100) > 1e-6:
            raise _fail(
                path,
                f"the weights of the groups with metrics ({', '.join(sorted(used))}) total "
                f"{kept_total:g}",
                "Kayenta's weights must total 100.",
            )
        return pairs
    if covered and 0 < kept_total < 100 - 1e-6:
        _warn(
            where,
            f"the groups left ({', '.join(g for g, _ in kept_pairs)}) weigh {kept_total:g}; "
            "rolloutlab scales them to 100",
        )
        return tuple((g, 100.0 * w / kept_total) for g, w in kept_pairs)
    return kept_pairs


def _request(request: Any, where: str) -> tuple[dict[str, tuple[Scope, Scope]], dict[str, Any]]:
    """(scope name -> (control, experiment), the judgment schedule) of a Kayenta request:
    the standalone CanaryAnalysisExecutionRequest or the core CanaryExecutionRequest."""
    path = f"{where}: request"
    if not isinstance(request, Mapping):
        raise _fail(path, f"expected a Kayenta execution request, got {_show(request)}", "")
    raw = request.get("scopes")
    scopes: dict[str, tuple[Scope, Scope]] = {}
    if isinstance(raw, Mapping):  # CanaryExecutionRequest: {name: {controlScope, experimentScope}}
        for name, pair in raw.items():
            at = _join(path, f"scopes.{name}")
            if not isinstance(pair, Mapping):
                raise _fail(at, f"expected a scope pair, got {_show(pair)}", "")
            scopes[str(name)] = (
                _core_scope(pair.get("controlScope"), _join(at, "controlScope")),
                _core_scope(pair.get("experimentScope"), _join(at, "experimentScope")),
            )
    elif isinstance(raw, list) and raw:  # CanaryAnalysisExecutionRequest: a list of scopes
        for i, item in enumerate(raw):
            at = _join(path, f"scopes[{i}]")
            if not isinstance(item, Mapping):
                raise _fail(at, f"expected a scope, got {_show(item)}", "")
            if item.get("controlOffsetInMinutes"):
                raise _fail(
                    _join(at, "controlOffsetInMinutes"),
                    "a control offset is not supported",
                    "rolloutlab compares both variants over the same ticks: remove it.",
                )
            extended = _extended(item.get("extendedScopeParams"), _join(at, "extendedScopeParams"))
            step = _step(item.get("step", 60), _join(at, "step"))
            scopes[str(item.get("scopeName") or "default")] = (
                Scope(item.get("controlScope"), item.get("controlLocation"), extended, step),
                Scope(item.get("experimentScope"), item.get("experimentLocation"), extended, step),
            )
    else:
        raise _fail(
            _join(path, "scopes"), "missing or empty", "List the control and experiment scopes."
        )
    schedule: dict[str, Any] = {}
    minutes = _number(30, lo=0, open_lo=True)
    if request.get("lifetimeDurationMins") is not None:
        schedule["lifetime_s"] = 60 * minutes(
            request["lifetimeDurationMins"], _join(path, "lifetimeDurationMins")
        )
    if request.get("analysisIntervalMins") is not None:
        schedule["judgment_interval_s"] = 60 * minutes(
            request["analysisIntervalMins"], _join(path, "analysisIntervalMins")
        )
    if request.get("lookbackMins"):
        raise _fail(
            _join(path, "lookbackMins"),
            "sliding judgment windows are not supported",
            "rolloutlab's Kayenta judge judges the growing window from the start, Kayenta's "
            "default: remove lookbackMins.",
        )
    return scopes, schedule


def _core_scope(data: Any, path: str) -> Scope:
    if not isinstance(data, Mapping):
        raise _fail(path, f"expected a scope {{scope, location, step}}, got {_show(data)}", "")
    step = data.get("step")
    return Scope(
        data.get("scope"),
        data.get("location"),
        _extended(data.get("extendedScopeParams"), _join(path, "extendedScopeParams")),
        None if step is None else _step(step, _join(path, "step")),
    )


def _step(value: Any, path: str) -> float:
    """A scope's step in seconds; a text of digits counts, as Jackson reads it into a Long."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return _number(60, lo=1)(value, path)


def _extended(data: Any, path: str) -> tuple[tuple[str, str], ...]:
    if data is None:
        return ()
    if not isinstance(data, Mapping):
        raise _fail(path, f"expected a mapping name: value, got {_show(data)}", "")
    return tuple((str(k), str(v)) for k, v in data.items())


def _describe(query: Mapping[str, Any], *, rendered: bool) -> str:
    """The query's source, for reports (and what is missing when it is not rendered)."""
    parts = [f"Kayenta prometheus query {query.get('metricName') or ''}".rstrip()]
    for key in ("customInlineTemplate", "customFilterTemplate", "resourceType"):
        if query.get(key):
            parts.append(f"{key} {query[key]}")
    return ", ".join(parts) + ("" if rendered else "; no execution request gives its scopes")


def _queries(
    query: Mapping[str, Any],
    templates: Any,
    scopes: Mapping[str, tuple[Scope, Scope]],
    scope_name: str,
    metric: str,
    path: str,
) -> tuple[tuple[str, str], ...]:
    """The metric's PromQL for the primary (control) and the canary (experiment)."""
    _unknown(query, _QUERY_KEYS, _join(path, "query"))
    if query.get("customFilter"):
        raise _fail(
            _join(path, "query.customFilter"),
            "customFilter is deprecated and refused by Kayenta",
            "Use customInlineTemplate instead.",
        )
    if not scopes:
        return ()
    if scope_name not in scopes:
        raise _fail(
            _join(path, "scopeName"),
            f"the request has no scope {scope_name!r} (it has {', '.join(sorted(scopes))})",
            "Add that scope to the request, or fix the metric's scopeName.",
        )
    control, experiment = scopes[scope_name]
    return (
        ("primary", prometheus_query(query, control, templates, f"{path} (control)")),
        ("canary", prometheus_query(query, experiment, templates, f"{path} (experiment)")),
    )


def prometheus_query(
    query: Mapping[str, Any], scope: Scope, templates: Any = None, path: str = "query"
) -> str:
    """The PromQL Kayenta's PrometheusMetricsService.buildQuery sends for ``scope``."""
    resource_type = query.get("resourceType") or dict(scope.extended).get("resourceType")
    bindings = {**scope.bindings(), **({"resourceType": resource_type} if resource_type else {})}
    custom = _custom_filter(query, templates, bindings, path)
    if custom and custom.startswith("PromQL:"):
        return custom[len("PromQL:") :]
    if not query.get("metricName"):
        raise _fail(_join(path, "query.metricName"), "missing", "Name the Prometheus metric.")
    filters = [str(b) for b in query.get("labelBindings") or []]
    if custom:
        filters = custom.split(",") + filters
    elif resource_type in ("gce_instance", "aws_ec2_instance"):
        filters += _instance_filters(resource_type, scope, bindings, path)
    elif resource_type:
        raise _fail(
            _join(path, "query.resourceType"),
            f"Kayenta has no explicit support for resourceType {resource_type!r}",
            "Build the query from labelBindings and a customInlineTemplate instead.",
        )
    else:
        raise _fail(
            _join(path, "query"),
            "either a resource type or a custom filter is required (Kayenta)",
            "Add a customInlineTemplate such as 'app=\"${scope}\"', or resourceType.",
        )
    selector = "{" + ",".join(filters) + "}" if filters else ""
    promql = f"avg({query['metricName']}{selector})"
    group_by = [str(f) for f in query.get("groupByFields") or []]
    return promql + (f" by ({','.join(group_by)})" if group_by else "")


def _instance_filters(kind: str, scope: Scope, bindings: Mapping[str, str], path: str) -> list[str]:
    """Kayenta's paved-road filters for GCE and EC2 instances (addGCEFilters, addEC2Filters)."""
    if not scope.location:
        raise _fail(
            path,
            f"a location (region) is required when resourceType is {kind!r}",
            "Set controlLocation and experimentLocation in the request.",
        )
    filters = []
    if kind == "gce_instance":
        if scope.scope:
            filters.append(f'{SCOPE_LABEL}=~"{scope.scope}-.{{4}}"')
        project = bindings.get("project")
        zone = (
            ".+/" + (f"projects/{project}/" if project else "") + f"zones/{scope.location}-.{{1}}"
        )
        return [*filters, f'zone=~"{zone}"']
    if scope.scope:
        filters.append(f'asg_groupName="{scope.scope}"')
    return [*filters, f'zone=~"{scope.location}.{{1}}"']


def _custom_filter(
    query: Mapping[str, Any], templates: Any, bindings: Mapping[str, str], path: str
) -> str | None:
    """QueryConfigUtils.expandCustomFilter: the inline template, else the named one, expanded."""
    inline, named = query.get("customInlineTemplate"), query.get("customFilterTemplate")
    if inline:
        template = str(inline)
    elif named:
        if not isinstance(templates, Mapping) or not templates:
            raise _fail(
                _join(path, "query.customFilterTemplate"),
                f"template {named!r} is referenced, but the config defines no templates",
                "Add it under the config's templates.",
            )
        if named not in templates:
            raise _fail(
                _join(path, "query.customFilterTemplate"),
                f"template {named!r} was not found (templates: {', '.join(map(str, templates))})",
                "Fix the name or add the template.",
            )
        template = str(templates[named])
    else:
        return None
    return expand_template(template.replace("$\\{", "${"), bindings, path)


def expand_template(template: str, bindings: Mapping[str, str], path: str = "template") -> str:
    """``${name}`` (``${name:-default}``; ``$${name}`` is a literal) as Apache Commons'
    StringSubstitutor expands Kayenta's templates; an undefined name is an error."""

    def value(match: re.Match[str]) -> str:
        escaped, body = match.groups()
        if escaped:
            return "${" + body + "}"
        name, has_default, default = body.partition(":-")
        if name in bindings:
            return bindings[name]
        if has_default:
            return default
        known = ", ".join(sorted(bindings)) or "none"
        raise _fail(
            path,
            f"the template uses ${{{name}}}, which the scope does not define (defined: {known})",
            f"Add {name} to the request's extendedScopeParams.",
        )

    return _TEMPLATE_VARIABLE.sub(value, template)
