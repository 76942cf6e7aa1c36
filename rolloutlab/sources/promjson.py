"""Prometheus ``query_range`` results (the ``matrix`` JSON) into the tidy recording frame.

Fetching uses :func:`response_to_frame`, which parses the raw response bytes with polars'
JSON reader (Rust; labels and value pairs read as strings, then cast in bulk, so no Python
object is made per point: about 3× cheaper than ``json.loads`` alone). Anything unusual
falls back to the Python path, :func:`matrix_to_frame` on the decoded JSON, which also
loads saved files and names exactly what is malformed. Prometheus writes values as strings,
including ``"NaN"``, ``"+Inf"`` and ``"-Inf"``; both paths read them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rolloutlab import frames
from rolloutlab.errors import DataError
from rolloutlab.sources.recording import Recording

#: Labels tried, in order, to name the variant of a series in a saved response.
DEFAULT_VARIANT_LABELS = (
    "variant",
    "destination_workload",
    "deployment",
    "workload",
    "destination_name",
    "version",
    "destination_version",
)
_RAW_COUNTER_SUFFIXES = ("_total", "_count", "_sum")


def response_to_frame(
    body: bytes,
    *,
    label: str,
    variant_of: Callable[[str], str | None],
    metric: str,
    kind: str,
    le_scale: float = 1.0,
    source: str = "<query_range>",
) -> tuple[pl.DataFrame, set[str]]:
    """Tidy rows (not yet validated) from a raw ``query_range`` response body.

    Each series' variant is ``variant_of(value of label)`` (an absent label is ``""``);
    series whose value maps to no variant are left out and their values returned in the
    set. Series that map to the same (variant, le) are summed per timestamp.
    """
    schema = {
        "data": pl.Struct(
            {
                "result": pl.List(
                    pl.Struct(
                        {
                            "metric": pl.Struct({label: pl.String, "le": pl.String}),
                            "values": pl.List(pl.List(pl.String)),
                        }
                    )
                )
            }
        )
    }
    try:
        series = (
            pl.read_json(io.BytesIO(body), schema=schema)
            .select(pl.col("data").struct.field("result"))
            .explode("result")
            .unnest("result")
            .select(
                pl.col("metric").struct.field(label).fill_null("").alias("label"),
                pl.col("metric").struct.field("le"),
                "values",
            )
        )
        if series["values"].is_null().any():
            raise ValueError("a series without values")
        labels = series["label"].to_list()
        names = [variant_of(value) for value in labels]
        keep = [name is not None for name in names]
        unmatched = {value for value, ok in zip(labels, keep, strict=True) if not ok}
        series = series.filter(pl.Series(keep, dtype=pl.Boolean)).with_columns(
            variant=pl.Series([name for name in names if name is not None], dtype=pl.String)
        )
        les = (
            series["le"].cast(pl.Float64) * le_scale
            if kind == "bucket"
            else pl.Series(None, [None] * series.height, dtype=pl.Float64)
        )
        if kind == "bucket" and les.is_null().any():
            raise ValueError("bucket series without a numeric le")
        if le_scale != 1.0:
            les = les.round_sig_figs(12)  # e.g. 0.005 s * 1000 is exactly 5 ms again
        points = (
            series.with_columns(le=les)
            .select("variant", "le", "values")
            .explode("values")
            .drop_nulls("values")
        )
        if not (points["values"].list.len() == 2).all():
            raise ValueError("a point is not a [time, value] pair")
        frame = points.select(
            (pl.col("values").list.get(0).cast(pl.Float64) * 1e6)
            .round()
            .cast(pl.Int64)
            .cast(frames.SCHEMA["timestamp"])
            .alias("timestamp"),
            "variant",
            pl.lit(metric, pl.String).alias("metric"),
            pl.lit(kind, pl.String).alias("kind"),
            "le",
            pl.col("values").list.get(1).cast(pl.Float64).alias("value"),
        )
    except (pl.exceptions.PolarsError, ValueError):
        return _slow_response_to_frame(body, label, variant_of, metric, kind, le_scale, source)
    if series.select("variant", "le").is_duplicated().any():
        frame = frame.group_by(frames.COLUMNS[:-1]).agg(pl.col("value").sum())
    return frame.select(frames.COLUMNS), unmatched


def _slow_response_to_frame(
    body: bytes,
    label: str,
    variant_of: Callable[[str], str | None],
    metric: str,
    kind: str,
    le_scale: float,
    source: str,
) -> tuple[pl.DataFrame, set[str]]:
    """The Python path for what the fast reader refused: decode, check, say what is wrong."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise DataError(f"{source}: the response is not JSON ({exc})") from None
    result = _result_list(doc, source)
    keep, names, unmatched = [], [], set()
    for series in result:
        labels = series.get("metric") if isinstance(series, Mapping) else None
        value = (labels or {}).get(label) or ""
        name = variant_of(value)
        if name is None:
            unmatched.add(value)
        else:
            keep.append(series)
            names.append(name)
    frame = matrix_to_frame(
        keep, variants=names, metric=metric, kind=kind, le_scale=le_scale, source=source
    )
    return frame, unmatched


def matrix_to_frame(
    result: Sequence[Mapping[str, Any]],
    *,
    variants: Sequence[str],
    metric: str | Sequence[str],
    kind: str | Sequence[str],
    le_scale: float = 1.0,
    cumulative: Sequence[bool] | None = None,
    source: str = "<query_range>",
) -> pl.DataFrame:
    """Turn a ``query_range`` result list into tidy rows (not yet validated or sorted).

    ``variants`` names each series' variant (same order as ``result``); ``metric`` and
    ``kind`` are one value for all series or one per series. Bucket series take ``le`` from
    their label, multiplied by ``le_scale`` (1000 turns seconds into ms). Series flagged in
    ``cumulative`` hold raw counter readings and become per-step increases with Prometheus'
    reset rule (see :func:`rolloutlab.frames.increments`). Series that end up with the same
    (variant, metric, le) are summed per timestamp.
    """
    n = len(result)
    metrics = [metric] * n if isinstance(metric, str) else list(metric)
    kinds = [kind] * n if isinstance(kind, str) else list(kind)
    if not (len(variants) == len(metrics) == len(kinds) == n):
        raise ValueError("variants, metric and kind need one entry per series")
    les = [
        _le(s, source, i, le_scale) if k == "bucket" else None
        for i, (s, k) in enumerate(zip(result, kinds, strict=True))
    ]
    ts, values, lengths = _points(result, source)
    if cumulative is not None and any(cumulative):
        ts, values, lengths = _increase(ts, values, lengths, cumulative, result, source)
    idx = np.repeat(np.arange(n), lengths)
    micros = np.rint(ts * 1e6).astype(np.int64)
    frame = pl.DataFrame(
        {
            "timestamp": pl.Series(micros, dtype=pl.Int64).cast(frames.SCHEMA["timestamp"]),
            "variant": pl.Series(list(variants), dtype=pl.String).gather(idx),
            "metric": pl.Series(metrics, dtype=pl.String).gather(idx),
            "kind": pl.Series(kinds, dtype=pl.String).gather(idx),
            "le": pl.Series(les, dtype=pl.Float64).gather(idx),
            "value": values,
        }
    )
    keys = list(zip(variants, metrics, kinds, les, strict=True))
    if len(set(keys)) < len(keys):
        frame = frame.group_by(frames.COLUMNS[:-1]).agg(pl.col("value").sum())
    return frame.select(frames.COLUMNS)


def _points(
    result: Sequence[Mapping[str, Any]], source: str
) -> tuple[np.ndarray, pl.Series, list[int]]:
    """All series' timestamps (float seconds) and values, flattened, plus points per series."""
    try:
        series_values = [s["values"] if "values" in s else [s["value"]] for s in result]
        lengths = [len(v) for v in series_values]
        ts_list = [t for v in series_values for t, _ in v]
        value_list = [x for v in series_values for _, x in v]
        ts = pl.Series(ts_list, dtype=pl.Float64).to_numpy()
        values = pl.Series("value", value_list, dtype=pl.String).cast(pl.Float64)
    except (TypeError, KeyError, IndexError, ValueError, pl.exceptions.PolarsError):
        raise _locate_bad_point(result, source) from None
    return ts, values, lengths


def _locate_bad_point(result: Sequence[Any], source: str) -> DataError:
    """Find the first malformed series or point and describe it (slow path, errors only)."""
    for i, s in enumerate(result):
        if not isinstance(s, Mapping) or not isinstance(s.get("metric", {}), Mapping):
            return DataError(f"{source}: series {i} is not an object with 'metric' and 'values'")
        if "values" not in s and "value" not in s:
            return DataError(f"{source}: series {i} ({_labels(s)}) has no 'values'")
        points = s["values"] if "values" in s else [s["value"]]
        if not isinstance(points, list):
            return DataError(f"{source}: series {i} ({_labels(s)}): 'values' is not a list")
        for j, p in enumerate(points):
            if not (isinstance(p, list | tuple) and len(p) == 2):
                return DataError(
                    f"{source}: series {i} ({_labels(s)}), point {j}: expected "
                    f'[unix_seconds, "value"], got {p!r}'
                )
            t, v = p
            if isinstance(t, bool) or not isinstance(t, int | float):
                return DataError(
                    f"{source}: series {i} ({_labels(s)}), point {j}: timestamp {t!r} is not "
                    "a number of seconds"
                )
            if not isinstance(v, str) or pl.Series([v]).cast(pl.Float64, strict=False)[0] is None:
                return DataError(
                    f"{source}: series {i} ({_labels(s)}), point {j}: value {v!r} is not a "
                    'number string (Prometheus writes values like "1.5", "NaN", "+Inf")'
                )
    return DataError(f"{source}: malformed query_range result")


def _labels(series: Mapping[str, Any]) -> str:
    metric = series.get("metric") or {}
    name = metric.get("__name__", "")
    pairs = ",".join(f'{k}="{v}"' for k, v in metric.items() if k != "__name__")
    return f"{name}{{{pairs}}}"


def _le(series: Mapping[str, Any], source: str, i: int, scale: float) -> float:
    raw = (series.get("metric") or {}).get("le")
    if raw is None:
        raise DataError(f"{source}: bucket series {i} ({_labels(series)}) has no 'le' label")
    try:
        le = float(raw)
    except ValueError:
        raise DataError(
            f"{source}: series {i} ({_labels(series)}): 'le' value {raw!r} is not a number"
        ) from None
    # Round so that e.g. 0.005 s * 1000 is exactly 5 ms again.
    return float(f"{le * scale:.12g}") if scale != 1.0 else le


def _increase(
    ts: np.ndarray,
    values: pl.Series,
    lengths: list[int],
    cumulative: Sequence[bool],
    result: Sequence[Mapping[str, Any]],
    source: str,
) -> tuple[np.ndarray, pl.Series, list[int]]:
    """Replace raw counter readings by per-step increases (the first reading is the base)."""
    raw = values.to_numpy()
    out_ts, out_values, out_lengths = [], [], []
    start = 0
    for i, (n, is_raw) in enumerate(zip(lengths, cumulative, strict=True)):
        t, v = ts[start : start + n], raw[start : start + n]
        start += n
        if is_raw:
            bad = ~np.isfinite(v)
            if bad.any():
                j = int(np.flatnonzero(bad)[0])
                raise DataError(
                    f"{source}: series {i} ({_labels(result[i])}) is a raw counter but holds "
                    f"{v[j]} at t={t[j]:g}; counter readings must be finite numbers"
                )
            order = np.argsort(t, kind="stable")
            t, v = t[order][1:], frames.increments(v[order])
        out_ts.append(t)
        out_values.append(v)
        out_lengths.append(len(t))
    return (
        np.concatenate(out_ts) if out_ts else np.array([]),
        pl.Series("value", np.concatenate(out_values) if out_values else [], dtype=pl.Float64),
        out_lengths,
    )


def load_query_range_json(
    path: str | Path,
    *,
    metric: str | None = None,
    kind: str | None = None,
    variant_label: str | None = None,
) -> Recording:
    """Load a ``query_range`` (or instant ``query``) response saved to disk as a Recording.

    Accepts the whole response, its ``data`` object, or the bare ``result`` list.

    - ``metric``: defaults to each series' ``__name__``, else the file stem.
    - variant: the value of ``variant_label``, else of the first label present among
      :data:`DEFAULT_VARIANT_LABELS`, else ``"all"``.
    - kind: raw series named ``*_bucket`` or ``*_total``/``*_count``/``*_sum`` are
      cumulative readings and become per-step increases (a drop is a counter reset: the
      increase is the new reading, as Prometheus' ``increase()`` assumes); the first reading
      of each series is the base and gives no row. Otherwise series with an ``le`` label are
      buckets and the rest are ``kind`` (default ``gauge``), taken as they are.
    """
    path = Path(path)
    source = str(path)
    try:
        doc = json.loads(path.read_bytes())
    except OSError as exc:
        raise DataError(f"{source}: cannot read file ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise DataError(f"{source}: not valid JSON ({exc})") from None
    result = _result_list(doc, source)
    if kind is not None and kind not in frames.KINDS:
        raise DataError(f"{source}: kind must be one of {list(frames.KINDS)}, got {kind!r}")

    variants, metrics, kinds, raw = [], [], [], []
    for i, s in enumerate(result):
        labels = s.get("metric") if isinstance(s, Mapping) else None
        if not isinstance(labels, Mapping):
            raise DataError(f"{source}: series {i} has no 'metric' label object")
        name = labels.get("__name__")
        variants.append(_variant(labels, variant_label))
        metrics.append(metric or name or path.stem)
        is_bucket = "le" in labels or (name or "").endswith("_bucket")
        raw.append(
            bool(name) and (name.endswith("_bucket") or name.endswith(_RAW_COUNTER_SUFFIXES))
        )
        if is_bucket:
            kinds.append("bucket")
        elif raw[-1]:
            kinds.append("counter")
        else:
            kinds.append(kind or "gauge")
    frame = matrix_to_frame(
        result, variants=variants, metric=metrics, kind=kinds, cumulative=raw, source=source
    )
    if frame.is_empty():
        raise DataError(f"{source}: the response holds no samples")
    step = frames.step_seconds(frame)
    names = sorted(set(variants))
    control = "primary" if "primary" in names else names[0]
    meta = {
        "source": source,
        "queries": {},
        "roles": {"control": control, "treatment": [v for v in names if v != control]},
        "step_s": step,
    }
    return Recording(frame, meta, source=source)


def _result_list(doc: Any, source: str) -> list[Any]:
    """The ``result`` list of a response, its ``data`` object, or a bare list."""
    if isinstance(doc, Mapping) and doc.get("status") == "error":
        raise DataError(
            f"{source}: the saved response is a Prometheus error: "
            f"{doc.get('errorType', '')}: {doc.get('error', '')}"
        )
    data = doc.get("data", doc) if isinstance(doc, Mapping) else doc
    if isinstance(data, Mapping):
        result_type = data.get("resultType")
        if result_type not in (None, "matrix", "vector"):
            raise DataError(
                f"{source}: resultType {result_type!r} is not a time series "
                "(expected 'matrix' from query_range or 'vector')"
            )
        if "result" not in data:
            raise DataError(
                f"{source}: no 'data.result' list; expected a Prometheus query_range response "
                '({"status": "success", "data": {"resultType": "matrix", "result": [...]}})'
            )
        data = data["result"]
    if not isinstance(data, list):
        raise DataError(f"{source}: 'result' is {type(data).__name__}, expected a list of series")
    return data


def _variant(labels: Mapping[str, str], variant_label: str | None) -> str:
    if variant_label is not None:
        return labels.get(variant_label) or "all"
    for label in DEFAULT_VARIANT_LABELS:
        if labels.get(label):
            return labels[label]
    return "all"


__all__ = [
    "DEFAULT_VARIANT_LABELS",
    "load_query_range_json",
    "matrix_to_frame",
    "response_to_frame",
]
