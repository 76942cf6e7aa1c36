"""Promotion and rollback of plain Deployments in Flagger's style, and Flagger's own gates.

Flagger's layout: the canary workload is the Deployment ``<target>``, the primary
is ``<target>-primary``, and a router splits traffic between their services.

- promote: copy the canary's pod template into the primary, route 100 % to the
  primary, scale the canary to 0;
- rollback: route 100 % to the primary, scale the canary to 0.

Steps run in that order, in Flagger's order (the primary runs the new template before
traffic returns to it), each audited ahead (intent, then outcome), inside one audited
action whose outcome lists the steps done; if one fails the error and the log say which
steps were done and which were not. Where Flagger manages the target, rolloutlab refuses
and :class:`FlaggerGates` drives Flagger through its loadtester instead.
"""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rolloutlab.config import redact, redact_url
from rolloutlab.control.audit import AuditLog, Auditor, AuditRecord, OnChange
from rolloutlab.control.kube import (
    ClusterActor,
    ObjectRef,
    Resource,
    flagger_canary,
    flagger_refusal,
)
from rolloutlab.control.routers import Change, Router, check_reason
from rolloutlab.errors import ActuationError

DEPLOYMENT = Resource("apps", "v1", "deployments", "Deployment")


@dataclass(frozen=True)
class Steps:
    """What a promote or rollback did: step names in order, with each step's record."""

    action: str
    done: tuple[str, ...]
    results: tuple[AuditRecord | Change, ...]

    def __repr__(self) -> str:
        return f"Steps({self.action}: {', '.join(self.done)})"


class DeploymentCanary(ClusterActor):
    """A canary Deployment ``target`` and its primary ``<target>-primary``, behind ``router``.

    The route step is audited by the router itself (to the router's log).
    """

    kind = "deployment"

    def __init__(
        self,
        target: str,
        namespace: str,
        *,
        router: Router,
        primary: str | None = None,
        **connection: Any,
    ) -> None:
        super().__init__(**connection)
        self.target = target
        self.namespace = namespace
        self.router = router
        self.canary_ref = ObjectRef(DEPLOYMENT, namespace, target)
        self.primary_ref = ObjectRef(DEPLOYMENT, namespace, primary or f"{target}-primary")

    def __repr__(self) -> str:
        return f"DeploymentCanary({self.target!r}, {self.namespace!r})"

    def describe(self) -> str:
        return (
            f"deployments: canary {self.canary_ref}, primary {self.primary_ref}, "
            f"via {self.router.describe()}"
        )

    def promote(self, *, reason: str) -> Steps:
        """Copy the canary's pod template to the primary, route 100 % to it, scale canary to 0."""
        return self._run(
            "promote",
            reason,
            [
                ("copy-template", self._copy_template),
                ("route-to-primary", self._route_to_primary),
                ("scale-canary-to-0", self._scale_canary_to_zero),
            ],
        )

    def rollback(self, *, reason: str) -> Steps:
        """Route 100 % to the primary and scale the canary to 0; the primary is untouched."""
        return self._run(
            "rollback",
            reason,
            [
                ("route-to-primary", self._route_to_primary),
                ("scale-canary-to-0", self._scale_canary_to_zero),
            ],
        )

    def _run(
        self,
        action: str,
        reason: str,
        steps: list[tuple[str, Callable[[str], AuditRecord | Change]]],
    ) -> Steps:
        """Run ``steps`` in order, each audited ahead, inside one audited action whose
        outcome lists the steps done: ``applied``, ``partial`` or ``failed``."""
        reason = check_reason(reason)
        canary = self._retrying(
            lambda: flagger_canary(self._kube, self.namespace, {self.target}),
            "looking for a Flagger Canary of",
        )
        if canary:
            raise flagger_refusal(
                f"Deployment {self.namespace}/{self.target}", canary, self.namespace
            )
        names = [name for name, _ in steps]
        intent = self._intent(self.canary_ref, action, {"done": []}, {"done": names}, reason)
        done: list[str] = []
        results: list[AuditRecord | Change] = []
        for step, run in steps:
            try:
                results.append(run(reason))
            except Exception as exc:
                pending = names[len(done) :]
                message = (
                    f"{action} of {self.namespace}/{self.target} stopped at step {step!r}: "
                    f"{exc}. Done: {', '.join(done) or 'nothing'}. Not done: {', '.join(pending)}."
                )
                self._audit.outcome(
                    intent.resolved(
                        "partial" if done else "failed", after={"done": done}, note=message
                    )
                )
                raise ActuationError(message) from exc
            done.append(step)
        self._audit.outcome(intent.resolved("applied", after={"done": done}))
        return Steps(action, tuple(done), tuple(results))

    def _retrying(self, attempt: Callable[[], Any], what: str) -> Any:
        return super()._retrying(attempt, f"{what} {self.canary_ref}")

    def _copy_template(self, reason: str) -> AuditRecord:
        """Primary gets the canary's ``spec.template``, labels kept matching its own selector."""

        def change(primary: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
            canary = self._kube.get(self.canary_ref)
            template = copy.deepcopy(canary["spec"]["template"])
            selector = ((primary.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            metadata = template.setdefault("metadata", {})
            metadata["labels"] = {**(metadata.get("labels") or {}), **selector}
            patch = [{"op": "replace", "path": "/spec/template", "value": template}]
            return patch, _images(canary)

        return self._patch_audited(
            self.primary_ref,
            "copy-template",
            reason,
            change,
            _images,
            "copying the pod template of",
        )

    def _route_to_primary(self, reason: str) -> Change:
        return self.router.set_weight(0, reason=reason)

    def _scale_canary_to_zero(self, reason: str) -> AuditRecord:
        return self._patch_audited(
            self.canary_ref,
            "scale",
            reason,
            lambda obj: ({"spec": {"replicas": 0}}, {"replicas": 0}),
            lambda obj: {"replicas": (obj.get("spec") or {}).get("replicas")},
            "scaling",
        )

    def _patch_audited(
        self,
        ref: ObjectRef,
        action: str,
        reason: str,
        change: Callable[[dict[str, Any]], tuple[Any, Any]],
        fields: Callable[[dict[str, Any]], Any],
        what: str,
    ) -> AuditRecord:
        """Read ``ref``, record the intent, patch it with ``change(obj)`` (the body and the
        planned ``fields``), record the outcome; on failure re-read and record what is."""
        intent: AuditRecord | None = None

        def attempt() -> tuple[dict[str, Any], dict[str, Any]]:
            nonlocal intent
            obj = self._kube.get(ref)
            body, planned = change(obj)
            if intent is None:
                intent = self._intent(ref, action, fields(obj), planned, reason)
            return obj, self._kube.patch(ref, body)

        try:
            before, after = self._retrying(attempt, what)
        except ActuationError as exc:
            if intent is not None:
                self._settle(intent, exc, lambda: fields(self._kube.get(ref)))
            raise
        assert intent is not None
        return self._audit.outcome(
            intent.resolved("applied", before=fields(before), after=fields(after))
        )

    def _intent(
        self, ref: ObjectRef, action: str, before: Any, after: Any, reason: str
    ) -> AuditRecord:
        """Record, ahead of it, that ``action`` on ``ref`` goes from ``before`` to ``after``."""
        return self._audit.intent(
            AuditRecord.now(
                kind=self.kind,
                namespace=ref.namespace,
                name=ref.name,
                action=action,
                before=before,
                after=after,
                reason=reason,
            )
        )


def _images(deployment: dict[str, Any]) -> dict[str, list[str]]:
    """The container images of a Deployment's pod template (what a promotion changes)."""
    containers = deployment["spec"]["template"].get("spec", {}).get("containers") or []
    return {"images": [container.get("image", "") for container in containers]}


@dataclass(frozen=True)
class FlaggerGates:
    """Steer a Flagger-managed canary through Flagger's loadtester gates, not the router.

    Flagger owns the route of a canary it manages, so rolloutlab does not write to it.
    Flagger asks webhooks instead: a ``confirm-promotion`` webhook pointing at the
    loadtester's ``/gate/check`` holds promotion until the gate is opened, and a
    ``rollback`` webhook at ``/rollback/check`` rolls back once opened. Add
    :meth:`webhooks` to the Canary's ``spec.analysis.webhooks``, then call
    :meth:`open`, :meth:`close`, :meth:`rollback` from the notebook.

    The loadtester must be reachable from here: ``loadtester`` defaults to its
    in-cluster address ``http://flagger-loadtester.<namespace>``; from a laptop use
    ``kubectl -n <ns> port-forward svc/flagger-loadtester 8080:80`` and
    ``loadtester="http://localhost:8080"``. Gates live in the loadtester's memory
    (lost on restart); Flagger only acts on them at its next analysis tick.
    """

    canary: str
    namespace: str
    loadtester: str | None = None
    audit: AuditLog | None = None
    on_change: OnChange | None = None
    timeout: float = 10.0

    @property
    def url(self) -> str:
        return (self.loadtester or f"http://flagger-loadtester.{self.namespace}").rstrip("/")

    def webhooks(self) -> list[dict[str, str]]:
        """The two ``spec.analysis.webhooks`` entries that put promotion and rollback in your hands."""
        return [
            {
                "name": "rolloutlab-promotion-gate",
                "type": "confirm-promotion",
                "url": f"{self.url}/gate/check",
            },
            {
                "name": "rolloutlab-rollback-gate",
                "type": "rollback",
                "url": f"{self.url}/rollback/check",
            },
        ]

    def open(self, *, reason: str) -> AuditRecord:
        """Open the gate: Flagger promotes at its next tick (if the analysis passes)."""
        return self._post("/gate/open", reason)

    def close(self, *, reason: str) -> AuditRecord:
        """Close the gate again: Flagger holds before promotion."""
        return self._post("/gate/close", reason)

    def rollback(self, *, reason: str) -> AuditRecord:
        """Ask Flagger to roll back at its next tick; :meth:`cancel_rollback` afterwards so the
        next release is not rolled back too."""
        return self._post("/rollback/open", reason)

    def cancel_rollback(self, *, reason: str) -> AuditRecord:
        """Close the rollback gate."""
        return self._post("/rollback/close", reason)

    def _post(self, endpoint: str, reason: str) -> AuditRecord:
        reason = check_reason(reason)
        auditor = Auditor(self.audit, self.on_change)
        intent = auditor.intent(
            AuditRecord.now(
                kind="flagger-gate",
                namespace=self.namespace,
                name=self.canary,
                action=endpoint.strip("/"),
                before=None,
                after={"endpoint": endpoint},
                reason=reason,
            )
        )
        try:
            status = self._send(endpoint)
        except ActuationError as exc:
            auditor.outcome(intent.resolved("failed", after=None, note=str(exc)))
            raise
        return auditor.outcome(
            intent.resolved("applied", after={"endpoint": endpoint, "status": status})
        )

    def _send(self, endpoint: str) -> int:
        """POST to the loadtester; its HTTP status, or ActuationError (URL redacted)."""
        where = redact_url(self.url)
        body = json.dumps({"name": self.canary, "namespace": self.namespace}).encode()
        request = urllib.request.Request(
            self.url + endpoint,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            raise ActuationError(
                f"Flagger loadtester {where}{endpoint} answered HTTP {exc.code}: "
                f"{redact(exc.read()[:300].decode(errors='replace'))}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ActuationError(
                f"cannot reach Flagger's loadtester at {where} ({redact(str(exc))}); from "
                "outside the cluster port-forward it and pass loadtester='http://localhost:8080'"
            ) from exc
