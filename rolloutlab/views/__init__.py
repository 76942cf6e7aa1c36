"""Charts, notebook displays and reports: where people look at rollouts and experiments.

Chart functions return altair charts (they never display them); :func:`report` writes
one standalone report (HTML, or PDF/PNG printed by Chromium); :func:`save_chart` writes a
chart as PNG or SVG. The names load on first use, so the terminal views (``views.terminal``,
``views.metrics``) do not pay altair's import.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rolloutlab.views.charts import (
        evidence,
        latency_cdf,
        lift,
        scorecard,
        split,
        srm,
        timeline,
        timeseries,
    )
    from rolloutlab.views.report import render_canary, render_experiment, report, save_chart

__all__ = [
    "evidence",
    "latency_cdf",
    "lift",
    "render_canary",
    "render_experiment",
    "report",
    "save_chart",
    "scorecard",
    "split",
    "srm",
    "timeline",
    "timeseries",
]
_REPORT = frozenset({"render_canary", "render_experiment", "report", "save_chart"})


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'rolloutlab.views' has no attribute {name!r}")
    module = "rolloutlab.views.report" if name in _REPORT else "rolloutlab.views.charts"
    return getattr(import_module(module), name)
