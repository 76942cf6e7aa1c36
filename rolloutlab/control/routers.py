"""Traffic routers: read and set the canary's share of traffic on a provider's route object.

:class:`Router` is the interface every router implements (a local demo router too).
:class:`KubeRouter` does the work for all Kubernetes providers, in one place:
validate, read, compute, diff, patch, retry, audit. A provider only says where the
weights live in its object (:class:`BackendListRouter` covers every provider that
keeps a list of weighted backends; NGINX keeps an annotation). Names default to
Flagger's: ``<apex>-primary`` and ``<apex>-canary``.
"""

from __future__ import annotations

import copy
import difflib
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from rolloutlab.control.audit import AuditLog, AuditRecord, OnChange
from rolloutlab.control.kube import (
    ClusterActor,
    ObjectRef,
    Resource,
    flagger_canary,
    flagger_owner,
    flagger_refusal,
)
from rolloutlab.errors import SpecError, ValidationFailed

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


@dataclass(frozen=True)
class Weights:
    """Percent of traffic to the primary and to the canary."""

    primary: int
    canary: int

    @classmethod
    def split(cls, canary: int) -> Weights:
        """``canary`` percent to the canary, the rest to the primary."""
        return cls(100 - canary, canary)

    def as_dict(self) -> dict[str, int]:
        return {"primary": self.primary, "canary": self.canary}

    def __str__(self) -> str:
        return f"{self.primary}/{self.canary}"


@dataclass(frozen=True)
class Change:
    """The result of :meth:`Router.set_weight`: weights before and after, and their diff.

    ``diff`` is empty when nothing had to change. ``print(change)`` shows the diff.
    """

    router: str
    before: Weights
    after: Weights
    reason: str
    dry_run: bool
    diff: str
    time: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def __repr__(self) -> str:
        mode = ", dry run" if self.dry_run else ""
        return f"Change({self.router}: primary/canary {self.before} -> {self.after}{mode})"

    def __str__(self) -> str:
        return f"{self!r}\n{self.diff}" if self.diff else repr(self)


def check_weight(value: object) -> int:
    """``value`` as a whole percent in 0..100, or ValidationFailed saying why not."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationFailed(f"canary weight must be a number in 0..100, got {value!r}")
    if math.isnan(value) or not 0 <= value <= 100:
        raise ValidationFailed(f"canary weight must be in 0..100 percent, got {value!r}")
    if value != int(value):
        raise ValidationFailed(
            f"canary weight must be a whole percent (routers take integers), got {value!r}; "
            "round it first"
        )
    return int(value)


def check_reason(reason: object) -> str:
    """A non-blank reason, for the audit trail."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationFailed(
            f"a reason is required for the audit log (e.g. reason='tick 3 passed'), got {reason!r}"
        )
    return reason.strip()


def weights_diff(before: Weights, after: Weights, *, labels: tuple[str, str], title: str) -> str:
    """A unified diff of the two weights, one line per backend (empty if equal)."""
    if before == after:
        return ""

    def lines(weights: Weights) -> list[str]:
        return [f"{labels[0]}: {weights.primary}", f"{labels[1]}: {weights.canary}"]

    return "\n".join(
        difflib.unified_diff(
            lines(before),
            lines(after),
            fromfile=f"{title} (before)",
            tofile=f"{title} (after)",
            lineterm="",
        )
    )


class Router(ABC):
    """What every traffic router offers, whatever moves the traffic."""

    @property
    @abstractmethod
    def name(self) -> str:
        """The route's name (the apex service for Flagger-style setups)."""

    @abstractmethod
    def weights(self) -> Weights:
        """The current primary and canary weights."""

    @abstractmethod
    def set_weight(self, canary_percent: float, *, reason: str, dry_run: bool = False) -> Change:
        """Send ``canary_percent`` of traffic to the canary and the rest to the primary."""

    @abstractmethod
    def describe(self) -> str:
        """One line saying what this router changes."""


class KubeRouter(Router, ClusterActor):
    """A router whose weights live in one Kubernetes object.

    Subclasses give ``kind``, ``resource``, and the two hooks :meth:`_read` (weights
    from the object, validating its shape) and :meth:`_patch_body` (a merge patch that
    writes both weights at once). Writes carry the object's ``resourceVersion``, so a
    concurrent change makes the server answer 409 and the whole read-compute-write is
    redone.
    """

    kind: ClassVar[str]
    resource: ClassVar[Resource]

    def __init__(
        self,
        name: str,
        namespace: str,
        *,
        client: ApiClient | None = None,
        primary: str | None = None,
        canary: str | None = None,
        **connection: Any,
    ) -> None:
        super().__init__(client=client, **connection)
        self._name = name
        self.namespace = namespace
        self.primary = primary or f"{name}-primary"
        self.canary = canary or f"{name}-canary"

    @property
    def name(self) -> str:
        return self._name

    @property
    def ref(self) -> ObjectRef:
        """The object holding the weights."""
        return ObjectRef(self.resource, self.namespace, self._name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, {self.namespace!r})"

    def describe(self) -> str:
        return f"{self.kind}: {self.ref} (primary {self.primary}, canary {self.canary})"

    @abstractmethod
    def _read(self, obj: dict[str, Any]) -> Weights:
        """The weights in ``obj``; ValidationFailed naming what is missing if it has none."""

    @abstractmethod
    def _patch_body(self, obj: dict[str, Any], weights: Weights) -> dict[str, Any]:
        """A merge patch of ``obj`` that sets both weights."""

    def weights(self) -> Weights:
        return self._retrying(lambda: self._read(self._kube.get(self.ref)), f"reading {self.ref}")

    def set_weight(self, canary_percent: float, *, reason: str, dry_run: bool = False) -> Change:
        """Route ``canary_percent`` to the canary and the rest to the primary, in one patch.

        Refuses (ValidationFailed, nothing written) a weight outside 0..100, a blank
        reason, a missing object or backend, and a route that Flagger manages. With
        ``dry_run`` the server validates the patch without storing it and the returned
        Change shows the diff. Every write and dry run is audited; refusals are not.
        """
        target = Weights.split(check_weight(canary_percent))
        reason = check_reason(reason)

        def attempt() -> tuple[Weights, Weights]:
            canary_object = flagger_canary(self._kube, self.namespace, {self._name, self.ref.name})
            obj = self._kube.get(self.ref)
            owner = canary_object or flagger_owner(obj)
            if owner:
                raise flagger_refusal(str(self.ref), owner, self.namespace)
            before = self._read(obj)
            if before == target:
                return before, before
            body = self._patch_body(obj, target)
            version = obj.get("metadata", {}).get("resourceVersion")
            if version:
                body.setdefault("metadata", {})["resourceVersion"] = version
            return before, self._read(self._kube.patch(self.ref, body, dry_run=dry_run))

        before, after = self._retrying(attempt, f"setting weights on {self.ref}")
        title = f"{self.kind} {self.ref}" + (" dry run" if dry_run else "")
        change = Change(
            router=f"{self.kind} {self.ref}",
            before=before,
            after=after,
            reason=reason,
            dry_run=dry_run,
            diff=weights_diff(before, after, labels=(self.primary, self.canary), title=title),
        )
        if change.changed:
            self._audit(
                AuditRecord.now(
                    kind=self.kind,
                    namespace=self.namespace,
                    name=self.ref.name,
                    action="set_weight",
                    before=before.as_dict(),
                    after=after.as_dict(),
                    reason=reason,
                    dry_run=dry_run,
                )
            )
        return change


def _path_text(path: Sequence[str | int]) -> str:
    return "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)[1:]


def _merge_patch_at(node: Any, path: Sequence[str | int], value: Any) -> Any:
    """A merge patch of ``node`` that puts ``value`` at ``path``.

    Merge patches replace lists whole, so from the first list on the way down the
    patch carries the complete list, other entries kept as they are.
    """
    if not path:
        return value
    head = path[0]
    if isinstance(head, str):
        return {head: _merge_patch_at(node[head], path[1:], value)}
    whole = copy.deepcopy(node)
    parent = whole
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return whole


class BackendListRouter(KubeRouter):
    """Weights in a list of backends (``path``), each named at ``name_at`` with a ``weight``."""

    path: ClassVar[tuple[str | int, ...]]
    name_at: ClassVar[tuple[str, ...]] = ("name",)
    default_weight: ClassVar[int] = 0

    def _backends(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        node: Any = obj
        for step in self.path:
            try:
                node = node[step]
            except (KeyError, IndexError, TypeError):
                node = None
                break
        if not isinstance(node, list):
            raise ValidationFailed(
                f"{self.ref} has no {_path_text(self.path)} list; "
                f"is it a {self.kind} route generated for {self._name}?"
            )
        return node

    def _backend_name(self, backend: Any) -> str | None:
        node = backend
        for step in self.name_at:
            node = node.get(step) if isinstance(node, dict) else None
        return node if isinstance(node, str) else None

    def _positions(self, backends: list[dict[str, Any]]) -> tuple[int, int]:
        names = [self._backend_name(backend) for backend in backends]
        for role, wanted in (("primary", self.primary), ("canary", self.canary)):
            if wanted not in names:
                raise ValidationFailed(
                    f"{self.ref}: no {role} backend named {wanted!r} in "
                    f"{_path_text(self.path)} (looked at {'.'.join(self.name_at)}); "
                    f"found {[n for n in names if n]}. Pass primary=/canary= if your names "
                    "differ from Flagger's."
                )
        return names.index(self.primary), names.index(self.canary)

    def _weight(self, backend: dict[str, Any]) -> int:
        value = backend.get("weight", self.default_weight)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationFailed(
                f"{self.ref}: backend {self._backend_name(backend)!r} has weight {value!r}, "
                "expected an integer"
            )
        return value

    def _read(self, obj: dict[str, Any]) -> Weights:
        backends = self._backends(obj)
        primary, canary = self._positions(backends)
        return Weights(self._weight(backends[primary]), self._weight(backends[canary]))

    def _patch_body(self, obj: dict[str, Any], weights: Weights) -> dict[str, Any]:
        backends = copy.deepcopy(self._backends(obj))
        primary, canary = self._positions(backends)
        backends[primary]["weight"] = weights.primary
        backends[canary]["weight"] = weights.canary
        return _merge_patch_at(obj, self.path, backends)


class IstioRouter(BackendListRouter):
    """Istio VirtualService: ``spec.http[0].route[]`` by ``destination.host``."""

    kind = "istio"
    resource = Resource("networking.istio.io", "v1beta1", "virtualservices", "VirtualService")
    path = ("spec", "http", 0, "route")
    name_at = ("destination", "host")


class GatewayAPIRouter(BackendListRouter):
    """Gateway API HTTPRoute: ``spec.rules[0].backendRefs[]`` by ``name`` (weight defaults to 1)."""

    kind = "gatewayapi"
    resource = Resource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
    path = ("spec", "rules", 0, "backendRefs")
    default_weight = 1


class SMIRouter(BackendListRouter):
    """SMI TrafficSplit (Linkerd, OSM): ``spec.backends[]`` by ``service``."""

    kind = "smi"
    resource = Resource("split.smi-spec.io", "v1alpha2", "trafficsplits", "TrafficSplit")
    path = ("spec", "backends")
    name_at = ("service",)


class TraefikRouter(BackendListRouter):
    """Traefik TraefikService: ``spec.weighted.services[]`` by ``name``."""

    kind = "traefik"
    resource = Resource("traefik.io", "v1alpha1", "traefikservices", "TraefikService")
    path = ("spec", "weighted", "services")


class ContourRouter(BackendListRouter):
    """Contour HTTPProxy: ``spec.routes[0].services[]`` by ``name``."""

    kind = "contour"
    resource = Resource("projectcontour.io", "v1", "httpproxies", "HTTPProxy")
    path = ("spec", "routes", 0, "services")


NGINX = "nginx.ingress.kubernetes.io/"


class NginxRouter(KubeRouter):
    """NGINX canary Ingress ``<name>-canary``: the ``canary-weight`` annotation.

    ``name`` is the primary Ingress (Flagger's ``ingressRef``). The canary Ingress must
    carry ``canary: "true"`` and route to the ``canary`` service; the primary gets the
    rest of the traffic implicitly.
    """

    kind = "nginx"
    resource = Resource("networking.k8s.io", "v1", "ingresses", "Ingress")

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(self.resource, self.namespace, f"{self._name}-canary")

    def _read(self, obj: dict[str, Any]) -> Weights:
        annotations = obj.get("metadata", {}).get("annotations") or {}
        if annotations.get(NGINX + "canary") != "true":
            raise ValidationFailed(
                f"{self.ref} is not an NGINX canary Ingress: annotation {NGINX}canary is "
                f"{annotations.get(NGINX + 'canary')!r}, expected 'true'"
            )
        total = annotations.get(NGINX + "canary-weight-total", "100")
        if total != "100":
            raise ValidationFailed(
                f"{self.ref} sets {NGINX}canary-weight-total={total!r}; rolloutlab writes "
                "percents and supports only the default total of 100"
            )
        services = [
            (path.get("backend") or {}).get("service", {}).get("name")
            for rule in obj.get("spec", {}).get("rules") or []
            for path in (rule.get("http") or {}).get("paths") or []
        ]
        if self.canary not in services:
            raise ValidationFailed(
                f"{self.ref}: no backend service named {self.canary!r} in spec.rules[].http"
                f".paths[].backend.service.name; found {[s for s in services if s]}. "
                "Pass canary= if your names differ from Flagger's."
            )
        raw = annotations.get(NGINX + "canary-weight", "0")
        try:
            canary = int(raw)
        except ValueError:
            raise ValidationFailed(
                f"{self.ref}: annotation {NGINX}canary-weight is {raw!r}, expected an integer"
            ) from None
        return Weights.split(canary)

    def _patch_body(self, obj: dict[str, Any], weights: Weights) -> dict[str, Any]:
        return {"metadata": {"annotations": {NGINX + "canary-weight": str(weights.canary)}}}


ROUTERS: dict[str, type[KubeRouter]] = {
    "istio": IstioRouter,
    "gatewayapi": GatewayAPIRouter,
    "smi": SMIRouter,
    "linkerd": SMIRouter,
    "osm": SMIRouter,
    "nginx": NginxRouter,
    "traefik": TraefikRouter,
    "contour": ContourRouter,
}


def router(
    kind: str,
    name: str,
    namespace: str,
    *,
    client: ApiClient | None = None,
    primary: str | None = None,
    canary: str | None = None,
    audit: AuditLog | None = None,
    on_change: OnChange | None = None,
    retries: int = 4,
    backoff: float = 0.2,
    timeout: float = 10.0,
) -> KubeRouter:
    """The router for a provider ``kind`` (istio, gatewayapi, smi/linkerd/osm, nginx, traefik,
    contour) acting on route ``name`` in ``namespace``. See :class:`KubeRouter` for the rest."""
    try:
        cls = ROUTERS[kind.lower()]
    except KeyError:
        raise SpecError(
            f"unknown router kind {kind!r}; expected one of {', '.join(sorted(ROUTERS))}"
        ) from None
    return cls(
        name,
        namespace,
        client=client,
        primary=primary,
        canary=canary,
        audit=audit,
        on_change=on_change,
        retries=retries,
        backoff=backoff,
        timeout=timeout,
    )
