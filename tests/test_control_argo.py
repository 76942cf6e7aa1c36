# ruff: noqa: F811  (pytest fixtures imported from kube_emulator are shadowed by parameters)
"""Argo Rollouts actions against the kmock emulator (real HTTP, real sync client).

kmock merges ``/status`` subresource patches into the stored object, so the test
checks both the fields and that status fields went to ``/status`` (as the Argo
plugin sends them) and ``spec.paused`` to the object itself.

The expected patches follow the kubectl plugin in argoproj/argo-rollouts at commit
9f8d111d8f8e3e88b6d7f8bbdf62fd3cd863ef9d: ``pkg/kubectl-argo-rollouts/cmd/promote/
promote.go`` (``getPatches``, ``PromoteRollout``) and its ``promote_test.go`` cases,
``cmd/abort/abort.go`` and ``cmd/retry/retry.go`` (``/status`` first, the main object
on 404), and ``utils/replicaset/canary.go`` (``GetCurrentCanaryStep``: no index is 0).
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


UPSTREAM = "argoproj/argo-rollouts@9f8d111d8f8e3e88b6d7f8bbdf62fd3cd863ef9d"
PAUSE_CONDITIONS = [{"reason": "CanaryPauseStep", "startTime": "2024-01-01T00:00:00Z"}]


def rollout(*, paused: bool = True, strategy: dict | None = None, **status: Any) -> dict:
    """A canary Rollout paused at step 1 of 2; ``status`` keys replace (None drops them)."""
    obj = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "podinfo", "namespace": NS, "resourceVersion": "7"},
        "spec": {
            "paused": paused,
            "strategy": strategy or {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}},
        },
        "status": {
            "pauseConditions": PAUSE_CONDITIONS,
            "currentStepIndex": 1,
            "currentPodHash": "abc",
            "stableRS": "def",
            "canary": {
                "weights": {
                    "canary": {"podTemplateHash": "abc", "weight": 20},
                    "stable": {"podTemplateHash": "def", "weight": 80},
                }
            },
        },
    }
    for key, value in status.items():
        if value is None:
            obj["status"].pop(key, None)
        else:
            obj["status"][key] = value
    return obj


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


def test_promote_full_also_unpauses(kube: KubeEmulator, audit_log: AuditLog) -> None:
    # promote_test.go TestPromoteCmdFullWithSpecPaused: promoteFull and spec.paused=false
    kube.seed(RO, rollout())
    record = make(kube, audit_log).promote(full=True, reason="skip the rest")
    stored = kube.object(RO, NS, "podinfo")
    assert stored["status"]["promoteFull"] is True and stored["spec"]["paused"] is False
    assert patches(kube) == [
        ("status", {"status": {"promoteFull": True}}),
        ("", {"spec": {"paused": False}}),
    ]
    assert record.action == "promote-full"
    assert record.after == {"status.promoteFull": True, "spec.paused": False}


def test_promote_full_of_a_promoted_rollout_writes_nothing(
    kube: KubeEmulator, audit_log: AuditLog
) -> None:
    # TestPromoteCmdAlreadyFullyPromoted: the new pods are the stable ones, not paused
    kube.seed(RO, rollout(paused=False, currentPodHash="abc", stableRS="abc"))
    assert make(kube, audit_log).promote(full=True, reason="again") is None
    assert kube.requests("PATCH") == [] and audit_log.records() == []


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (None, 1),  # TestPromoteCmdSuccesFirstStep: no index is step 0
        (1, 2),
        (2, 2),  # TestPromoteCmdSuccessDoNotGoPastLastStep
    ],
)
def test_promote_without_a_pause_moves_to_the_next_step(
    kube: KubeEmulator, audit_log: AuditLog, index: int | None, expected: int
) -> None:
    # getPatches, default case: no pause condition (an analysis or experiment step is
    # running), so the step index advances; the Rollout is not paused, so no spec patch
    kube.seed(RO, rollout(paused=False, pauseConditions=None, currentStepIndex=index))
    record = make(kube, audit_log).promote(reason="analysis looks fine")
    assert patches(kube) == [
        ("status", {"status": {"pauseConditions": None, "currentStepIndex": expected}}),
    ]
    assert kube.object(RO, NS, "podinfo")["status"]["currentStepIndex"] == expected
    assert record.before["status.currentStepIndex"] == index


def test_promote_out_of_an_inconclusive_analysis(kube: KubeEmulator, audit_log: AuditLog) -> None:
    # TestPromoteInconclusiveStep: controller pause and pause conditions cleared, next step
    analysis = {"currentStepAnalysisRunStatus": {"name": "ar-1", "status": "Inconclusive"}}
    kube.seed(RO, rollout(controllerPause=True, currentStepIndex=None, canary=analysis))
    make(kube, audit_log).promote(reason="a person looked at the inconclusive run")
    assert patches(kube) == [
        (
            "status",
            {"status": {"pauseConditions": None, "controllerPause": False, "currentStepIndex": 1}},
        ),
        ("", {"spec": {"paused": False}}),
    ]
    status = kube.object(RO, NS, "podinfo")["status"]
    assert status["controllerPause"] is False and "pauseConditions" not in status


def test_promote_blue_green_only_unpauses(kube: KubeEmulator, audit_log: AuditLog) -> None:
    # no canary strategy and no pause condition: the spec patch alone
    blue_green = {"blueGreen": {"activeService": "active", "previewService": "preview"}}
    kube.seed(RO, rollout(strategy=blue_green, pauseConditions=None, currentStepIndex=None))
    make(kube, audit_log).promote(reason="preview checked")
    assert patches(kube) == [("", {"spec": {"paused": False}})]


def test_no_status_subresource_falls_back_to_one_patch(
    kube: KubeEmulator, audit_log: AuditLog
) -> None:
    # PromoteRollout / AbortRollout: a 404 from /status (Rollouts v0.9 CRDs serve none)
    # means one merge patch of the main object. kmock always serves /status, so the 404
    # is scripted.
    kube.seed(RO, rollout())
    kube.fail("PATCH", 404, subresource="status", times=2, message="the server could not find")
    ro = make(kube, audit_log)
    ro.promote(reason="analysis passed")
    ro.abort(reason="then it broke")
    assert patches(kube) == [
        ("status", {"status": {"pauseConditions": None}}),
        ("", {"status": {"pauseConditions": None}, "spec": {"paused": False}}),
        ("status", {"status": {"abort": True}}),
        ("", {"status": {"abort": True}}),
    ]
    stored = kube.object(RO, NS, "podinfo")
    assert stored["spec"]["paused"] is False and stored["status"]["abort"] is True
    assert "pauseConditions" not in stored["status"]


def test_a_failed_spec_patch_puts_the_status_back(kube: KubeEmulator, audit_log: AuditLog) -> None:
    # all or nothing: the step index moved through /status, then spec.paused is refused
    kube.seed(RO, rollout(pauseConditions=None, currentStepIndex=0))
    kube.fail("PATCH", 403, subresource="", message="rollouts is forbidden")
    with pytest.raises(ActuationError, match=r"spec\.paused could not be written.*put back"):
        make(kube, audit_log).promote(reason="x")
    assert patches(kube)[-1] == (
        "status",
        {"status": {"pauseConditions": None, "currentStepIndex": 0}},
    )
    stored = kube.object(RO, NS, "podinfo")
    assert stored["status"]["currentStepIndex"] == 0 and stored["spec"]["paused"] is True
    # audited ahead: the intent, then the outcome as re-read (as before: failed, put back)
    intent, outcome = audit_log.read().entries
    assert intent.outcome == "intent" and intent.after == {
        "status.pauseConditions": None,
        "status.currentStepIndex": 1,
        "spec.paused": False,
    }
    assert (outcome.id, outcome.outcome) == (intent.id, "failed")
    assert outcome.after == intent.before and "put back" in outcome.note


def test_a_half_promotion_that_cannot_be_undone_is_recorded_partial(
    kube: KubeEmulator, audit_log: AuditLog
) -> None:
    # 403 on the spec patch, then 403 on putting the status back: the Rollout is half
    # promoted, and the log says so with the fields as they are
    kube.seed(RO, rollout(pauseConditions=None, currentStepIndex=0))
    kube.fail("PATCH", 403, subresource="", message="rollouts is forbidden")
    # the first /status patch (the promote) goes through, the second (the undo) is refused
    kube.fail("PATCH", 403, subresource="status", message="rollouts/status is forbidden", skip=1)
    ro = make(kube, audit_log)
    with pytest.raises(ActuationError, match="half done.*putting the status back failed"):
        ro.promote(reason="x")
    (record,) = audit_log.records()
    assert record.outcome == "partial"
    assert record.after == {
        "status.pauseConditions": None,
        "status.currentStepIndex": 1,
        "spec.paused": True,
    }


def test_a_lost_answer_is_not_sent_again(kube: KubeEmulator, audit_log: AuditLog) -> None:
    # the /status patch is applied but answered after the client's timeout: the retry
    # re-reads and sees it done, rather than sending the step index again (by then the
    # controller may have moved on, and a resent index would move the Rollout back)
    kube.seed(RO, rollout(pauseConditions=None, currentStepIndex=0))
    kube.lose("PATCH", delay=1.5)
    ro = ArgoRollout("podinfo", NS, client=kube.client(), audit=audit_log, timeout=0.5)
    record = ro.promote(reason="x")
    assert patches(kube) == [
        ("status", {"status": {"pauseConditions": None, "currentStepIndex": 1}}),
        ("", {"spec": {"paused": False}}),
    ]
    assert record.outcome == "applied" and record.after == {
        "status.pauseConditions": None,
        "status.currentStepIndex": 1,
        "spec.paused": False,
    }


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
    (record,) = audit_log.records()
    assert record.outcome == "failed" and record.after == {"status.abort": None}


def test_reason_is_required(kube: KubeEmulator, audit_log: AuditLog) -> None:
    kube.seed(RO, rollout())
    with pytest.raises(ValidationFailed, match="reason"):
        make(kube, audit_log).abort(reason="")
    assert kube.requests() == []
