"""Fetch what a spec judges: its built-in metrics through the provider's preset and its
template metrics as per-variant gauges, with target and namespace taken from the spec."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rolloutlab.config import redact_url
from rolloutlab.errors import SpecError
from rolloutlab.sources.gauges import fetch_gauges, with_gauges
from rolloutlab.sources.presets import PRESETS
from rolloutlab.sources.prometheus import Prometheus, fetch, to_utc
from rolloutlab.sources.promjson import Aggregate
from rolloutlab.sources.recording import Recording
from rolloutlab.specs.argo import fill_pod_template_hashes
from rolloutlab.specs.model import BUILTIN_METRICS, Spec

#: The preset when neither the caller nor the spec names one.
DEFAULT_PRESET = "istio"


def fetch_for_spec(
    url: str,
    spec: Spec | str | Path,
    *,
    start: Any,
    end: Any,
    step: Any = "1m",
    preset: str | None = None,
    target: str | None = None,
    namespace: str | None = None,
    headers: Any = None,
    bearer: str | None = None,
    timeout: float = 30.0,
    flagger: bool = False,
    pod_template_hashes: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
    aggregate: Aggregate = None,
    name: str | None = None,
) -> Recording:
    """A recording of every metric ``spec`` judges, both variants.

    ``target``, ``namespace`` and ``preset`` default to the spec's (its Canary's
    ``targetRef``, namespace and ``provider``; the preset falls back to istio). Built-in
    metrics (request-success-rate, request-duration) come from the preset; template
    metrics from their rendered queries, one gauge per variant and step.
    ``pod_template_hashes`` (``{"stable": ..., "canary": ...}``) fill the Argo arguments
    taken from ``podTemplateHashValue``. ``names`` (Flagger's service/ingress/route) go
    over the spec's; ``aggregate`` goes to the preset's fetch; ``name`` picks one of
    several Canaries or Rollouts in a folder.
    """
    source = str(spec) if isinstance(spec, str | Path) else "the spec"
    spec = Spec.load(spec, name=name)
    target = target or spec.target
    namespace = namespace or spec.namespace
    gauges = template_queries(spec, source, pod_template_hashes)
    builtins = any(m.name in BUILTIN_METRICS and not m.queries for m in spec.metrics)
    if builtins or flagger or not gauges:
        preset = preset or preset_for(spec)
        if target is None or namespace is None:
            raise SpecError(
                f"{source}: the spec names no {'target' if target is None else 'namespace'}. "
                "Pass --target and --namespace."
            )
        recording = fetch(
            url,
            preset=preset,
            start=start,
            end=end,
            step=step,
            target=target,
            namespace=namespace,
            headers=headers,
            bearer=bearer,
            timeout=timeout,
            flagger=flagger,
            names={**dict(spec.names), **(names or {})},
            aggregate=aggregate,
        )
        if not gauges:
            return recording
        with Prometheus(url, headers=_headers(headers), auth=bearer, timeout=timeout) as prom:
            return with_gauges(recording, prom, gauges, step=step)
    with Prometheus(url, headers=_headers(headers), auth=bearer, timeout=timeout) as prom:
        frame = fetch_gauges(prom, gauges, start=start, end=end, step=step)
    meta = {
        "source": redact_url(url),
        "target": target,
        "namespace": namespace,
        "roles": {"control": "primary", "treatment": ["canary"]},
        "template_queries": {m: dict(q) for m, q in gauges.items()},
        "start": to_utc(start, "start").isoformat(),
        "end": to_utc(end, "end").isoformat(),
    }
    return Recording(frame, meta, source=redact_url(url))


def template_queries(
    spec: Spec, source: str = "the spec", pod_template_hashes: Mapping[str, str] | None = None
) -> dict[str, tuple[tuple[str, str], ...]]:
    """The rendered per-variant queries of the spec's template metrics, by recorded metric;
    a template metric without queries (its template not given) is a :class:`SpecError`."""
    unresolved = [m for m in spec.metrics if m.template and not m.queries]
    if unresolved:
        listed = ", ".join(f"{m.name} ({m.template})" for m in unresolved)
        raise SpecError(
            f"{source}: no query for {listed}: the template is not among the manifests given. "
            "Give a folder (or multi-document file) holding the Canary and its MetricTemplates."
        )
    return {
        m.metric: fill_pod_template_hashes(m.name, m.queries, pod_template_hashes)
        for m in spec.metrics
        if m.queries
    }


def preset_for(spec: Spec, default: str | None = None) -> str:
    """The query preset Flagger's metric observer would use for the spec.

    As Flagger picks it (``pkg/controller/scheduler_metrics.go``, runBuiltinMetricChecks,
    and ``pkg/metrics/observers/factory.go``): the Canary's provider wins over the global
    one (``default``, Flagger's mesh provider: the environment or config file here) unless
    the global one is Linkerd, and a provider without an observer of its own (``smi``,
    ``crossover``) is read as Istio.
    """
    provider = spec.provider or default
    if spec.provider and default and "linkerd" in default:
        provider = "linkerd"
    return provider if provider in PRESETS else DEFAULT_PRESET


def _headers(headers: Any) -> dict[str, str]:
    """``Key=Value`` strings (the CLI's --header) or a mapping, as a dict."""
    if headers is None or isinstance(headers, dict):
        return dict(headers or {})
    return dict(item.split("=", 1) for item in headers)


__all__ = ["DEFAULT_PRESET", "fetch_for_spec", "preset_for", "template_queries"]
