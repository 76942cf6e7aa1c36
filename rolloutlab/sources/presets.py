"""Query presets: which Prometheus series hold requests, errors and latency for each provider.

A :class:`Preset` describes one mesh/ingress's metric names and labels once; from it come both
the PromQL that :meth:`rolloutlab.Prometheus.fetch` sends and the series that
:func:`rolloutlab.sources.openmetrics.to_openmetrics` writes, so a preset is tested by a round
trip through a real Prometheus.

Every query asks for **per-step increments** of raw counters, grouped by the variant label::

    sum by (destination_workload) (increase(istio_requests_total{...}[60s]))

Alignment: with ``query_range`` at step ``s`` the value at evaluation time ``t`` is the increase
over the window ending at ``t`` of length ``s`` (the window *is* the step, so windows tile the
range without overlap and a recording's ``timestamp`` is the end of its window). Prometheus 2.x
selects samples in the closed interval ``[t-s, t]``; 3.x in ``(t-s, t]``. ``increase()``
extrapolates from the first and last sample in the window to its edges, so it is exact when a
sample sits on both window edges (2.x with scrapes on the step grid) and otherwise an estimate
whose error is bounded by how unevenly the counter grew between the samples at the edges.

Parity with Flagger: each preset reads the series that Flagger's metric observer for the
provider reads (``pkg/metrics/observers/<provider>.go`` in fluxcd/flagger; ``upstream``
names the file): the same metric names and label matchers, ``{service}``, ``{ingress}`` and
``{route}`` filled as Flagger's ``toMetricModel`` fills them, and for nginx and skipper,
whose request-duration is a mean, the histogram's ``_sum`` as well. The tests run Flagger's
own queries on a real Prometheus and compare them with the Flagger judge's values.

Variants: Flagger's naming is the default (``<target>`` is the canary, ``<target>-primary`` the
primary). A :class:`Variants` maps any label's values (regexes, fully anchored as in PromQL's
``=~``) to variant names, which covers A/B/n.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from rolloutlab.errors import SpecError

_REGEX_META = re.compile(r"([.^$*+?()\[\]{}|\\])")


def regex_escape(value: str) -> str:
    """Escape regex metacharacters so ``value`` matches literally (RE2 and Python agree)."""
    return _REGEX_META.sub(r"\\\1", value)


def promql_string(value: str) -> str:
    """Quote ``value`` as a PromQL double-quoted string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Variants:
    """Which label tells the variants apart and which values (regexes) make each variant.

    ``values`` maps a variant name to a regex over the label's value (anchored, as PromQL's
    ``=~``); the first variant is the control. A series whose label is absent has the value
    ``""``.
    """

    label: str
    values: Mapping[str, str]
    _compiled: tuple[tuple[str, re.Pattern[str]], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.values:
            raise SpecError("Variants needs at least one variant: values={'primary': '...'}")
        compiled = []
        for name, pattern in self.values.items():
            try:
                compiled.append((name, re.compile(pattern)))
            except re.error as exc:
                raise SpecError(f"variant {name!r}: bad regex {pattern!r}: {exc}") from None
        object.__setattr__(self, "values", dict(self.values))
        object.__setattr__(self, "_compiled", tuple(compiled))

    @property
    def names(self) -> list[str]:
        """Variant names in order, the control first."""
        return list(self.values)

    @property
    def roles(self) -> dict[str, object]:
        """The recording's ``roles`` meta: the first variant is the control."""
        names = self.names
        return {"control": names[0], "treatment": names[1:]}

    def matcher(self) -> str:
        """The PromQL label matcher that selects every variant's series."""
        return f"{self.label}=~{promql_string('|'.join(self.values.values()))}"

    def describe(self, variant: str) -> str:
        """Human-readable selector of one variant, for error messages."""
        return f"{self.label}=~{self.values[variant]!r}"

    def variant_of(self, value: str) -> str | None:
        """The variant whose regex fully matches the label value, or None."""
        for name, pattern in self._compiled:
            if pattern.fullmatch(value):
                return name
        return None


#: Flagger's ``MetricTemplateModel`` names a preset may use besides ``namespace`` and
#: ``target``; ``primary_route`` is rolloutlab's own (the primary's Knative revision).
NAME_KEYS = ("service", "ingress", "route", "primary_route")
_NON_WORD = re.compile(r"\W")


@dataclass(frozen=True)
class Preset:
    """One provider's series, as Flagger's metric observer for that provider reads them.

    Templates use ``{namespace}``, ``{target}`` and Flagger's ``{service}``, ``{ingress}``
    and ``{route}`` (see :meth:`names`). ``labels`` are equality matchers shared by every
    series (and written by the OpenMetrics writer); ``requests_labels`` and
    ``latency_labels`` are matchers of the requests series alone (``le="+Inf"`` when
    requests are a histogram's +Inf bucket) and of the latency histogram alone. ``read``
    maps ``primary``/``canary`` to the variant label's regex, ``write`` to a concrete
    value (``{pod}`` is the pod index). ``le_to_ms`` converts bucket bounds (and a
    duration sum) to ms. ``duration`` is what Flagger's request-duration is: the p99 of
    the latency histogram, or its ``mean`` (``_sum / _count``). ``upstream`` names
    Flagger's observer file.
    """

    name: str
    requests: str
    latency: str
    variant_label: str
    read: Mapping[str, str]
    write: Mapping[str, str]
    code_label: str
    error_regex: str
    ok_code: str
    error_code: str
    labels: Mapping[str, str] = field(default_factory=dict)
    requests_labels: Mapping[str, str] = field(default_factory=dict)
    latency_labels: Mapping[str, str] = field(default_factory=dict)
    le_to_ms: float = 1.0
    duration: Literal["p99", "mean"] = "p99"
    required_names: tuple[str, ...] = ()
    example_names: Mapping[str, str] = field(default_factory=dict)
    word_names: bool = False
    pod_label: str | None = "pod"
    description: str = ""
    upstream: str = ""

    @property
    def histogram(self) -> str:
        """The latency histogram's family name (``..._bucket`` without the suffix)."""
        return self.latency.removesuffix("_bucket")

    @property
    def requests_from_histogram(self) -> bool:
        """True when requests are counted by the latency histogram itself (its ``_count``
        or its +Inf bucket: one metric family)."""
        return self.requests in (self.latency, self.histogram + "_count")

    def examples(self, target: str) -> dict[str, str]:
        """Example values of the names this preset requires (for writers and tests)."""
        return {key: value.format(target=target) for key, value in self.example_names.items()}

    def names(
        self, target: str, namespace: str, names: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The template names: ``service``, ``ingress`` and ``route`` default to the target,
        as Flagger's ``toMetricModel`` does when the Canary has no ``service.name``,
        ``ingressRef`` or ``routeRef``. Skipper's presets replace non-word characters by
        ``_``, as Flagger's Skipper observer does to match route names."""
        given = dict(names or {})
        unknown = sorted(set(given) - set(NAME_KEYS))
        if unknown:
            raise SpecError(
                f"preset {self.name!r}: unknown name(s) {unknown}; known: {list(NAME_KEYS)}"
            )
        missing = [key for key in self.required_names if not given.get(key)]
        if missing:
            example = ", ".join(f"{k!r}: '...'" for k in missing)
            raise SpecError(f"preset {self.name!r} needs names={{{example}}} ({self.description})")
        filled = {"namespace": namespace, "target": target}
        filled.update({key: target for key in ("service", "ingress", "route")})
        filled.update(given)
        if self.word_names:
            filled = {key: _NON_WORD.sub("_", value) for key, value in filled.items()}
        return filled

    def variants(
        self, target: str, namespace: str, names: Mapping[str, str] | None = None
    ) -> Variants:
        """Flagger's mapping for this provider: the primary's and the canary's series."""
        escaped = {k: regex_escape(v) for k, v in self.names(target, namespace, names).items()}
        values = {role: pattern.format(**escaped) for role, pattern in self.read.items()}
        return Variants(self.variant_label, values)

    def selector(
        self,
        namespace: str,
        target: str | None = None,
        extra: Mapping[str, str] | None = None,
        names: Mapping[str, str] | None = None,
    ) -> str:
        """Equality matchers shared by all series, with the template names filled."""
        if target is None and any("{" in v and v != "{namespace}" for v in self.labels.values()):
            raise SpecError(f"preset {self.name!r} needs target= (its labels use it)")
        filled = self.names(target or "", namespace, names)
        pairs = {k: v.format(**filled) for k, v in self.labels.items()}
        pairs.update(extra or {})
        return _matchers(pairs)

    def queries(
        self,
        variants: Variants,
        *,
        namespace: str,
        step: str,
        target: str | None = None,
        extra: Mapping[str, str] | None = None,
        names: Mapping[str, str] | None = None,
        segment_by: str | None = None,
    ) -> dict[str, tuple[str, str]]:
        """PromQL per canonical metric: ``{metric: (query, kind)}``, increments per step.

        Errors are ``or``-ed with ``requests * 0`` so a variant that served requests but no
        errors gets explicit zeros instead of no series. A preset whose Flagger
        request-duration is a mean also fetches ``latency_ms_sum``, the increase of the
        histogram's ``_sum`` in ms (the mean is that over the +Inf bucket's increase).
        ``segment_by`` keeps that label too (``sum by (variant_label, segment_by)``), one
        series per variant and segment.
        """
        sel = _joined(self.selector(namespace, target, extra, names), variants.matcher())
        by = variants.label + (f", {segment_by}" if segment_by else "")
        req_sel = _joined(sel, _matchers(self.requests_labels))
        requests = f"sum by ({by}) (increase({self.requests}{{{req_sel}}}[{step}]))"
        err_sel = f"{req_sel},{self.code_label}=~{promql_string(self.error_regex)}"
        errors = f"sum by ({by}) (increase({self.requests}{{{err_sel}}}[{step}])) or {requests} * 0"
        lat_sel = _joined(sel, _matchers(self.latency_labels))
        latency = f"sum by ({by}, le) (increase({self.latency}{{{lat_sel}}}[{step}]))"
        out = {
            "requests": (requests, "counter"),
            "errors": (errors, "counter"),
            "latency_ms": (latency, "bucket"),
        }
        if self.duration == "mean":
            scale = "" if self.le_to_ms == 1.0 else f" * {self.le_to_ms:g}"
            total = f"sum by ({by}) (increase({self.histogram}_sum{{{lat_sel}}}[{step}])){scale}"
            out[LATENCY_SUM] = (total, "counter")
        return out


#: The increase of a latency histogram's ``_sum`` in ms, fetched by presets whose Flagger
#: request-duration is a mean (nginx, skipper).
LATENCY_SUM = "latency_ms_sum"


def _matchers(pairs: Mapping[str, str]) -> str:
    return ",".join(f"{k}={promql_string(v)}" for k, v in pairs.items())


def _joined(*parts: str) -> str:
    return ",".join(part for part in parts if part)


_FLAGGER = {"primary": "{target}-primary", "canary": "{target}"}
_POD_RE = "[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"
_PODS = {
    "primary": "{target}-primary-" + _POD_RE,
    "canary": "{target}-" + _POD_RE,
}
_POD_NAMES = {"primary": "{target}-primary-5d8c7b9f4-p{pod}", "canary": "{target}-6f9b8c7d5-p{pod}"}


class _EnvoyFields(TypedDict):
    """The Preset fields every Envoy-based preset shares."""

    requests: str
    latency: str
    code_label: str
    error_regex: str
    ok_code: str
    error_code: str


_ENVOY: _EnvoyFields = {
    "requests": "envoy_cluster_upstream_rq",
    "latency": "envoy_cluster_upstream_rq_time_bucket",
    "code_label": "envoy_response_code",
    "error_regex": "5.*",
    "ok_code": "200",
    "error_code": "503",
}
_OBSERVERS = "fluxcd/flagger pkg/metrics/observers/"

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            name="istio",
            requests="istio_requests_total",
            latency="istio_request_duration_milliseconds_bucket",
            labels={"reporter": "destination", "destination_workload_namespace": "{namespace}"},
            variant_label="destination_workload",
            read=_FLAGGER,
            write=_FLAGGER,
            code_label="response_code",
            error_regex="5.*",
            ok_code="200",
            error_code="503",
            description="Istio standard metrics, destination-reported, by destination_workload",
            upstream=_OBSERVERS + "istio.go",
        ),
        Preset(
            name="linkerd",
            requests="response_total",
            latency="response_latency_ms_bucket",
            labels={"namespace": "{namespace}", "direction": "inbound"},
            variant_label="deployment",
            read=_FLAGGER,
            write=_FLAGGER,
            code_label="classification",
            error_regex="failure",
            ok_code="success",
            error_code="failure",
            description="Linkerd proxy metrics, inbound, by deployment",
            upstream=_OBSERVERS + "linkerd.go",
        ),
        Preset(
            name="nginx",
            requests="nginx_ingress_controller_requests",
            latency="nginx_ingress_controller_response_duration_seconds_bucket",
            labels={"namespace": "{namespace}", "ingress": "{ingress}"},
            variant_label="canary",
            read={"primary": "", "canary": ".+"},
            write={"primary": "", "canary": "{namespace}-{target}-canary-80"},
            code_label="status",
            error_regex="5.*",
            ok_code="200",
            error_code="503",
            le_to_ms=1000.0,
            duration="mean",
            description="ingress-nginx, ingress (names['ingress'], default the target); canary "
            "traffic has canary!=''; request-duration is the mean response duration",
            upstream=_OBSERVERS + "nginx.go",
        ),
        Preset(
            name="traefik",
            requests="traefik_service_request_duration_seconds_bucket",
            requests_labels={"le": "+Inf"},
            latency="traefik_service_request_duration_seconds_bucket",
            variant_label="service",
            read={
                "primary": "{namespace}-{target}-primary-[0-9a-zA-Z-]+@kubernetescrd",
                "canary": "{namespace}-{target}-canary-[0-9a-zA-Z-]+@kubernetescrd",
            },
            write={
                "primary": "{namespace}-{target}-primary-80@kubernetescrd",
                "canary": "{namespace}-{target}-canary-80@kubernetescrd",
            },
            code_label="code",
            error_regex="5..",
            ok_code="200",
            error_code="503",
            le_to_ms=1000.0,
            description="Traefik service metrics by service; requests are the duration "
            "histogram's +Inf bucket",
            upstream=_OBSERVERS + "traefik.go",
        ),
        Preset(
            name="gatewayapi",
            requests="http_request_duration_seconds_count",
            latency="http_request_duration_seconds_bucket",
            labels={"kubernetes_namespace": "{namespace}"},
            variant_label="kubernetes_pod_name",
            read=_PODS,
            write=_POD_NAMES,
            code_label="status",
            error_regex="5.*",
            ok_code="200",
            error_code="503",
            le_to_ms=1000.0,
            pod_label=None,
            description="the app's own http_request_duration_seconds histogram, by pod name",
            upstream=_OBSERVERS + "http.go",
        ),
        Preset(
            name="contour",
            variant_label="envoy_cluster_name",
            read={
                "primary": "{namespace}_{service}-primary_[0-9a-zA-Z-]+",
                "canary": "{namespace}_{service}-canary_[0-9a-zA-Z-]+",
            },
            write={
                "primary": "{namespace}_{service}-primary_80",
                "canary": "{namespace}_{service}-canary_80",
            },
            description="Contour's Envoy cluster metrics by envoy_cluster_name, of the Canary's "
            "service (names['service'], default the target)",
            upstream=_OBSERVERS + "contour.go",
            **_ENVOY,
        ),
        Preset(
            name="gloo",
            variant_label="envoy_cluster_name",
            read={
                "primary": "{namespace}-{target}-primaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+",
                "canary": "{namespace}-{target}-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+",
            },
            write={
                "primary": "{namespace}-{target}-primaryupstream-9898_gloo-system",
                "canary": "{namespace}-{target}-canaryupstream-9898_gloo-system",
            },
            description="Gloo's Envoy cluster metrics, by envoy_cluster_name",
            upstream=_OBSERVERS + "gloo.go",
            **_ENVOY,
        ),
        Preset(
            name="appmesh",
            labels={"kubernetes_namespace": "{namespace}"},
            variant_label="kubernetes_pod_name",
            read=_PODS,
            write=_POD_NAMES,
            pod_label=None,
            description="App Mesh Envoy sidecar metrics, by pod name",
            upstream=_OBSERVERS + "appmesh.go",
            **_ENVOY,
        ),
        Preset(
            name="kuma",
            variant_label="service",
            read={
                "primary": "{target}-primary_{namespace}_svc_[0-9a-zA-Z-]+",
                "canary": "{target}-canary_{namespace}_svc_[0-9a-zA-Z-]+",
            },
            write={
                "primary": "{target}-primary_{namespace}_svc_80",
                "canary": "{target}-canary_{namespace}_svc_80",
            },
            description="Kuma's Envoy cluster metrics, by Kuma service",
            upstream=_OBSERVERS + "kuma.go",
            **_ENVOY,
        ),
        Preset(
            name="knative",
            variant_label="envoy_cluster_name",
            read={"primary": "{namespace}/{primary_route}", "canary": "{namespace}/{route}"},
            write={"primary": "{namespace}/{primary_route}", "canary": "{namespace}/{route}"},
            required_names=("route", "primary_route"),
            example_names={"route": "{target}-00002", "primary_route": "{target}-00001"},
            description="Knative's Envoy cluster metrics by revision: names['route'] is the "
            "canary's (the latest created) revision, names['primary_route'] the primary's "
            "(the flagger.app/primary-revision annotation)",
            upstream=_OBSERVERS + "knative.go",
            **_ENVOY,
        ),
        Preset(
            name="apisix",
            requests="apisix_http_status",
            latency="apisix_http_latency_bucket",
            latency_labels={"type": "request"},
            variant_label="route",
            read={
                "primary": "{namespace}_{route}_.+",
                "canary": "{namespace}_{route}-{target}-canary_.+",
            },
            write={
                "primary": "{namespace}_{route}_rule1",
                "canary": "{namespace}_{route}-{target}-canary_rule1",
            },
            code_label="code",
            error_regex="5..",
            ok_code="200",
            error_code="503",
            description="APISIX route metrics (names['route'] is the routeRef, default the "
            "target). Flagger's canary route carries both backends, so its series mixes "
            "primary and canary traffic by weight: the primary here is the user's route",
            upstream=_OBSERVERS + "apisix.go",
        ),
        Preset(
            name="skipper",
            requests="skipper_response_duration_seconds_bucket",
            requests_labels={"le": "+Inf"},
            latency="skipper_serve_route_duration_seconds_bucket",
            variant_label="route",
            read={
                "primary": "kube(ew)?_{namespace}__{ingress}__.*__{service}_primary(_[0-9]+)?",
                "canary": "kube(ew)?_{namespace}__{ingress}_canary__.*__{service}_canary(_[0-9]+)?",
            },
            write={
                "primary": "kube_{namespace}__{ingress}__app_example_com____{service}_primary",
                "canary": "kube_{namespace}__{ingress}_canary__app_example_com____{service}_canary",
            },
            code_label="code",
            error_regex="5..",
            ok_code="200",
            error_code="503",
            le_to_ms=1000.0,
            duration="mean",
            word_names=True,
            description="Skipper route metrics (names['ingress'], names['service'], default the "
            "target); request-duration is the mean serve-route duration",
            upstream=_OBSERVERS + "skipper.go",
        ),
        Preset(
            name="osm",
            requests="osm_request_total",
            latency="osm_request_duration_ms_bucket",
            labels={"destination_namespace": "{namespace}", "destination_kind": "Deployment"},
            variant_label="destination_name",
            read=_FLAGGER,
            write=_FLAGGER,
            code_label="response_code",
            error_regex="5.*",
            ok_code="200",
            error_code="503",
            description="Open Service Mesh, by destination_name",
            upstream=_OBSERVERS + "osm.go",
        ),
    ]
}
PRESETS["kubernetes"] = PRESETS["gatewayapi"]


def flagger_names(canary: Mapping[str, Any]) -> dict[str, str]:
    """The template names Flagger's ``toMetricModel`` gives a Canary manifest (a dict):
    ``service`` is ``spec.service.name``, ``ingress`` ``spec.ingressRef.name`` and ``route``
    ``spec.routeRef.name``, each only when set (the preset falls back to the target, as
    Flagger does). Knative's revisions are not in the manifest: pass them yourself."""
    spec = canary.get("spec")
    if not isinstance(spec, Mapping):
        spec = canary
    fields = {"service": "service", "ingress": "ingressRef", "route": "routeRef"}
    names = {}
    for key, field_name in fields.items():
        ref = spec.get(field_name)
        if isinstance(ref, Mapping) and ref.get("name"):
            names[key] = str(ref["name"])
    return names


def get_preset(name: str) -> Preset:
    """The preset called ``name``; SpecError listing the known ones otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise SpecError(
            f"unknown preset {name!r}; known presets: {known} (or pass queries=...)"
        ) from None


__all__ = [
    "LATENCY_SUM",
    "NAME_KEYS",
    "PRESETS",
    "Preset",
    "Variants",
    "flagger_names",
    "get_preset",
    "promql_string",
    "regex_escape",
]
