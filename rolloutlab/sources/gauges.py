"""Per-variant gauge queries (a Flagger MetricTemplate's or Argo AnalysisTemplate's query,
rendered once per variant) fetched as one value per tick and added to a recording."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import polars as pl

from rolloutlab import frames
from rolloutlab.errors import QueryError
from rolloutlab.sources.prometheus import PartialDataWarning
from rolloutlab.sources.recording import Recording

#: metric name -> ((variant, PromQL), ...)
GaugeQueries = Mapping[str, Sequence[tuple[str, str]]]


def fetch_gauges(
    prometheus: Any,
    queries: GaugeQueries,
    *,
    start: Any,
    end: Any,
    step: Any,
    empty: Literal["raise", "warn"] = "raise",
) -> pl.DataFrame:
    """One ``gauge`` row per metric, variant and step from ``prometheus.query_range``.

    A query is expected to return one series; when it returns several, the last one is
    used, as Flagger does, with a :class:`PartialDataWarning` saying so. A query that
    returns nothing at all is a :class:`QueryError` naming the metric and variant, or with
    ``empty="warn"`` (the live loop) a :class:`PartialDataWarning`, the metric reading as
    no data for that variant (Flagger halts the advancement then).
    """
    parts = []
    for metric, per_variant in queries.items():
        for variant, query in per_variant:
            series = prometheus.query_range(query, start, end, step)
            if not series:
                problem = (
                    f"template metric {metric!r} ({variant}): no series for {query!r} between "
                    f"{start} and {end}"
                )
                if empty == "raise":
                    raise QueryError(
                        f"{problem}. Run the query in Prometheus and check its labels."
                    )
                warnings.warn(f"{problem}: read as no data", PartialDataWarning, stacklevel=2)
                continue
            if len(series) > 1:
                warnings.warn(
                    f"template metric {metric!r} ({variant}) returned {len(series)} series; "
                    "the last one is used, as Flagger does. Aggregate the query (sum, max) "
                    "to make it one.",
                    PartialDataWarning,
                    stacklevel=2,
                )
            values = series[-1]["values"]
            parts.append(
                pl.DataFrame(
                    {
                        "timestamp": [datetime.fromtimestamp(float(t), UTC) for t, _ in values],
                        "variant": variant,
                        "metric": metric,
                        "kind": "gauge",
                        "le": None,
                        "value": [float(v) for _, v in values],
                    },
                    schema=frames.SCHEMA,
                )
            )
    return pl.concat(parts, how="vertical") if parts else frames.empty()


def with_gauges(
    recording: Recording,
    prometheus: Any,
    queries: GaugeQueries,
    *,
    step: Any,
    empty: Literal["raise", "warn"] = "raise",
) -> Recording:
    """``recording`` plus the gauges of ``queries`` over the same span (``empty`` as in
    :func:`fetch_gauges`)."""
    rows = fetch_gauges(
        prometheus,
        queries,
        start=recording.meta.get("start") or recording.start,
        end=recording.meta.get("end") or recording.end,
        step=step,
        empty=empty,
    )
    kept = recording.frame.filter(~pl.col("metric").is_in(list(queries)))
    used = {m: dict(per_variant) for m, per_variant in queries.items()}
    meta = {**recording.meta, "template_queries": used}
    return Recording(pl.concat([kept, rows], how="vertical_relaxed"), meta)


__all__ = ["GaugeQueries", "fetch_gauges", "with_gauges"]
