"""Argo Rollouts actions on a ``Rollout``, done the way ``kubectl argo rollouts`` does them.

Argo's controller owns the traffic; rolloutlab only flips the fields its plugin
flips: ``status`` fields go through the ``/status`` subresource, ``spec.paused``
through the object itself. Each action is audited.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rolloutlab.control.audit import AuditRecord
from rolloutlab.control.kube import ClusterActor, ObjectRef, Resource
from rolloutlab.control.routers import Weights, check_reason
from rolloutlab.errors import ActuationError

if TYPE_CHECKING:
    pass

ROLLOUT = Resource("argoproj.io", "v1alpha1", "rollouts", "Rollout")


class ArgoRollout(ClusterActor):
    """One Argo Rollout: read its canary weights, promote, abort, retry.

    ``connection`` options are :class:`ClusterActor`'s (client, audit, retries, ...).
    """

    kind = "argo-rollout"

    def __init__(self, name: str, namespace: str, **connection: Any) -> None:
        super().__init__(**connection)
        self.ref = ObjectRef(ROLLOUT, namespace, name)

    def __repr__(self) -> str:
        return f"ArgoRollout({self.ref.name!r}, {self.ref.namespace!r})"

    def describe(self) -> str:
        return f"argo: {self.ref}"

    def _retrying(self, attempt: Any, what: str) -> Any:
        return super()._retrying(attempt, f"{what} {self.ref}")

    def weights(self) -> Weights:
        """Stable and canary weights from ``status.canary.weights`` (set by the controller)."""
        obj = self._retrying(lambda: self._kube.get(self.ref), "reading")
        weights = ((obj.get("status") or {}).get("canary") or {}).get("weights") or {}
        try:
            return Weights(int(weights["stable"]["weight"]), int(weights["canary"]["weight"]))
        except (KeyError, TypeError, ValueError):
            raise ActuationError(
                f"{self.ref} has no status.canary.weights.{{stable,canary}}.weight: the "
                "Rollout uses no traffic routing, or the controller has not reconciled it yet"
            ) from None

    def promote(self, *, reason: str, full: bool = False) -> AuditRecord:
        """Resume a paused Rollout (``spec.paused=false``, clear ``status.pauseConditions``);
        with ``full`` skip all remaining steps and analysis (``status.promoteFull=true``)."""
        if full:
            return self._act("promote-full", reason, status={"promoteFull": True})
        return self._act(
            "promote", reason, status={"pauseConditions": None}, spec={"paused": False}
        )

    def abort(self, *, reason: str) -> AuditRecord:
        """Abort: the stable ReplicaSet takes all traffic back (``status.abort=true``)."""
        return self._act("abort", reason, status={"abort": True})

    def retry(self, *, reason: str) -> AuditRecord:
        """Retry an aborted Rollout (``status.abort=false``)."""
        return self._act("retry", reason, status={"abort": False})

    def _act(
        self,
        action: str,
        reason: str,
        *,
        status: dict[str, Any],
        spec: dict[str, Any] | None = None,
    ) -> AuditRecord:
        reason = check_reason(reason)

        def attempt() -> tuple[dict[str, Any], dict[str, Any]]:
            obj = self._kube.get(self.ref)
            after = self._kube.patch(self.ref, {"status": status}, status=True)
            if spec is not None:
                after = self._kube.patch(self.ref, {"spec": spec})
            return obj, after

        before, after = self._retrying(attempt, action)
        return self._audit(
            AuditRecord.now(
                kind=self.kind,
                namespace=self.ref.namespace,
                name=self.ref.name,
                action=action,
                before=_fields(before, status, spec),
                after=_fields(after, status, spec),
                reason=reason,
            )
        )


def _fields(obj: dict[str, Any], status: dict[str, Any], spec: dict[str, Any] | None) -> dict:
    """The fields an action touches, as they are in ``obj`` (for the audit record)."""
    values = {f"status.{key}": (obj.get("status") or {}).get(key) for key in status}
    values.update({f"spec.{key}": (obj.get("spec") or {}).get(key) for key in spec or {}})
    return values
