"""Specs from manifests as they sit in a GitOps folder: Flagger and Argo Rollouts.

:func:`load_manifests` reads a file (one or several YAML documents) or a folder (every
``*.yaml``, ``*.yml`` and ``*.json`` below it) and builds one :class:`Spec` from:

- a Flagger ``Canary`` and the ``MetricTemplate`` objects its metrics reference (by name,
  in ``templateRef.namespace`` or else the Canary's namespace; a template written without
  a namespace matches by name, as ``kubectl apply -n`` or kustomize would place it);
- an Argo Rollouts ``Rollout`` (canary steps, step and background analysis,
  ``trafficRouting``) and the ``AnalysisTemplate`` / ``ClusterAnalysisTemplate`` objects
  it names;
- or a rolloutlab spec (a mapping without ``kind``).

Other objects (Deployments, Services, ...) are skipped. A Canary given alone, with no
MetricTemplate at all, keeps its template metrics unresolved (the recording must hold
them); once templates are given, a reference to one that is missing is an error. Template queries are rendered
twice, for the canary and for the primary (Flagger: ``{{ target }}`` is ``<target>`` and
``<target>-primary``; Argo: an argument naming the Rollout's ``canaryService`` names its
``stableService`` for the primary), so the metric can be fetched per variant. Templates
of providers rolloutlab cannot query (Datadog, a Job, a web hook, ...) are left out,
named in one :class:`ManifestWarning`.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rolloutlab.errors import SpecError
from rolloutlab.judges.spec import (
    FLAGGER_API,
    MetricSpec,
    Spec,
    parse_duration,
)

ARGO_API = "argoproj.io/"
FLAGGER_TEMPLATE = "MetricTemplate"
ARGO_TEMPLATES = ("AnalysisTemplate", "ClusterAnalysisTemplate")
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
#: Argo ``trafficRouting`` keys whose route objects rolloutlab's routers can patch.
ARGO_ROUTERS = {"istio": "istio", "smi": "smi", "nginx": "nginx", "traefik": "traefik"}
#: Flagger renders ``{{ interval }}`` from the metric's interval, "1m" when it has none.
FLAGGER_DEFAULT_INTERVAL = "1m"
#: Argo measures a metric without ``interval`` once; rolloutlab ticks every minute then.
ARGO_DEFAULT_INTERVAL_S = 60.0

_GO_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")
_ARGO_ARG = re.compile(r"\{\{\s*args\.([\w.-]+?)\s*\}\}")
_CONDITION = re.compile(
    r"^\s*(?:len\(result\)\s*==\s*0\s*\|\|\s*|isNaN\(result\)\s*\|\|\s*)?"
    r"(?:result\[0\]|result|asFloat\(result\)|asInt\(result\))\s*(>=|>|<=|<)\s*"
    r"(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*$"
)


class ManifestWarning(UserWarning):
    """Something in the manifests that rolloutlab leaves out (the message names it)."""


@dataclass(frozen=True)
class Document:
    """One YAML document and where it came from (``file`` or ``file (document 2)``)."""

    data: Any
    where: str

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", "")) if isinstance(self.data, Mapping) else ""

    @property
    def api(self) -> str:
        return str(self.data.get("apiVersion", "")) if isinstance(self.data, Mapping) else ""

    @property
    def meta(self) -> Mapping[str, Any]:
        meta = self.data.get("metadata") if isinstance(self.data, Mapping) else None
        return meta if isinstance(meta, Mapping) else {}

    @property
    def name(self) -> str | None:
        if not self.kind and isinstance(self.data, Mapping):
            return self.data.get("name")
        return self.meta.get("name")

    @property
    def label(self) -> str:
        return f"{self.kind or 'rolloutlab spec'} {self.name or '(unnamed)'} ({self.where})"


# -- reading -----------------------------------------------------------------------


def parse_documents(text: str, where: str) -> list[Document]:
    """The non-empty YAML documents of ``text``; a YAML error names the line."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f", line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{where}{at}: not valid YAML ({problem}).") from None
    if len(docs) == 1:
        return [Document(docs[0], where)]
    return [Document(d, f"{where} (document {i + 1})") for i, d in enumerate(docs)]


def read_documents(path: Path) -> list[Document]:
    """Every document of a file, or of the manifest files below a folder (sorted by path)."""
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES
        )
        if not files:
            raise SpecError(
                f"{path}: no {', '.join(MANIFEST_SUFFIXES)} files in this folder. Point "
                "--spec at the folder holding the Canary or Rollout and its templates."
            )
    elif path.is_file():
        files = [path]
    else:
        raise SpecError(f"{path}: no such spec file or folder. Check the path.")
    return [doc for f in files for doc in parse_documents(f.read_text(encoding="utf-8"), str(f))]


def load_manifests(path: str | Path, *, name: str | None = None) -> Spec:
    """The spec held by a file or folder of manifests (see the module docstring)."""
    path = Path(path)
    return spec_from_documents(read_documents(path), source=str(path), name=name)


def spec_from_documents(docs: Sequence[Document], *, source: str, name: str | None = None) -> Spec:
    """The one Canary, Rollout or rolloutlab spec among ``docs``, with its templates.

    ``name`` picks one when there are several.
    """
    if not docs:
        raise SpecError(f"{source}: the YAML is empty. Give a rolloutlab spec or a Canary.")
    for doc in docs:
        if not isinstance(doc.data, Mapping):
            raise SpecError(
                f"{doc.where}: expected a mapping (a rolloutlab spec, a Flagger Canary or an "
                f"Argo Rollout), got {type(doc.data).__name__} {doc.data!r}. If this is a file "
                "path, check it exists."
            )
    mains = [d for d in docs if _is_canary(d) or _is_rollout(d) or not (d.kind or d.api)]
    if name is not None:
        mains = [d for d in mains if d.name == name]
    if len(mains) != 1:
        raise SpecError(_not_one(docs, mains, source, name))
    main = mains[0]
    if _is_canary(main):
        return _flagger_spec(main, [d for d in docs if _is_flagger_template(d)])
    if _is_rollout(main):
        return _argo_spec(main, [d for d in docs if _is_argo_template(d)])
    return Spec.from_dict(main.data)


def _is_canary(doc: Document) -> bool:
    return doc.kind == "Canary"


def _is_flagger_template(doc: Document) -> bool:
    return doc.kind == FLAGGER_TEMPLATE and doc.api.startswith(FLAGGER_API)


def _is_rollout(doc: Document) -> bool:
    return doc.kind == "Rollout" and doc.api.startswith(ARGO_API)


def _is_argo_template(doc: Document) -> bool:
    return doc.kind in ARGO_TEMPLATES and doc.api.startswith(ARGO_API)


def _not_one(docs: Sequence[Document], mains: Sequence[Document], source: str, name: str | None):
    """Why no single spec was found among ``docs``, and what to give instead."""
    templates = [d for d in docs if _is_flagger_template(d) or _is_argo_template(d)]
    if mains:
        listed = "; ".join(d.label for d in mains)
        return (
            f"{source}: {len(mains)} specs to choose from: {listed}. Pick one with "
            "Spec.load(path, name=...), or give a folder or file holding only one."
        )
    if name is not None:
        return f"{source}: no Canary, Rollout or rolloutlab spec named {name!r}. Check the name."
    if templates and len(templates) == len(docs):
        kinds = sorted({d.kind for d in templates})
        names = ", ".join(str(d.name) for d in templates)
        what = "the Canary" if FLAGGER_TEMPLATE in kinds else "the Rollout"
        return (
            f"{source} holds only {' and '.join(kinds)} objects ({names}): templates say how "
            f"to measure a metric, not what to roll out. Give them together with {what} that "
            "references them: a folder, or a multi-document file, holding both."
        )
    kinds = sorted({d.kind or "(no kind)" for d in docs})
    return (
        f"{source}: no Flagger Canary, Argo Rollout or rolloutlab spec among {len(docs)} "
        f"documents (kinds: {', '.join(kinds)}). Add the Canary or Rollout to judge."
    )


# -- Flagger -----------------------------------------------------------------------


def _flagger_spec(canary: Document, templates: Sequence[Document]) -> Spec:
    """The Canary's spec with each template metric's query rendered per variant."""
    try:
        spec = Spec.from_dict(canary.data)
    except SpecError as exc:
        raise SpecError(f"{canary.where}: {exc}") from None
    body = canary.data["spec"]
    analysis = body.get("analysis") or body.get("canaryAnalysis")
    index = _TemplateIndex(templates, canary)
    kept, skipped = [], []
    for metric, raw in zip(spec.metrics, analysis.get("metrics") or [], strict=True):
        if metric.template is None or ("templateRef" in raw and not templates):
            kept.append(metric)  # a lone Canary: the recording must hold the metric
            continue
        query, provider, template = _flagger_query(raw, canary, index)
        if provider != "prometheus":
            skipped.append(f"{metric.name} ({template}, provider {provider})")
            continue
        model = _flagger_model(canary, raw)
        target = model["target"]
        queries = tuple(
            (variant, _render_go(query, {**model, "target": name}, metric.name, canary.where))
            for variant, name in (("primary", f"{target}-primary"), ("canary", target))
        )
        kept.append(dataclasses.replace(metric, queries=queries, template=template))
    _warn_unsupported(skipped, canary.where)
    return dataclasses.replace(spec, metrics=tuple(kept))


class _TemplateIndex:
    """Templates by (namespace, name); a template with no namespace matches any."""

    def __init__(self, templates: Iterable[Document], owner: Document) -> None:
        self.templates = list(templates)
        self.owner = owner

    def find(self, kind: Sequence[str], name: str, namespace: str | None) -> Document:
        same = [d for d in self.templates if d.kind in kind and d.name == name]
        exact = [d for d in same if d.meta.get("namespace") == namespace]
        loose = [d for d in same if not d.meta.get("namespace")]
        if exact or loose:
            return (exact or loose)[0]
        where = f"{namespace}/{name}" if namespace else name
        elsewhere = sorted(f"{d.meta.get('namespace')}/{d.name}" for d in same)
        hint = f" (found only {', '.join(elsewhere)}: check the namespace)" if elsewhere else ""
        raise SpecError(
            f"{self.owner.where}: {self.owner.kind} {self.owner.name} references "
            f"{' or '.join(kind)} {where}, which is not among the manifests given{hint}. "
            "Add the template's file to the folder (or document to the file)."
        )


def _flagger_query(
    raw: Mapping[str, Any], canary: Document, index: _TemplateIndex
) -> tuple[str, str, str]:
    """(query, provider type, description) of a template or inline-query metric."""
    if "templateRef" not in raw:
        return str(raw["query"]), "prometheus", "inline query"
    ref = raw["templateRef"]
    namespace = ref.get("namespace") or canary.meta.get("namespace")
    template = index.find((FLAGGER_TEMPLATE,), ref["name"], namespace)
    body = template.data.get("spec") or {}
    provider = (body.get("provider") or {}).get("type") or "prometheus"
    if "query" not in body:
        raise SpecError(f"{template.where}: MetricTemplate {template.name} has no spec.query.")
    ns = template.meta.get("namespace") or namespace
    described = f"MetricTemplate {ns}/{template.name}" if ns else f"MetricTemplate {template.name}"
    return str(body["query"]), str(provider), described


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
        "variables": dict(raw.get("templateVariables") or {}),
    }


def _render_go(query: str, model: Mapping[str, Any], metric: str, where: str) -> str:
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
        if head in model and not key and head != "variables":
            return str(model[head])
        raise SpecError(
            f"{where}: metric {metric!r}: cannot render {{{{ {word} }}}}. Flagger's template "
            f"variables are {', '.join(sorted(model))} (variables.<key>)."
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


def _warn_unsupported(skipped: Sequence[str], where: str) -> None:
    if skipped:
        warnings.warn(
            f"{where}: rolloutlab queries Prometheus only and leaves out {len(skipped)} "
            f"metric(s) it cannot evaluate: {'; '.join(skipped)}. Judge them another way.",
            ManifestWarning,
            stacklevel=4,
        )


# -- Argo Rollouts -----------------------------------------------------------------


def _argo_spec(rollout: Document, templates: Sequence[Document]) -> Spec:
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
        if "setWeight" in step:
            weights.append(_argo_weight(step["setWeight"], weights, f"{where}: {path}"))
        elif "pause" in step:
            duration = (step.get("pause") or {}).get("duration")
            if duration is not None:
                pauses.append(_argo_duration(duration, f"{where}: {path}.pause.duration"))
        elif "analysis" in step:
            analyses.append(step["analysis"] or {})
        else:
            ignored.extend(f"{k} ({path})" for k in step)
    if canary.get("analysis"):
        analyses.append(canary["analysis"])
    metrics, skipped = [], []
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
    return Spec(
        interval_s=min(intervals),
        threshold=min(limits, default=0) + 1,
        step_weights=tuple(weights) or (100.0,),
        metrics=tuple(metrics),
        name=rollout.name,
        namespace=rollout.meta.get("namespace"),
        target=rollout.name,
        router=router,
    )


def _argo_weight(value: Any, before: Sequence[float], where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 100:
        raise SpecError(f"{where}.setWeight: expected a percent in (0, 100], got {value!r}.")
    if before and value <= before[-1]:
        raise SpecError(
            f"{where}.setWeight: {value} after {before[-1]}: rolloutlab replays rising weights "
            "only. Remove the step that lowers the weight."
        )
    return float(value)


def _argo_duration(value: Any, where: str) -> float:
    """Argo durations: a number of seconds, or text with a unit (s, m, h)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return parse_duration(value, where)


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
    values = {}
    for name in used:
        arg = args.get(name)
        if arg is None or ("value" not in arg and "valueFrom" not in arg):
            raise SpecError(
                f"{rollout.where}: {template.kind} {template.name} needs the argument {name!r} "
                f"and the Rollout {rollout.name} gives none. Add args: [{{name: {name}, "
                "value: ...}] to its analysis."
            )
        if "value" not in arg:
            skipped.append(f"{label}: argument {name!r} comes from {next(iter(arg['valueFrom']))}")
            return None
        values[name] = str(arg["value"])
    canary_svc, stable_svc = canary.get("canaryService"), canary.get("stableService")
    stable = {k: stable_svc if canary_svc and v == canary_svc else v for k, v in values.items()}

    def render(bound: Mapping[str, str]) -> str:
        return _ARGO_ARG.sub(lambda m: bound[m.group(1)], query)

    primary, canary_query = render(stable), render(values)
    if primary == canary_query:
        return (("canary", canary_query),)
    return (("primary", primary), ("canary", canary_query))


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
    direction = (
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
        interval_s=_argo_duration(interval, template.where)
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


__all__ = [
    "Document",
    "ManifestWarning",
    "load_manifests",
    "parse_documents",
    "read_documents",
    "spec_from_documents",
]
