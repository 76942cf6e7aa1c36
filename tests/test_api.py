"""The public API is curated: this pins it, and checks it loads lazily and completely."""

from __future__ import annotations

import subprocess
import sys

import rolloutlab

PUBLIC = {
    "ActuationError",
    "AuditLog",
    "ExperimentReport",
    "ExperimentSpec",
    "LiveDemo",
    "Panel",
    "Plan",
    "Prometheus",
    "PrometheusServer",
    "Replay",
    "Rollout",
    "Spec",
    "Verdict",
    "experiment",
    "fetch",
    "judge",
    "plan",
    "replay",
    "report",
    "router",
    "DataError",
    "QueryError",
    "Recording",
    "RolloutlabError",
    "Scenario",
    "SourceError",
    "SpecError",
    "__version__",
    "load",
    "simulate",
}


def test_all_is_pinned():
    assert set(rolloutlab.__all__) == PUBLIC


def test_every_public_name_resolves():
    for name in rolloutlab.__all__:
        assert getattr(rolloutlab, name) is not None


def test_import_is_light():
    code = "import sys, rolloutlab; print(sorted(m for m in ('polars','scipy','kubernetes','ipywidgets','altair') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
