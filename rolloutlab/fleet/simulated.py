"""A seeded fleet of simulated rollouts with known bad ones, for tests, notebooks and benchmarks.

Each rollout is a simulator recording (:func:`rolloutlab.simulate`); which ones are bad is
the simulator's truth (a canary error rate or latency above the primary's). What the team
knows is kept as a real team would keep it: the outcome as recorded (the old process
rolled the obvious regressions back and, now and then, a healthy canary too) and a
labels CSV (an incident filed for the subtle regressions that were promoted, and "no
incident" for the healthy ones that were rolled back).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from rolloutlab.fleet.dataset import LABELS, Fleet, rollout_id
from rolloutlab.sources.simulate import simulate

SERVICES = ("checkout", "search", "cart", "payments")
#: kind -> (scenario overrides, outcome as recorded, label written)
KINDS: dict[str, tuple[dict, str, str | None]] = {
    "healthy": ({}, "succeeded", None),
    "false-alarm": ({}, "failed", "false"),
    "error-regression": ({"error_ratio": (1.0, 3.0)}, "failed", None),
    "subtle-errors": ({"error_ratio": (1.0, 1.8)}, "succeeded", "true"),
    "latency-regression": ({"latency_shift": (0.0, 0.3)}, "succeeded", "true"),
}
BAD_KINDS = ("error-regression", "subtle-errors", "latency-regression")


def simulated_fleet(
    root: str | Path,
    rollouts: int = 200,
    *,
    bad_share: float = 0.2,
    seed: int = 0,
    duration_min: float = 30.0,
    start: datetime = datetime(2026, 9, 1, 9, 0, tzinfo=UTC),
) -> Fleet:
    """Write ``rollouts`` simulated rollouts (about ``bad_share`` of them bad) to ``root``.

    Every recording carries ``meta["fleet_truth"]`` (its kind and ``bad``), the outcome
    as recorded in ``meta["outcome"]``; the labels go to ``labels.csv``. Same arguments,
    same files.
    """
    rng = np.random.default_rng(seed)
    fleet = Fleet(Path(root))
    bad = rng.random(rollouts) < bad_share
    false_alarm = rng.random(rollouts) < 0.05
    kinds = [
        str(rng.choice(BAD_KINDS)) if b else ("false-alarm" if f else "healthy")
        for b, f in zip(bad, false_alarm, strict=True)
    ]
    recordings, labels = [], ["rollout,incident,link"]
    for k, kind in enumerate(kinds):
        overrides, outcome, label = KINDS[kind]
        service = SERVICES[k % len(SERVICES)]
        at = start + timedelta(hours=6 * k)
        rec = simulate(
            "healthy",
            seed=seed * 1_000_003 + k,
            duration_min=duration_min,
            interval_s=120,
            error_rate=0.004,
            requests_per_min=3000.0,
            start=at,
            **overrides,
        )
        rec.meta.update(
            service=service,
            namespace="shop",
            outcome=outcome,
            fleet_truth={"kind": kind, "bad": kind in BAD_KINDS},
        )
        recordings.append(rec)
        if label is not None:
            first = rec.start
            assert first is not None  # a simulation is never empty
            rollout = rollout_id(service, first)
            labels.append(f"{rollout},{label},https://incidents.example/{rollout}")
    fleet.add(recordings, replace=True)
    (fleet.root / LABELS).write_text("\n".join(labels) + "\n")
    return fleet
