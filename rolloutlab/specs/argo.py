"""Argo Rollouts: a canary ``Rollout`` (steps, step and background analysis,
``trafficRouting``) and its ``AnalysisTemplate`` / ``ClusterAnalysisTemplate`` Prometheus
metrics as a :class:`Spec`."""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, cast

from rolloutlab.durations import parse_duration
from rolloutlab.errors import SpecError
from rolloutlab.specs.documents import (
    CREDENTIALS_HINT,
    Document,
    ManifestWarning,
    _TemplateIndex,
    _warn_unsupported,
)
from rolloutlab.specs.model import Direction, KayentaSettings, MetricSpec, Spec
from rolloutlab.specs.native import _build
from rolloutlab.specs.schema import check_duration

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
_NUMBER = r"(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
_RESULT = r"(?:result(?:\[0\])?|as(?:Float|Int)\(result(?:\[0\])?\))"
_OP = r"(>=|>|<=|<|==)"
#: The comparisons of one value with a number that Argo's examples write (``result[0] >=
#: 0.95``, ``0.95 <= result[0]``, ``all(result, # < 1000)`` / ``all(result, {# < 1000})``).
_COMPARISON = re.compile(
    rf"^(?:{_RESULT}\s*{_OP}\s*{_NUMBER}|{_NUMBER}\s*{_OP}\s*{_RESULT}"
    rf"|all\(\s*result\s*,\s*\{{?\s*#\s*{_OP}\s*{_NUMBER}\s*\}}?\s*\))$"
)
#: Guards for an empty or NaN result around the comparison (``len(result) == 0 || ...``,
#: ``len(result) > 0 && ...``, ``isNaN(result[0]) || ...``): rolloutlab never passes a
#: tick without data, so they do not change the bound.
_EMPTY = r"(?:len\(result\)\s*==\s*0|isNaN\(\s*result(?:\[0\])?\s*\))"
_NONEMPTY = r"len\(result\)\s*>\s*0"
_GUARDED = re.compile(
    rf"^(?:{_EMPTY}\s*\|\||{_NONEMPTY}\s*&&)?\s*(.*?)\s*(?:\|\|\s*{_EMPTY}|&&\s*{_NONEMPTY})?$"
)
_FLIPPED = {">=": "<=", ">": "<", "<=": ">=", "<": ">", "==": "=="}
#: ``metadata.labels['key']`` / ``metadata.annotations['key']`` (k8s fieldpath).
_FIELD_KEY = re.compile(r"^metadata\.(labels|annotations)\['([^']*)'\]$")


def rollout_spec(rollout: Document, templates: Sequence[Document]) -> Spec:
    """A spec from a Rollout's canary strategy and the analysis templates it names."""
    body = rollout.data.get("spec") or {}
    strategy = body.get("strategy") or {}
    where = rollout.where
    if "canary" not in strategy:
        raise SpecError(f"{where}: Rollout {rollout.name} {_not_canary(rollout.data)}")
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
            analyses.append(_analysis(step["analysis"], f"{where}: {path}.analysis"))
        else:
            ignored.extend(f"{k} ({path})" for k in step)
    notes: list[str] = []
    background = canary.get("analysis")
    if background:
        analyses.append(_analysis(background, f"{where}: spec.strategy.canary.analysis"))
        if background.get("startingStep"):
            notes.append(
                f"spec.strategy.canary.analysis.startingStep {background['startingStep']}: Argo "
                "starts the background analysis at that step, rolloutlab judges its metrics "
                "from the first tick; give --start at the time the Rollout reached that step "
                "to judge the same span"
            )
    metrics: list[MetricSpec] = []
    skipped: list[str] = []
    for analysis in analyses:
        for metric in _argo_metrics(analysis, rollout, canary, index, skipped, notes):
            if any(m.name == metric.name for m in metrics):
                continue  # the same template at several steps
            metrics.append(metric)
    _warn_unsupported(skipped, where)
    if ignored:
        notes.append(f"rolloutlab does not replay the steps {', '.join(ignored)}")
    if notes:
        warnings.warn(f"{where}: {'; '.join(notes)}.", ManifestWarning, stacklevel=3)
    intervals = [m.interval_s for m in metrics] or pauses or [ARGO_DEFAULT_INTERVAL_S]
    # dry-run metrics (and those Argo never fails) do not set the rollback threshold
    limits = [m.failure_limit or 0 for m in metrics if m.critical is not False]
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


def _not_canary(rollout: Mapping[str, Any]) -> str:
    """Why a Rollout without ``spec.strategy.canary`` cannot be judged, and what to give."""
    strategy = (rollout.get("spec") or {}).get("strategy") or {}
    if "strategy" in rollout:
        return "has strategy at the top level; Argo reads spec.strategy. Indent it under spec."
    if not strategy:
        return (
            "has no spec.strategy; Argo needs spec.strategy.canary or .blueGreen, and "
            "rolloutlab judges a canary. Add strategy.canary with its steps; if this is a "
            "kustomize patch (only the fields it changes), render the overlay first "
            "(kustomize build DIR > rendered.yaml) and give the output."
        )
    return (
        f"has strategy {', '.join(strategy)}; rolloutlab judges a canary split "
        "(spec.strategy.canary). A blue-green Rollout sends the new version no traffic before "
        "promotion: judge its preview with a canary Rollout or a rolloutlab spec instead."
    )


def _analysis(analysis: Any, where: str) -> Mapping[str, Any]:
    """A step's or the background analysis, checked for Argo's current shape."""
    analysis = analysis or {}
    if not isinstance(analysis, Mapping):
        raise SpecError(f"{where} is {analysis!r}; expected a mapping with templates: [...].")
    if "templateName" in analysis and not analysis.get("templates"):
        raise SpecError(
            f"{where}.templateName: Argo Rollouts reads templates: [{{templateName: "
            f"{analysis['templateName']}}}] (templateName alone is the pre-1.0 field it ignores)."
            " Move it into templates."
        )
    return analysis


def _mappings(value: Any, where: str, example: str) -> list[Mapping[str, Any]]:
    """``value`` as Argo's list of objects (templates, args, dryRun); another shape is an
    error naming the field and its shape."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise SpecError(f"{where} is {value!r:.120}; Argo reads a list of objects: {example}.")
    return value


def _argo_weight(value: Any, before: Sequence[float], where: str) -> float | None:
    """The step's canary weight; None when it does not change the weight (``setWeight: 0``
    before any traffic, or the weight already set)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise SpecError(f"{where}.setWeight: expected a percent in [0, 100], got {value!r}.")
    if (value == 0 and not before) or (before and value == before[-1]):
        return None
    if before and value < before[-1]:
        raise SpecError(
            f"{where}.setWeight: {value} after {before[-1]}: rolloutlab replays rising weights "
            "only. Remove the step that lowers the weight."
        )
    return float(value)


def _templates(
    refs: Any, rollout: Document, index: _TemplateIndex, seen: tuple[str, ...] = ()
) -> list[Document]:
    """The templates ``refs`` names, with the templates they name in turn
    (``AnalysisTemplateSpec.templates``), each once."""
    out: list[Document] = []
    where = f"{rollout.where}: analysis templates"
    for ref in _mappings(refs, where, "[{templateName: NAME}]"):
        name = ref.get("templateName")
        if not name:
            raise SpecError(f"{where}: {dict(ref)!r:.120} has no templateName; name the template.")
        kind = ("ClusterAnalysisTemplate",) if ref.get("clusterScope") else ("AnalysisTemplate",)
        namespace = None if ref.get("clusterScope") else rollout.meta.get("namespace")
        template = index.find(kind, str(name), namespace)
        key = f"{template.kind} {template.name}"
        if key in seen or any(f"{t.kind} {t.name}" == key for t in out):
            continue
        nested = (template.data.get("spec") or {}).get("templates")
        out += [template, *_templates(nested, rollout, index, (*seen, key))]
    return out


def _argo_metrics(
    analysis: Mapping[str, Any],
    rollout: Document,
    canary: Mapping[str, Any],
    index: _TemplateIndex,
    skipped: list[str],
    notes: list[str],
) -> list[MetricSpec]:
    """The metrics of one analysis (a step's or the background one), per template, with
    Argo's ``dryRun`` rules of the analysis and its templates."""
    where = f"{rollout.where}: analysis"
    given = {str(a.get("name")): a for a in _mappings(analysis.get("args"), f"{where} args", _ARGS)}
    found = []
    rules = _mappings(analysis.get("dryRun"), f"{where} dryRun", _DRY_RUN)
    for template in _templates(analysis.get("templates"), rollout, index):
        body = template.data.get("spec") or {}
        rules += _mappings(body.get("dryRun"), f"{template.where}: spec.dryRun", _DRY_RUN)
        own = _mappings(body.get("args"), f"{template.where}: spec.args", _ARGS)
        args = {str(a.get("name")): a for a in own} | given
        metrics = _mappings(body.get("metrics"), f"{template.where}: spec.metrics", _METRIC)
        for i, m in enumerate(metrics):
            if not m.get("name"):
                raise SpecError(f"{template.where}: spec.metrics[{i}] has no name; name it.")
        found += [(template, args, m) for m in metrics]
    dry = _dry_run(rules, [str(m.get("name")) for _, _, m in found], rollout)
    out = []
    for template, args, m in found:
        provider = next(iter(m.get("provider") or {}), "none")
        label = f"{m.get('name')} ({template.kind} {template.name}, provider {provider})"
        if provider != "prometheus":
            skipped.append(label)
            continue
        rendered = _render_metric(m, args, rollout, canary, template, skipped, label)
        if rendered is None:
            continue
        metric, queries = rendered
        prometheus = metric["provider"]["prometheus"] or {}
        if prometheus.get("rangeQuery"):
            notes.append(
                f"{label} has a rangeQuery: Argo checks its condition on every point of the "
                "range at each measurement, rolloutlab fetches the query once per tick and "
                "checks each tick's value"
            )
        if m.get("initialDelay"):
            notes.append(
                f"{label} waits initialDelay {m['initialDelay']} before its first measurement, "
                "rolloutlab measures from the first tick"
            )
        if m.get("consecutiveSuccessLimit"):
            notes.append(
                f"{label} passes early after consecutiveSuccessLimit "
                f"{m['consecutiveSuccessLimit']} successes in a row in Argo; rolloutlab's "
                "judges promote by their own rules"
            )
        access = [str(h.get("key")) for h in prometheus.get("headers") or []]
        access += [f"{k} authentication" for k in prometheus.get("authentication") or {}]
        if access:
            notes.append(f"{label} queries Prometheus with {', '.join(access)}: {CREDENTIALS_HINT}")
        out.append(_argo_metric(metric, queries, template, str(m.get("name")) in dry, notes))
    return out


_ARGS = "[{name: service-name, value: my-svc}]"
_DRY_RUN = "[{metricName: NAME}]"
_METRIC = "[{name: success-rate, provider: {prometheus: {query: ...}}}]"


def _dry_run(rules: Sequence[Any], names: Sequence[str], rollout: Document) -> set[str]:
    """The metric names Argo's ``dryRun`` rules select: ``*`` all, else the names the
    ``metricName`` regular expression matches anywhere (utils/analysis/helpers.go
    GetDryRunMetrics); a rule matching none is an error there, and here."""
    dry: set[str] = set()
    for i, rule in enumerate(rules):
        pattern = str(rule.get("metricName") or "")
        try:
            hits = {n for n in names if pattern == "*" or re.search(pattern, n)}
        except re.error as exc:
            raise SpecError(
                f"{rollout.where}: dryRun[{i}] metricName {pattern!r} is not a regular "
                f"expression ({exc}). Name a metric, or '*' for all."
            ) from None
        if not hits:
            raise SpecError(
                f"{rollout.where}: dryRun[{i}] metricName {pattern!r} matches no metric of the "
                f"analysis ({', '.join(names)}); Argo errors the AnalysisRun. Name a metric, or "
                "'*' for all."
            )
        dry |= hits
    return dry


#: The metric fields rolloutlab reads, where Argo substitutes ``{{args.*}}``.
_RENDERED_FIELDS = (
    *("successCondition", "failureCondition", "interval", "count", "failureLimit"),
    "inconclusiveLimit",
)


def _render_metric(
    metric: Mapping[str, Any],
    args: Mapping[str, Mapping[str, Any]],
    rollout: Document,
    canary: Mapping[str, Any],
    template: Document,
    skipped: list[str],
    label: str,
) -> tuple[dict[str, Any], tuple[tuple[str, str], ...]] | None:
    """The metric with Argo's ``{{args.*}}`` substituted in the fields rolloutlab reads
    (ResolveMetricArgs), and its query per variant: the primary's names the stableService
    where the canary's names the canaryService (only the canary's when they would be the
    same query). None when an argument is known only in the cluster."""
    query = str((metric["provider"]["prometheus"] or {}).get("query", ""))
    fields = {k: str(metric[k]) for k in _RENDERED_FIELDS if isinstance(metric.get(k), str)}
    used = sorted({a for text in (query, *fields.values()) for a in _ARGO_ARG.findall(text)})
    values: dict[str, str] = {}
    for name in used:
        arg = args.get(name)
        if arg is None or ("value" not in arg and "valueFrom" not in arg):
            raise SpecError(
                f"{rollout.where}: {template.kind} {template.name} needs the argument {name!r} "
                f"and the Rollout {rollout.name} gives none. Add args: [{{name: {name}, "
                "value: ...}] to its analysis."
            )
        value = _arg_value(name, arg, rollout)
        if value is None:
            source = arg.get("valueFrom") or {}
            ref = (source.get("fieldRef") or {}).get("fieldPath") if "fieldRef" in source else None
            origin = f"fieldRef {ref}" if ref else next(iter(source), "valueFrom")
            skipped.append(
                f"{label}: argument {name!r} comes from {origin}, known only in the cluster"
            )
            return None
        values[name] = value
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

    def render(text: str, bound: Mapping[str, str]) -> str:
        return _ARGO_ARG.sub(lambda m: bound[m.group(1)], text)

    rendered = {**metric, **{k: render(v, values) for k, v in fields.items()}}
    primary, canary_query = render(query, stable), render(query, values)
    if primary == canary_query:
        return rendered, (("canary", canary_query),)
    return rendered, (("primary", primary), ("canary", canary_query))


def _arg_value(name: str, arg: Mapping[str, Any], rollout: Document) -> str | None:
    """An argument's value as Argo resolves it for a Rollout's analysis
    (utils/analysis/factory.go BuildArgumentsForRolloutAnalysisRun); None when only the
    cluster knows it (a Secret, the Rollout's status)."""
    if "value" in arg:
        return str(arg["value"])
    source = arg.get("valueFrom") or {}
    if source.get("podTemplateHashValue") in POD_TEMPLATE_HASHES:
        return _hash_placeholder(POD_TEMPLATE_HASHES[source["podTemplateHashValue"]])
    path = str((source.get("fieldRef") or {}).get("fieldPath", ""))
    if not path or path.startswith("status"):
        return None
    key = _FIELD_KEY.match(path)
    if key:
        value = (rollout.meta.get(key.group(1)) or {}).get(key.group(2))
    elif path in ("metadata.name", "metadata.namespace"):
        value = rollout.meta.get(path.partition(".")[2])
    elif path.startswith("metadata"):
        raise SpecError(
            f"{rollout.where}: argument {name!r}: fieldRef {path} is not a field Argo reads "
            "(metadata.name, metadata.namespace, metadata.labels['key'], "
            "metadata.annotations['key']). Fix the fieldPath."
        )
    else:  # extractValueFromRollout: a path into the Rollout object
        value = rollout.data
        for section in re.split(r"[.\[\]]+", path):
            if not section:
                continue
            if isinstance(value, list) and section.isdigit() and int(section) < len(value):
                value = value[int(section)]
            else:
                value = value.get(section) if isinstance(value, Mapping) else None
    if value is None or isinstance(value, Mapping | list):
        runs_in = (
            " (Argo takes the namespace the Rollout runs in)"
            if path == "metadata.namespace"
            else ""
        )
        raise SpecError(
            f"{rollout.where}: argument {name!r} comes from fieldRef {path}, which Rollout "
            f"{rollout.name} does not set{runs_in}. Set {path} in the Rollout, or give the "
            "argument a value."
        )
    return str(value).lower() if isinstance(value, bool) else str(value)


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
    metric: Mapping[str, Any],
    queries: tuple[tuple[str, str], ...],
    template: Document,
    dry_run: bool,
    notes: list[str],
) -> MetricSpec:
    """An Argo metric: its conditions' plain bounds become thresholds; a dry-run metric is
    judged and shown but not critical (it never decides), and so is one Argo never fails."""
    name = str(metric["name"])
    where = f"{template.where}: metric {name!r}"
    success, failure = metric.get("successCondition"), metric.get("failureCondition")
    low = high = None
    harm: set[str] = set()  # the directions the inequalities call harmful
    unread = []
    for condition, passes in ((success, True), (failure, False)):
        if not condition:
            continue
        bound = _bound(str(condition))
        if bound is None or (bound[0] == "==" and not passes):
            unread.append(str(condition))
            continue
        op, number = bound
        if op == "==":  # passes at one value only: both bounds, no direction of its own
            low = high = number
        # "success when result >= x" and "failure when result < x" both mean min x
        elif (op in (">=", ">")) == passes:
            low = number
            harm.add("decrease")
        else:
            high = number
            harm.add("increase")
    if unread:
        notes.append(
            f"{name} ({template.kind} {template.name}): rolloutlab reads conditions "
            f"that compare the result with a number and not {' or '.join(map(repr, unread))}; "
            "it judges the metric by comparing canary with primary, without that bound"
        )
    direction: Direction | None = (
        "either" if len(harm) == 2 else cast(Direction, next(iter(harm))) if harm else None
    )
    interval = metric.get("interval")
    interval_s = ARGO_DEFAULT_INTERVAL_S
    if interval:
        interval_s = parse_duration(interval, f"{where} interval")
        check_duration(interval_s, f"{where} interval")
    failure_limit = _optional_int(metric.get("failureLimit"), f"{where} failureLimit")
    never_fails = failure_limit is not None and failure_limit < 0
    if never_fails:  # -1 disables failing (Metric.FailureLimit in analysis_types.go)
        notes.append(
            f"{name} ({template.kind} {template.name}) has failureLimit {failure_limit}: Argo "
            "never fails it, so rolloutlab judges it as not critical"
        )
    return MetricSpec(
        name=name,
        kind="gauge",
        metric=name,
        direction=direction,
        critical=False if dry_run or never_fails else None,
        threshold_min=low,
        threshold_max=high,
        interval_s=interval_s,
        template=f"{template.kind} {template.name}",
        queries=queries,
        success_condition=success,
        failure_condition=failure,
        count=_optional_int(metric.get("count"), f"{where} count"),
        failure_limit=failure_limit,
        inconclusive_limit=_optional_int(
            metric.get("inconclusiveLimit"), f"{where} inconclusiveLimit"
        ),
    )


def _bound(condition: str) -> tuple[str, float] | None:
    """(operator, number) of a condition such as ``result[0] >= 0.95``, else None."""
    core = _GUARDED.match(condition.strip())
    match = _COMPARISON.match(core.group(1).strip()) if core else None
    if match is None:
        return None
    g = match.groups()
    if g[0]:
        return g[0], float(g[1])
    if g[2]:  # number first: 0.95 <= result
        return _FLIPPED[g[3]], float(g[2])
    return g[4], float(g[5])


def _optional_int(value: Any, where: str) -> int | None:
    """Argo's intstr fields (count, failureLimit, inconclusiveLimit) as an int, once their
    arguments are substituted; None when unset."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    raise SpecError(f"{where}: expected a whole number, got {value!r}.")
