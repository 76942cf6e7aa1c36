"""The tidy recording schema (format v1), its validation, and small polars helpers.

A recording holds one row per observation::

    timestamp  Datetime(us, UTC)  end of the step window
    variant    str                primary / canary, or an experiment's arm names
    metric     str                requests, errors, latency_ms, weight, or any other name
    kind       str                counter (increase over the step), gauge (a level),
                                  bucket (increase of a histogram bucket, cumulative by le)
    le         float | null       bucket upper bound (inf allowed); null for other kinds
    value      float

Validation happens once, at the boundary (loading, fetching); everything after it
may assume a valid frame.
"""

from __future__ import annotations

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


def _fail(source: str, what: str, fix: str, row: int | None = None) -> DataError:
    where = f"{source}" + (f", row {row + 1}" if row is not None else "")
    return DataError(f"{where}: {what}. {fix}")


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
    frame = frame.select(COLUMNS)
    frame = _cast_timestamp(frame, source)
    for name in ("variant", "metric", "kind"):
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
    return frame.sort("timestamp", "variant", "metric", "le", maintain_order=True)


def _first(mask: pl.Series) -> int:
    return int(mask.arg_true()[0])


def _cast_timestamp(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    ts = frame["timestamp"]
    if ts.dtype == pl.String:
        parsed = ts.str.to_datetime(time_unit="us", strict=False)
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
    return float(gaps.mode().min()) / 1e6


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
