"""Tables and verdicts for a terminal, and the same rows for other programs.

On a terminal, rich draws tables with colour and symbols, fitted to its width (long
sentences wrap inside their column). Piped or redirected, the same tables are plain text
that never wraps, for ``grep``, ``less -S`` and ``head``. ``json``, ``csv`` and
``markdown`` give the rows to other programs and documents: numbers stay numbers there,
times are ISO 8601 UTC and a missing value is empty (``null`` in JSON).

The frames (:func:`recording_frame`, :func:`ticks_frame`, :func:`evidence_frame`,
:func:`replay_frame`) have one human column per fact, units in the column names.
"""

from __future__ import annotations

import io
import json
import math
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import IO, Any

import numpy as np
import polars as pl

from rolloutlab import _html, frames
from rolloutlab.judges.flagger import histogram_quantile

FORMATS = ("table", "json", "csv", "markdown")

#: colour and symbol of a decision or a metric's classification, wherever a cell says one
STYLES = {
    "promote": ("bold green", "✔"),
    "rollback": ("bold red", "✖"),
    "continue": ("yellow", "…"),
    "pass": ("green", "✔"),
    "fail": ("red", "✖"),
    "nodata": ("magenta", "?"),
    "inconclusive": ("yellow", "~"),
}
DASH = "–"


def console(file: IO[str] | None = None) -> Any:
    """A rich console on ``file`` (stdout): styled and fitted on a terminal, else plain
    text that does not wrap. ``NO_COLOR``, ``FORCE_COLOR`` and ``COLUMNS`` are honoured."""
    from rich.console import Console

    file = file or sys.stdout
    con = Console(file=file, highlight=False)
    if not con.is_terminal:
        con = Console(
            file=file,
            highlight=False,
            color_system=None,
            width=1_000_000,
            emoji=False,
            soft_wrap=True,
        )
    # the caller decides, as for any print(); rich's hook is a method, replaced per console
    con.on_broken_pipe = _broken_pipe  # type: ignore[method-assign]
    return con


def _broken_pipe() -> None:
    """Rich exits the program on a closed pipe; raise the error instead."""
    raise BrokenPipeError("the reader of the output went away")


def echo(text: str = "", *, file: IO[str] | None = None) -> None:
    """One line (or paragraph: wrapped on a terminal, never when piped); markup in ``text``
    is not read."""
    console(file).print(text, markup=False)


def print_table(
    frame: pl.DataFrame,
    fmt: str = "table",
    *,
    title: str | None = None,
    wrap: Sequence[str] = (),
    file: IO[str] | None = None,
) -> None:
    """``frame`` in ``fmt`` (one of :data:`FORMATS`); ``wrap`` names the columns of long
    text that may wrap on a terminal (the others never do)."""
    out = file or sys.stdout
    if fmt == "json":
        out.write(json.dumps(records(frame), indent=2) + "\n")
    elif fmt == "csv":
        out.write(_csv(frame))
    elif fmt == "markdown":
        out.write(_markdown(frame, title))
    elif fmt == "table":
        _rich_table(frame, title, wrap, out)
    else:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")


def decision_line(decision: str, *, file: IO[str] | None = None, suffix: str = "") -> None:
    """``✖ ROLLBACK`` (coloured on a terminal, the word alone when piped) and ``suffix``."""
    from rich.text import Text

    con = console(file)
    style, symbol = STYLES.get(decision, ("bold", ""))
    head = f"{symbol} {decision.upper()}" if con.is_terminal and symbol else decision.upper()
    con.print(Text.assemble((head, style), suffix))


# -- the frames -------------------------------------------------------------------------

#: the facts of :func:`recording_facts` printed above a recording's table
FACT_LINES = ("recording", "span", "step", "source", "workload", "scenario", "created")


def recording_facts(rec: Any) -> dict[str, Any]:
    """What a recording is, JSON-ready: the :data:`FACT_LINES` in words, and ``start``,
    ``end`` (ISO UTC; the data cover the steps from ``start`` to ``end``), ``step_s``,
    ``steps``, ``control`` and ``treatments``."""
    meta = rec.meta
    step_s = rec.step_s
    steps = rec.frame["timestamp"].n_unique()
    first = rec.start - timedelta(seconds=step_s) if rec.start and step_s else rec.start
    facts: dict[str, Any] = {
        "recording": f"{meta.get('kind') or 'rollout'} of {rec.control} (control) vs "
        f"{', '.join(rec.treatments) or 'nothing'}",
        "span": span(first, rec.end),
        "step": f"{duration(timedelta(seconds=step_s)) if step_s else DASH}, {steps:,} steps",
    }
    source = meta.get("source")
    if source:
        facts["source"] = source + (f" ({meta['preset']} metrics)" if meta.get("preset") else "")
    if meta.get("target"):
        facts["workload"] = meta["target"] + (
            f" in namespace {meta['namespace']}" if meta.get("namespace") else ""
        )
    scenario = meta.get("scenario") or {}
    if scenario:
        facts["scenario"] = f"{scenario.get('name')} (seed {scenario.get('seed')})" + (
            f": {scenario['description']}" if scenario.get("description") else ""
        )
    if meta.get("created_at"):
        facts["created"] = str(meta["created_at"])
    return {
        **facts,
        "start": first.isoformat() if first else None,
        "end": rec.end.isoformat() if rec.end else None,
        "step_s": step_s,
        "steps": steps,
        "control": rec.control,
        "treatments": rec.treatments,
    }


def recording_frame(rec: Any) -> pl.DataFrame:
    """One row per variant: its requests, error %, median and p99 latency, last weight,
    and every other metric's total (counters) or mean (gauges)."""
    frame = rec.frame
    rows = []
    for variant in rec.variants:
        mine = frame.filter(pl.col("variant") == variant)
        row: dict[str, Any] = {"variant": variant}
        requests = _total(mine, "requests")
        if requests is not None:
            row["requests"] = requests
            errors = _total(mine, "errors")
            if errors is not None:
                row["error %"] = 100 * errors / requests if requests else None
        if "latency_ms" in rec.metrics:
            edges, counts = frames.bucket_counts(frame, "latency_ms", variant)
            total = counts.sum(axis=0) if counts.size else np.zeros(len(edges))
            for q, name in ((0.5, "p50 ms"), (0.99, "p99 ms")):
                row[name] = _finite(histogram_quantile(q, edges, total)) if edges.size else None
        weights = mine.filter(pl.col("metric") == "weight").sort("timestamp")["value"]
        if weights.len():
            row["last weight %"] = weights[-1]
        for metric in rec.metrics:
            if metric in ("requests", "errors", "latency_ms", "weight"):
                continue
            rows_of = mine.filter(pl.col("metric") == metric)
            kind = rows_of["kind"][0] if rows_of.height else "counter"
            if kind == "gauge":
                row[f"{metric} (mean)"] = _finite(rows_of["value"].mean())
            elif kind == "counter":
                row[metric] = _finite(rows_of["value"].sum()) if rows_of.height else None
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None)


def ticks_frame(rec: Any) -> pl.DataFrame:
    """One row per step: the time, each treatment's weight, and per variant its requests,
    error % and p99 latency (every step, however many)."""
    step_s = rec.step_s or frames.step_seconds(rec.frame) or 60.0
    table = frames.tick_table(rec.frame, step_s, variants=rec.variants)
    columns: dict[str, Any] = {"time": list(table.ends)}
    for v in rec.treatments:
        if v in table.weights:
            columns[f"{v} weight %"] = table.weight(v)
    edges = table.edges.get("latency_ms")
    for v in table.variants:
        requests = table.counter("requests", v)
        if "requests" in table.counters:
            columns[f"{v} requests"] = requests
        if "errors" in table.counters:
            with np.errstate(invalid="ignore", divide="ignore"):
                errors = 100.0 * table.counter("errors", v) / requests
            columns[f"{v} error %"] = np.where(requests > 0, errors, np.nan)
        if edges is not None:
            columns[f"{v} p99 ms"] = histogram_quantile(
                0.99, edges, table.histogram("latency_ms", v)
            )
    return _nan_to_null(pl.DataFrame(columns))


def evidence_frame(metrics: Sequence[Any]) -> pl.DataFrame:
    """One row per metric result: classification, estimate and interval in its unit,
    p-value, whether it decides, and why."""
    rows = [
        {
            "metric": m.name,
            "result": m.classification,
            "estimate": _finite(m.estimate),
            "low": float(m.ci[0]) if m.ci else None,
            "high": float(m.ci[1]) if m.ci else None,
            "unit": m.unit,
            "p-value": _finite(m.p_value),
            "decides": "yes" if m.critical else "no",
            "why": m.reason + (" (approximate)" if m.approximate else ""),
        }
        for m in metrics
    ]
    schema = {
        "metric": pl.String,
        "result": pl.String,
        "estimate": pl.Float64,
        "low": pl.Float64,
        "high": pl.Float64,
        "unit": pl.String,
        "p-value": pl.Float64,
        "decides": pl.String,
        "why": pl.String,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def evidence_table(metrics: Sequence[Any]) -> pl.DataFrame:
    """:func:`evidence_frame` for people, narrow enough for a terminal: the estimate with
    its unit and interval in one cell, metrics that do not decide marked so."""
    rows = [
        {
            "metric": m.name if m.critical else f"{m.name} (info only)",
            "result": m.classification,
            "estimate [interval]": f"{_html.estimate(m.estimate, m.unit)} {_html.interval(m.ci)}"
            if m.ci
            else _html.estimate(m.estimate, m.unit),
            "p-value": _finite(m.p_value),
            "why": m.reason + (" (approximate)" if m.approximate else ""),
        }
        for m in metrics
    ]
    schema = {
        "metric": pl.String,
        "result": pl.String,
        "estimate [interval]": pl.String,
        "p-value": pl.Float64,
        "why": pl.String,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def replay_frame(timeline: pl.DataFrame) -> pl.DataFrame:
    """A replay's timeline, one row per tick: the weight in force and each judge's
    decision with what it rests on (Flagger's failed checks, Kayenta's score,
    rolloutlab's smallest always-valid p-value)."""
    state = {"flagger": "failed_checks", "kayenta": "score", "rolloutlab": "min_p_value"}
    label = {"failed_checks": "failed checks", "score": "score", "min_p_value": "min p"}
    out = timeline.group_by("timestamp", maintain_order=True).agg(pl.col("weight").max())
    out = out.rename({"timestamp": "time", "weight": "weight %"})
    for judge in timeline["judge"].unique(maintain_order=True):
        rows = timeline.filter(pl.col("judge") == judge)
        keep = [pl.col("decision").alias(judge)]
        if judge in state:
            keep.append(pl.col(state[judge]).alias(f"{judge} {label[state[judge]]}"))
        out = out.join(rows.select(pl.col("timestamp").alias("time"), *keep), on="time", how="left")
    return out.sort("time")


# -- formats -----------------------------------------------------------------------------


def cell(value: Any) -> str:
    """A value as people read it: thousands separated, 3 significant digits (whole
    numbers from 100 on), UTC times, a dash for nothing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        for bound, text in ((100, f"{value:,.0f}"), (10, f"{value:.1f}"), (1, f"{value:.2f}")):
            if abs(value) >= bound:
                return text
        return f"{value:.3g}"
    return str(value)


def span(start: datetime | None, end: datetime | None) -> str:
    """``2026-01-12 10:01 → 2026-01-26 10:00 UTC (14 days)``: both dates, always."""
    if start is None or end is None:
        return "empty"
    return f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC ({duration(end - start)})"


def duration(delta: timedelta) -> str:
    """``3 h 19 min``, ``14 days``, ``45 s``: the two largest units."""
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'s' if unit == 'day' and count > 1 else ''}")
    return " ".join(parts[:2]) or "0 s"


#: narrowest a wrapping column may get on a terminal before it moves below the table
MIN_WRAP_WIDTH = 30


def _rich_table(frame: pl.DataFrame, title: str | None, wrap: Sequence[str], out: IO[str]) -> None:
    """A rich table; on a terminal too narrow for the ``wrap`` columns beside the others,
    those columns follow the table as one paragraph per row."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    con = console(out)
    tty = con.is_terminal
    widths = {
        name: max([len(name), *(len(cell(v)) + 2 * (tty and cell(v) in STYLES) for v in values)])
        for name, values in zip(frame.columns, frame.iter_columns(), strict=True)
    }
    fixed = sum(w + 3 for name, w in widths.items() if name not in wrap)
    wrapped = [c for c in wrap if c in widths]
    need = min([MIN_WRAP_WIDTH, *(widths[c] for c in wrapped)])
    below = wrapped if tty and con.width - fixed < need else []
    table = Table(
        title=Text(title) if title else None,
        title_justify="left",
        box=box.SIMPLE_HEAD if tty else None,
        header_style="bold" if tty else "",
        pad_edge=False,
        show_edge=False,
    )
    numeric = {name for name, dtype in frame.schema.items() if dtype.is_numeric()}
    shown = [c for c in frame.columns if c not in below]
    for name in shown:
        table.add_column(
            Text(name),
            min_width=None if name in wrap else widths[name],
            justify="right" if name in numeric else "left",
            no_wrap=name not in wrap,
            overflow="fold" if name in wrap else "ellipsis",
            ratio=1 if name in wrap and tty else None,
        )
    for row in frame.select(shown).iter_rows():
        cells = []
        for value in row:
            text = cell(value)
            style, symbol = STYLES.get(text, ("", ""))
            cells.append(Text(f"{symbol} {text}" if tty and symbol else text, style=style))
        table.add_row(*cells)
    if tty:
        con.print(table)
        for named in frame.iter_rows(named=True):
            for name in below:
                con.print(
                    Text.assemble((f"{cell(named[frame.columns[0]])}: ", "bold"), cell(named[name]))
                )
        return
    with con.capture() as captured:
        con.print(table)
    out.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def _markdown(frame: pl.DataFrame, title: str | None) -> str:
    """A GitHub-flavoured pipe table, numbers right-aligned."""

    def esc(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    numeric = [dtype.is_numeric() for dtype in frame.schema.values()]
    lines = [f"**{esc(title)}**", ""] if title else []
    lines.append("| " + " | ".join(esc(c) for c in frame.columns) + " |")
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    lines += ["| " + " | ".join(esc(cell(v)) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join(lines) + "\n"


def _csv(frame: pl.DataFrame) -> str:
    buffer = io.StringIO()
    frame.write_csv(buffer, datetime_format="%Y-%m-%dT%H:%M:%SZ", float_precision=None)
    return buffer.getvalue()


def records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``frame`` JSON-ready: ISO times, null for NaN and infinities."""
    return [{k: _json_value(v) for k, v in row.items()} for row in frame.iter_rows(named=True)]


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _total(frame: pl.DataFrame, metric: str) -> float | None:
    rows = frame.filter(pl.col("metric") == metric)
    return _finite(rows["value"].sum()) if rows.height else None


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _nan_to_null(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(pl.Float64).fill_nan(None))


__all__ = [
    "FACT_LINES",
    "FORMATS",
    "cell",
    "console",
    "decision_line",
    "duration",
    "echo",
    "evidence_frame",
    "evidence_table",
    "print_table",
    "recording_facts",
    "recording_frame",
    "records",
    "replay_frame",
    "span",
    "ticks_frame",
]
