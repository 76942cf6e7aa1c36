"""rolloutlab: judge and steer progressive delivery (canary, A/B) from a notebook.

The public API is the names in ``__all__``; each loads on first use, so
``import rolloutlab`` stays fast and optional heavy parts (kubernetes, ipywidgets)
are only imported when asked for.
"""

from __future__ import annotations

from rolloutlab._lazy import lazy_names
from rolloutlab.errors import (
    ActuationError,
    DataError,
    QueryError,
    RolloutlabError,
    SourceError,
    SpecError,
)

__version__ = "0.1.0"

_LAZY = {
    # data: recordings, the live source, the simulator
    "Recording": "rolloutlab.sources.recording",
    "load": "rolloutlab.sources.recording",
    "Prometheus": "rolloutlab.sources.prometheus",
    "fetch": "rolloutlab.sources.prometheus",
    "PrometheusServer": "rolloutlab.sources.promserver",
    "simulate": "rolloutlab.sources.simulate",
    "Scenario": "rolloutlab.sources.simulate",
    # decisions
    "Spec": "rolloutlab.judges",
    "Verdict": "rolloutlab.judges",
    "judge": "rolloutlab.judges",
    "experiment": "rolloutlab.experiments",
    "ExperimentReport": "rolloutlab.experiments",
    "ExperimentSpec": "rolloutlab.experiments",
    "plan": "rolloutlab.experiments",
    "Plan": "rolloutlab.experiments",
    "replay": "rolloutlab.postmortem",
    "Replay": "rolloutlab.postmortem",
    # looking
    "report": "rolloutlab.views",
    # acting
    "router": "rolloutlab.control.routers",
    "AuditLog": "rolloutlab.control.audit",
    "Rollout": "rolloutlab.control.loop",
    "LiveDemo": "rolloutlab.control.local",
    "Panel": "rolloutlab.widgets",
}

__all__ = [
    "ActuationError",
    "DataError",
    "QueryError",
    "RolloutlabError",
    "SourceError",
    "SpecError",
    "__version__",
    *_LAZY,
]


__getattr__, __dir__ = lazy_names(__name__, _LAZY)
