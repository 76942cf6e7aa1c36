"""Charts, notebook displays and reports: where people look at rollouts and experiments.

Chart functions return altair charts (they never display them); :func:`report` writes
one standalone report (HTML, or PDF/PNG printed by Chromium); :func:`save_chart` writes a
chart as PNG or SVG. The names load on first use, so terminal output
(:mod:`rolloutlab.views.terminal`) does not pay for importing altair.
"""

from __future__ import annotations

from rolloutlab._lazy import lazy_names

_LAZY = {
    **dict.fromkeys(
        ("evidence", "latency_cdf", "lift", "scorecard", "split", "srm", "timeline", "timeseries"),
        "rolloutlab.views.charts",
    ),
    **dict.fromkeys(
        ("render_canary", "render_experiment", "report", "save_chart"), "rolloutlab.views.reports"
    ),
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_names(__name__, _LAZY)
