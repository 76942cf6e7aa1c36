"""Fleet replay: every past rollout of an organisation, judged under candidate specs.

A post-mortem asks what a spec would have done on one rollout; a fleet replay asks it of
all of them, to calibrate a policy: how many bad releases it stops, how many good ones it
holds back, how much slower releases get. :class:`Fleet` is the partitioned dataset,
:func:`replay` runs the candidates on an engine (local processes, or Ray), and
:meth:`FleetReplay.calibration` is the answer.
"""

from __future__ import annotations

from rolloutlab.fleet.calibration import calibration
from rolloutlab.fleet.collect import collect, find_rollouts
from rolloutlab.fleet.dataset import Fleet, read_labels, recorded_outcome
from rolloutlab.fleet.replays import FleetReplay, open_results, plan, replay
from rolloutlab.fleet.simulated import simulated_fleet

__all__ = [
    "Fleet",
    "FleetReplay",
    "calibration",
    "collect",
    "find_rollouts",
    "open_results",
    "plan",
    "read_labels",
    "recorded_outcome",
    "replay",
    "simulated_fleet",
]
