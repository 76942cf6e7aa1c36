"""Charts, notebook displays and reports: where people look at rollouts and experiments.

Chart functions return altair charts (they never display them); :func:`report` writes
one standalone report (HTML, or PDF/PNG printed by Chromium); :func:`save_chart` writes a
chart as PNG or SVG. The names load on first use, so terminal output
(:mod:`rolloutlab.views.terminal`) does not pay for importing altair.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rolloutlab.views' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *globals()})
