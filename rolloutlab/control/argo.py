"""Argo Rollouts actions on a ``Rollout``, done the way ``kubectl argo rollouts`` does them.

Argo's controller owns the traffic; rolloutlab only flips the fields the plugin flips
(``pkg/kubectl-argo-rollouts/cmd/{promote,abort,retry}`` in argoproj/argo-rollouts).
Status fields go through the ``/status`` subresource first; a cluster that does not
serve it (404, Rollouts before v0.10) gets one patch of the main object carrying the
status and spec fields together. Each action is audited.

One deliberate difference: when the plugin falls back to the main object while
promoting out of an inconclusive step analysis, its combined patch leaves out
``currentStepIndex`` and ``controllerPause``; rolloutlab writes the same fields in
either case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from rolloutlab.control.audit import AuditRecord
from rolloutlab.control.kube import ClusterActor, ObjectRef, Resource, kubernetes
from rolloutlab.control.routers import Weights, check_reason
from rolloutlab.errors import ActuationError

T = TypeVar("T")

ROLLOUT = Resource("argoproj.io", "v1alpha1", "rollouts", "Rollout")


@dataclass(frozen=True)
class Patches:
    """The merge-patch fields an action writes: ``status`` (via ``/status``) and ``spec``."""

    status: dict[str, Any]
    spec: dict[str, Any]

    def __bool__(self) -> bool:
        return bool(self.status or self.spec)


def _status(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("status") or {}


def _canary_steps(obj: dict[str, Any]) -> list[Any] | None:
    """The canary strategy's steps, or None for a blue-green Rollout."""
    canary = ((obj.get("spec") or {}).get("strategy") or {}).get("canary")
    return None if canary is None else list(canary.get("steps") or [])


def next_step_index(obj: dict[str, Any]) -> int | None:
    """The step after the current one (capped at the number of steps); None without steps.

    As Argo's ``GetCurrentCanaryStep``: an unset ``status.currentStepIndex`` is step 0.
    """
    steps = _canary_steps(obj)
    if not steps:
        return None
    index = int(_status(obj).get("currentStepIndex") or 0)
    return index + 1 if index < len(steps) else index


def _inconclusive(obj: dict[str, Any]) -> bool:
    """A canary whose current step analysis ended Inconclusive."""
    analysis = (_status(obj).get("canary") or {}).get("currentStepAnalysisRunStatus") or {}
    return _canary_steps(obj) is not None and analysis.get("status") == "Inconclusive"


def promote_patches(obj: dict[str, Any], *, full: bool = False) -> Patches:
    """What ``kubectl argo rollouts promote [--full]`` writes to the Rollout ``obj``.

    Both forms unpause a paused Rollout (``spec.paused=false``). ``full`` sets
    ``status.promoteFull`` unless the new pods are already the stable ones. Otherwise,
    in order: a canary paused by an inconclusive step analysis moves to the next step
    with its pause conditions and the controller pause cleared; any other pause
    condition is cleared; a canary with no pause condition (in the middle of an
    analysis or experiment step) moves to the next step.
    """
    status = _status(obj)
    spec = {"paused": False} if (obj.get("spec") or {}).get("paused") else {}
    if full:
        new_pods = status.get("currentPodHash") != status.get("stableRS")
        return Patches({"promoteFull": True} if new_pods else {}, spec)
    paused_by = status.get("pauseConditions")
    step = next_step_index(obj)
    if _inconclusive(obj) and paused_by and status.get("controllerPause"):
        if step is None:
            return Patches({}, spec)
        return Patches(
            {"pauseConditions": None, "controllerPause": False, "currentStepIndex": step}, spec
        )
    if paused_by:
        return Patches({"pauseConditions": None}, spec)
    if step is not None:
        return Patches({"pauseConditions": None, "currentStepIndex": step}, spec)
    return Patches({}, spec)


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
        weights = (_status(obj).get("canary") or {}).get("weights") or {}
        try:
            return Weights(int(weights["stable"]["weight"]), int(weights["canary"]["weight"]))
        except (KeyError, TypeError, ValueError):
            raise ActuationError(
                f"{self.ref} has no status.canary.weights.{{stable,canary}}.weight: the "
                "Rollout uses no traffic routing, or the controller has not reconciled it yet"
            ) from None

    def promote(self, *, reason: str, full: bool = False) -> AuditRecord | None:
        """Promote as ``kubectl argo rollouts promote`` does (see :func:`promote_patches`).

        A paused canary resumes; one in the middle of an analysis or experiment step, or
        paused by an inconclusive analysis, moves to the next step. ``full`` skips the
        remaining steps, pauses and analysis. Returns None when there was nothing to
        change (nothing written, nothing audited).
        """
        action = "promote-full" if full else "promote"
        return self._act(action, reason, lambda obj: promote_patches(obj, full=full))

    def abort(self, *, reason: str) -> AuditRecord | None:
        """Abort: the stable ReplicaSet takes all traffic back (``status.abort=true``)."""
        return self._act("abort", reason, lambda obj: Patches({"abort": True}, {}))

    def retry(self, *, reason: str) -> AuditRecord | None:
        """Retry an aborted Rollout (``status.abort=false``)."""
        return self._act("retry", reason, lambda obj: Patches({"abort": False}, {}))

    def _act(self, action: str, reason: str, plan: Any) -> AuditRecord | None:
        """Read the Rollout, write what ``plan(obj)`` asks, audited ahead.

        The patches are computed once from one read: re-reading after a half-done write
        would move a step index twice (a resent patch writes the same values, so a retry
        after a lost answer is harmless). The intent is recorded before the first patch;
        on failure the Rollout is re-read and the outcome recorded as it is:
        ``failed`` (as before, also when the status was put back), ``partial`` or
        ``applied``.
        """
        reason = check_reason(reason)
        before = self._retrying(lambda: self._kube.get(self.ref), f"{action}: reading")
        patches: Patches = plan(before)
        if not patches:
            return None
        intent = self._audit.intent(
            AuditRecord.now(
                kind=self.kind,
                namespace=self.ref.namespace,
                name=self.ref.name,
                action=action,
                before=_fields(before, patches),
                after=_planned(patches),
                reason=reason,
            )
        )
        try:
            after = self._write(action, before, patches)
        except ActuationError as exc:
            self._settle(intent, exc, lambda: _fields(self._kube.get(self.ref), patches))
            raise
        return self._audit.outcome(intent.resolved("applied", after=_fields(after, patches)))

    def _write(self, action: str, before: dict[str, Any], patches: Patches) -> dict[str, Any]:
        """Status through ``/status`` (or, if not served, all in one patch), then spec.

        If the spec patch fails after the status patch went through, the status fields
        are put back as they were and the error says so.
        """
        after = before
        status_only = Patches(patches.status, {})
        if patches.status:
            status_after = self._once(
                action, before, status_only, lambda: self._patch_status(patches.status)
            )
            if status_after is None:  # no /status subresource: one patch of the main object
                whole = {"status": patches.status}
                if patches.spec:
                    whole["spec"] = patches.spec
                return self._once(
                    action, before, patches, lambda: self._kube.patch(self.ref, whole)
                )
            after = status_after
        if not patches.spec:
            return after
        try:
            return self._once(
                action,
                before,
                Patches({}, patches.spec),
                lambda: self._kube.patch(self.ref, {"spec": patches.spec}),
            )
        except ActuationError as exc:
            if patches.status:
                self._undo_status(action, before, patches, exc)
            raise

    def _once(
        self, action: str, before: dict[str, Any], fields: Patches, send: Callable[[], T]
    ) -> T | dict[str, Any]:
        """``send()`` with retries, but never twice once it went through: a retry first
        re-reads the Rollout, and if ``fields`` are no longer as ``before`` (the earlier
        patch was applied and only its answer lost), takes that instead of sending again,
        which could move back a step index the controller has since advanced."""
        sent = False

        def attempt() -> T | dict[str, Any]:
            nonlocal sent
            if sent:
                now = self._kube.get(self.ref)
                if _fields(now, fields) != _fields(before, fields):
                    return now
            sent = True
            return send()

        return self._retrying(attempt, action)

    def _patch_status(self, status: dict[str, Any]) -> dict[str, Any] | None:
        """Patch ``/status``; None if the cluster does not serve the subresource (404)."""
        try:
            return self._kube.patch(self.ref, {"status": status}, status=True)
        except kubernetes().client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _undo_status(
        self, action: str, before: dict[str, Any], patches: Patches, error: ActuationError
    ) -> None:
        """Put the status fields back after a failed spec patch; raise saying what happened."""
        undo = {key: _status(before).get(key) for key in patches.status}
        fields = ", ".join(f"spec.{key}" for key in patches.spec)
        try:
            self._retrying(
                lambda: self._kube.patch(self.ref, {"status": undo}, status=True), action
            )
        except ActuationError as undo_error:
            raise ActuationError(
                f"{action} {self.ref} is half done: status {patches.status} was written but "
                f"{fields} was not ({error}), and putting the status back failed too "
                f"({undo_error}). Check the Rollout with kubectl argo rollouts get "
                f"{self.ref.name} -n {self.ref.namespace}"
            ) from error
        raise ActuationError(
            f"{action} {self.ref} not done: {fields} could not be written ({error}); the "
            "status fields were put back as they were. Fix the cause (often RBAC on "
            "rollouts, not only rollouts/status) and try again"
        ) from error


def _planned(patches: Patches) -> dict[str, Any]:
    """The fields an action writes, as it writes them (the intent's ``after``)."""
    values = {f"status.{key}": value for key, value in patches.status.items()}
    values.update({f"spec.{key}": value for key, value in patches.spec.items()})
    return values


def _fields(obj: dict[str, Any], patches: Patches) -> dict[str, Any]:
    """The fields an action touches, as they are in ``obj`` (for the audit record)."""
    values = {f"status.{key}": _status(obj).get(key) for key in patches.status}
    spec = obj.get("spec") or {}
    values.update({f"spec.{key}": spec.get(key) for key in patches.spec})
    return values
