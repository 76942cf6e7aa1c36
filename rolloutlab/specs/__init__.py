"""What to judge and how: one :class:`Spec` model, read from rolloutlab's YAML, Flagger
(Canary + MetricTemplates), Argo Rollouts (Rollout + AnalysisTemplates) manifests and
Kayenta canary configs, as files, multi-document files or GitOps folders, validated once.

Modules: :mod:`~rolloutlab.specs.model` (the dataclasses), :mod:`~rolloutlab.specs.schema`
(fields and value parsers, the one validation path), :mod:`~rolloutlab.specs.native`
(rolloutlab's YAML, reading and writing), :mod:`~rolloutlab.specs.flagger`,
:mod:`~rolloutlab.specs.argo`, :mod:`~rolloutlab.specs.kayenta` (Kayenta canary configs),
:mod:`~rolloutlab.specs.documents` (files and folders),
:mod:`~rolloutlab.specs.loading` (which format a document is),
:mod:`~rolloutlab.specs.kube` (the same manifests read from a cluster) and
:mod:`~rolloutlab.specs.fetch` (fetching what a spec judges).
"""

from __future__ import annotations

from rolloutlab.durations import format_duration, parse_duration
from rolloutlab.specs.documents import ManifestWarning
from rolloutlab.specs.loading import load_manifests
from rolloutlab.specs.model import (
    BUILTIN_METRICS,
    DEFAULT_PROMOTION_MARGIN,
    JUDGE_NAMES,
    ROUTER_KINDS,
    KayentaSettings,
    MetricSpec,
    Spec,
    default_metrics,
)

__all__ = [
    "BUILTIN_METRICS",
    "DEFAULT_PROMOTION_MARGIN",
    "JUDGE_NAMES",
    "ROUTER_KINDS",
    "KayentaSettings",
    "ManifestWarning",
    "MetricSpec",
    "Spec",
    "default_metrics",
    "format_duration",
    "load_manifests",
    "parse_duration",
]
