"""Flagger's own series: the weight timeline that really happened, and what its analysis saw.

Flagger exports (``pkg/metrics/recorder.go``):

- ``flagger_canary_weight{workload, namespace}``: the weight of ``<target>-primary`` and of
  ``<target>`` (the canary), set at every tick;
- ``flagger_canary_status{name, namespace}``: 0 while progressing, 1 otherwise (succeeded,
  promoting, ...), 2 failed;
- ``flagger_canary_metric_analysis{name, namespace, metric}``: the last value of each
  analysis metric as Flagger checked it: request-success-rate in %, request-duration in
  **seconds** (the controller records ``val.Seconds()`` of the whole-millisecond
  duration it compares with ``thresholdRange``, in ``pkg/controller/scheduler_metrics.go``),
  a template metric as its query returned it.

In a recording they become gauges: ``weight`` per variant (so a replay follows the real
timeline), and on the canary ``flagger_status`` and ``flagger:<metric>`` (what Flagger saw);
the recording's ``flagger_analysis_units`` meta names the built-in metrics' units.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from rolloutlab.errors import EmptyResult
from rolloutlab.sources.presets import promql_string, regex_escape
from rolloutlab.sources.promjson import matrix_to_frame
from rolloutlab.sources.recording import Recording

STATUS_METRIC = "flagger_status"
ANALYSIS_PREFIX = "flagger:"
#: Units of the built-in metrics in ``flagger_canary_metric_analysis``.
ANALYSIS_UNITS = {"request-success-rate": "%", "request-duration": "s"}


def queries(target: str, namespace: str) -> dict[str, str]:
    """The three PromQL queries for ``target`` in ``namespace``."""
    ns, name = promql_string(namespace), promql_string(target)
    workloads = promql_string(f"{regex_escape(target)}|{regex_escape(target)}-primary")
    return {
        "weight": f"max by (workload) (flagger_canary_weight{{namespace={ns}, workload=~{workloads}}})",
        "status": f"max(flagger_canary_status{{namespace={ns}, name={name}}})",
        "analysis": (
            f"max by (metric) (flagger_canary_metric_analysis{{namespace={ns}, name={name}}})"
        ),
    }


def fetch_flagger(
    prometheus: Any, *, target: str, namespace: str, start: Any, end: Any, step: Any
) -> tuple[pl.DataFrame, dict[str, str]]:
    """Flagger's series for one canary as tidy rows, and the queries used.

    Raises :class:`EmptyResult` when Flagger's weight series is absent (Flagger's own
    metrics endpoint is not scraped, or the names are wrong).
    """
    q = queries(target, namespace)
    variant_of = {f"{target}-primary": "primary", target: "canary"}
    weight = prometheus.query_range(q["weight"], start, end, step)
    weight = [s for s in weight if s.get("metric", {}).get("workload") in variant_of]
    if not weight:
        raise EmptyResult(
            f"{prometheus.url}: no flagger_canary_weight for workload {target!r} in namespace "
            f"{namespace!r} between {start} and {end}. Is Flagger's metrics endpoint scraped, "
            f"and is {target!r} the Canary's targetRef name?\n  query: {q['weight']}"
        )
    status = prometheus.query_range(q["status"], start, end, step)
    analysis = prometheus.query_range(q["analysis"], start, end, step)
    parts = [
        matrix_to_frame(
            weight,
            variants=[variant_of[s["metric"]["workload"]] for s in weight],
            metric="weight",
            kind="gauge",
            source=f"{prometheus.url} (flagger weight)",
        ),
        matrix_to_frame(
            status,
            variants=["canary"] * len(status),
            metric=STATUS_METRIC,
            kind="gauge",
            source=f"{prometheus.url} (flagger status)",
        ),
        matrix_to_frame(
            analysis,
            variants=["canary"] * len(analysis),
            metric=[ANALYSIS_PREFIX + s.get("metric", {}).get("metric", "?") for s in analysis],
            kind="gauge",
            source=f"{prometheus.url} (flagger analysis)",
        ),
    ]
    return pl.concat([p for p in parts if p.height], how="vertical_relaxed"), q


def with_flagger(
    recording: Recording, prometheus: Any, *, target: str, namespace: str, step: Any
) -> Recording:
    """``recording`` plus Flagger's series over the same span (any weight rows replaced)."""
    rows, used = fetch_flagger(
        prometheus,
        target=target,
        namespace=namespace,
        start=recording.meta.get("start") or recording.start,
        end=recording.meta.get("end") or recording.end,
        step=step,
    )
    kept = recording.frame.filter(pl.col("metric") != "weight")
    units = {ANALYSIS_PREFIX + name: unit for name, unit in ANALYSIS_UNITS.items()}
    meta = {**recording.meta, "flagger_queries": used, "flagger_analysis_units": units}
    return Recording(pl.concat([kept, rows], how="vertical_relaxed"), meta)
