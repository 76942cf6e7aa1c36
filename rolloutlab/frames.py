"""The tidy recording schema (format v1), its validation, and small polars helpers.

A recording holds one row per observation::

    timestamp  Datetime(us, UTC)  end of the step window
    variant    str                primary / canary, or an experiment's arm names
    metric     str                requests, errors, latency_ms, weight, or any other name
    kind       str                counter (increase over the step), gauge (a level),
                                  bucket (increase of a histogram bucket, cumulative by le)
    le         float | null       bucket upper bound (inf allowed); null for other kinds
    value      float
    segment    str | null         optional: an experiment's segment (region, platform, plan)

Validation happens once, at the boundary (loading, fetching); everything after it
may assume a valid frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast

import numpy as np
import polars as pl

from rolloutlab.errors import DataError

FORMAT_VERSION = 1

SCHEMA: dict[str, pl.DataType] = {
    "timestamp": pl.Datetime("us", "UTC"),
    "variant": pl.String(),
    "metric": pl.String(),
    "kind": pl.String(),
    "le": pl.Float64(),
    "value": pl.Float64(),
}
COLUMNS = tuple(SCHEMA)
KINDS = ("counter", "gauge", "bucket")
CANONICAL_METRICS = ("requests", "errors", "latency_ms", "weight")


def empty() -> pl.DataFrame:
    """A frame with the recording schema and no rows."""
    return pl.DataFrame(schema=SCHEMA)


#: Timestamps a recording may hold: from the Unix epoch to the year 2200 (a NaN, a
#: 1e300 or a year -292277 is a broken export, not a time).
TIMESTAMP_RANGE = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))
#: The columns that identify an observation: no two rows may share them.
KEY = ("timestamp", "variant", "metric", "le")
#: The optional column naming an experiment's segment (null: not segmented, e.g. gauges).
SEGMENT = "segment"


def _fail(source: str, what: str, fix: str, row: int | None = None) -> DataError:
    where = f"{source}" + (f", row {row + 1}" if row is not None else "")
    return DataError(f"{where}: {what}. {fix}", source=source, row=None if row is None else row + 1)


def validate(frame: pl.DataFrame, *, source: str = "<frame>") -> pl.DataFrame:
    """Return ``frame`` cast to the schema, sorted, or raise :class:`DataError`.

    The error names ``source`` (usually the file), the first offending row (1-based,
    in the order given) or column, and what is expected. Nothing is dropped.
    """
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise _fail(
            source,
            f"missing column(s) {missing}; found {frame.columns}",
            f"A recording needs exactly the columns {list(COLUMNS)}.",
        )
    segmented = SEGMENT in frame.columns  # optional: an experiment's segment (region, plan)
    frame = frame.select(*COLUMNS, *([SEGMENT] if segmented else []))
    if segmented:
        frame = frame.with_columns(pl.col(SEGMENT).cast(pl.String))
    frame = _cast_timestamp(frame, source)
    for name in ("variant", "metric", "kind"):
        dtype = frame[name].dtype
        if not (dtype in (pl.String, pl.Categorical, pl.Enum, pl.Null) or dtype.is_integer()):
            raise _fail(source, f"column '{name}' has type {dtype}", f"Write {name}s as text.")
        frame = frame.with_columns(pl.col(name).cast(pl.String))
        nulls = frame[name].is_null()
        if nulls.any():
            raise _fail(source, f"empty '{name}'", f"Every row needs a {name}.", _first(nulls))
    for name in ("le", "value"):
        frame = _cast_float(frame, name, source)

    bad_kind = ~frame["kind"].is_in(KINDS)
    if bad_kind.any():
        row = _first(bad_kind)
        raise _fail(
            source,
            f"unknown kind {frame['kind'][row]!r}",
            f"Column 'kind' must be one of {list(KINDS)}.",
            row,
        )
    is_bucket = frame["kind"] == "bucket"
    no_le = is_bucket & frame["le"].is_null()
    if no_le.any():
        raise _fail(
            source,
            "bucket row without 'le'",
            "Histogram bucket rows need their upper bound in 'le' (use inf for +Inf).",
            _first(no_le),
        )
    bad_le = is_bucket & (frame["le"].is_nan() | (frame["le"] < 0))
    if bad_le.any():
        row = _first(bad_le)
        raise _fail(
            source,
            f"bucket bound le={frame['le'][row]}",
            "A bucket's 'le' is its upper bound: a number >= 0, or inf for +Inf.",
            row,
        )
    stray_le = ~is_bucket & frame["le"].is_not_null()
    if stray_le.any():
        raise _fail(
            source,
            "'le' set on a row that is not a bucket",
            "Leave 'le' empty for counter and gauge rows.",
            _first(stray_le),
        )
    no_value = frame["value"].is_null()
    if no_value.any():
        raise _fail(source, "missing value", "Every row needs a numeric 'value'.", _first(no_value))
    negative = (frame["kind"] != "gauge") & (frame["value"] < 0)
    if negative.any():
        row = _first(negative)
        raise _fail(
            source,
            f"negative increase {frame['value'][row]} for {frame['kind'][row]} "
            f"'{frame['metric'][row]}'",
            "Counter and bucket values are increases over the step and cannot be negative; "
            "if these are raw counter readings, convert them with rolloutlab.frames.increments().",
            row,
        )
    key = [*KEY, SEGMENT] if segmented else list(KEY)
    if frame.select(key).is_duplicated().any():
        rows = (
            frame.with_row_index("row")
            .filter(pl.struct(key).is_duplicated())
            .group_by(key, maintain_order=True)
            .agg(pl.col("row"))
            .row(0, named=True)
        )
        first, second = rows["row"][:2]
        raise _fail(
            source,
            f"{rows['variant']} {rows['metric']!r} at {rows['timestamp']:%Y-%m-%dT%H:%M:%SZ}"
            + (f" le={rows['le']:g}" if rows["le"] is not None else "")
            + f" is given twice (rows {first + 1} and {second + 1})",
            "Give each (timestamp, variant, metric, le) once: duplicates are not added up.",
            first,
        )
    return frame.sort("timestamp", "variant", "metric", "le", maintain_order=True)


def _first(mask: pl.Series) -> int:
    return int(mask.arg_true()[0])


def _cast_timestamp(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    ts = frame["timestamp"]
    if ts.dtype == pl.String:
        naive = ~ts.str.strip_chars().str.contains(r"(?i)(z|[+-]\d{2}:?\d{2})$")
        if naive.any():
            row = _first(naive)
            raise _fail(
                source,
                f"naive timestamp {ts[row]!r} (no time zone) in column 'timestamp'",
                "Timestamps must be UTC-aware: write them with a 'Z' or '+00:00' offset.",
                row,
            )
        parsed = ts.str.to_datetime(time_unit="us", strict=False, time_zone="UTC")
        bad = parsed.is_null() & ts.is_not_null()
        if bad.any():
            row = _first(bad)
            raise _fail(
                source,
                f"unparseable timestamp {ts[row]!r}",
                "Use ISO 8601 with a UTC offset, e.g. 2026-01-01T10:00:00Z.",
                row,
            )
        ts = parsed
    if not isinstance(ts.dtype, pl.Datetime):
        raise _fail(
            source,
            f"column 'timestamp' has type {ts.dtype}",
            "Timestamps must be datetimes in UTC.",
        )
    if ts.dtype.time_zone is None:
        raise _fail(
            source,
            "naive timestamps (no time zone) in column 'timestamp'",
            "Timestamps must be UTC-aware: write them with a 'Z' or '+00:00' offset.",
        )
    if ts.is_null().any():
        raise _fail(source, "empty timestamp", "Every row needs a timestamp.", _first(ts.is_null()))
    low, high = (pl.lit(t).cast(ts.dtype) for t in TIMESTAMP_RANGE)
    outside = pl.select((ts < low) | (ts >= high)).to_series()
    if outside.any():
        row = _first(outside)
        raise _fail(
            source,
            f"timestamp {ts.cast(pl.Int64)[row]} ({ts.dtype.time_unit} since 1970) is outside "
            f"{TIMESTAMP_RANGE[0]:%Y} to {TIMESTAMP_RANGE[1]:%Y}",
            "Check the export: Unix seconds read as milliseconds, or a NaN time?",
            row,
        )
    ts = ts.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    return frame.with_columns(ts.alias("timestamp"))


def _cast_float(frame: pl.DataFrame, name: str, source: str) -> pl.DataFrame:
    col = frame[name]
    if col.dtype == pl.String:
        text = col.str.strip_chars().str.to_lowercase().replace({"+inf": "inf", "": None})
        cast = text.cast(pl.Float64, strict=False)
        bad = cast.is_null() & text.is_not_null()
        if bad.any():
            row = _first(bad)
            raise _fail(
                source,
                f"unparseable number {col[row]!r} in column '{name}'",
                f"Column '{name}' must hold numbers (inf and nan are allowed).",
                row,
            )
        return frame.with_columns(cast.alias(name))
    if not (col.dtype.is_numeric() or col.dtype == pl.Null):
        raise _fail(
            source,
            f"column '{name}' holds {col.dtype} values, not numbers",
            f"Write numbers in '{name}' (true/false and dates are not counted as numbers).",
        )
    try:
        return frame.with_columns(pl.col(name).cast(pl.Float64))
    except pl.exceptions.PolarsError as exc:
        raise _fail(source, f"column '{name}' is not numeric ({col.dtype})", str(exc)) from None


def increments(values: np.ndarray) -> np.ndarray:
    """Per-step increases of a raw counter, with Prometheus' reset rule.

    A drop means the counter restarted from zero, so the increase over that step is the
    new reading itself (as ``increase()``/``rate()`` treat it). The first reading has no
    predecessor and gives no increment, so the result is one shorter than ``values``.
    """
    values = np.asarray(values, dtype=float)
    delta = np.diff(values)
    reset = delta < 0
    delta[reset] = values[1:][reset]
    return delta


def step_seconds(frame: pl.DataFrame) -> float | None:
    """The most common spacing of timestamps, in seconds (None with fewer than two)."""
    ts = frame["timestamp"].unique().sort()
    if len(ts) < 2:
        return None
    gaps = ts.diff().drop_nulls().dt.total_microseconds()
    return cast(int, gaps.mode().min()) / 1e6  # microseconds, not null: polars types it wide


def time_span(frame: pl.DataFrame) -> tuple[datetime, datetime] | None:
    """The first and last timestamp of a validated frame (None when it has no rows)."""
    if frame.is_empty():
        return None
    ts = frame["timestamp"]
    # validate() made the column a Datetime without nulls; polars types min/max widely
    return cast(datetime, ts.min()), cast(datetime, ts.max())


def totals(frame: pl.DataFrame, metric: str) -> pl.DataFrame:
    """Per-tick totals of a counter metric, one column per variant (0 where absent)."""
    rows = frame.filter(pl.col("metric") == metric)
    if rows.is_empty():
        return pl.DataFrame(schema={"timestamp": SCHEMA["timestamp"]})
    wide = rows.pivot(on="variant", index="timestamp", values="value", aggregate_function="sum")
    return wide.sort("timestamp").fill_null(0.0)


def bucket_counts(frame: pl.DataFrame, metric: str, variant: str) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of ``metric`` for ``variant`` as (edges, counts per tick per bin).

    Prometheus buckets are cumulative by ``le``; this returns the sorted upper edges
    and a ticks × bins matrix of non-cumulative counts (requests falling in each bin).
    Any negative difference (an inconsistent export) is clipped to zero.
    """
    rows = frame.filter(
        (pl.col("metric") == metric) & (pl.col("variant") == variant) & (pl.col("kind") == "bucket")
    )
    if rows.is_empty():
        return np.array([]), np.zeros((0, 0))
    wide = rows.pivot(on="le", index="timestamp", values="value", aggregate_function="sum").sort(
        "timestamp"
    )
    edge_cols = sorted((c for c in wide.columns if c != "timestamp"), key=float)
    edges = np.array([float(c) for c in edge_cols])
    cumulative = wide.select(edge_cols).fill_null(0.0).to_numpy()
    counts = np.diff(cumulative, axis=1, prepend=0.0).clip(min=0.0)
    return edges, counts


@dataclass(frozen=True)
class TickTable:
    """A recording cut into analysis ticks, as dense numpy arrays for fast judging.

    Tick ``k`` covers the step windows ending in ``(ends[k] - interval_s, ends[k]]``.
    Counters and histogram buckets are summed over the tick; gauges keep every step
    value with the tick it belongs to (autocorrelation needs the raw series); the
    weight is the last value reported in the tick (carried forward when missing).
    Judges read ``table.counter("errors", "canary")[k]`` in O(1), which keeps the
    cost of a tick constant however long the rollout has run.

    Broken data stay visible: a NaN or infinite value makes its tick's total NaN or
    infinite, and :meth:`present` tells a tick with no row at all (a missing scrape,
    a series that is not there) from a tick that counted zero.
    """

    ends: tuple[datetime, ...]
    interval_s: float
    variants: tuple[str, ...]
    counters: dict[str, dict[str, np.ndarray]]
    edges: dict[str, np.ndarray]
    buckets: dict[str, dict[str, np.ndarray]]
    gauges: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]
    weights: dict[str, np.ndarray]
    rows: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ends)

    def counter(self, metric: str, variant: str) -> np.ndarray:
        """Per-tick totals (zeros when the metric or variant is absent)."""
        return self.counters.get(metric, {}).get(variant, np.zeros(len(self)))

    def histogram(self, metric: str, variant: str) -> np.ndarray:
        """Ticks × bins non-cumulative bucket counts (bins follow ``edges[metric]``)."""
        n_bins = len(self.edges.get(metric, ()))
        return self.buckets.get(metric, {}).get(variant, np.zeros((len(self), n_bins)))

    def gauge(self, metric: str, variant: str, upto: int | None = None) -> np.ndarray:
        """Step values of a gauge in ticks ``0..upto`` (all ticks when None)."""
        ticks, values = self.gauges.get(metric, {}).get(variant, (np.array([]), np.array([])))
        if upto is None:
            return values
        return values[: np.searchsorted(ticks, upto, side="right")]

    def weight(self, variant: str) -> np.ndarray:
        """Traffic percent of ``variant`` per tick (nan before the first report)."""
        return self.weights.get(variant, np.full(len(self), np.nan))

    def present(self, metric: str, variant: str) -> np.ndarray:
        """Per tick: does ``variant`` have at least one row of ``metric`` (any kind)?"""
        return self.rows.get(metric, {}).get(variant, np.zeros(len(self), dtype=bool))


def common_buckets(frame: pl.DataFrame, variants: Sequence[str]) -> tuple[pl.DataFrame, list[str]]:
    """The frame with each histogram that all ``variants`` report cut to the bucket edges
    they all report, and a note per histogram cut.

    A tick table puts every variant on the union of their edges, where a variant that
    lacks an edge counts 0 at it: its requests below that edge move above it and its
    total grows, so a canary on a different layout (new client buckets) looks slower or
    faster than it is (a 20% slower canary was promoted against a coarser primary).
    Cumulative counts at the shared edges are exact for both, so merging onto them is.
    """
    wanted = set(variants)
    rows = frame.filter((pl.col("kind") == "bucket") & pl.col("variant").is_in(list(wanted)))
    layouts = rows.group_by("metric", "le").agg(pl.col("variant").n_unique().alias("n"))
    layouts = layouts.filter(pl.col("n").max().over("metric") == len(wanted))
    partial = layouts.filter(pl.col("n") < len(wanted))
    if partial.is_empty():
        return frame, []
    notes = []
    for metric in sorted(partial["metric"].unique()):
        edges = layouts.filter(pl.col("metric") == metric)
        shared = int((edges["n"] == len(wanted)).sum())
        notes.append(
            f"{metric}: the variants report different bucket edges, so they are compared on "
            f"the {shared} edges all of them report ({edges.height - shared} dropped)"
        )
    drop = partial.select("metric", "le", pl.lit(True).alias("_drop"))
    frame = (
        frame.join(drop, on=["metric", "le"], how="left")
        .filter(pl.col("_drop").is_null() | (pl.col("kind") != "bucket"))
        .drop("_drop")
    )
    return frame, notes


def tick_table(
    frame: pl.DataFrame,
    interval_s: float,
    *,
    variants: Sequence[str] | None = None,
    origin: datetime | None = None,
) -> TickTable:
    """Cut a validated frame into ticks of ``interval_s`` seconds.

    ``origin`` is the start of the first tick; by default it is the first timestamp
    minus the recording's step, so the first step window opens the first tick.
    """
    if interval_s <= 0:
        raise ValueError(f"interval_s must be positive, got {interval_s}")
    if variants is None:
        variants = frame["variant"].unique().sort().to_list()
    span = time_span(frame)
    if span is None:
        return TickTable((), interval_s, tuple(variants), {}, {}, {}, {}, {})
    if origin is None:
        step = step_seconds(frame) or interval_s
        origin = span[0] - timedelta(seconds=step)
    interval_us = int(round(interval_s * 1e6))
    rows = frame.with_columns(
        ((pl.col("timestamp") - pl.lit(origin)).dt.total_microseconds() - 1)
        .floordiv(interval_us)
        .cast(pl.Int64)
        .alias("tick")
    ).filter(pl.col("tick") >= 0)
    n = cast(int, rows["tick"].max()) + 1 if rows.height else 0  # Int64, not null
    ends = tuple(origin + timedelta(microseconds=interval_us * (k + 1)) for k in range(n))

    present: dict[str, dict[str, np.ndarray]] = {}
    seen = rows.select("metric", "variant", "tick").unique()
    for (metric, variant), part in seen.partition_by("metric", "variant", as_dict=True).items():
        mask = np.zeros(n, dtype=bool)
        mask[part["tick"].to_numpy()] = True
        present.setdefault(metric, {})[variant] = mask

    counters: dict[str, dict[str, np.ndarray]] = {}
    summed = (
        rows.filter(pl.col("kind") == "counter")
        .group_by("metric", "variant", "tick")
        .agg(pl.col("value").sum())
    )
    for (metric, variant), part in summed.partition_by("metric", "variant", as_dict=True).items():
        dense = np.zeros(n)
        dense[part["tick"].to_numpy()] = part["value"].to_numpy()
        counters.setdefault(metric, {})[variant] = dense

    edges: dict[str, np.ndarray] = {}
    buckets: dict[str, dict[str, np.ndarray]] = {}
    bucket_rows = (
        rows.filter(pl.col("kind") == "bucket")
        .group_by("metric", "variant", "tick", "le")
        .agg(pl.col("value").sum())
    )
    for metric, part in bucket_rows.partition_by("metric", as_dict=True).items():
        metric = metric[0]
        metric_edges = np.sort(part["le"].unique().to_numpy())
        edges[metric] = metric_edges
        for variant, vpart in part.partition_by("variant", as_dict=True).items():
            cumulative = np.zeros((n, len(metric_edges)))
            cumulative[
                vpart["tick"].to_numpy(), np.searchsorted(metric_edges, vpart["le"].to_numpy())
            ] = vpart["value"].to_numpy()
            counts = np.diff(cumulative, axis=1, prepend=0.0).clip(min=0.0)
            buckets.setdefault(metric, {})[variant[0]] = counts

    gauges: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    weights: dict[str, np.ndarray] = {}
    gauge_rows = rows.filter(pl.col("kind") == "gauge").sort("timestamp")
    for (metric, variant), part in gauge_rows.partition_by(
        "metric", "variant", as_dict=True
    ).items():
        ticks, values = part["tick"].to_numpy(), part["value"].to_numpy()
        if metric == "weight":
            last = np.full(n, np.nan)
            last[ticks] = values  # sorted by time: the last write per tick wins
            weights[variant] = _carry_forward(last)
        else:
            gauges.setdefault(metric, {})[variant] = (ticks, values)
    return TickTable(
        ends, interval_s, tuple(variants), counters, edges, buckets, gauges, weights, present
    )


def _carry_forward(values: np.ndarray) -> np.ndarray:
    idx = np.where(np.isnan(values), 0, np.arange(len(values)))
    np.maximum.accumulate(idx, out=idx)
    out = values[idx]
    if len(values) and np.isnan(values[0]):
        first = np.flatnonzero(~np.isnan(values))
        if first.size:
            out[: first[0]] = np.nan
    return out


# -- experiment aggregation: counts per metric, variant and time bucket ----------------


def time_buckets(frame: pl.DataFrame, bucket_s: float | None = None) -> pl.Series:
    """The sorted distinct time buckets of ``frame``: its timestamps, or their starts on
    a ``bucket_s`` grid (e.g. 3600 for hourly buckets)."""
    return _bucketed(frame, bucket_s)["bucket"].unique().sort()


def _bucketed(frame: pl.DataFrame, bucket_s: float | None) -> pl.DataFrame:
    stamp = pl.col("timestamp")
    bucket = stamp.dt.truncate(f"{int(bucket_s * 1e6)}us") if bucket_s else stamp
    return frame.with_columns(bucket.alias("bucket"))


def _positions(rows: pl.DataFrame, column: str, names: Sequence[object]) -> np.ndarray:
    """Position of each value of ``rows[column]`` in ``names`` (all must be there)."""
    lookup = pl.DataFrame(
        {column: pl.Series(list(names), dtype=rows[column].dtype), "_pos": range(len(names))}
    )
    return (
        rows.select(column)
        .join(lookup, on=column, how="left", maintain_order="left")["_pos"]
        .to_numpy()
    )


def counter_buckets(
    frame: pl.DataFrame,
    metrics: Sequence[str],
    variants: Sequence[str],
    times: pl.Series,
    *,
    bucket_s: float | None = None,
) -> np.ndarray:
    """Counter totals as an array (metrics, variants, buckets) over the buckets ``times``
    (from :func:`time_buckets`); zero where nothing was recorded. A metric may be asked
    for more than once (e.g. as a numerator and as a denominator)."""
    distinct = list(dict.fromkeys(metrics))
    rows = (
        _bucketed(
            frame.filter(
                (pl.col("kind") == "counter")
                & pl.col("metric").is_in(distinct)
                & pl.col("variant").is_in(list(variants))
            ),
            bucket_s,
        )
        .group_by("metric", "variant", "bucket")
        .agg(pl.col("value").sum())
    )
    out = np.zeros((len(distinct), len(variants), len(times)))
    where = (
        _positions(rows, "metric", distinct),
        _positions(rows, "variant", variants),
        _positions(rows, "bucket", times.to_list()),
    )
    np.add.at(out, where, rows["value"].fill_null(0.0).to_numpy())
    position = {name: i for i, name in enumerate(distinct)}
    return out[[position[m] for m in metrics]]


def histogram_buckets(
    frame: pl.DataFrame,
    metric: str,
    variants: Sequence[str],
    times: pl.Series,
    *,
    bucket_s: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A bucket histogram per variant and time bucket: (sorted edges, non-cumulative
    counts of shape (variants, buckets, bins)); negative differences clip to zero."""
    rows = (
        _bucketed(
            frame.filter(
                (pl.col("kind") == "bucket")
                & (pl.col("metric") == metric)
                & pl.col("variant").is_in(list(variants))
            ),
            bucket_s,
        )
        .group_by("variant", "bucket", "le")
        .agg(pl.col("value").sum())
    )
    edges = np.sort(rows["le"].unique().to_numpy())
    cumulative = np.zeros((len(variants), len(times), len(edges)))
    where = (
        _positions(rows, "variant", variants),
        _positions(rows, "bucket", times.to_list()),
        np.searchsorted(edges, rows["le"].to_numpy()),
    )
    np.add.at(cumulative, where, rows["value"].to_numpy())
    return edges, np.diff(cumulative, axis=-1, prepend=0.0).clip(min=0.0)
