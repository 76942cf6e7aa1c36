"""Prometheus ``query_range`` results (the ``matrix`` JSON) into the tidy recording frame.

Fetching uses :func:`response_to_frame`, which parses the raw response bytes with polars'
JSON reader (Rust; labels and value pairs read as strings, then cast in bulk, so no Python
object is made per point: about 3× cheaper than ``json.loads`` alone). Anything unusual
falls back to the Python path, :func:`matrix_to_frame` on the decoded JSON, which also
loads saved files and names exactly what is malformed. Prometheus writes values as strings,
including ``"NaN"``, ``"+Inf"`` and ``"-Inf"``; both paths read them.

Nothing is merged silently: series that would land on the same variant (and ``le``) while
differing in another label (``reporter="source"`` and ``reporter="destination"`` count the
same requests twice) are refused with an error naming those labels, unless the caller
selects one (``select={"reporter": "destination"}``) or asks for ``aggregate="sum"``. A
response's ``warnings`` (Prometheus answered from part of its data) become a
:class:`PartialDataWarning` and are kept in the recording's metadata.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

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
_NOT_LABELS = frozenset({"__name__", "le"})

Aggregate = Literal["sum"] | None

#: The segment of a series that lacks the ``segment_by`` label (kept, not dropped, so a
#: segmented fetch adds up to the same totals as an unsegmented one).
NO_SEGMENT = "(none)"


class PartialDataWarning(UserWarning):
    """Some data is missing or invalid: steps of a variant's metric came back empty or read
    as NaN, or Prometheus answered with ``warnings`` (a partial answer). The message says
    which."""


class MergeRefused(DataError):
    """Series that differ in a label other than the variant's would have been added up."""


class ParsedResponse(NamedTuple):
    """What :func:`response_to_frame` read: the rows, the variant label values that mapped
    to no variant, the response's ``warnings`` and the labels summed over on request."""

    frame: pl.DataFrame
    unmatched: set[str]
    warnings: list[str]
    summed_labels: list[str]


def check_unmerged(
    result: Sequence[Any],
    keys: Sequence[tuple[tuple[str, Any], ...]],
    *,
    ignore: Sequence[frozenset[str]],
    aggregate: Aggregate,
    source: str,
    fix: str,
) -> list[str]:
    """Refuse series that share a key (variant, metric, le) yet differ in a label.

    ``keys`` are ``(name, value)`` pairs; ``ignore[i]`` are the labels series ``i`` may
    differ in besides ``le`` (the label that names its variant).
    Returns the differing labels when ``aggregate="sum"`` asks to add such series up;
    raises :class:`DataError` naming them and the fix (``fix`` says how to keep one)
    otherwise.
    """
    if aggregate not in (None, "sum"):
        raise DataError(
            f"{source}: aggregate must be None or 'sum', got {aggregate!r}", source=source
        )
    groups: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    differing: dict[str, set[str]] = {}
    clash: tuple[Any, int] | None = None  # the first key that differs, and its series count
    for key, members in groups.items():
        if len(members) < 2:
            continue
        labels = [(result[i].get("metric") or {}) for i in members]
        names = set().union(*labels) - _NOT_LABELS - set().union(*(ignore[i] for i in members))
        for name in names:
            values = {str(one.get(name, "")) for one in labels}
            if len(values) > 1:
                differing.setdefault(name, set()).update(values)
                clash = clash or (key, len(members))
    if clash is None or aggregate == "sum":  # clash is None exactly when nothing differs
        return sorted(differing)
    name = "reporter" if "reporter" in differing else sorted(differing)[0]
    present = sorted(value for value in differing[name] if value)
    keep = "destination" if "destination" in present else (present or [""])[0]
    shown = "; ".join(
        f"{label} in {sorted(values)[:4]}" + (" …" if len(values) > 4 else "")
        for label, values in sorted(differing.items())
    )
    key, count = clash
    raise MergeRefused(
        f"{source}: {count} series give the same {_key_text(key)} but differ in other "
        f"labels ({shown}); adding them up could count the same requests twice. "
        f"{fix.format(select=f'{{{name!r}: {keep!r}}}', label=name, value=keep)}, or add "
        "them up on purpose with aggregate='sum'.",
        source=source,
    )


def _key_text(key: tuple[tuple[str, Any], ...]) -> str:
    return ", ".join(f"{name} {value!r}" for name, value in key if value is not None)


#: How a saved response's clash is fixed (filled by :func:`check_unmerged`).
_SELECT_FIX = "Keep one kind of series with select={select}"


#: How a fetched query's clash is fixed (filled by :func:`check_unmerged`).
FETCH_FIX = (
    'Select one in the query ({label}="{value}"; selector={select} adds it to a preset\'s queries)'
)


def response_to_frame(
    body: bytes,
    *,
    label: str,
    variant_of: Callable[[str], str | None],
    metric: str,
    kind: str,
    le_scale: float = 1.0,
    aggregate: Aggregate = None,
    source: str = "<query_range>",
    segment: str | None = None,
) -> ParsedResponse:
    """Tidy rows (not yet validated) from a raw ``query_range`` response body.

    Each series' variant is ``variant_of(value of label)`` (an absent label is ``""``);
    series whose value maps to no variant are left out and their values returned. Series
    with different values of ``label`` that map to one variant are summed per timestamp
    (that is what the mapping asks for); series with the same value (and ``le``) differ in
    some other label and are refused (:func:`check_unmerged`) unless ``aggregate="sum"``.
    With ``segment``, that label's value fills the ``segment`` column (:data:`NO_SEGMENT`
    when a series lacks it) and series of different segments are kept apart.
    """
    seg = [frames.SEGMENT] if segment else []
    seg_field = {segment: pl.String} if segment else {}
    schema = {
        "warnings": pl.List(pl.String),
        "data": pl.Struct(
            {
                "result": pl.List(
                    pl.Struct(
                        {
                            "metric": pl.Struct({label: pl.String, "le": pl.String, **seg_field}),
                            "values": pl.List(pl.List(pl.String)),
                        }
                    )
                )
            }
        ),
    }
    try:
        doc = pl.read_json(io.BytesIO(body), schema=schema)
        notes = [w for w in (doc["warnings"].to_list()[0] or []) if w]
        series = (
            doc.select(pl.col("data").struct.field("result"))
            .explode("result")
            .unnest("result")
            .select(
                pl.col("metric").struct.field(label).fill_null("").alias("label"),
                pl.col("metric").struct.field("le"),
                *[
                    pl.col("metric").struct.field(name).fill_null(NO_SEGMENT).alias(frames.SEGMENT)
                    for name in seg_field
                ],
                "values",
            )
        )
        if series["values"].is_null().any():
            raise ValueError("a series without values")
        if series.select("label", "le", *seg).is_duplicated().any():
            raise ValueError("series differing in other labels: checked on the slow path")
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
            .select("variant", "le", *seg, "values")
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
            *seg,
        )
    except (pl.exceptions.PolarsError, ValueError, IndexError):  # odd shapes: checked slowly
        return _slow_response_to_frame(
            body, label, variant_of, metric, kind, le_scale, aggregate, source, segment
        )
    if series.select("variant", "le", *seg).is_duplicated().any():
        frame = frame.group_by(*frames.COLUMNS[:-1], *seg).agg(pl.col("value").sum())
    return ParsedResponse(frame.select(*frames.COLUMNS, *seg), unmatched, notes, [])


def _slow_response_to_frame(
    body: bytes,
    label: str,
    variant_of: Callable[[str], str | None],
    metric: str,
    kind: str,
    le_scale: float,
    aggregate: Aggregate,
    source: str,
    segment: str | None = None,
) -> ParsedResponse:
    """The Python path for what the fast reader refused: decode, check, say what is wrong."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{source}: the response is not JSON ({exc})", source=source) from None
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
    segments = (
        [str((s.get("metric") or {}).get(segment) or NO_SEGMENT) for s in keep] if segment else None
    )
    summed = check_unmerged(
        keep,
        [_fetch_key(s, label, segment) for s in keep],
        ignore=[frozenset({label})] * len(keep),
        aggregate=aggregate,
        source=source,
        fix=FETCH_FIX,
    )
    frame = matrix_to_frame(
        keep,
        variants=names,
        metric=metric,
        kind=kind,
        le_scale=le_scale,
        source=source,
        segments=segments,
    )
    return ParsedResponse(frame, unmatched, response_warnings(doc), summed)


def _fetch_key(
    series: Mapping[str, Any], label: str, segment: str | None = None
) -> tuple[tuple[str, Any], ...]:
    labels = series.get("metric") or {}
    key: tuple[tuple[str, Any], ...] = ((label, labels.get(label) or ""), ("le", labels.get("le")))
    return key + ((segment, labels.get(segment) or NO_SEGMENT),) if segment else key


def response_warnings(doc: Any) -> list[str]:
    """The ``warnings`` of a Prometheus response (a partial answer), as text."""
    found = doc.get("warnings") if isinstance(doc, Mapping) else None
    return [str(w) for w in found if w] if isinstance(found, list) else []


def matrix_to_frame(
    result: Sequence[Mapping[str, Any]],
    *,
    variants: Sequence[str],
    metric: str | Sequence[str],
    kind: str | Sequence[str],
    le_scale: float = 1.0,
    cumulative: Sequence[bool] | None = None,
    source: str = "<query_range>",
    segments: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Turn a ``query_range`` result list into tidy rows (not yet validated or sorted).

    ``variants`` names each series' variant (same order as ``result``); ``metric`` and
    ``kind`` are one value for all series or one per series. Bucket series take ``le`` from
    their label, multiplied by ``le_scale`` (1000 turns seconds into ms). Series flagged in
    ``cumulative`` hold raw counter readings and become per-step increases with Prometheus'
    reset rule (see :func:`rolloutlab.frames.increments`). Series that end up with the same
    (variant, metric, le) are summed per timestamp: the caller named their variants, so it
    has decided that (the loaders check with :func:`check_unmerged` first). ``segments``,
    one per series, fill the optional ``segment`` column (series of different segments
    stay apart).
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
    seg: list[str] = []
    if segments is not None:
        seg = [frames.SEGMENT]
        frame = frame.with_columns(
            pl.Series(frames.SEGMENT, list(segments), dtype=pl.String).gather(idx)
        )
    keys = list(zip(variants, metrics, kinds, les, segments or [""] * n, strict=True))
    if len(set(keys)) < len(keys):
        frame = frame.group_by(*frames.COLUMNS[:-1], *seg).agg(pl.col("value").sum())
    return frame.select(*frames.COLUMNS, *seg)


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
    except (TypeError, KeyError, IndexError, ValueError, OverflowError, pl.exceptions.PolarsError):
        raise _locate_bad_point(result, source) from None
    low, high = (t.timestamp() for t in frames.TIMESTAMP_RANGE)
    outside = ~((ts >= low) & (ts < high))  # NaN too
    if outside.any():
        flat = int(np.flatnonzero(outside)[0])
        i = int(np.searchsorted(np.cumsum(lengths), flat, side="right"))
        j = flat - int(np.sum(lengths[:i]))
        raise DataError(
            f"{source}: series {i} ({_labels(result[i])}), point {j}: timestamp {float(ts[flat])!r} "
            f"is not a time between {frames.TIMESTAMP_RANGE[0]:%Y} and "
            f"{frames.TIMESTAMP_RANGE[1]:%Y} (Unix seconds expected)",
            source=source,
        )
    return ts, values, lengths


def _locate_bad_point(result: Sequence[Any], source: str) -> DataError:
    """Find the first malformed series or point and describe it (slow path, errors only)."""
    for i, s in enumerate(result):
        if not isinstance(s, Mapping) or not isinstance(s.get("metric", {}), Mapping):
            return DataError(
                f"{source}: series {i} is not an object with 'metric' and 'values'", source=source
            )
        if "values" not in s and "value" not in s:
            return DataError(f"{source}: series {i} ({_labels(s)}) has no 'values'", source=source)
        points = s["values"] if "values" in s else [s["value"]]
        if not isinstance(points, list):
            return DataError(
                f"{source}: series {i} ({_labels(s)}): 'values' is not a list", source=source
            )
        for j, p in enumerate(points):
            if not (isinstance(p, list | tuple) and len(p) == 2):
                return DataError(
                    f"{source}: series {i} ({_labels(s)}), point {j}: expected "
                    f'[unix_seconds, "value"], got {p!r}',
                    source=source,
                )
            t, v = p
            if isinstance(t, bool) or not isinstance(t, int | float) or abs(t) > 1e300:
                return DataError(
                    f"{source}: series {i} ({_labels(s)}), point {j}: timestamp {t!r:.30} is not "
                    "a number of seconds",
                    source=source,
                )
            if not isinstance(v, str) or pl.Series([v]).cast(pl.Float64, strict=False)[0] is None:
                return DataError(
                    f"{source}: series {i} ({_labels(s)}), point {j}: value {v!r} is not a "
                    'number string (Prometheus writes values like "1.5", "NaN", "+Inf")',
                    source=source,
                )
    return DataError(f"{source}: malformed query_range result", source=source)


def _labels(series: Mapping[str, Any]) -> str:
    metric = series.get("metric") or {}
    name = metric.get("__name__", "")
    pairs = ",".join(f'{k}="{v}"' for k, v in metric.items() if k != "__name__")
    return f"{name}{{{pairs}}}"


def _le(series: Mapping[str, Any], source: str, i: int, scale: float) -> float:
    raw = (series.get("metric") or {}).get("le")
    if raw is None:
        raise DataError(
            f"{source}: bucket series {i} ({_labels(series)}) has no 'le' label", source=source
        )
    try:
        le = float(raw)
    except ValueError:
        raise DataError(
            f"{source}: series {i} ({_labels(series)}): 'le' value {raw!r} is not a number",
            source=source,
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
                    f"{v[j]} at t={t[j]:g}; counter readings must be finite numbers",
                    source=source,
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
    select: Mapping[str, str] | None = None,
    aggregate: Aggregate = None,
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
    - ``select`` keeps only the series whose labels have these values; series of one
      variant, metric and ``le`` that still differ in another label (``reporter``, ``pod``,
      ``response_code``) are refused with a :class:`DataError` naming them, unless
      ``aggregate="sum"`` adds them up (the labels summed over go in ``meta["aggregated"]``).

    ``meta["step_s"]`` is the spacing of the series' own timestamps (each series' most
    common gap; the most common among series, and ``meta["series_steps_s"]`` lists them
    when they differ). The response's ``warnings`` go in ``meta["warnings"]`` with
    ``meta["partial"] = True``, and a :class:`PartialDataWarning` is issued.
    """
    path = Path(path)
    source = str(path)
    try:
        doc = json.loads(path.read_bytes())
    except OSError as exc:
        raise DataError(
            f"{source}: cannot read file ({exc.strerror or exc})", source=source
        ) from None
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{source}: not valid JSON ({exc})", source=source) from None
    result = _selected(_result_list(doc, source), select, source)
    if kind is not None and kind not in frames.KINDS:
        raise DataError(
            f"{source}: kind must be one of {list(frames.KINDS)}, got {kind!r}", source=source
        )

    variants, metrics, kinds, raw, keys, ignore = [], [], [], [], [], []
    for i, s in enumerate(result):
        labels = s.get("metric") if isinstance(s, Mapping) else None
        if not isinstance(labels, Mapping):
            raise DataError(f"{source}: series {i} has no 'metric' label object", source=source)
        name: str | None = labels.get("__name__")  # labels are text (checked by _result_list)
        by, variant = _variant(labels, variant_label)
        variants.append(variant)
        metrics.append(metric or name or path.stem)
        is_bucket = "le" in labels or (name or "").endswith("_bucket")
        raw.append(
            name is not None and (name.endswith("_bucket") or name.endswith(_RAW_COUNTER_SUFFIXES))
        )
        if is_bucket:
            kinds.append("bucket")
        elif raw[-1]:
            kinds.append("counter")
        else:
            kinds.append(kind or "gauge")
        keys.append((("variant", variant), ("metric", metrics[-1]), ("le", labels.get("le"))))
        ignore.append(frozenset({by} if by else ()))
    summed = check_unmerged(
        result, keys, ignore=ignore, aggregate=aggregate, source=source, fix=_SELECT_FIX
    )
    steps = _series_steps(result)
    frame = matrix_to_frame(
        result, variants=variants, metric=metrics, kind=kinds, cumulative=raw, source=source
    )
    if frame.is_empty():
        raise DataError(f"{source}: the response holds no samples", source=source)
    names = sorted(set(variants))
    control = "primary" if "primary" in names else names[0]
    meta: dict[str, Any] = {
        "source": source,
        "queries": {},
        "roles": {"control": control, "treatment": [v for v in names if v != control]},
        "step_s": _common_step(steps) or frames.step_seconds(frame),
    }
    if len(set(steps)) > 1:
        meta["series_steps_s"] = sorted(set(steps))
    if select:
        meta["select"] = dict(select)
    if summed:
        meta["aggregated"] = {"how": "sum", "labels": summed}
    notes = response_warnings(doc)
    if notes:
        meta["partial"] = True
        meta["warnings"] = notes
        warnings.warn(
            f"{source}: Prometheus answered with warnings, the data may be partial: "
            + "; ".join(notes),
            PartialDataWarning,
            stacklevel=2,
        )
    return Recording(frame, meta, source=source)


def _selected(result: list[Any], select: Mapping[str, str] | None, source: str) -> list[Any]:
    """The series whose labels have the values in ``select`` (all of them without it)."""
    if not select:
        return result

    def value(series: Any, label: str) -> str:
        labels = series.get("metric") if isinstance(series, Mapping) else None
        return str((labels or {}).get(label, ""))

    kept = [s for s in result if all(value(s, k) == v for k, v in select.items())]
    if not kept:
        present = {k: sorted({value(s, k) for s in result}) for k in select}
        raise DataError(
            f"{source}: no series has the labels select={dict(select)}; the values present "
            f"are {present}",
            source=source,
        )
    return kept


def _series_steps(result: Sequence[Any]) -> list[float]:
    """Each series' spacing: its most common gap between timestamps (to the millisecond;
    the smallest on a tie, so a gap of missing points does not count as the step)."""
    steps = []
    for s in result:
        points = s.get("values") if isinstance(s, Mapping) else None
        if not isinstance(points, list) or len(points) < 2:
            continue
        try:
            times = sorted(float(p[0]) for p in points)
        except (TypeError, ValueError, OverflowError, IndexError, KeyError):
            continue  # matrix_to_frame names the malformed point
        gaps = [round(b - a, 3) for a, b in zip(times, times[1:], strict=False) if b > a]
        if gaps:
            steps.append(min(set(gaps), key=lambda gap: (-gaps.count(gap), gap)))
    return steps


def _common_step(steps: list[float]) -> float | None:
    """The most common per-series step (the larger on a tie), or None."""
    if not steps:
        return None
    return max(set(steps), key=lambda step: (steps.count(step), step))


def _result_list(doc: Any, source: str) -> list[Any]:
    """The ``result`` list of a response, its ``data`` object, or a bare list."""
    if isinstance(doc, Mapping) and doc.get("status") == "error":
        raise DataError(
            f"{source}: the saved response is a Prometheus error: "
            f"{doc.get('errorType', '')}: {doc.get('error', '')}",
            source=source,
        )
    data = doc.get("data", doc) if isinstance(doc, Mapping) else doc
    if isinstance(data, Mapping):
        result_type = data.get("resultType")
        if result_type not in (None, "matrix", "vector"):
            raise DataError(
                f"{source}: resultType {result_type!r} is not a time series "
                "(expected 'matrix' from query_range or 'vector')",
                source=source,
            )
        if "result" not in data:
            raise DataError(
                f"{source}: no 'data.result' list; expected a Prometheus query_range response "
                '({"status": "success", "data": {"resultType": "matrix", "result": [...]}})',
                source=source,
            )
        data = data["result"]
    if not isinstance(data, list):
        raise DataError(
            f"{source}: 'result' is {type(data).__name__}, expected a list of series", source=source
        )
    for i, series in enumerate(data):
        labels = series.get("metric", {}) if isinstance(series, Mapping) else None
        if not isinstance(labels, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise DataError(
                f"{source}: series {i} is not an object with 'metric' (labels as text) and "
                f"'values': {str(series)[:200]}",
                source=source,
            )
    return data


def _variant(labels: Mapping[str, str], variant_label: str | None) -> tuple[str | None, str]:
    """(the label that names the variant, the variant); ``"all"`` when none does."""
    if variant_label is not None:
        return variant_label, labels.get(variant_label) or "all"
    for label in DEFAULT_VARIANT_LABELS:
        if labels.get(label):
            return label, labels[label]
    return None, "all"


__all__ = [
    "DEFAULT_VARIANT_LABELS",
    "MergeRefused",
    "NO_SEGMENT",
    "PartialDataWarning",
    "ParsedResponse",
    "check_unmerged",
    "load_query_range_json",
    "matrix_to_frame",
    "response_to_frame",
    "response_warnings",
]
