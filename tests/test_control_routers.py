# ruff: noqa: F811  (pytest fixtures imported from kube_emulator are shadowed by parameters)
"""Routers against a kmock Kubernetes emulator over real HTTP, with the real sync client.

kmock limits (see kube_emulator.py): it ignores ``dryRun`` and never answers 409 on
its own; the emulator there honours ``dryRun=All`` like an API server and scripts
409/403/500 answers before touching the object. Tests check what rolloutlab sends
(``dryRun=All``, ``fieldManager``, merge-patch content type, ``resourceVersion``).
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_emulator import (  # noqa: F401  (fixtures)
    NGINX,
    NS,
    KubeEmulator,
    audit_log,
    canary_ingress,
    closed_port,
    flagger_canary,
    http_proxy,
    http_route,
    kube,
    traefik_service,
    traffic_split,
    virtual_service,
)

from rolloutlab.control.audit import AuditLog
from rolloutlab.control.kube import load_client
from rolloutlab.control.routers import (
    ContourRouter,
    IstioRouter,
    KubeRouter,
    NginxRouter,
    SMIRouter,
    SMIv1alpha1Router,
    Weights,
    parse_quantity,
    router,
)
from rolloutlab.errors import ActuationError, ConflictError, SpecError, ValidationFailed

pytestmark = pytest.mark.timeout(60)

VS = "networking.istio.io/v1beta1/virtualservices"


def _set_backend_weights(
    path: tuple[Any, ...], key: str, encode: Callable[[int], Any] = int
) -> Callable[[dict, Weights], None]:
    """Expected-object builder: put weights into a backend list by name."""

    def apply(obj: dict, weights: Weights) -> None:
        node: Any = obj
        for step in path:
            node = node[step]
        for backend in node:
            name = backend["destination"]["host"] if key == "destination.host" else backend[key]
            if name == "podinfo-primary":
                backend["weight"] = encode(weights.primary)
            elif name == "podinfo-canary":
                backend["weight"] = encode(weights.canary)

    return apply


def _set_nginx(obj: dict, weights: Weights) -> None:
    obj["metadata"]["annotations"][NGINX + "canary-weight"] = str(weights.canary)


@dataclass(frozen=True)
class Case:
    kind: str
    resource: str
    object_name: str
    seed: Callable[[], dict[str, Any]]
    expect: Callable[[dict, Weights], None]


CASES = [
    Case(
        "istio",
        VS,
        "podinfo",
        virtual_service,
        _set_backend_weights(("spec", "http", 0, "route"), "destination.host"),
    ),
    Case(
        "gatewayapi",
        "gateway.networking.k8s.io/v1/httproutes",
        "podinfo",
        http_route,
        _set_backend_weights(("spec", "rules", 0, "backendRefs"), "name"),
    ),
    Case(
        "smi",
        "split.smi-spec.io/v1alpha2/trafficsplits",
        "podinfo",
        traffic_split,
        _set_backend_weights(("spec", "backends"), "service"),
    ),
    Case(
        "smi:v1alpha3",
        "split.smi-spec.io/v1alpha3/trafficsplits",
        "podinfo",
        lambda: traffic_split(version="v1alpha3"),
        _set_backend_weights(("spec", "backends"), "service"),
    ),
    Case(  # Flagger's linkerd provider writes SMI v1alpha1, weights as quantities
        "linkerd",
        "split.smi-spec.io/v1alpha1/trafficsplits",
        "podinfo",
        lambda: traffic_split(version="v1alpha1"),
        _set_backend_weights(("spec", "backends"), "service", encode=str),
    ),
    Case(
        "nginx",
        "networking.k8s.io/v1/ingresses",
        "podinfo-canary",
        canary_ingress,
        _set_nginx,
    ),
    Case(
        "traefik",
        "traefik.io/v1alpha1/traefikservices",
        "podinfo",
        traefik_service,
        _set_backend_weights(("spec", "weighted", "services"), "name"),
    ),
    Case(
        "contour",
        "projectcontour.io/v1/httpproxies",
        "podinfo",
        http_proxy,
        _set_backend_weights(("spec", "routes", 0, "services"), "name"),
    ),
]


def make(kube: KubeEmulator, kind: str = "istio", **kwargs: Any) -> KubeRouter:
    """The factory's router on the emulator, with fast retries."""
    return router(kind, "podinfo", NS, client=kube.client(), retries=2, backoff=0.001, **kwargs)


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_read_set_read_back(kube: KubeEmulator, audit_log: AuditLog, case: Case) -> None:
    seeded = case.seed()
    kube.seed(case.resource, seeded)
    r = make(kube, case.kind, audit=audit_log)

    assert r.weights() == Weights(100, 0)
    change = r.set_weight(25, reason="tick 1 passed")

    assert (change.before, change.after, change.dry_run) == (
        Weights(100, 0),
        Weights(75, 25),
        False,
    )
    assert r.weights() == Weights(75, 25)
    expected = copy.deepcopy(seeded)
    case.expect(expected, Weights(75, 25))
    assert kube.object(case.resource, NS, case.object_name) == expected  # nothing else touched

    (patch,) = kube.requests("PATCH")
    assert patch.headers["Content-Type"] == "application/merge-patch+json"
    assert patch.params == {"fieldManager": "rolloutlab"}
    assert patch.data["metadata"]["resourceVersion"] == "1"  # optimistic concurrency
    (record,) = audit_log.records()
    assert (record.kind, record.namespace, record.name, record.action) == (
        r.kind,
        NS,
        case.object_name,
        "set_weight",
    )
    assert (record.before, record.after) == (
        {"primary": 100, "canary": 0},
        {"primary": 75, "canary": 25},
    )
    assert (record.reason, record.dry_run) == ("tick 1 passed", False)
    assert record.user and record.time.endswith("+00:00")


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_dry_run_previews_without_writing(
    kube: KubeEmulator, audit_log: AuditLog, case: Case
) -> None:
    seeded = case.seed()
    kube.seed(case.resource, seeded)
    r = make(kube, case.kind, audit=audit_log)

    change = r.set_weight(40, reason="preview", dry_run=True)

    assert change.dry_run and change.after == Weights(60, 40)
    assert "-podinfo-canary: 0" in change.diff and "+podinfo-canary: 40" in change.diff
    assert "dry run" in repr(change) and change.diff in str(change)
    (patch,) = kube.requests("PATCH")
    assert patch.params["dryRun"] == "All"  # the server is asked not to persist
    assert kube.object(case.resource, NS, case.object_name) == seeded
    assert r.weights() == Weights(100, 0)
    (record,) = audit_log.records()
    assert record.dry_run


def test_missing_object_is_refused(kube: KubeEmulator, audit_log: AuditLog) -> None:
    kube.seed(VS, {**virtual_service(), "metadata": {"name": "other", "namespace": NS}})
    r = make(kube, audit=audit_log)

    with pytest.raises(ValidationFailed, match=r"VirtualService test/podinfo not found"):
        r.set_weight(10, reason="x")
    with pytest.raises(ValidationFailed, match="not found"):
        r.weights()
    assert kube.requests("PATCH") == [] and audit_log.records() == []


def test_missing_canary_route_names_what_it_looked_for(
    kube: KubeEmulator, audit_log: AuditLog
) -> None:
    broken = virtual_service()
    del broken["spec"]["http"][0]["route"][1]
    kube.seed(VS, broken)
    r = make(kube, audit=audit_log)

    with pytest.raises(ValidationFailed) as info:
        r.set_weight(10, reason="x")
    message = str(info.value)
    assert "'podinfo-canary'" in message and "['legacy', 'podinfo-primary']" in message
    assert "spec.http[0..1].route" in message
    assert kube.requests("PATCH") == [] and audit_log.records() == []


def test_custom_names_and_missing_list(kube: KubeEmulator, audit_log: AuditLog) -> None:
    kube.seed("split.smi-spec.io/v1alpha2/trafficsplits", traffic_split())
    r = SMIRouter("podinfo", NS, client=kube.client(), canary="podinfo-v2", audit=audit_log)
    with pytest.raises(ValidationFailed, match="'podinfo-v2'.*found.*'podinfo-canary'"):
        r.weights()

    kube.seed("projectcontour.io/v1/httpproxies", {**http_proxy(), "spec": {}})
    contour = ContourRouter("podinfo", NS, client=kube.client(), audit=audit_log)
    with pytest.raises(ValidationFailed, match=r"no spec\.routes\[0\]\.services list"):
        contour.set_weight(5, reason="x")
    assert kube.requests("PATCH") == []


def test_nginx_refuses_an_ingress_that_is_not_a_canary(kube: KubeEmulator) -> None:
    ingress = canary_ingress()
    del ingress["metadata"]["annotations"][NGINX + "canary"]
    kube.seed("networking.k8s.io/v1/ingresses", ingress)
    r = NginxRouter("podinfo", NS, client=kube.client())
    with pytest.raises(ValidationFailed, match="not an NGINX canary Ingress"):
        r.set_weight(10, reason="x")
    assert kube.requests("PATCH") == []


def test_conflict_once_is_retried_against_a_fresh_read(
    kube: KubeEmulator, audit_log: AuditLog
) -> None:
    kube.seed(VS, virtual_service())
    kube.fail("PATCH", 409, name="podinfo", message="the object has been modified")
    r = make(kube, audit=audit_log)

    change = r.set_weight(30, reason="x")

    assert change.after == Weights(70, 30)
    assert len(kube.requests("PATCH")) == 2  # one conflict, one retry
    assert r.weights() == Weights(70, 30)
    assert len(audit_log.records()) == 1


def test_persistent_conflict_raises_conflict_error(kube: KubeEmulator, audit_log: AuditLog) -> None:
    kube.seed(VS, virtual_service())
    kube.fail("PATCH", 409, times=99, message="the object has been modified")
    r = make(kube, audit=audit_log)

    with pytest.raises(ConflictError, match="VirtualService test/podinfo.*3 attempts.*409"):
        r.set_weight(30, reason="x")
    assert len(kube.requests("PATCH")) == 3
    assert r.weights() == Weights(100, 0)
    assert_failed_unchanged(audit_log, "409")


def test_forbidden_fails_at_once_with_the_api_message(
    kube: KubeEmulator, audit_log: AuditLog
) -> None:
    kube.seed(VS, virtual_service())
    kube.fail("PATCH", 403, message='user "alice" cannot patch virtualservices')
    r = make(kube, audit=audit_log)

    with pytest.raises(ActuationError) as info:
        r.set_weight(30, reason="x")
    message = str(info.value)
    assert "VirtualService test/podinfo" in message and "HTTP 403" in message
    assert 'user "alice" cannot patch' in message
    assert len(kube.requests("PATCH")) == 1  # not retried
    assert kube.object(VS, NS, "podinfo") == virtual_service()
    assert_failed_unchanged(audit_log, "403")


def test_repeated_server_errors_give_up(kube: KubeEmulator, audit_log: AuditLog) -> None:
    kube.seed(VS, virtual_service())
    kube.fail("PATCH", 500, times=99, message="etcd unavailable")
    r = make(kube, audit=audit_log)

    with pytest.raises(ActuationError, match="after 3 attempts: HTTP 500.*etcd unavailable"):
        r.set_weight(30, reason="x")
    assert kube.object(VS, NS, "podinfo") == virtual_service()
    assert_failed_unchanged(audit_log, "etcd unavailable")


def assert_failed_unchanged(log: AuditLog, error: str) -> None:
    """A refused write leaves its intent and a ``failed`` outcome: weights as they were."""
    entries = log.read().entries
    assert [e.outcome for e in entries] == ["intent", "failed"]
    assert entries[0].id == entries[1].id and entries[0].after == {"primary": 70, "canary": 30}
    assert entries[1].after == {"primary": 100, "canary": 0} and error in entries[1].note


def test_transient_read_error_is_retried(kube: KubeEmulator) -> None:
    kube.seed(VS, virtual_service())
    kube.fail("GET", 503, name="podinfo")
    assert make(kube).set_weight(10, reason="x").after == Weights(90, 10)


def test_unreachable_server_is_an_actuation_error(audit_log: AuditLog) -> None:
    from kubernetes import client

    configuration = client.Configuration(host=f"http://127.0.0.1:{closed_port()}")
    configuration.retries = 0
    r = IstioRouter("podinfo", NS, client=client.ApiClient(configuration), retries=1, backoff=0.001)
    with pytest.raises(ActuationError, match="cannot reach the API server"):
        r.set_weight(10, reason="x")


# 10**400 is too large for a float: it used to escape as a raw OverflowError.
@pytest.mark.parametrize("weight", [-1, 101, 12.5, math.nan, "10", True, None, 10**400, -(10**400)])
def test_bad_weight_is_refused_before_any_request(
    kube: KubeEmulator, audit_log: AuditLog, weight: Any
) -> None:
    kube.seed(VS, virtual_service())
    r = make(kube, audit=audit_log)
    with pytest.raises(ValidationFailed, match="canary weight"):
        r.set_weight(weight, reason="x")
    assert kube.requests() == [] and audit_log.records() == []


def test_whole_floats_and_bounds_are_accepted(kube: KubeEmulator) -> None:
    kube.seed(VS, virtual_service())
    r = make(kube)
    assert r.set_weight(100.0, reason="x").after == Weights(0, 100)
    assert r.set_weight(0, reason="x").after == Weights(100, 0)


def test_blank_reason_is_refused(kube: KubeEmulator) -> None:
    kube.seed(VS, virtual_service())
    with pytest.raises(ValidationFailed, match="reason"):
        make(kube).set_weight(10, reason=" ")
    assert kube.requests() == []


def test_unchanged_weight_writes_nothing(kube: KubeEmulator, audit_log: AuditLog) -> None:
    kube.seed(VS, virtual_service(90, 10))
    change = make(kube, audit=audit_log).set_weight(10, reason="x")
    assert not change.changed and change.diff == ""
    assert kube.requests("PATCH") == [] and audit_log.records() == []


def test_flagger_owned_route_is_refused(kube: KubeEmulator, audit_log: AuditLog) -> None:
    owned = virtual_service(
        ownerReferences=[
            {"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "podinfo", "uid": "u1"}
        ]
    )
    kube.seed(VS, owned)
    with pytest.raises(ValidationFailed, match=r"managed by Flagger.*FlaggerGates\('podinfo'"):
        make(kube, audit=audit_log).set_weight(10, reason="x")
    assert kube.requests("PATCH") == [] and audit_log.records() == []


def test_route_of_a_flagger_canary_is_refused(kube: KubeEmulator, audit_log: AuditLog) -> None:
    kube.seed(VS, virtual_service())
    kube.seed("flagger.app/v1beta1/canaries", flagger_canary())
    with pytest.raises(ValidationFailed, match="Canary test/podinfo"):
        make(kube, audit=audit_log).set_weight(10, reason="x")
    assert kube.requests("PATCH") == []
    assert make(kube).weights() == Weights(100, 0)  # reading is fine


def test_on_change_receives_each_record(kube: KubeEmulator, audit_log: AuditLog) -> None:
    kube.seed(VS, virtual_service())
    seen: list[Any] = []
    r = make(kube, audit=audit_log, on_change=seen.append)
    r.set_weight(10, reason="a", dry_run=True)
    r.set_weight(10, reason="b")
    assert [(x.reason, x.dry_run) for x in seen] == [("a", True), ("b", False)]
    assert seen == audit_log.records()


def test_failing_on_change_warns_but_keeps_the_change(
    kube: KubeEmulator, audit_log: AuditLog
) -> None:
    kube.seed(VS, virtual_service())

    def broken(record: Any) -> None:
        raise RuntimeError("recording closed")

    r = make(kube, audit=audit_log, on_change=broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r.set_weight(10, reason="x")
    assert "recording closed" in str(caught[0].message)
    assert r.weights() == Weights(90, 10) and len(audit_log.records()) == 1


def test_default_audit_log_follows_the_environment(kube: KubeEmulator, audit_log: AuditLog) -> None:
    kube.seed(VS, virtual_service())
    router("istio", "podinfo", NS, client=kube.client()).set_weight(10, reason="x")
    assert [r.after for r in AuditLog().records()] == [{"primary": 90, "canary": 10}]
    assert AuditLog().path == audit_log.path


def test_factory_kinds() -> None:
    from kubernetes.client import ApiClient, Configuration

    client = ApiClient(Configuration(host="http://127.0.0.1:9"))  # never contacted
    assert load_client(client) is client
    assert isinstance(router("osm", "a", "b", client=client), SMIRouter)
    assert type(router("Linkerd", "a", "b", client=client)) is SMIv1alpha1Router
    assert type(router("smi:v1alpha2:linkerd", "a", "b", client=client)) is SMIRouter
    assert router("smi:v1alpha3", "a", "b", client=client).resource.version == "v1alpha3"
    with pytest.raises(SpecError, match="subsets are Istio's"):
        router("nginx", "a", "b", client=client, primary_subset="stable", canary_subset="x")
    with pytest.raises(SpecError, match="give both primary_subset and canary_subset"):
        router("istio", "a", "b", client=client, primary_subset="stable")
    r = router("istio", "podinfo", "test", client=client)
    assert (r.primary, r.canary, r.name) == ("podinfo-primary", "podinfo-canary", "podinfo")
    assert "VirtualService test/podinfo" in r.describe()
    assert router("nginx", "web", "b", client=client).ref.name == "web-canary"
    with pytest.raises(SpecError, match="unknown router kind 'envoy'"):
        router("envoy", "a", "b", client=client)


def test_audit_log_round_trip_and_bad_lines(tmp_path: Any) -> None:
    from rolloutlab.control.audit import AuditRecord

    log = AuditLog(tmp_path / "sub" / "audit.jsonl")
    assert log.records() == []
    record = AuditRecord.now(
        kind="istio", namespace="n", name="x", action="set_weight",
        before={"primary": 100, "canary": 0}, after={"primary": 90, "canary": 10}, reason="r",
    )  # fmt: skip
    log.append(record)
    assert log.records() == [record]
    line = json.loads(log.path.read_text())
    assert line["from"] == {"primary": 100, "canary": 0} and line["to"]["canary"] == 10
    with log.path.open("a") as file:
        file.write("not json\n")
    with pytest.warns(RuntimeWarning, match="line 2"):
        assert log.records() == [record]  # the torn line is skipped and reported


def test_load_client_sources(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(ActuationError, match="no Kubernetes configuration"):
        load_client()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "a", "cluster": {"server": "http://127.0.0.1:1"}},
            {"name": "b", "cluster": {"server": "http://127.0.0.1:2"}},
        ],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [
            {"name": "a", "context": {"cluster": "a", "user": "u"}},
            {"name": "b", "context": {"cluster": "b", "user": "u"}},
        ],
        "current-context": "a",
    }
    path = tmp_path / "config"
    path.write_text(json.dumps(config))  # JSON is YAML
    monkeypatch.setenv("KUBECONFIG", str(path))
    assert load_client().configuration.host == "http://127.0.0.1:1"
    assert load_client(context="b").configuration.host == "http://127.0.0.1:2"
    with pytest.raises(ActuationError, match="context='nope'"):
        load_client(context="nope")


# -- parity with Flagger's and Argo's routers ------------------------------------------------
# Flagger: fluxcd/flagger at 15bd6ad555e6c935da55f0ab95977be74c149bd6, pkg/router/istio.go
# (GetRoutes searches every spec.http route for the canary), pkg/router/factory.go (linkerd
# is SmiRouter: SMI v1alpha1; smi:v1alpha1/2/3 by version; osm is v1alpha2) and
# pkg/router/smi.go (v1alpha1 weights are resource.Quantity). Argo Rollouts:
# argoproj/argo-rollouts at 9f8d111d8f8e3e88b6d7f8bbdf62fd3cd863ef9d,
# examples/istio/istio-subset-split.yaml (tests/fixtures/upstream/argo-objects) and
# rollout/trafficrouting/istio/istio.go (a destination is the canary or stable one by its
# DestinationRule subset).

UPSTREAM_OBJECTS = Path(__file__).parent / "fixtures" / "upstream" / "argo-objects"


def route_to(host: str, weight: int, **destination: Any) -> dict[str, Any]:
    return {"destination": {"host": host, **destination}, "weight": weight}


def test_istio_finds_the_weighted_route_in_any_http_route(
    kube: KubeEmulator, audit_log: AuditLog
) -> None:
    # an unrelated route first, then Flagger's A/B route (match, all to the canary), then
    # the weighted route: Flagger reads and writes the last route with the canary
    vs = virtual_service(primary=80, canary=20)
    weighted, legacy = vs["spec"]["http"]
    ab = {
        "match": [{"headers": {"x-canary": {"exact": "insider"}}}],
        "route": [route_to("podinfo-primary", 0), route_to("podinfo-canary", 100)],
    }
    vs["spec"]["http"] = [legacy, ab, weighted]
    kube.seed(VS, vs)
    r = make(kube, audit=audit_log)

    assert r.weights() == Weights(80, 20)
    r.set_weight(30, reason="tick 2 passed")
    stored = kube.object(VS, NS, "podinfo")["spec"]["http"]
    assert [d["weight"] for d in stored[2]["route"]] == [70, 30]
    assert stored[:2] == [legacy, ab]


def test_istio_tcp_routes_of_a_tcp_service(kube: KubeEmulator, audit_log: AuditLog) -> None:
    # pkg/router/istio.go: for a Canary with service.appProtocol tcp, Flagger writes one
    # spec.tcp route (no http) and GetRoutes reads the tcp route holding the canary
    vs = virtual_service(primary=90, canary=10)
    vs["spec"]["tcp"] = [{"match": [{"port": 9898}], "route": vs["spec"].pop("http")[0]["route"]}]
    kube.seed(VS, vs)
    r = make(kube, audit=audit_log)
    assert r.weights() == Weights(90, 10)
    r.set_weight(40, reason="tick 4 passed")
    stored = kube.object(VS, NS, "podinfo")["spec"]
    assert [d["weight"] for d in stored["tcp"][0]["route"]] == [60, 40]
    assert "http" not in stored and stored["tcp"][0]["match"] == [{"port": 9898}]


def argo_subset_split() -> tuple[dict[str, Any], dict[str, Any]]:
    """The upstream example's VirtualService (in namespace NS) and Rollout."""
    docs = list(yaml.safe_load_all((UPSTREAM_OBJECTS / "istio-subset-split.yaml").read_text()))
    by_kind = {doc["kind"]: doc for doc in docs}
    vs = by_kind["VirtualService"]
    vs["metadata"]["namespace"] = NS
    return vs, by_kind["Rollout"]


def test_istio_subset_split_as_argo_lays_it_out(kube: KubeEmulator, audit_log: AuditLog) -> None:
    vs, rollout = argo_subset_split()
    kube.seed("networking.istio.io/v1beta1/virtualservices", vs)
    istio = rollout["spec"]["strategy"]["canary"]["trafficRouting"]["istio"]
    rule = istio["destinationRule"]
    r = router(
        "istio",
        istio["virtualService"]["name"],
        NS,
        client=kube.client(),
        audit=audit_log,
        primary_subset=rule["stableSubsetName"],
        canary_subset=rule["canarySubsetName"],
    )
    assert r.weights() == Weights(100, 0)
    change = r.set_weight(10, reason="setWeight 10")
    assert "-stable: 100" in change.diff and "+canary: 10" in change.diff
    stored = kube.object(VS, NS, "istio-subset-split-vsvc")
    expected = copy.deepcopy(vs)
    expected["spec"]["http"][0]["route"][0]["weight"] = 90
    expected["spec"]["http"][0]["route"][1]["weight"] = 10
    assert stored == expected
    assert "subsets: primary stable, canary canary" in r.describe()


def test_same_destination_for_primary_and_canary_is_refused(
    kube: KubeEmulator, audit_log: AuditLog
) -> None:
    # read by host, the subset split's two destinations are one host: once "100/100"
    vs, _ = argo_subset_split()
    kube.seed(VS, vs)
    host = "istio-subset-split"
    r = IstioRouter(vs["metadata"]["name"], NS, client=kube.client(), primary=host, canary=host)
    with pytest.raises(ValidationFailed, match="same destination") as info:
        r.set_weight(10, reason="x")
    assert "primary_subset= and canary_subset=" in str(info.value)
    with pytest.raises(ValidationFailed, match="same destination"):
        r.weights()
    assert kube.requests("PATCH") == [] and audit_log.records() == []


def test_a_destination_listed_twice_is_refused(kube: KubeEmulator) -> None:
    vs = virtual_service(primary=50, canary=0)
    vs["spec"]["http"][0]["route"].append(route_to("podinfo-primary", 50))
    kube.seed(VS, vs)
    with pytest.raises(ValidationFailed, match=r"'podinfo-primary' is listed 2 times"):
        make(kube).set_weight(10, reason="x")
    assert kube.requests("PATCH") == []


def test_a_split_that_does_not_sum_to_100_is_refused(
    kube: KubeEmulator, audit_log: AuditLog
) -> None:
    # a third, weighted "mirror" destination: 90 + 10 + 10 = 110
    vs = virtual_service(primary=90, canary=10)
    vs["spec"]["http"][0]["route"].append(route_to("podinfo-mirror", 10))
    kube.seed(VS, vs)
    r = make(kube, audit=audit_log)
    with pytest.raises(ValidationFailed) as info:
        r.set_weight(20, reason="x")
    message = str(info.value)
    assert "podinfo-primary: 90, podinfo-canary: 10, podinfo-mirror: 10 (sum 110)" in message
    assert "must sum to 100" in message and "mirrorPercentage" in message
    assert kube.requests("PATCH") == [] and audit_log.records() == []

    # primary + canary short of 100 with nothing else is refused too
    kube.seed(VS, virtual_service(primary=80, canary=10))
    with pytest.raises(ValidationFailed, match=r"\(sum 90\)"):
        r.weights()

    # a third backend at weight 0 is fine and stays at 0
    vs = virtual_service(primary=90, canary=10)
    vs["spec"]["http"][0]["route"].append(route_to("podinfo-mirror", 0))
    kube.seed(VS, vs)
    assert r.weights() == Weights(90, 10)
    r.set_weight(20, reason="x")
    route = kube.object(VS, NS, "podinfo")["spec"]["http"][0]["route"]
    assert [d["weight"] for d in route] == [80, 20, 0]


SPLIT_V1ALPHA1 = "split.smi-spec.io/v1alpha1/trafficsplits"


def test_smi_v1alpha1_quantity_weights(kube: KubeEmulator, audit_log: AuditLog) -> None:
    split = traffic_split(version="v1alpha1")
    for backend, weight in zip(split["spec"]["backends"], ["250m", "750m"], strict=True):
        backend["weight"] = weight  # canary first, as Flagger writes it
    kube.seed(SPLIT_V1ALPHA1, split)
    r = make(kube, "linkerd", audit=audit_log)
    assert r.weights() == Weights(75, 25)  # relative: 750m of 1

    r.set_weight(40, reason="tick 3 passed")
    backends = kube.object(SPLIT_V1ALPHA1, NS, "podinfo")["spec"]["backends"]
    assert backends == [
        {"service": "podinfo-canary", "weight": "40"},
        {"service": "podinfo-primary", "weight": "60"},
    ]
    assert audit_log.records()[0].before == {"primary": 75, "canary": 25}


def test_smi_v1alpha1_refuses_a_third_weighted_backend_and_bad_quantities(
    kube: KubeEmulator,
) -> None:
    split = traffic_split(version="v1alpha1")
    split["spec"]["backends"].append({"service": "podinfo-old", "weight": "500m"})
    kube.seed(SPLIT_V1ALPHA1, split)
    with pytest.raises(ValidationFailed, match=r"podinfo-old: 0\.5 \(sum 100\.5\)"):
        make(kube, "linkerd").weights()

    split = traffic_split(version="v1alpha1")
    split["spec"]["backends"][0]["weight"] = "ten"
    kube.seed(SPLIT_V1ALPHA1, split)
    with pytest.raises(ValidationFailed, match="'podinfo-canary' has weight 'ten'"):
        make(kube, "linkerd").weights()


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", "0.5"), ("100", "100"), (90, "90"), ("1.5", "1.5"), ("1k", "1000"),
     ("2Ki", "2048"), ("1e2", "100"), ("+3", "3"), ("0", "0")],
)  # fmt: skip
def test_parse_quantity(text: Any, value: str) -> None:
    assert parse_quantity(text) == Decimal(value)


@pytest.mark.parametrize("text", ["-1", "ten", "1x", "", None, True, math.inf])
def test_parse_quantity_refuses(text: Any) -> None:
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity(text)


# Flagger: fluxcd/flagger at 15bd6ad555e6c935da55f0ab95977be74c149bd6,
# pkg/router/gateway_api.go: SetRoutes writes the weighted rule first and, for A/B testing,
# a primary-only rule after it; getSessionAffinityRouteRules puts the sticky rules (primary
# 0 / canary 100 behind a cookie match) before the weighted rule; GetRoutes reads the last
# rule with both backends (or the one whose backendRefs carry filters).
HTTPROUTES = "gateway.networking.k8s.io/v1/httproutes"


def test_gatewayapi_reads_flaggers_session_affinity_layout(
    kube: KubeEmulator, audit_log: AuditLog
) -> None:
    hr = http_route(primary=80, canary=20)
    weighted = hr["spec"]["rules"][0]
    weighted["backendRefs"][1]["filters"] = [
        {
            "type": "ResponseHeaderModifier",
            "responseHeaderModifier": {"add": [{"name": "Set-Cookie", "value": "flagger=x"}]},
        }
    ]
    sticky = copy.deepcopy(weighted)
    sticky["matches"] = [
        {"headers": [{"type": "RegularExpression", "name": "Cookie", "value": ".*flagger.*x.*"}]}
    ]
    sticky["backendRefs"][0]["weight"], sticky["backendRefs"][1]["weight"] = 0, 100
    del sticky["backendRefs"][1]["filters"]
    hr["spec"]["rules"] = [sticky, weighted]
    kube.seed(HTTPROUTES, hr)
    r = make(kube, "gatewayapi", audit=audit_log)

    assert r.weights() == Weights(80, 20)
    r.set_weight(30, reason="tick 3 passed")
    rules = kube.object(HTTPROUTES, NS, "podinfo")["spec"]["rules"]
    assert [b["weight"] for b in rules[1]["backendRefs"]] == [70, 30]
    assert rules[0] == sticky and rules[1]["backendRefs"][1]["filters"]


def test_gatewayapi_ab_layout_and_v1beta1(kube: KubeEmulator, audit_log: AuditLog) -> None:
    hr = http_route(primary=100, canary=0)
    hr["apiVersion"] = "gateway.networking.k8s.io/v1beta1"
    primary_only = copy.deepcopy(hr["spec"]["rules"][0])
    del primary_only["backendRefs"][1]
    hr["spec"]["rules"][0]["matches"] = [
        {"headers": [{"name": "x-canary", "value": "insider"}], "path": {"value": "/"}}
    ]
    hr["spec"]["rules"].append(primary_only)
    kube.seed("gateway.networking.k8s.io/v1beta1/httproutes", hr)
    r = make(kube, "gatewayapi:v1beta1", audit=audit_log)
    assert r.resource.version == "v1beta1"
    assert r.weights() == Weights(100, 0)
    r.set_weight(100, reason="A/B: all matched traffic to the canary")
    stored = kube.object("gateway.networking.k8s.io/v1beta1/httproutes", NS, "podinfo")
    assert [b["weight"] for b in stored["spec"]["rules"][0]["backendRefs"]] == [0, 100]
    assert stored["spec"]["rules"][1] == primary_only
    assert type(make(kube, "gatewayapi:v1")) is type(make(kube, "gatewayapi"))

    # no rule with both backends: every rule is searched and what was found is named
    hr["spec"]["rules"] = [primary_only, primary_only]
    kube.seed("gateway.networking.k8s.io/v1beta1/httproutes", hr)
    with pytest.raises(ValidationFailed, match=r"spec\.rules\[0\.\.1\]\.backendRefs\); found "):
        r.weights()
