"""Kubernetes plumbing shared by the actuators: the client, object access, retries, Flagger checks.

Everything goes through the official ``kubernetes`` client, imported lazily so that
``import rolloutlab`` stays fast and works without it. Objects are read and patched
through ``CustomObjectsApi``, which serves any ``/apis/<group>/<version>`` resource
(custom ones and built-ins such as Ingress or Deployment alike) as plain dicts.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from rolloutlab.control.audit import AuditLog, Auditor, AuditRecord, OnChange, Outcome
from rolloutlab.errors import ActuationError, ConflictError, ValidationFailed
from rolloutlab.sources.prometheus import Deadline, watch_pools

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

FIELD_MANAGER = "rolloutlab"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})

T = TypeVar("T")
JsonPatch = list[dict[str, Any]]  # named here: inside Kube, ``list`` is Kube.list


def kubernetes() -> ModuleType:
    """The ``kubernetes`` package, or an ImportError that says how to install it."""
    try:
        import kubernetes as module
    except ImportError as exc:
        raise ImportError(
            "rolloutlab.control needs the official Kubernetes client: pip install kubernetes"
        ) from exc
    return module


def load_client(
    client: ApiClient | None = None,
    *,
    context: str | None = None,
    kubeconfig: str | None = None,
) -> ApiClient:
    """An ``ApiClient`` the usual way: ``client`` if given, else kubeconfig, else in-cluster.

    The kubeconfig is ``kubeconfig`` or ``$KUBECONFIG`` or ``~/.kube/config``, with
    ``context`` or its current context. In-cluster config (a pod's service account) is
    tried only when no kubeconfig exists and no context or file was asked for.
    """
    if client is not None:
        return client
    k8s = kubernetes()
    config_exception = k8s.config.ConfigException
    try:
        # $KUBECONFIG is read here, not when kubernetes was imported (its own default).
        path = kubeconfig or os.environ.get("KUBECONFIG")
        return k8s.config.new_client_from_config(config_file=path, context=context)
    except config_exception as exc:
        if context is not None or kubeconfig is not None:
            raise ActuationError(f"cannot load kubeconfig (context={context!r}): {exc}") from exc
        kubeconfig_error = exc
    configuration = k8s.client.Configuration()
    try:
        k8s.config.load_incluster_config(client_configuration=configuration)
    except config_exception as exc:
        raise ActuationError(
            f"no Kubernetes configuration: kubeconfig: {kubeconfig_error}; in-cluster: {exc}. "
            "Set KUBECONFIG, pass context=..., or pass client=kubernetes.client.ApiClient(...)"
        ) from exc
    return k8s.client.ApiClient(configuration)


@dataclass(frozen=True)
class Resource:
    """A namespaced API resource served under ``/apis/<group>/<version>/<plural>``."""

    group: str
    version: str
    plural: str
    kind: str


@dataclass(frozen=True)
class ObjectRef:
    """One object: resource, namespace and name."""

    resource: Resource
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.resource.kind} {self.namespace}/{self.name}"


class Kube:
    """Reads and patches objects as dicts, with rolloutlab's field manager and a timeout.

    ``timeout`` bounds each API call in total (connect, headers and body: a
    :class:`~rolloutlab.sources.prometheus.Deadline`), not only each socket read as the
    client's own ``_request_timeout`` does; a late call raises urllib3's TimeoutError,
    which :func:`retrying` treats as transient. API errors are left to :func:`retrying`,
    except a missing object on read, which is a :class:`ValidationFailed` (nothing to act
    on, so nothing is written).
    """

    def __init__(self, client: ApiClient | None = None, *, timeout: float = 10.0) -> None:
        self.client = load_client(client)
        self.timeout = timeout
        watch_pools(self.client.rest_client.pool_manager)
        self._api = kubernetes().client.CustomObjectsApi(self.client)

    def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One API call within ``timeout`` in total."""
        import urllib3

        late = urllib3.exceptions.TimeoutError(
            f"the API server did not answer within {self.timeout:g} s in total"
        )
        with Deadline(self.timeout, late):
            return method(*args, _request_timeout=self.timeout, **kwargs)

    def get(self, ref: ObjectRef) -> dict[str, Any]:
        """The object, or ValidationFailed if it does not exist."""
        res = ref.resource
        try:
            return self._call(
                self._api.get_namespaced_custom_object,
                res.group,
                res.version,
                ref.namespace,
                res.plural,
                ref.name,
            )
        except kubernetes().client.ApiException as exc:
            if exc.status == 404:
                raise ValidationFailed(
                    f"{ref} not found ({res.group}/{res.version}): {api_message(exc)}; "
                    "check the name and namespace"
                ) from exc
            raise

    def list(self, resource: Resource, namespace: str) -> list[dict[str, Any]]:
        """All objects of ``resource`` in ``namespace``."""
        result = self._call(
            self._api.list_namespaced_custom_object,
            resource.group,
            resource.version,
            namespace,
            resource.plural,
        )
        return list(result.get("items", []))

    def patch(
        self,
        ref: ObjectRef,
        body: dict[str, Any] | JsonPatch,
        *,
        dry_run: bool = False,
        status: bool = False,
    ) -> dict[str, Any]:
        """Patch the object (or its ``/status``); a dict is a merge patch, a list a JSON patch.

        With ``dry_run`` the server runs every stage (admission, validation) but stores
        nothing, and answers with the object as it would be.
        """
        res = ref.resource
        method = (
            self._api.patch_namespaced_custom_object_status
            if status
            else self._api.patch_namespaced_custom_object
        )
        return self._call(
            method,
            res.group,
            res.version,
            ref.namespace,
            res.plural,
            ref.name,
            body,
            dry_run="All" if dry_run else None,
            field_manager=FIELD_MANAGER,
            _content_type=JSON_PATCH if isinstance(body, list) else MERGE_PATCH,
        )


def api_message(exc: Any) -> str:
    """The API server's own message from an ApiException (its Status body), else its reason."""
    body = getattr(exc, "body", None)
    if body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            message = str(body)[:300]
        if message:
            return str(message)
    return str(getattr(exc, "reason", None) or exc)


def retrying(
    attempt: Callable[[], T],
    *,
    what: str,
    retries: int = 4,
    backoff: float = 0.2,
) -> T:
    """Run ``attempt`` (a read-compute-write), re-running it on conflicts and transient errors.

    409 (someone else changed the object: ``attempt`` re-reads it), 429, 500, 502, 503,
    504 and connection errors are retried up to ``retries`` times with exponential
    backoff from ``backoff`` seconds; then ConflictError (409) or ActuationError. Any
    other API error (403, 404, 422, ...) raises ActuationError at once. rolloutlab's
    own errors (refusals) pass through untouched.
    """
    k8s = kubernetes()
    import urllib3

    for number in range(retries + 1):
        try:
            return attempt()
        except k8s.client.ApiException as exc:
            status = exc.status
            detail = f"HTTP {status} {exc.reason}: {api_message(exc)}"
            if status != 409 and status not in TRANSIENT_STATUS:
                raise ActuationError(f"{what} failed: {detail}") from exc
            last: Exception = exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            detail = f"cannot reach the API server: {exc}"
            last = exc
        if number < retries:
            time.sleep(min(backoff * 2**number, 2.0))
    attempts = retries + 1
    if getattr(last, "status", None) == 409:
        raise ConflictError(
            f"{what}: the object kept changing under us ({attempts} attempts): {detail}"
        ) from last
    raise ActuationError(f"{what} failed after {attempts} attempts: {detail}") from last


CANARY = Resource("flagger.app", "v1beta1", "canaries", "Canary")


def flagger_owner(obj: dict[str, Any]) -> str | None:
    """The name of the Flagger Canary that owns ``obj`` (from its ownerReferences), if any."""
    for owner in obj.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("kind") == "Canary" and owner.get("apiVersion", "").startswith("flagger.app/"):
            return owner.get("name")
    return None


def flagger_canary(kube: Kube, namespace: str, names: Iterable[str]) -> str | None:
    """The Flagger Canary in ``namespace`` that manages any of ``names``, if one exists.

    A Canary manages its own name, its ``targetRef``, its ``service.name`` and its
    ``ingressRef``. No Canary CRD (404) counts as none. No right to list them (403) is a
    refusal (ValidationFailed): Flagger is installed and may own the object, and a write
    that fights Flagger is worse than none.
    """
    wanted = set(names)
    try:
        canaries = kube.list(CANARY, namespace)
    except kubernetes().client.ApiException as exc:
        if exc.status == 404:
            return None
        if exc.status == 403:
            raise ValidationFailed(
                f"cannot list Flagger Canaries in namespace {namespace} (HTTP 403: "
                f"{api_message(exc)}), so rolloutlab cannot tell whether Flagger manages "
                f"{', '.join(sorted(wanted))}; nothing was written. Grant this identity "
                "'list' on canaries.flagger.app in that namespace"
            ) from exc
        raise
    for canary in canaries:
        spec = canary.get("spec") or {}
        managed = {
            canary.get("metadata", {}).get("name"),
            (spec.get("targetRef") or {}).get("name"),
            (spec.get("service") or {}).get("name"),
            (spec.get("ingressRef") or {}).get("name"),
        }
        if wanted & managed:
            return canary["metadata"]["name"]
    return None


def flagger_refusal(what: str, canary: str, namespace: str) -> ValidationFailed:
    """The refusal for acting on something a Flagger Canary manages."""
    return ValidationFailed(
        f"{what} is managed by Flagger (Canary {namespace}/{canary}); rolloutlab will not fight "
        "Flagger over it. Steer Flagger instead: FlaggerGates("
        f"{canary!r}, {namespace!r}) opens the confirm-promotion gate or requests a rollback "
        "through Flagger's loadtester."
    )


class ClusterActor:
    """What every actor on the cluster shares: a client, the audit trail, bounded retries.

    Routers, Argo Rollouts and Deployment canaries take the same connection options
    (``client``, ``audit``, ``on_change``, ``retries``, ``backoff``, ``timeout``); this
    holds them once.
    """

    def __init__(
        self,
        *,
        client: ApiClient | None = None,
        audit: AuditLog | None = None,
        on_change: OnChange | None = None,
        retries: int = 4,
        backoff: float = 0.2,
        timeout: float = 10.0,
    ) -> None:
        self.retries = retries
        self.backoff = backoff
        self._kube = Kube(client, timeout=timeout)
        self._audit = Auditor(audit, on_change)

    def _retrying(self, attempt: Callable[[], T], what: str) -> T:
        """``attempt()`` with this actor's retry policy; ``what`` names it in errors."""
        return retrying(attempt, what=what, retries=self.retries, backoff=self.backoff)

    def _settle(
        self,
        intent: AuditRecord,
        error: Exception,
        state: Callable[[], Any],
        *,
        planned: Any = None,
    ) -> AuditRecord:
        """Record the outcome of a write that raised ``error``, from a fresh read of the
        object (``state()``): ``failed`` if it is as before, ``applied`` if it is as
        ``planned`` (default: the intent's ``after``), else ``partial``; ``unknown`` if it
        cannot be read. Raises :class:`AuditFailed` if even that cannot be recorded."""
        planned = intent.after if planned is None else planned
        try:
            now = state()
        except Exception as exc:  # the server is failing: say what we do not know
            return self._audit.outcome(
                intent.resolved(
                    "unknown", after=None, note=f"{error}; re-reading the object failed: {exc}"
                )
            )
        outcome: Outcome = (
            "failed" if now == intent.before else "applied" if now == planned else "partial"
        )
        return self._audit.outcome(intent.resolved(outcome, after=now, note=str(error)))
