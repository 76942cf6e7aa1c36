"""Specs from manifests as they sit in a GitOps folder: Flagger and Argo Rollouts.

:func:`load_manifests` reads a file (one or several YAML documents) or a folder (every
``*.yaml``, ``*.yml`` and ``*.json`` below it) and builds one :class:`Spec` from:

- a Flagger ``Canary`` and the ``MetricTemplate`` objects its metrics reference (by name,
  in ``templateRef.namespace`` or else the Canary's namespace; a template written without
  a namespace matches by name, as ``kubectl apply -n`` or kustomize would place it);
- an Argo Rollouts ``Rollout`` (canary steps, step and background analysis,
  ``trafficRouting``) and the ``AnalysisTemplate`` / ``ClusterAnalysisTemplate`` objects
  it names;
- a Kayenta canary config (JSON or YAML) and the execution request giving its scopes
  (:mod:`rolloutlab.specs.kayenta`);
- or a rolloutlab spec (a mapping without ``kind``).

Other objects (Deployments, Services, Kustomizations, ...) are skipped, and so are files
that are not plain YAML (Helm templates, with a :class:`ManifestWarning`). A Canary given
alone, with no MetricTemplate at all, keeps its template metrics unresolved (the
recording must hold them); once templates are given, a reference to one that is missing
is an error. Template queries are rendered twice, for the canary and for the primary
(Flagger: ``{{ target }}`` is ``<target>`` and ``<target>-primary``; Argo: an argument
naming the Rollout's ``canaryService`` names its ``stableService`` for the primary), so
the metric can be fetched per variant. Templates of providers rolloutlab cannot query
(Datadog, a Job, a web hook, ...) are left out, named in one :class:`ManifestWarning`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rolloutlab.errors import SpecError
from rolloutlab.specs.argo import ARGO_API, ARGO_TEMPLATES, rollout_spec
from rolloutlab.specs.documents import Document, parse_documents, read_documents
from rolloutlab.specs.flagger import (
    FLAGGER_API,
    FLAGGER_TEMPLATE,
    canary_spec,
    canary_with_templates,
)
from rolloutlab.specs.kayenta import (
    is_kayenta_config,
    is_kayenta_request,
    kayenta_spec,
    kayenta_with_request,
)
from rolloutlab.specs.model import Spec
from rolloutlab.specs.native import _from_rolloutlab
from rolloutlab.specs.schema import check_duration


def load_manifests(path: str | Path, *, name: str | None = None) -> Spec:
    """The spec held by a file or folder of manifests (see the module docstring)."""
    path = Path(path)
    return spec_from_documents(read_documents(path), source=str(path), name=name)


def spec_from_documents(docs: Sequence[Document], *, source: str, name: str | None = None) -> Spec:
    """The one Canary, Rollout or rolloutlab spec among ``docs``, with its templates.

    ``name`` picks one when there are several. Beside a Canary or Rollout, documents
    without ``kind`` (Helm values, other tools' files) and non-mappings are ignored.
    """
    if not docs:
        raise SpecError(f"{source}: the YAML is empty. Give a rolloutlab spec or a Canary.")
    if len(docs) == 1 and not isinstance(docs[0].data, Mapping):
        raise SpecError(
            f"{docs[0].where}: expected a mapping (a rolloutlab spec, a Flagger Canary or an "
            f"Argo Rollout), got {type(docs[0].data).__name__} {docs[0].data!r:.200}. If this is a "
            "file path, check it exists."
        )
    docs = [d for d in docs if isinstance(d.data, Mapping)]
    mains = [d for d in docs if _is_canary(d) or _is_rollout(d) or is_kayenta_config(d.data)]
    mains = mains or [d for d in docs if not (d.kind or d.api or is_kayenta_request(d.data))]
    if name is not None:
        mains = [d for d in mains if d.name == name]
    if len(mains) != 1:
        raise SpecError(_not_one(docs, mains, source, name))
    main = mains[0]
    with _shape_errors(main):
        if _is_canary(main):
            spec = canary_with_templates(main, [d for d in docs if _is_flagger_template(d)])
        elif _is_rollout(main):
            spec = rollout_spec(main, [d for d in docs if _is_argo_template(d)])
        elif is_kayenta_config(main.data):
            spec = kayenta_with_request(main, docs)
        else:
            spec = _from_rolloutlab(main.data)
    return _within_bounds(spec, main.where)


@contextmanager
def _shape_errors(doc: Document) -> Iterator[None]:
    """Turn what slipped past the readers' own checks into a SpecError naming ``doc``, so
    that a manifest of the wrong shape is never a traceback."""
    try:
        yield
    except SpecError:
        raise
    except (AttributeError, TypeError, KeyError, IndexError, ValueError, OverflowError) as exc:
        raise SpecError(
            f"{doc.label}: a field has the wrong shape ({type(exc).__name__}: "
            f"{str(exc)[:200]}). Compare it with the {doc.kind or 'rolloutlab spec'} "
            "reference: a mapping where one is expected, a list where a list is."
        ) from None


def _within_bounds(spec: Spec, where: str) -> Spec:
    """``spec`` once its intervals and durations are known sane, whatever format it came
    from (an interval of 1 ms would cut a recording into billions of ticks)."""
    check_duration(spec.interval_s, f"{where}: interval")
    check_duration(spec.max_analysis_s, f"{where}: maxAnalysisTime")
    check_duration(spec.kayenta.judgment_interval_s, f"{where}: kayenta.judgmentInterval")
    check_duration(spec.kayenta.lifetime_s, f"{where}: kayenta.lifetime")
    for metric in spec.metrics:
        check_duration(metric.interval_s, f"{where}: metric {metric.name!r} interval")
    return spec


def _is_canary(doc: Document) -> bool:
    return doc.kind == "Canary"


def _is_flagger_template(doc: Document) -> bool:
    return doc.kind == FLAGGER_TEMPLATE and doc.api.startswith(FLAGGER_API)


def _is_rollout(doc: Document) -> bool:
    return doc.kind == "Rollout" and doc.api.startswith(ARGO_API)


def _is_argo_template(doc: Document) -> bool:
    return doc.kind in ARGO_TEMPLATES and doc.api.startswith(ARGO_API)


def _not_one(docs: Sequence[Document], mains: Sequence[Document], source: str, name: str | None):
    """Why no single spec was found among ``docs``, and what to give instead."""
    templates = [d for d in docs if _is_flagger_template(d) or _is_argo_template(d)]
    if mains:
        listed = "; ".join(d.label for d in mains)
        if len({d.name for d in mains}) < len(mains):  # a kustomize base and its overlays
            return (
                f"{source}: {len(mains)} specs to choose from, under one name: {listed}. "
                "Give the file or folder holding the one you mean; for a kustomize overlay, "
                "render it first (kustomize build DIR > rendered.yaml) and give the output."
            )
        return (
            f"{source}: {len(mains)} specs to choose from: {listed}. Pick one with "
            "Spec.load(path, name=...), or give a folder or file holding only one."
        )
    if name is not None:
        return f"{source}: no Canary, Rollout or rolloutlab spec named {name!r}. Check the name."
    if templates and len(templates) == len(docs):
        kinds = sorted({d.kind for d in templates})
        names = ", ".join(str(d.name) for d in templates)
        what = "the Canary" if FLAGGER_TEMPLATE in kinds else "the Rollout"
        return (
            f"{source} holds only {' and '.join(kinds)} objects ({names}): templates say how "
            f"to measure a metric, not what to roll out. Give them together with {what} that "
            "references them: a folder, or a multi-document file, holding both."
        )
    kinds = sorted({d.kind or "(no kind)" for d in docs})
    return (
        f"{source}: no Flagger Canary, Argo Rollout or rolloutlab spec among {len(docs)} "
        f"documents (kinds: {', '.join(kinds)}). Add the Canary or Rollout to judge."
    )


def spec_from_mapping(data: Any) -> Spec:
    """A spec from one mapping: a Canary, a Rollout or rolloutlab's own schema."""
    if not isinstance(data, Mapping):
        raise SpecError(f"expected a mapping for the spec, got {type(data).__name__}.")
    kind, api = data.get("kind"), str(data.get("apiVersion", ""))
    if data.get("kind") or data.get("apiVersion"):
        if kind == "Canary" or (api.startswith(FLAGGER_API) and kind != FLAGGER_TEMPLATE):
            with _shape_errors(Document(data, "<dict>")):
                return _within_bounds(canary_spec(data), "<dict>")
        return spec_from_documents([Document(data, "<dict>")], source="<dict>")
    with _shape_errors(Document(data, "<dict>")):
        if is_kayenta_config(data):
            return _within_bounds(kayenta_spec(data, where="<dict>"), "<dict>")
        return _within_bounds(_from_rolloutlab(data), "<dict>")


def load_text(text: str, *, source: str = "<yaml>", name: str | None = None) -> Spec:
    """A spec from YAML text of one or several documents."""
    return spec_from_documents(parse_documents(text, source), source=source, name=name)
