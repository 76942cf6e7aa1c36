# ruff: noqa: F811  (pytest fixtures imported from kube_emulator are shadowed by parameters)
"""Cluster faults, each with its expected outcome: never an unaudited write, never a loop
that believes another weight than the route holds.

Over real HTTP against the kmock emulator (tests/kube_emulator.py). A lost response is
real: the emulator applies the PATCH and answers after the client's timeout. A full
disk before the write is real (``/dev/full``); a disk that fills up *between* the intent
and the outcome cannot be produced, so :class:`FailingOutcomes` injects that OSError.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from kube_emulator import (  # noqa: F401  (fixtures)
    NS,
    KubeEmulator,
    audit_log,
    deployment,
    kube,
    virtual_service,
)

from rolloutlab.control.audit import AuditFailed, AuditLog, AuditRecord
from rolloutlab.control.deployments import DeploymentCanary
from rolloutlab.control.loop import Rollout
from rolloutlab.control.routers import IstioRouter, Weights
from rolloutlab.errors import ActuationError, ValidationFailed
from rolloutlab.specs import Spec

pytestmark = pytest.mark.timeout(60)

VS = "networking.istio.io/v1beta1/virtualservices"
DEP = "apps/v1/deployments"
FULL = Path("/dev/full")


class FailingOutcomes(AuditLog):
    """Stores intents; an outcome meets a full disk (injected: see the module docstring)."""

    def append(self, record: AuditRecord) -> None:
        if record.outcome != "intent":
            raise OSError(errno.ENOSPC, "No space left on device")
        super().append(record)


def make(kube: KubeEmulator, **options: Any) -> IstioRouter:
    options.setdefault("retries", 2)
    return IstioRouter("podinfo", NS, client=kube.client(), backoff=0.001, **options)


def loop(route: IstioRouter, **options: Any) -> Rollout:
    """A rollout (plan 20, 40, 60) with no source: its first step and manual actions
    do not fetch."""
    spec = Spec(interval_s=60, step_weight=20, max_weight=60)
    return Rollout(object(), route, spec, target="podinfo", namespace=NS, **options)  # type: ignore[arg-type]


def test_a_lost_response_is_recorded_as_applied(kube: KubeEmulator, audit_log: AuditLog) -> None:
    kube.seed(VS, virtual_service())
    kube.lose("PATCH", delay=1.5)  # applied at once, answered after the 0.5 s timeout
    change = make(kube, audit=audit_log, timeout=0.5).set_weight(40, reason="tick 2 passed")

    assert change.changed and (change.before, change.after) == (Weights(100, 0), Weights(60, 40))
    assert len(kube.requests("PATCH")) == 1  # found on re-read, not written twice
    assert IstioRouter("podinfo", NS, client=kube.client()).weights() == Weights(60, 40)
    intent, outcome = audit_log.read().entries
    assert (intent.outcome, outcome.outcome, outcome.id) == ("intent", "applied", intent.id)
    assert outcome.before == {"primary": 100, "canary": 0}
    assert outcome.after == {"primary": 60, "canary": 40} and "answer was lost" in outcome.note


@pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full")
def test_no_write_when_the_intent_cannot_be_recorded(kube: KubeEmulator) -> None:
    kube.seed(VS, virtual_service())
    with pytest.raises(ActuationError, match="cannot record the intent.*Nothing was written"):
        make(kube, audit=AuditLog(FULL)).set_weight(40, reason="x")
    assert kube.requests("PATCH") == []
    assert kube.object(VS, NS, "podinfo") == virtual_service()


def test_an_outcome_that_cannot_be_recorded_says_the_cluster_state(
    kube: KubeEmulator, tmp_path: Path
) -> None:
    kube.seed(VS, virtual_service())
    log = FailingOutcomes(tmp_path / "audit.jsonl")
    with pytest.raises(
        AuditFailed, match=r"applied \(now \{'primary': 60, 'canary': 40\}\)"
    ) as info:
        make(kube, audit=log).set_weight(40, reason="x")
    assert info.value.record.after == {"primary": 60, "canary": 40}
    assert make(kube).weights() == Weights(60, 40)
    (change,) = log.records()  # the intent is there: the change reads as unknown, not absent
    assert change.outcome == "unknown" and change.after == {"primary": 60, "canary": 40}


def test_the_loop_believes_what_the_route_holds_when_the_audit_fails(
    kube: KubeEmulator, tmp_path: Path
) -> None:
    kube.seed(VS, virtual_service())
    route = make(kube, audit=FailingOutcomes(tmp_path / "audit.jsonl"))
    rollout = loop(route)
    record = rollout.step()  # start: writes the plan's first weight, 20
    assert record.error is not None and "audit log" in record.error
    assert make(kube).weights().canary == 20
    assert "canary 20%" in rollout.status
    audit = rollout.recording.meta["audit"]
    assert [(a["to"]["canary"], a["outcome"]) for a in audit] == [(20, "applied")]

    with pytest.raises(AuditFailed):
        rollout.set_weight(40, reason="by hand")
    assert make(kube).weights().canary == 40 and "canary 40%" in rollout.status


def test_a_conflict_storm_ends_in_one_write_and_one_record(
    kube: KubeEmulator, audit_log: AuditLog
) -> None:
    kube.seed(VS, virtual_service())
    kube.fail("PATCH", 409, times=4, message="the object has been modified")
    change = make(kube, audit=audit_log, retries=4).set_weight(20, reason="x")
    assert change.after == Weights(80, 20) and len(kube.requests("PATCH")) == 5
    assert [e.outcome for e in audit_log.read().entries] == ["intent", "applied"]


def test_a_conflict_with_the_same_change_is_recorded_as_skipped(
    kube: KubeEmulator, audit_log: AuditLog
) -> None:
    # someone else set the same split just before our patch: a 409, and the retry's
    # re-read finds the target there; nothing more is written, and the log says so
    kube.seed(VS, virtual_service())
    theirs = virtual_service(60, 40)["spec"]
    kube.fail("PATCH", 409, message="the object has been modified", meanwhile={"spec": theirs})
    change = make(kube, audit=audit_log).set_weight(40, reason="x")
    assert not change.changed and len(kube.requests("PATCH")) == 1
    (record,) = audit_log.records()
    assert record.outcome == "skipped" and record.after == {"primary": 60, "canary": 40}


def test_forbidden_to_list_canaries_refuses_the_write(
    kube: KubeEmulator, audit_log: AuditLog
) -> None:
    # Flagger is installed (the list is answered 403, not 404): it may own the route
    kube.seed(VS, virtual_service())
    kube.fail("GET", 403, name=None, times=1, message='cannot list "canaries"')
    # the first GET is the Canary list; an object GET would carry the route's name
    with pytest.raises(ValidationFailed, match="cannot list Flagger Canaries.*nothing was written"):
        make(kube, audit=audit_log).set_weight(20, reason="x")
    assert kube.requests("PATCH") == [] and audit_log.read().entries == ()


def test_a_promotion_stopped_mid_way_is_recorded_and_believed(
    kube: KubeEmulator, audit_log: AuditLog
) -> None:
    # the promoter copies the template and routes to the primary, then scaling the
    # canary down is forbidden: the route is at 0, the log says partial, the loop knows
    kube.seed(DEP, deployment("podinfo", image="podinfo:6.1", replicas=2, app="podinfo"))
    kube.seed(DEP, deployment("podinfo-primary", image="podinfo:6.0", replicas=3, app="p"))
    kube.seed(VS, virtual_service(60, 40))
    kube.fail("PATCH", 403, name="podinfo", skip=1, message="deployments is forbidden")
    route = make(kube, audit=audit_log)
    promoter = DeploymentCanary(
        "podinfo", NS, router=route, client=kube.client(), audit=audit_log, backoff=0.001
    )
    rollout = loop(route, promoter=promoter)
    rollout.step()  # sees the route at 40 %
    with pytest.raises(ActuationError, match="stopped at step 'scale-canary-to-0'"):
        rollout.promote(reason="looks good")

    assert make(kube).weights().canary == 0 and "canary 0%" in rollout.status
    assert rollout.phase != "promoted"
    assert [(r.action, r.outcome) for r in audit_log.records()] == [
        ("promote", "partial"),
        ("copy-template", "applied"),
        ("set_weight", "applied"),
        ("scale", "failed"),
    ]
