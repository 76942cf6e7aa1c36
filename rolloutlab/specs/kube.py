"""Specs read from a cluster: a Flagger Canary or an Argo Rollout and the templates it
references, got through the official ``kubernetes`` client (``CustomObjectsApi``) and
built into a :class:`Spec` by the same code that reads them from files."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from rolloutlab.control.kube import Resource, kubernetes, load_client
from rolloutlab.errors import ActuationError, SpecError
from rolloutlab.specs.documents import Document
from rolloutlab.specs.loading import spec_from_documents
from rolloutlab.specs.model import Spec

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


CANARY = Resource("flagger.app", "v1beta1", "canaries", "Canary")
METRIC_TEMPLATE = Resource("flagger.app", "v1beta1", "metrictemplates", "MetricTemplate")
ROLLOUT = Resource("argoproj.io", "v1alpha1", "rollouts", "Rollout")
ANALYSIS_TEMPLATE = Resource("argoproj.io", "v1alpha1", "analysistemplates", "AnalysisTemplate")
CLUSTER_ANALYSIS_TEMPLATE = Resource(
    "argoproj.io", "v1alpha1", "clusteranalysistemplates", "ClusterAnalysisTemplate"
)
#: What ``kind/NAME`` may say before the name.
MAINS = {"canary": CANARY, "rollout": ROLLOUT}


def load_from_cluster(
    name: str,
    namespace: str = "default",
    *,
    client: ApiClient | None = None,
    context: str | None = None,
    kubeconfig: str | None = None,
) -> Spec:
    """The spec of the Canary or Rollout ``name`` (or ``canary/NAME``, ``rollout/NAME``)
    in ``namespace``, with the templates it references, read from the cluster.

    The client is ``client``, else made from kubeconfig (``context``, ``kubeconfig``) or
    in-cluster config. Only ``get`` is used: read-only access is enough.
    """
    api = _Api(load_client(client, context=context, kubeconfig=kubeconfig))
    main = _main(api, name, namespace)
    templates = [_template(api, main, *ref) for ref in _references(main)]
    return spec_from_documents([main, *templates], source=f"cluster namespace {namespace}")


class _Api:
    """``CustomObjectsApi`` gets, with the API's errors said in rolloutlab's terms."""

    def __init__(self, client: ApiClient) -> None:
        k8s = kubernetes()
        self.objects = k8s.client.CustomObjectsApi(client)
        self.api_error = k8s.client.ApiException

    def get(self, resource: Resource, name: str, namespace: str | None) -> Document | None:
        """The object as a Document, or None when the API answers 404."""
        try:
            if namespace is None:
                data = self.objects.get_cluster_custom_object(
                    resource.group, resource.version, resource.plural, name
                )
            else:
                data = self.objects.get_namespaced_custom_object(
                    resource.group, resource.version, namespace, resource.plural, name
                )
        except self.api_error as exc:
            if exc.status == 404:
                return None
            raise self._error(exc, "get", resource, namespace) from None
        where = f"{resource.kind} {namespace + '/' if namespace else ''}{name} (cluster)"
        return Document(
            {**data, "apiVersion": f"{resource.group}/{resource.version}", "kind": resource.kind},
            where,
        )

    def names(self, resource: Resource, namespace: str) -> list[str]:
        """Names of ``resource`` objects in ``namespace`` (none if the type is not served)."""
        try:
            listed = self.objects.list_namespaced_custom_object(
                resource.group, resource.version, namespace, resource.plural
            )
        except self.api_error as exc:
            if exc.status == 404:
                return []
            raise self._error(exc, "list", resource, namespace) from None
        return sorted(str((item.get("metadata") or {}).get("name")) for item in listed["items"])

    def _error(self, exc: Any, verb: str, resource: Resource, namespace: str | None):
        scope = f"in namespace {namespace}" if namespace else "cluster-wide"
        what = f"{verb} {resource.plural}.{resource.group} {scope}"
        if exc.status in (401, 403):
            role = "Role" if namespace else "ClusterRole"
            return ActuationError(
                f"the Kubernetes API refused to {what} ({exc.status} {exc.reason}). rolloutlab "
                f"only reads: grant a {role} with verbs get, list on {resource.plural} "
                f"(apiGroups: {resource.group})."
            )
        return ActuationError(f"cannot {what}: {exc.status} {exc.reason}: {exc.body}")


def _main(api: _Api, name: str, namespace: str) -> Document:
    """The Canary or Rollout named ``name``; not found says what the namespace holds."""
    kind, _, bare = name.rpartition("/")
    if kind and kind.lower() not in MAINS:
        raise SpecError(f"{name!r}: expected NAME, canary/NAME or rollout/NAME.")
    kinds = [MAINS[kind.lower()]] if kind else list(MAINS.values())
    found = [doc for r in kinds if (doc := api.get(r, bare, namespace)) is not None]
    if len(found) == 1:
        return found[0]
    if found:
        raise SpecError(
            f"both a Canary and a Rollout are named {bare} in namespace {namespace}: "
            f"give canary/{bare} or rollout/{bare}."
        )
    held = [f"{r.kind} {n}" for r in MAINS.values() for n in api.names(r, namespace)]
    there = ", ".join(held) if held else "no Canary or Rollout"
    raise SpecError(
        f"no {' or '.join(r.kind for r in kinds)} named {bare} in namespace {namespace} "
        f"(it holds {there}). Check the name and --namespace."
    )


def _references(main: Document) -> Iterator[tuple[Resource, str, str | None]]:
    """(resource, name, namespace) of every template ``main`` references, once each."""
    body = main.data.get("spec") or {}
    namespace = main.meta.get("namespace")
    refs: list[tuple[Resource, str, str | None]] = []
    if main.kind == CANARY.kind:
        analysis = body.get("analysis") or body.get("canaryAnalysis") or {}
        for metric in analysis.get("metrics") or []:
            ref = metric.get("templateRef") if isinstance(metric, Mapping) else None
            if isinstance(ref, Mapping) and ref.get("name"):
                refs.append((METRIC_TEMPLATE, ref["name"], ref.get("namespace") or namespace))
    else:
        canary = (body.get("strategy") or {}).get("canary") or {}
        analyses = [s.get("analysis") for s in canary.get("steps") or [] if "analysis" in s]
        for analysis in [*analyses, canary.get("analysis")]:
            for ref in (analysis or {}).get("templates") or []:
                if ref.get("clusterScope"):
                    refs.append((CLUSTER_ANALYSIS_TEMPLATE, ref.get("templateName"), None))
                else:
                    refs.append((ANALYSIS_TEMPLATE, ref.get("templateName"), namespace))
    return iter(dict.fromkeys(refs))


def _template(
    api: _Api, main: Document, resource: Resource, name: str, namespace: str | None
) -> Document:
    """A referenced template; missing, an error naming it."""
    doc = api.get(resource, name, namespace)
    if doc is None:
        where = f"{namespace}/{name}" if namespace else name
        raise SpecError(
            f"{main.where}: references {resource.kind} {where}, which is not in the cluster. "
            f"Apply the template, or fix the reference."
        )
    return doc
