"""Actuators: move traffic and promote or roll back canaries on Kubernetes.

Names are imported on first use, so ``import rolloutlab.control`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Router": "routers",
    "KubeRouter": "routers",
    "Weights": "routers",
    "Change": "routers",
    "router": "routers",
    "check_weight": "routers",
    "ArgoRollout": "argo",
    "DeploymentCanary": "deployments",
    "FlaggerGates": "deployments",
    "Steps": "deployments",
    "AuditLog": "audit",
    "AuditRecord": "audit",
    "load_client": "kube",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
