"""``rolloutlab serve``: rolloutlab's judge as a gate for Flagger and Argo Rollouts.

A thin front end, like ``cli`` and ``widgets``: :mod:`~rolloutlab.serve.catalog` says
which canary is which (a GitOps folder or the cluster), :mod:`~rolloutlab.serve.store`
keeps each revision's window start in SQLite, :mod:`~rolloutlab.serve.engine` judges a
canary from Prometheus now (cached per tick), :mod:`~rolloutlab.serve.gates` turns the
verdict into each Flagger webhook's status, :mod:`~rolloutlab.serve.auth` checks
credentials and :mod:`~rolloutlab.serve.app` is the Starlette app. Starlette and uvicorn
come with the ``serve`` extra.
"""

from __future__ import annotations

from rolloutlab.serve.auth import Auth
from rolloutlab.serve.catalog import (
    Canary,
    Catalog,
    ClusterCatalog,
    FolderCatalog,
    UnknownCanary,
    canary_of,
)
from rolloutlab.serve.engine import Engine, Evaluation
from rolloutlab.serve.store import RevisionStore


def create_app(engine: Engine, auth: Auth):
    """The ASGI app (imports Starlette, from the ``serve`` extra)."""
    from rolloutlab.serve.app import create_app as make

    return make(engine, auth)


__all__ = [
    "Auth",
    "Canary",
    "Catalog",
    "ClusterCatalog",
    "Engine",
    "Evaluation",
    "FolderCatalog",
    "RevisionStore",
    "UnknownCanary",
    "canary_of",
    "create_app",
]
