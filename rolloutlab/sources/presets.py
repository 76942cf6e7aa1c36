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

Variants: Flagger's naming is the default (``<target>`` is the canary, ``<target>-primary`` the
primary). A :class:`Variants` maps any label's values (regexes, fully anchored as in PromQL's
``=~``) to variant names, which covers A/B/n.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class Preset:
    """One provider's metric names and labels, templated with ``{namespace}`` and ``{target}``.

    ``labels`` are equality matchers shared by every series (and written by the OpenMetrics
    writer); ``read`` maps ``primary``/``canary`` to the variant label's regex, ``write`` to a
    concrete value (``{pod}`` is the pod index). ``le_to_ms`` converts bucket bounds to ms.
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
    le_to_ms: float = 1.0
    pod_label: str | None = "pod"
    description: str = ""

    @property
    def requests_from_histogram(self) -> bool:
        """True when requests are the latency histogram's ``_count`` (one metric family)."""
        return self.requests == self.latency.removesuffix("_bucket") + "_count"

    def variants(self, target: str, namespace: str) -> Variants:
        """Flagger's mapping for this provider: ``<target>-primary`` and ``<target>``."""
        values = {
            role: pattern.format(target=regex_escape(target), namespace=regex_escape(namespace))
            for role, pattern in self.read.items()
        }
        return Variants(self.variant_label, values)

    def selector(
        self, namespace: str, target: str | None = None, extra: Mapping[str, str] | None = None
    ) -> str:
        """Equality matchers shared by all series, with ``{namespace}``/``{target}`` filled."""
        pairs = {}
        for k, v in self.labels.items():
            if "{target}" in v and target is None:
                raise SpecError(f"preset {self.name!r} needs target= (its label {k} uses it)")
            pairs[k] = v.format(namespace=namespace, target=target)
        pairs.update(extra or {})
        return ",".join(f"{k}={promql_string(v)}" for k, v in pairs.items())

    def queries(
        self,
        variants: Variants,
        *,
        namespace: str,
        step: str,
        target: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, tuple[str, str]]:
        """PromQL per canonical metric: ``{metric: (query, kind)}``, increments per step.

        Errors are ``or``-ed with ``requests * 0`` so a variant that served requests but no
        errors gets explicit zeros instead of no series.
        """
        sel = ",".join(
            s for s in (self.selector(namespace, target, extra), variants.matcher()) if s
        )
        by = variants.label
        requests = f"sum by ({by}) (increase({self.requests}{{{sel}}}[{step}]))"
        err_sel = f"{sel},{self.code_label}=~{promql_string(self.error_regex)}"
        errors = f"sum by ({by}) (increase({self.requests}{{{err_sel}}}[{step}])) or {requests} * 0"
        latency = f"sum by ({by}, le) (increase({self.latency}{{{sel}}}[{step}]))"
        return {
            "requests": (requests, "counter"),
            "errors": (errors, "counter"),
            "latency_ms": (latency, "bucket"),
        }


_FLAGGER = {"primary": "{target}-primary", "canary": "{target}"}
_POD_RE = "[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"
_PODS = {
    "primary": "{target}-primary-" + _POD_RE,
    "canary": "{target}-" + _POD_RE,
}
_POD_NAMES = {"primary": "{target}-primary-5d8c7b9f4-p{pod}", "canary": "{target}-6f9b8c7d5-p{pod}"}
_ENVOY = {
    "requests": "envoy_cluster_upstream_rq",
    "latency": "envoy_cluster_upstream_rq_time_bucket",
    "code_label": "envoy_response_code",
    "error_regex": "5.*",
    "ok_code": "200",
    "error_code": "503",
}

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
        ),
        Preset(
            name="nginx",
            requests="nginx_ingress_controller_requests",
            latency="nginx_ingress_controller_request_duration_seconds_bucket",
            labels={"namespace": "{namespace}", "ingress": "{target}"},
            variant_label="canary",
            read={"primary": "", "canary": ".+"},
            write={"primary": "", "canary": "{namespace}-{target}-canary-80"},
            code_label="status",
            error_regex="5.*",
            ok_code="200",
            error_code="503",
            le_to_ms=1000.0,
            description="ingress-nginx; target is the ingress name; canary traffic has canary!=''",
        ),
        Preset(
            name="traefik",
            requests="traefik_service_requests_total",
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
            description="Traefik service metrics, by service",
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
        ),
        Preset(
            name="contour",
            labels={},
            variant_label="envoy_cluster_name",
            read={
                "primary": "{namespace}_{target}-primary_[0-9a-zA-Z-]+",
                "canary": "{namespace}_{target}-canary_[0-9a-zA-Z-]+",
            },
            write={
                "primary": "{namespace}_{target}-primary_80",
                "canary": "{namespace}_{target}-canary_80",
            },
            description="Contour's Envoy cluster metrics, by envoy_cluster_name",
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
            **_ENVOY,
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
        ),
    ]
}
PRESETS["kubernetes"] = PRESETS["gatewayapi"]


def get_preset(name: str) -> Preset:
    """The preset called ``name``; SpecError listing the known ones otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise SpecError(
            f"unknown preset {name!r}; known presets: {known} (or pass queries=...)"
        ) from None


__all__ = ["PRESETS", "Preset", "Variants", "get_preset", "promql_string", "regex_escape"]
