"""What each Flagger webhook answers for an evaluation: only the HTTP status counts.

Flagger's contract (fluxcd/flagger ``pkg/controller/scheduler_hooks.go`` and
``webhook.go``): a webhook passes when it answers a status of at most 202, and fails
otherwise. ``confirm-traffic-increase`` and ``confirm-promotion`` halt the canary until
they pass, ``rollback`` rolls back at once when it passes, ``rollout`` counts a failed
check when it fails.
"""

from __future__ import annotations

from typing import Literal

from rolloutlab.serve.engine import Evaluation

Hook = Literal["confirm-traffic-increase", "confirm-promotion", "rollback", "rollout"]
HOOKS: tuple[Hook, ...] = ("confirm-traffic-increase", "confirm-promotion", "rollback", "rollout")

PASS = 200
#: The gate is closed on the evidence (Flagger halts, or does not roll back).
REFUSE = 412
#: The canary cannot be judged now (Prometheus unreadable): never a pass that promotes.
UNAVAILABLE = 503


def gate(hook: Hook, evaluation: Evaluation) -> tuple[int, str]:
    """The status code for ``hook`` and one line saying why."""
    decision, status = evaluation.decision, evaluation.status
    if status == "unavailable" and hook != "rollback":
        return UNAVAILABLE, evaluation.reason
    if hook == "confirm-promotion":
        if decision == "promote":
            return PASS, "promote: " + evaluation.reason
        return REFUSE, f"not promoting ({status}, {decision}): {evaluation.reason}"
    if hook == "rollback":
        if decision == "rollback":
            return PASS, evaluation.reason
        return REFUSE, f"no rollback ({status}, {decision}): {evaluation.reason}"
    if decision == "rollback":
        return REFUSE, evaluation.reason
    if hook == "rollout":
        if status == "nodata":
            return REFUSE, evaluation.reason  # as Flagger's own checks fail without values
        return PASS, evaluation.reason
    hold = evaluation.hold  # confirm-traffic-increase
    if hold:
        return REFUSE, f"hold: {hold}"
    return PASS, evaluation.reason
