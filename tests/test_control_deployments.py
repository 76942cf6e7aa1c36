# ruff: noqa: F811  (pytest fixtures imported from kube_emulator are shadowed by parameters)
"""Flagger-style promotion and rollback of Deployments, and Flagger's gates.

Kubernetes parts run against the kmock emulator over real HTTP; the Flagger
loadtester is a small stdlib HTTP server on 127.0.0.1 that records what it gets.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kube_emulator import (  # noqa: F401  (fixtures)
    NS,
    KubeEmulator,
    audit_log,
    closed_port,
    deployment,
    flagger_canary,
    kube,
    virtual_service,
)

from rolloutlab.control.audit import AuditLog
from rolloutlab.control.deployments import DeploymentCanary, FlaggerGates
from rolloutlab.control.routers import Change, IstioRouter, Weights
from rolloutlab.errors import ActuationError, ValidationFailed

pytestmark = pytest.mark.timeout(60)

DEP = "apps/v1/deployments"
VS = "networking.istio.io/v1beta1/virtualservices"


def seed(kube: KubeEmulator, *, canary_weight: int = 40) -> None:
    kube.seed(DEP, deployment("podinfo", image="podinfo:6.1", replicas=2, app="podinfo"))
    kube.seed(
        DEP, deployment("podinfo-primary", image="podinfo:6.0", replicas=3, app="podinfo-primary")
    )
    kube.seed(VS, virtual_service(100 - canary_weight, canary_weight))


def make(kube: KubeEmulator, audit: AuditLog) -> DeploymentCanary:
    client = kube.client()
    router = IstioRouter("podinfo", NS, client=client, audit=audit, retries=1, backoff=0.001)
    return DeploymentCanary("podinfo", NS, router=router, client=client, audit=audit, backoff=0.001)


def test_promote_copies_template_routes_to_primary_and_scales_canary_down(
    kube: KubeEmulator, audit_log: AuditLog
) -> None:
    seed(kube)
    steps = make(kube, audit_log).promote(reason="analysis passed")

    assert steps.done == ("copy-template", "route-to-primary", "scale-canary-to-0")
    primary = kube.object(DEP, NS, "podinfo-primary")
    template = primary["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == "podinfo:6.1"
    assert template["metadata"]["annotations"] == {"build": "podinfo:6.1"}
    assert template["metadata"]["labels"] == {"app": "podinfo-primary"}  # matches its selector
    assert primary["spec"]["replicas"] == 3
    assert IstioRouter("podinfo", NS, client=kube.client()).weights() == Weights(100, 0)
    assert kube.object(DEP, NS, "podinfo")["spec"]["replicas"] == 0

    assert [(r.url.path, r.headers["Content-Type"]) for r in kube.requests("PATCH")] == [
        (f"/apis/apps/v1/namespaces/{NS}/deployments/podinfo-primary", "application/json-patch+json"),
        (f"/apis/networking.istio.io/v1beta1/namespaces/{NS}/virtualservices/podinfo", "application/merge-patch+json"),
        (f"/apis/apps/v1/namespaces/{NS}/deployments/podinfo", "application/merge-patch+json"),
    ]  # fmt: skip
    assert isinstance(steps.results[1], Change)
    records = audit_log.records()
    assert [(r.kind, r.action, r.name, r.outcome) for r in records] == [
        ("deployment", "promote", "podinfo", "applied"),  # the action, around its steps
        ("deployment", "copy-template", "podinfo-primary", "applied"),
        ("istio", "set_weight", "podinfo", "applied"),
        ("deployment", "scale", "podinfo", "applied"),
    ]
    assert records[0].after == {"done": list(steps.done)}
    assert records[1].before == {"images": ["podinfo:6.0"]}
    assert records[1].after == {"images": ["podinfo:6.1"]}
    assert records[3].before == {"replicas": 2} and records[3].after == {"replicas": 0}
    # each step was recorded ahead: intent before outcome, same id
    entries = audit_log.read().entries
    assert [e.outcome for e in entries].count("intent") == 4
    assert all(
        entries.index(next(e for e in entries if e.id == r.id)) < entries.index(r) for r in records
    )


def test_rollback_routes_to_primary_and_scales_canary_down(
    kube: KubeEmulator, audit_log: AuditLog
) -> None:
    seed(kube)
    steps = make(kube, audit_log).rollback(reason="error rate up")

    assert steps.done == ("route-to-primary", "scale-canary-to-0")
    assert IstioRouter("podinfo", NS, client=kube.client()).weights() == Weights(100, 0)
    assert kube.object(DEP, NS, "podinfo")["spec"]["replicas"] == 0
    primary = kube.object(DEP, NS, "podinfo-primary")
    assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == "podinfo:6.0"


def test_failed_step_reports_what_was_done(kube: KubeEmulator, audit_log: AuditLog) -> None:
    seed(kube)
    kube.fail("PATCH", 403, name="podinfo", message="virtualservices is forbidden")

    with pytest.raises(ActuationError) as info:
        make(kube, audit_log).promote(reason="analysis passed")

    message = str(info.value)
    assert "stopped at step 'route-to-primary'" in message and "HTTP 403" in message
    assert "Done: copy-template." in message
    assert "Not done: route-to-primary, scale-canary-to-0." in message
    assert kube.object(DEP, NS, "podinfo")["spec"]["replicas"] == 2  # canary still up
    assert [(r.action, r.outcome) for r in audit_log.records()] == [
        ("promote", "partial"),
        ("copy-template", "applied"),
        ("set_weight", "failed"),  # its weights as they are: unchanged
    ]
    promote = audit_log.records()[0]
    assert promote.after == {"done": ["copy-template"]} and "Not done: route" in promote.note


def test_flagger_managed_target_is_refused(kube: KubeEmulator, audit_log: AuditLog) -> None:
    seed(kube)
    kube.seed("flagger.app/v1beta1/canaries", flagger_canary())
    with pytest.raises(ValidationFailed, match="managed by Flagger.*FlaggerGates"):
        make(kube, audit_log).promote(reason="x")
    assert kube.requests("PATCH") == [] and audit_log.records() == []


class Loadtester(BaseHTTPRequestHandler):
    """Stands in for Flagger's loadtester: records POSTs, answers ``status``."""

    received: list[tuple[str, Any]] = []
    status = 200

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append((self.path, body))
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"OK" if self.status == 200 else b"Forbidden")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def loadtester() -> Iterator[str]:
    Loadtester.received, Loadtester.status = [], 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), Loadtester)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_flagger_gates(loadtester: str, audit_log: AuditLog) -> None:
    gates = FlaggerGates("podinfo", NS, loadtester=loadtester)
    gates.open(reason="looks good")
    gates.close(reason="hold")
    gates.rollback(reason="bad p99")
    gates.cancel_rollback(reason="done")

    body = {"name": "podinfo", "namespace": NS}
    assert Loadtester.received == [
        ("/gate/open", body),
        ("/gate/close", body),
        ("/rollback/open", body),
        ("/rollback/close", body),
    ]
    assert [r.action for r in audit_log.records()] == [
        "gate/open",
        "gate/close",
        "rollback/open",
        "rollback/close",
    ]
    hooks = {h["type"]: h["url"] for h in gates.webhooks()}
    assert hooks == {
        "confirm-promotion": f"{loadtester}/gate/check",
        "rollback": f"{loadtester}/rollback/check",
    }
    assert FlaggerGates("podinfo", "prod").url == "http://flagger-loadtester.prod"


def test_flagger_gate_errors(loadtester: str, audit_log: AuditLog) -> None:
    Loadtester.status = 403
    with pytest.raises(ActuationError, match="gate/open answered HTTP 403: Forbidden"):
        FlaggerGates("podinfo", NS, loadtester=loadtester).open(reason="x")
    with pytest.raises(ActuationError, match="cannot reach Flagger's loadtester"):
        FlaggerGates("podinfo", NS, loadtester=f"http://127.0.0.1:{closed_port()}", timeout=2).open(
            reason="x"
        )
    assert [(r.action, r.outcome) for r in audit_log.records()] == [("gate/open", "failed")] * 2
