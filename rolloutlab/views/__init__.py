"""Charts, notebook displays and reports: where people look at rollouts and experiments.

Chart functions return altair charts (they never display them); :func:`report` writes
one standalone report (HTML, or PDF/PNG printed by Chromium); :func:`save_chart` writes a chart as PNG or SVG.
"""

from __future__ import annotations

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
