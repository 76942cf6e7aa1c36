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
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from rolloutlab.control.audit import AuditLog, AuditRecord, OnChange
from rolloutlab.control.kube import (
    ClusterActor,
    ObjectRef,
    Resource,
    flagger_canary,
    flagger_owner,
    flagger_refusal,
    kubernetes,
)
from rolloutlab.errors import ActuationError, SpecError, ValidationFailed

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
    #: the audit record of the change (None when nothing changed or the router keeps none)
    record: AuditRecord | None = field(default=None, compare=False)

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
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float is out of range too
        number = math.inf
    if math.isnan(number) or not 0 <= number <= 100:
        raise ValidationFailed(f"canary weight must be in 0..100 percent, got {value!r}")
    whole = int(number)
    if value != whole:
        raise ValidationFailed(
            f"canary weight must be a whole percent (routers take integers), got {value!r}; "
            "round it first"
        )
    return whole


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

    def _labels(self) -> tuple[str, str]:
        """The primary's and the canary's names in diffs."""
        return self.primary, self.canary

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
        reason, a missing object or backend, and a route that Flagger manages or may
        manage. With ``dry_run`` the server validates the patch without storing it and
        the returned Change shows the diff.

        Every write and dry run is audited ahead: an intent before the patch is sent (no
        patch if it cannot be recorded), the outcome after. A patch whose answer is lost
        (a timeout after the server applied it) is found on the retry's re-read and
        recorded as applied. If the outcome cannot be recorded the caller gets
        :class:`~rolloutlab.control.audit.AuditFailed`, which says the state written.
        """
        target = Weights.split(check_weight(canary_percent))
        reason = check_reason(reason)
        intent: AuditRecord | None = None
        sent: Weights | None = None  # the weights before a patch that was sent
        lost = False

        def attempt() -> tuple[Weights, Weights]:
            nonlocal intent, sent, lost
            canary_object = flagger_canary(self._kube, self.namespace, {self._name, self.ref.name})
            obj = self._kube.get(self.ref)
            owner = canary_object or flagger_owner(obj)
            if owner:
                raise flagger_refusal(str(self.ref), owner, self.namespace)
            before = self._read(obj)
            if before == target:
                lost = sent is not None  # our earlier patch went through, its answer did not
                return (sent or before), before
            body = self._patch_body(obj, target)
            version = obj.get("metadata", {}).get("resourceVersion")
            if version:
                body.setdefault("metadata", {})["resourceVersion"] = version
            if intent is None:
                intent = self._audit.intent(self._record(before, target, reason, dry_run))
            sent = None if dry_run else before
            try:
                answer = self._kube.patch(self.ref, body, dry_run=dry_run)
            except kubernetes().client.ApiException:
                sent = None  # the server answered: it did not apply the patch
                raise
            return before, self._read(answer)

        try:
            before, after = self._retrying(attempt, f"setting weights on {self.ref}")
        except ActuationError as exc:
            if intent is not None:
                self._settle(intent, exc, lambda: self._read(self._kube.get(self.ref)).as_dict())
            raise
        title = f"{self.kind} {self.ref}" + (" dry run" if dry_run else "")
        record = None
        if intent is not None and before != after:
            note = "the API server's answer was lost; re-read shows the change applied"
            record = self._audit.outcome(
                intent.resolved(
                    "applied",
                    before=before.as_dict(),
                    after=after.as_dict(),
                    note=note if lost else "",
                )
            )
        elif intent is not None:  # a retry found the target already set, not by us
            self._audit.outcome(
                intent.resolved(
                    "skipped", after=after.as_dict(), note="the object already held the target"
                )
            )
        return Change(
            router=f"{self.kind} {self.ref}",
            before=before,
            after=after,
            reason=reason,
            dry_run=dry_run,
            diff=weights_diff(before, after, labels=self._labels(), title=title),
            record=record,
        )

    def _record(self, before: Weights, after: Weights, reason: str, dry_run: bool) -> AuditRecord:
        return AuditRecord.now(
            kind=self.kind,
            namespace=self.namespace,
            name=self.ref.name,
            action="set_weight",
            before=before.as_dict(),
            after=after.as_dict(),
            reason=reason,
            dry_run=dry_run,
        )


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
    """Weights in a list of backends (``path``), each named at ``name_at`` with a ``weight``.

    The list must describe a split between the two: primary and canary each listed
    once, as different destinations, their weights summing to 100 and every other
    backend at 0; anything else is refused with the fix, since writing one weight
    would leave the canary a share other than the one asked for.

    A provider whose object holds several routing rules (``rules``: where the rules
    are, ``rule_backends``: the backend list's key in a rule) uses, as Flagger does,
    the last rule that sends to both primary and canary: rules with a ``match`` (A/B
    testing, session affinity) come first, the weighted rule last.
    """

    path: ClassVar[tuple[str | int, ...]]
    rules: ClassVar[tuple[str, ...] | None] = None
    rule_backends: ClassVar[str] = ""
    name_at: ClassVar[tuple[str, ...]] = ("name",)
    default_weight: ClassVar[int] = 0
    #: weights are relative to their total (SMI v1alpha1), not percents
    relative: ClassVar[bool] = False
    #: appended to the refusal of a split that is not primary + canary = 100
    split_hint: ClassVar[str] = ""

    def _route_path(self, obj: dict[str, Any]) -> tuple[str | int, ...]:
        """Where the backend list is in ``obj``: :attr:`path`, or the last of the
        :attr:`rules` holding both primary and canary."""
        found_rules = self._rules(obj)
        if found_rules is None:
            return self.path
        rules: tuple[str | int, ...] = found_rules
        node: Any = obj
        for step in rules:
            node = node.get(step) if isinstance(node, dict) else None
        first = (*rules, 0, self.rule_backends)
        if not isinstance(node, list) or not node:
            return first  # reported as missing by _backends
        primary, canary = self.keys

        def keys(rule: Any) -> set[str | None]:
            backends = rule.get(self.rule_backends) if isinstance(rule, dict) else None
            return {self._key(b) for b in backends} if isinstance(backends, list) else set()

        holding = [i for i, rule in enumerate(node) if {primary, canary} <= keys(rule)]
        if holding:
            return (*rules, holding[-1], self.rule_backends)
        if len(node) == 1 or primary == canary:
            return first  # _positions names what is missing (or the same destination)
        found = sorted({str(key) for rule in node for key in keys(rule)})
        where = f"{_path_text(rules)}[0..{len(node) - 1}].{self.rule_backends}"
        raise ValidationFailed(
            f"{self.ref}: no rule sends to both primary {primary!r} and canary {canary!r} "
            f"(looked at {self.key_path} in {where}); found {found}. "
            f"{self._missing_hint()}"
        )

    def _rules(self, obj: dict[str, Any]) -> tuple[str, ...] | None:
        """Where the routing rules are in ``obj`` (None: one backend list at :attr:`path`)."""
        return self.rules

    def _missing_hint(self) -> str:
        return "Pass primary=/canary= if your names differ from Flagger's."

    def _backends(self, obj: dict[str, Any]) -> tuple[tuple[str | int, ...], list[dict]]:
        path = self._route_path(obj)
        node: Any = obj
        for step in path:
            try:
                node = node[step]
            except (KeyError, IndexError, TypeError):
                node = None
                break
        if not isinstance(node, list):
            raise ValidationFailed(
                f"{self.ref} has no {_path_text(path)} list; "
                f"is it a {self.kind} route generated for {self._name}?"
            )
        return path, node

    @property
    def keys(self) -> tuple[str, str]:
        """What identifies the primary and the canary backend (names, or Istio subsets)."""
        return self.primary, self.canary

    @property
    def key_path(self) -> str:
        """Where :attr:`keys` are read in a backend, for messages."""
        return ".".join(self.name_at)

    def _key(self, backend: Any) -> str | None:
        node = backend
        for step in self.name_at:
            node = node.get(step) if isinstance(node, dict) else None
        return node if isinstance(node, str) else None

    def _same_destination_hint(self) -> str:
        return "Pass primary= and canary= naming two different backends."

    def _positions(self, path: Sequence[str | int], backends: list[dict]) -> tuple[int, int]:
        where = f"{self.ref}: {_path_text(path)}"
        primary_key, canary_key = self.keys
        if primary_key == canary_key:
            raise ValidationFailed(
                f"{where}: primary and canary are the same destination "
                f"({self.key_path} {primary_key!r}), so no weight can split traffic between "
                f"them. {self._same_destination_hint()}"
            )
        keys = [self._key(backend) for backend in backends]
        positions = []
        for role, wanted in (("primary", primary_key), ("canary", canary_key)):
            found = [i for i, key in enumerate(keys) if key == wanted]
            if not found:
                raise ValidationFailed(
                    f"{where}: no {role} backend with {self.key_path} {wanted!r}; found "
                    f"{[k for k in keys if k]}. {self._missing_hint()}"
                )
            if len(found) > 1:
                raise ValidationFailed(
                    f"{where}: the {role} {wanted!r} is listed {len(found)} times (entries "
                    f"{found}); keep one entry per destination so its weight is its share."
                )
            positions.append(found[0])
        return positions[0], positions[1]

    def _weight(self, backend: dict[str, Any]) -> Decimal:
        value = backend.get("weight", self.default_weight)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationFailed(
                f"{self.ref}: backend {self._key(backend)!r} has weight {value!r}, "
                "expected an integer"
            )
        return Decimal(value)

    def _encode(self, weight: int) -> Any:
        """A weight as this router writes it."""
        return weight

    def _read(self, obj: dict[str, Any]) -> Weights:
        path, backends = self._backends(obj)
        primary, canary = self._positions(path, backends)
        weights = [self._weight(backend) for backend in backends]
        total = sum(weights, Decimal(0))
        shares = weights
        if self.relative:
            if total <= 0:
                raise ValidationFailed(
                    f"{self.ref}: every weight in {_path_text(path)} is 0; set the primary's "
                    "weight to 100 to route all traffic to it"
                )
            shares = [weight * 100 / total for weight in weights]
        others = [i for i in range(len(backends)) if i not in (primary, canary) and shares[i]]
        if others or (not self.relative and shares[primary] + shares[canary] != 100):
            listing = ", ".join(
                f"{self._key(backend) or f'entry {i}'}: {_number(weights[i])}"
                for i, backend in enumerate(backends)
            )
            raise ValidationFailed(
                f"{self.ref}: the weights in {_path_text(path)} are {listing} (sum "
                f"{_number(total)}); rolloutlab splits traffic between primary and canary "
                "only, so their weights must sum to 100 and any other backend's be 0 (or "
                f"the backend removed).{self.split_hint}"
            )
        canary_share = int(shares[canary].to_integral_value(ROUND_HALF_UP))
        return Weights(100 - canary_share, canary_share)

    def _patch_body(self, obj: dict[str, Any], weights: Weights) -> dict[str, Any]:
        path, backends = self._backends(obj)
        primary, canary = self._positions(path, backends)
        backends = copy.deepcopy(backends)
        backends[primary]["weight"] = self._encode(weights.primary)
        backends[canary]["weight"] = self._encode(weights.canary)
        return _merge_patch_at(obj, path, backends)

    def _labels(self) -> tuple[str, str]:
        return self.keys


def _number(value: Decimal) -> str:
    return f"{value.normalize():f}"


class IstioRouter(BackendListRouter):
    """Istio VirtualService: the ``spec.http[].route[]`` that sends to the canary.

    As Flagger (``GetRoutes`` in ``pkg/router/istio.go``), every http route is searched
    and the last one holding both primary and canary destinations is used; a
    VirtualService with ``tcp`` routes and no ``http`` ones (Flagger's layout for a
    service with ``appProtocol: tcp``) is searched in ``spec.tcp[].route[]``.
    Destinations are found by ``destination.host`` (Flagger's ``<apex>-primary`` /
    ``<apex>-canary`` services), or, with ``primary_subset`` and ``canary_subset``,
    by ``destination.subset`` (one host split by a DestinationRule: Argo Rollouts'
    subset layout).
    """

    kind = "istio"
    resource = Resource("networking.istio.io", "v1beta1", "virtualservices", "VirtualService")
    rule_backends = "route"
    name_at = ("destination", "host")
    split_hint = (
        " To mirror traffic, use the route's mirror and mirrorPercentage fields instead of "
        "a weighted destination."
    )

    def __init__(
        self,
        name: str,
        namespace: str,
        *,
        primary_subset: str | None = None,
        canary_subset: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(name, namespace, **options)
        if (primary_subset is None) != (canary_subset is None):
            raise SpecError(
                "give both primary_subset and canary_subset (the DestinationRule subsets "
                f"for the stable and canary pods), got {primary_subset!r} and {canary_subset!r}"
            )
        self.subsets: tuple[str, str] | None = None
        if primary_subset is not None and canary_subset is not None:
            self.subsets = (primary_subset, canary_subset)

    @property
    def keys(self) -> tuple[str, str]:
        return self.subsets or (self.primary, self.canary)

    @property
    def key_path(self) -> str:
        return "destination.subset" if self.subsets else "destination.host"

    def describe(self) -> str:
        if self.subsets:
            primary, canary = self.subsets
            return f"{self.kind}: {self.ref} (subsets: primary {primary}, canary {canary})"
        return super().describe()

    def _key(self, backend: Any) -> str | None:
        if not self.subsets:
            return super()._key(backend)
        subset = (
            (backend.get("destination") or {}).get("subset") if isinstance(backend, dict) else None
        )
        return subset if isinstance(subset, str) else None

    def _same_destination_hint(self) -> str:
        return (
            "If the VirtualService splits one host into DestinationRule subsets (Argo "
            "Rollouts' layout), pass primary_subset= and canary_subset= instead."
        )

    def _rules(self, obj: dict[str, Any]) -> tuple[str, ...]:
        spec = obj.get("spec")
        tcp_only = isinstance(spec, dict) and spec.get("tcp") and not spec.get("http")
        return ("spec", "tcp" if tcp_only else "http")

    def _missing_hint(self) -> str:
        return (
            "Pass primary=/canary= if your names differ from Flagger's, or "
            "primary_subset=/canary_subset= for a subset split."
        )


class GatewayAPIRouter(BackendListRouter):
    """Gateway API HTTPRoute (``v1``): ``spec.rules[].backendRefs[]`` by ``name`` (weight
    defaults to 1), in the last rule with both backends, as Flagger's ``GetRoutes``
    (``pkg/router/gateway_api.go``): its A/B rule comes first, its session-affinity
    rules before the weighted one."""

    kind = "gatewayapi"
    resource = Resource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
    rules = ("spec", "rules")
    rule_backends = "backendRefs"
    default_weight = 1


class GatewayAPIv1beta1Router(GatewayAPIRouter):
    """Gateway API HTTPRoute ``v1beta1`` (Flagger's ``gatewayapi:v1beta1``): as ``v1``."""

    kind = "gatewayapi:v1beta1"
    resource = Resource("gateway.networking.k8s.io", "v1beta1", "httproutes", "HTTPRoute")


class SMIRouter(BackendListRouter):
    """SMI TrafficSplit ``v1alpha2`` (OSM, Flagger's ``smi:v1alpha2``): ``spec.backends[]``
    by ``service``, integer weights."""

    kind = "smi"
    resource = Resource("split.smi-spec.io", "v1alpha2", "trafficsplits", "TrafficSplit")
    path = ("spec", "backends")
    name_at = ("service",)


class SMIv1alpha3Router(SMIRouter):
    """SMI TrafficSplit ``v1alpha3``: as ``v1alpha2``."""

    kind = "smi:v1alpha3"
    resource = Resource("split.smi-spec.io", "v1alpha3", "trafficsplits", "TrafficSplit")


class SMIv1alpha1Router(SMIRouter):
    """SMI TrafficSplit ``v1alpha1`` (Flagger's ``linkerd`` provider): weights are
    Kubernetes quantities (``"90"``, ``"500m"``), relative to their total; written back
    as whole percents."""

    kind = "smi:v1alpha1"
    resource = Resource("split.smi-spec.io", "v1alpha1", "trafficsplits", "TrafficSplit")
    relative = True

    def _weight(self, backend: dict[str, Any]) -> Decimal:
        value = backend.get("weight", 0)
        try:
            return parse_quantity(value)
        except ValueError as exc:
            raise ValidationFailed(
                f"{self.ref}: backend {self._key(backend)!r} has weight {value!r}: {exc}"
            ) from None

    def _encode(self, weight: int) -> Any:
        return str(weight)


_QUANTITY = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([a-zA-Z]{0,2}|[eE][+-]?[0-9]+)")
_SUFFIXES = {
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    **{"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1)},
    **{s: Decimal(1000) ** (i + 1) for i, s in enumerate(("k", "M", "G", "T", "P", "E"))},
}


def parse_quantity(value: object) -> Decimal:
    """A non-negative Kubernetes quantity (``100``, ``"500m"``, ``"1.5"``, ``"1e2"``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("expected a quantity such as 100 or '500m'")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError("expected a non-negative quantity")
        return Decimal(str(value))
    match = _QUANTITY.fullmatch(value.strip().lstrip("+"))
    if not match:
        raise ValueError("expected a non-negative quantity such as '100' or '500m'")
    number, suffix = match.groups()
    if suffix[:1] in ("e", "E") and suffix[1:]:
        return Decimal(number) * Decimal(10) ** int(suffix[1:])
    if suffix not in _SUFFIXES:
        raise ValueError(f"unknown quantity suffix {suffix!r}")
    return Decimal(number) * _SUFFIXES[suffix]


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


#: Router kinds, named as Flagger's providers (``linkerd`` is SMI v1alpha1 there,
#: ``osm`` v1alpha2; a mesh suffix as in ``smi:v1alpha2:linkerd`` is ignored).
ROUTERS: dict[str, type[KubeRouter]] = {
    "istio": IstioRouter,
    "gatewayapi": GatewayAPIRouter,
    "gatewayapi:v1": GatewayAPIRouter,
    "gatewayapi:v1beta1": GatewayAPIv1beta1Router,
    "smi": SMIRouter,
    "smi:v1alpha1": SMIv1alpha1Router,
    "smi:v1alpha2": SMIRouter,
    "smi:v1alpha3": SMIv1alpha3Router,
    "linkerd": SMIv1alpha1Router,
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
    primary_subset: str | None = None,
    canary_subset: str | None = None,
) -> KubeRouter:
    """The router for a provider ``kind`` (istio, gatewayapi[:v1|:v1beta1], smi,
    smi:v1alpha1..3, linkerd, osm, nginx, traefik, contour) acting on route ``name`` in
    ``namespace``. Istio takes ``primary_subset``/``canary_subset`` for a subset split.
    See :class:`KubeRouter`."""
    key = kind.lower()
    if key.startswith("smi:"):
        key = ":".join(key.split(":")[:2])  # Flagger's smi:v1alpha2:<mesh>
    try:
        cls = ROUTERS[key]
    except KeyError:
        raise SpecError(
            f"unknown router kind {kind!r}; expected one of {', '.join(sorted(ROUTERS))}"
        ) from None
    subsets = {"primary_subset": primary_subset, "canary_subset": canary_subset}
    if cls is IstioRouter:
        options: dict[str, Any] = subsets
    elif primary_subset is not None or canary_subset is not None:
        raise SpecError(f"subsets are Istio's; router kind {kind!r} takes primary=/canary=")
    else:
        options = {}
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
        **options,
    )
