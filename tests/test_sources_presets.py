"""Presets against Flagger's metric observers: the same series, the same values.

Upstream: fluxcd/flagger at commit 15bd6ad555e6c935da55f0ab95977be74c149bd6, files
``pkg/metrics/observers/<provider>.go`` (read with ``git show`` on a mirror). Each
observer's two queries are restated below in one line each (the facts: metric names, label
matchers, the division by 100 or the ms conversion); ``{{ name }}`` are Flagger's template
names, filled as Flagger's ``toMetricModel`` does. The server test evaluates these
queries as Flagger would (an instant query with ``[1m]``) on the backfilled Prometheus and
compares them with what rolloutlab's Flagger judge computes from the preset's fetch.
"""

from __future__ import annotations

import math

import pytest
import requests
from conftest import ROUND_TRIP_PRESETS, Backfilled

from rolloutlab.errors import SpecError
from rolloutlab.frames import tick_table
from rolloutlab.judges.flagger import flagger_value, is_mean_duration
from rolloutlab.sources.presets import PRESETS, flagger_names, get_preset
from rolloutlab.sources.prometheus import Prometheus
from rolloutlab.specs import MetricSpec, Spec
from rolloutlab.specs.fetch import preset_for

FLAGGER_COMMIT = "15bd6ad555e6c935da55f0ab95977be74c149bd6"
OBSERVERS = "fluxcd/flagger pkg/metrics/observers/"

_ENVOY_SR = (
    'sum(rate(envoy_cluster_upstream_rq{{S},envoy_response_code!~"5.*"}[1m])) / '
    "sum(rate(envoy_cluster_upstream_rq{{S}}[1m])) * 100"
)
_ENVOY_P99 = (
    "histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{{S}}[1m])) by (le))"
)
_SKIPPER_ROUTE = (
    "kube(ew)?_{{ namespace }}__{{ ingress }}_canary__.*__{{ service }}_canary(_[0-9]+)?"
)

#: provider -> (observer file, canary selector S, success-rate query, duration query,
#: factor from the query's value to Flagger's ms). Queries use {S} for the selector.
FLAGGER: dict[str, tuple[str, str, str, str, float]] = {
    "istio": (
        "istio.go",
        'reporter="destination",destination_workload_namespace="{{ namespace }}",'
        'destination_workload=~"{{ target }}"',
        'sum(rate(istio_requests_total{{S},response_code!~"5.*"}[1m])) / '
        "sum(rate(istio_requests_total{{S}}[1m])) * 100",
        "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{{S}}[1m]))"
        " by (le))",
        1.0,
    ),
    "linkerd": (
        "linkerd.go",
        'namespace="{{ namespace }}",deployment=~"{{ target }}",direction="inbound"',
        'sum(rate(response_total{{S},classification!="failure"}[1m])) / '
        "sum(rate(response_total{{S}}[1m])) * 100",
        "histogram_quantile(0.99, sum(rate(response_latency_ms_bucket{{S}}[1m])) by (le))",
        1.0,
    ),
    "nginx": (
        "nginx.go",
        'namespace="{{ namespace }}",ingress="{{ ingress }}",canary!=""',
        'sum(rate(nginx_ingress_controller_requests{{S},status!~"5.*"}[1m])) / '
        "sum(rate(nginx_ingress_controller_requests{{S}}[1m])) * 100",
        "sum(rate(nginx_ingress_controller_response_duration_seconds_sum{{S}}[1m])) / "
        "sum(rate(nginx_ingress_controller_response_duration_seconds_count{{S}}[1m])) * 1000",
        1.0,
    ),
    "traefik": (
        "traefik.go",
        'service=~"{{ namespace }}-{{ target }}-canary-[0-9a-zA-Z-]+@kubernetescrd"',
        'sum(rate(traefik_service_request_duration_seconds_bucket{{S},code!~"5..",le="+Inf"}[1m]))'
        ' / sum(rate(traefik_service_request_duration_seconds_bucket{{S},le="+Inf"}[1m])) * 100',
        "histogram_quantile(0.99, sum(rate(traefik_service_request_duration_seconds_bucket{{S}}"
        "[1m])) by (le)) * 1000",
        1.0,
    ),
    "gatewayapi": (
        "http.go",
        'kubernetes_namespace="{{ namespace }}",'
        'kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"',
        'sum(rate(http_request_duration_seconds_count{{S},status!~"5.*"}[1m])) / '
        "sum(rate(http_request_duration_seconds_count{{S}}[1m])) * 100",
        "histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket{{S}}[1m])) by (le))",
        1000.0,  # the observer multiplies seconds by 1000 in Go
    ),
    "contour": (
        "contour.go",
        'envoy_cluster_name=~"{{ namespace }}_{{ service }}-canary_[0-9a-zA-Z-]+"',
        _ENVOY_SR,
        _ENVOY_P99,
        1.0,
    ),
    "gloo": (
        "gloo.go",
        'envoy_cluster_name=~"{{ namespace }}-{{ target }}-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+"',
        _ENVOY_SR,
        _ENVOY_P99,
        1.0,
    ),
    "appmesh": (
        "appmesh.go",
        'kubernetes_namespace="{{ namespace }}",'
        'kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"',
        _ENVOY_SR,
        _ENVOY_P99,
        1.0,
    ),
    "kuma": (
        "kuma.go",
        'service=~"{{ target }}-canary_{{ namespace }}_svc_[0-9a-zA-Z-]+"',
        _ENVOY_SR,
        _ENVOY_P99,
        1.0,
    ),
    "knative": (
        "knative.go",
        'envoy_cluster_name=~"{{ namespace }}/{{ route }}"',
        _ENVOY_SR,
        _ENVOY_P99,
        1.0,
    ),
    "apisix": (
        "apisix.go",
        'route=~"{{ namespace }}_{{ route }}-{{ target }}-canary_.+"',
        'sum(rate(apisix_http_status{{S},code!~"5.."}[1m])) / '
        "sum(rate(apisix_http_status{{S}}[1m])) * 100",
        'histogram_quantile(0.99, sum(rate(apisix_http_latency_bucket{type=~"request",{S}}[1m]))'
        " by (le))",
        1.0,
    ),
    "skipper": (
        "skipper.go",
        f'route=~"{_SKIPPER_ROUTE}"',
        'sum(rate(skipper_response_duration_seconds_bucket{{S},code!~"5..",le="+Inf"}[1m])) / '
        'sum(rate(skipper_response_duration_seconds_bucket{{S},le="+Inf"}[1m])) * 100',
        "sum(rate(skipper_serve_route_duration_seconds_sum{{S}}[1m])) / "
        "sum(rate(skipper_serve_route_duration_seconds_count{{S}}[1m])) * 1000",
        1.0,
    ),
    "osm": (
        "osm.go",
        'destination_namespace="{{ namespace }}",destination_kind="Deployment",'
        'destination_name="{{ target }}"',
        'sum(rate(osm_request_total{{S},response_code!~"5.*"}[1m])) / '
        "sum(rate(osm_request_total{{S}}[1m])) * 100",
        "histogram_quantile(0.99, sum(rate(osm_request_duration_ms_bucket{{S}}[1m])) by (le))",
        1.0,
    ),
}
#: Flagger's observers whose request-duration is a mean (_sum / _count), not a p99.
MEAN_DURATION = {"nginx", "skipper"}


def render(query: str, selector: str, model: dict[str, str]) -> str:
    """Fill {S} with the selector, then Flagger's {{ name }} placeholders."""
    text = query.replace("{S}", selector)
    for name, value in model.items():
        text = text.replace("{{ " + name + " }}", value)
    return text


def test_every_flagger_observer_has_a_preset_citing_it() -> None:
    observers = {spec[0] for spec in FLAGGER.values()}
    assert len(observers) == 13  # the observer files at FLAGGER_COMMIT, without factory/render
    for provider, (observer, *_rest) in FLAGGER.items():
        assert get_preset(provider).upstream == OBSERVERS + observer, provider
    assert get_preset("kubernetes") is get_preset("gatewayapi")  # Flagger's HttpObserver
    assert {p.name for p in PRESETS.values() if p.duration == "mean"} == MEAN_DURATION


def test_contour_reads_the_canary_service_not_the_target() -> None:
    preset = get_preset("contour")
    variants = preset.variants("podinfo", "test", {"service": "web"})
    assert variants.variant_of("test_web-canary_9898") == "canary"
    assert variants.variant_of("test_web-primary_9898") == "primary"
    assert variants.variant_of("test_podinfo-canary_9898") is None
    # without a service name, Flagger's toMetricModel uses the target
    assert preset.variants("podinfo", "test").variant_of("test_podinfo-canary_9898") == "canary"


def test_nginx_duration_is_the_mean_of_the_response_duration_histogram() -> None:
    preset = get_preset("nginx")
    names = {"ingress": "podinfo-ing"}
    queries = preset.queries(
        preset.variants("podinfo", "test", names),
        namespace="test",
        target="podinfo",
        step="60s",
        names=names,
    )
    total, kind = queries["latency_ms_sum"]
    assert kind == "counter"
    assert "nginx_ingress_controller_response_duration_seconds_sum{" in total
    assert total.endswith(" * 1000") and 'ingress="podinfo-ing"' in total
    assert "nginx_ingress_controller_response_duration_seconds_bucket{" in queries["latency_ms"][0]


def test_traefik_counts_requests_from_the_inf_bucket() -> None:
    preset = get_preset("traefik")
    queries = preset.queries(
        preset.variants("podinfo", "test"), namespace="test", target="podinfo", step="60s"
    )
    for metric in ("requests", "errors"):
        query = queries[metric][0]
        assert "(traefik_service_request_duration_seconds_bucket{" in query
        assert '@kubernetescrd",le="+Inf"' in query
    assert 'le="+Inf"' not in queries["latency_ms"][0]


def test_skipper_encodes_names_as_flagger_does() -> None:
    preset = get_preset("skipper")
    variants = preset.variants("pod-info", "my-ns", {"ingress": "web.ing", "service": "pod-info"})
    route = "kube_my_ns__web_ing_canary__app_example_com____pod_info_canary"
    assert variants.variant_of(route) == "canary"
    assert variants.variant_of("kubeew_my_ns__web_ing__x____pod_info_primary_2") == "primary"


def test_names_from_a_canary_manifest_as_flaggers_to_metric_model() -> None:
    """pkg/controller/scheduler_metrics.go toMetricModel: service.name, ingressRef.name and
    routeRef.name when set, the targetRef name otherwise."""
    canary = {
        "kind": "Canary",
        "spec": {
            "targetRef": {"kind": "Deployment", "name": "podinfo"},
            "service": {"name": "web", "port": 9898},
            "ingressRef": {"kind": "Ingress", "name": "podinfo-ing"},
        },
    }
    names = flagger_names(canary)
    assert names == {"service": "web", "ingress": "podinfo-ing"}
    model = get_preset("apisix").names("podinfo", "test", names)
    assert (model["service"], model["ingress"], model["route"]) == ("web", "podinfo-ing", "podinfo")
    assert flagger_names({"spec": {"service": {"port": 80}}}) == {}


def test_knative_needs_both_revisions() -> None:
    with pytest.raises(SpecError, match=r"needs names=\{'route': '...', 'primary_route'"):
        get_preset("knative").variants("hello", "default")
    variants = get_preset("knative").variants(
        "hello", "default", {"route": "hello-00002", "primary_route": "hello-00001"}
    )
    assert variants.variant_of("default/hello-00002") == "canary"
    assert variants.variant_of("default/hello-00001") == "primary"


def test_unknown_names_are_refused() -> None:
    with pytest.raises(SpecError, match=r"unknown name\(s\) \['ingres'\]"):
        get_preset("nginx").variants("podinfo", "test", {"ingres": "x"})


def instant(url: str, query: str, at: float) -> float:
    response = requests.get(f"{url}/api/v1/query", params={"query": query, "time": at}, timeout=10)
    response.raise_for_status()
    result = response.json()["data"]["result"]
    assert len(result) == 1, (query, result)
    return float(result[0]["value"][1])


@pytest.mark.prometheus
@pytest.mark.parametrize("provider", sorted(FLAGGER))
def test_flagger_judge_sees_what_flaggers_query_returns(
    backfilled: Backfilled, provider: str
) -> None:
    """Flagger's two queries, run on the server, equal the Flagger judge's values computed
    from the preset's fetch (Prometheus 2.x: a sample on both window edges, so rate() is
    the increase over the window)."""
    assert provider in ROUND_TRIP_PRESETS
    observer, selector, success_rate, duration, to_ms = FLAGGER[provider]
    preset = get_preset(provider)
    rec = backfilled.presets[provider]
    namespace = f"rt-{provider}"
    names = preset.examples("podinfo")
    got = Prometheus(backfilled.url).fetch(
        provider,
        target="podinfo",
        namespace=namespace,
        names=names,
        start=rec.start,
        end=rec.end,
        step="1m",
    )
    model = preset.names("podinfo", namespace, names)
    table = tick_table(got.frame, 60.0, variants=("primary", "canary"))
    rate = MetricSpec("request-success-rate", "ratio", "errors", "requests", interval_s=60)
    latency = MetricSpec("request-duration", "latency", "latency_ms", interval_s=60)
    assert is_mean_duration(latency, table) == (provider in MEAN_DURATION)
    for k in (3, 17, 42):
        at = table.ends[k].timestamp()
        theirs = instant(backfilled.url, render(success_rate, selector, model), at)
        assert flagger_value(rate, table, "canary", k) == pytest.approx(theirs, rel=1e-12)
        theirs_ms = instant(backfilled.url, render(duration, selector, model), at) * to_ms
        ours_ms = flagger_value(latency, table, "canary", k)
        assert ours_ms == math.trunc(round(theirs_ms, 6)), (
            f"{observer} at tick {k}: Flagger {theirs_ms} ms, rolloutlab {ours_ms} ms"
        )


@pytest.mark.parametrize(
    ("provider", "default", "preset"),
    [
        ("nginx", None, "nginx"),
        ("appmesh", "istio", "appmesh"),  # a Canary's provider wins over the mesh provider
        (None, "contour", "contour"),  # no provider on the Canary: the mesh provider
        (None, None, "istio"),
        ("smi", None, "istio"),  # smi:v1alpha3 has no observer of its own: Istio's
        ("smi", "linkerd", "linkerd"),  # a Linkerd mesh provider overrides the Canary's
    ],
)
def test_the_preset_is_the_observer_flagger_picks(provider, default, preset):
    # fluxcd/flagger@15bd6ad555e6c935da55f0ab95977be74c149bd6:
    # pkg/controller/scheduler_metrics.go (runBuiltinMetricChecks: the Canary's provider
    # over the mesh provider, Linkerd's override) and pkg/metrics/observers/factory.go
    # (Observer: Istio by default)
    assert preset_for(Spec(provider=provider), default) == preset
