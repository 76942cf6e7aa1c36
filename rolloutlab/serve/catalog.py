"""Which canary is which: the Canaries and Rollouts the service judges, by namespace and
name, read from a GitOps folder (with their templates) or from the cluster on demand."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rolloutlab.errors import RolloutlabError, SpecError
from rolloutlab.specs.documents import read_documents
from rolloutlab.specs.fetch import preset_for
from rolloutlab.specs.loading import spec_from_documents
from rolloutlab.specs.model import Spec


class UnknownCanary(RolloutlabError, LookupError):
    """No Canary or Rollout of that namespace and name is known (the message says how to add it)."""


@dataclass(frozen=True)
class Canary:
    """One canary to judge: its spec and the series names its data are fetched under."""

    namespace: str
    name: str
    spec: Spec
    target: str
    preset: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def canary_of(spec: Spec, *, namespace: str | None = None, where: str = "the spec") -> Canary:
    """The :class:`Canary` of ``spec``: its namespace (else ``namespace``), name and target."""
    namespace = spec.namespace or namespace
    name = spec.name or spec.target
    if not namespace or not name:
        missing = "metadata.namespace" if not namespace else "metadata.name"
        raise SpecError(
            f"{where}: the Canary or Rollout has no {missing}. Add it, or pass --namespace."
        )
    return Canary(namespace, name, spec, spec.target or name, preset_for(spec))


class Catalog:
    """Canaries known up front, by namespace and name (``source`` says where from)."""

    def __init__(self, canaries: Iterable[Canary], *, source: str = "the command line") -> None:
        self.source = source
        self.canaries = {(c.namespace, c.name): c for c in canaries}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.source}: {len(self.canaries)} canaries>"

    def __iter__(self) -> Iterator[Canary]:
        return iter(self.canaries.values())

    def get(self, namespace: str, name: str) -> Canary:
        found = self.canaries.get((namespace, name))
        if found is None:
            known = ", ".join(sorted(c.key for c in self)) or "none"
            raise UnknownCanary(
                f"no Canary or Rollout {namespace}/{name} in {self.source} (known: {known}). "
                "Add its manifest (with its templates) to the folder and restart, or check the "
                "webhook's name and namespace."
            )
        return found


class FolderCatalog(Catalog):
    """Every Canary and Rollout in a file or folder of manifests, each with its templates.

    ``namespace`` is the namespace of manifests that name none (as ``kubectl apply -n``).
    """

    def __init__(self, path: str | Path, *, namespace: str | None = None) -> None:
        docs = read_documents(Path(path))
        mains = [d for d in docs if d.kind in ("Canary", "Rollout")]
        others = [d for d in docs if d.kind not in ("Canary", "Rollout")]
        if not mains:
            raise SpecError(
                f"{path}: no Flagger Canary or Argo Rollout among {len(docs)} documents. "
                "Give the GitOps folder that holds them with their templates."
            )
        canaries = [
            canary_of(
                spec_from_documents([main, *others], source=main.where, name=main.name),
                namespace=namespace,
                where=main.where,
            )
            for main in mains
        ]
        super().__init__(canaries, source=str(path))


class ClusterCatalog:
    """Canaries and Rollouts read from the cluster when first asked for (read-only ``get``),
    kept for ``ttl_s`` so that a changed Canary is picked up without a restart."""

    def __init__(self, load: Callable[[str, str], Spec], *, ttl_s: float = 60.0) -> None:
        self._load = load
        self.ttl_s = ttl_s
        self._cache: dict[tuple[str, str], tuple[float, Canary]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<ClusterCatalog: {len(self._cache)} canaries read>"

    def __iter__(self) -> Iterator[Canary]:
        with self._lock:
            return iter([c for _, c in self._cache.values()])

    def get(self, namespace: str, name: str) -> Canary:
        key = (namespace, name)
        with self._lock:
            cached = self._cache.get(key)
        if cached and time.monotonic() - cached[0] < self.ttl_s:
            return cached[1]
        try:
            spec = self._load(name, namespace)
        except SpecError as exc:
            raise UnknownCanary(
                f"{namespace}/{name}: {exc} Check the webhook's name and namespace, and that the "
                "service account may get Canaries, Rollouts and their templates there."
            ) from None
        canary = canary_of(spec, namespace=namespace, where=f"cluster {namespace}/{name}")
        with self._lock:
            self._cache[key] = (time.monotonic(), canary)
        return canary
