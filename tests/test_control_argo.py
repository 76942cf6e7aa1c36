# ruff: noqa: F811  (pytest fixtures imported from kube_emulator are shadowed by parameters)
"""Argo Rollouts actions against the kmock emulator (real HTTP, real sync client).

kmock merges ``/status`` subresource patches into the stored object, so the test
checks both the fields and that status fields went to ``/status`` (as the Argo
plugin sends them) and ``spec.paused`` to the object itself.
"""

from __future__ import annotations

from typing import Any

import pytest
from kube_emulator import NS, KubeEmulator, audit_log, kube  # noqa: F401  (fixtures)

from rolloutlab.control.argo import ArgoRollout
from rolloutlab.control.audit import AuditLog
from rolloutlab.control.routers import Weights
from rolloutlab.errors import ActuationError, ValidationFailed

pytestmark = pytest.mark.timeout(60)

RO = "argoproj.io/v1alpha1/rollouts"


def rollout(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "podinfo", "namespace": NS, "resourceVersion": "7"},
        "spec": {
            "paused": True,
            "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}},
        },
        "status": {
            "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2024-01-01T00:00:00Z"}],
            "currentStepIndex": 1,
            "canary": {
                "weights": {
                    "canary": {"podTemplateHash": "abc", "weight": 20},
                    "stable": {"podTemplateHash": "def", "weight": 80},
                }
            },
            **status,
        },
    }


def make(kube: KubeEmulator, audit: AuditLog) -> ArgoRollout:
    return ArgoRollout("podinfo", NS, client=kube.client(), audit=audit, backoff=0.001)


def patches(kube: KubeEmulator) -> list[tuple[str, dict]]:
    return [(r.subresource or "", r.data) for r in kube.requests("PATCH")]


def test_weights_from_status(kube: KubeEmulator, audit_log: AuditLog) -> None:
    kube.seed(RO, rollout())
    assert make(kube, audit_log).weights() == Weights(primary=80, canary=20)


def test_weights_missing_is_explained(kube: KubeEmulator, audit_log: AuditLog) -> None:
    obj = rollout()
    del obj["status"]["canary"]
    kube.seed(RO, obj)
    with pytest.raises(ActuationError, match="no status.canary.weights"):
        make(kube, audit_log).weights()


def test_promote_unpauses_and_clears_pause_conditions(
    kube: KubeEmulator, audit_log: AuditLog
) -> None:
    kube.seed(RO, rollout())
    record = make(kube, audit_log).promote(reason="analysis passed")

    stored = kube.object(RO, NS, "podinfo")
    assert stored["spec"]["paused"] is False
    assert "pauseConditions" not in stored["status"]
    assert patches(kube) == [
        ("status", {"status": {"pauseConditions": None}}),
        ("", {"spec": {"paused": False}}),
    ]
    assert record.action == "promote" and record.kind == "argo-rollout"
    assert record.before["spec.paused"] is True and record.after["spec.paused"] is False
    assert audit_log.records() == [record]


def test_promote_full(kube: KubeEmulator, audit_log: AuditLog) -> None:
    kube.seed(RO, rollout())
    make(kube, audit_log).promote(full=True, reason="skip the rest")
    assert kube.object(RO, NS, "podinfo")["status"]["promoteFull"] is True
    assert patches(kube) == [("status", {"status": {"promoteFull": True}})]
    assert audit_log.records()[0].action == "promote-full"


def test_abort_then_retry(kube: KubeEmulator, audit_log: AuditLog) -> None:
    kube.seed(RO, rollout())
    ro = make(kube, audit_log)

    ro.abort(reason="p99 latency regression")
    assert kube.object(RO, NS, "podinfo")["status"]["abort"] is True
    ro.retry(reason="fixed config")
    assert kube.object(RO, NS, "podinfo")["status"]["abort"] is False

    assert patches(kube) == [
        ("status", {"status": {"abort": True}}),
        ("status", {"status": {"abort": False}}),
    ]
    records = audit_log.records()
    assert [(r.action, r.before, r.after) for r in records] == [
        ("abort", {"status.abort": None}, {"status.abort": True}),
        ("retry", {"status.abort": True}, {"status.abort": False}),
    ]


def test_missing_rollout_and_forbidden(kube: KubeEmulator, audit_log: AuditLog) -> None:
    with pytest.raises(ValidationFailed, match="Rollout test/podinfo not found"):
        make(kube, audit_log).abort(reason="x")

    kube.seed(RO, rollout())
    kube.fail("PATCH", 403, message="rollouts/status is forbidden")
    with pytest.raises(ActuationError, match="HTTP 403.*rollouts/status is forbidden"):
        make(kube, audit_log).abort(reason="x")
    assert "abort" not in kube.object(RO, NS, "podinfo")["status"]
    assert audit_log.records() == []


def test_reason_is_required(kube: KubeEmulator, audit_log: AuditLog) -> None:
    kube.seed(RO, rollout())
    with pytest.raises(ValidationFailed, match="reason"):
        make(kube, audit_log).abort(reason="")
    assert kube.requests() == []
