"""Static HTML primitives for notebook reprs and reports: escaping, badges, small tables.

The bottom layer (stdlib only), so result types in ``sources`` and ``judges`` can build
their ``_repr_html_`` cards here without importing ``views``. The output is static HTML
with no JavaScript; colours are set inline as well as in the small stylesheet, and every
badge also says its word, so a card stays readable where a renderer strips styles
(GitHub) and looks right where it keeps them (Jupyter, nbviewer). Nothing here raises:
a repr must never fail, so odd values (None, NaN, objects whose ``str`` raises) become
a dash or their type name.

The colours are the palette's single source (``rolloutlab.views.palette`` re-exports
them for the charts), so a badge in a notebook and a mark in a chart always agree.
"""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

#: The control/primary variant's colour, in every chart and card.
CONTROL_COLOR = "#4c78a8"
#: Canary/treatment arms take these in order (no greens or reds: those mean decisions).
TREATMENT_COLORS = ("#f58518", "#b279a2", "#72b7b2", "#9d755d", "#eeca3b", "#ff9da6")
DECISION_COLORS = {"promote": "#2e7d32", "continue": "#f9a825", "rollback": "#c62828"}
CLASSIFICATION_COLORS = {
    "pass": "#2e7d32",
    "fail": "#c62828",
    "inconclusive": "#f9a825",
    "nodata": "#9e9e9e",
}
_DARK_TEXT = {"#f9a825", "#9e9e9e", "#eeca3b"}
NEUTRAL_COLOR = "#9e9e9e"
DASH = "—"

STYLE = """<style>
.rl-card{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:13px;
line-height:1.4;border:1px solid #ddd;border-radius:6px;padding:8px 12px;margin:4px 0;
max-width:960px;color:#222;background:#fff;overflow-x:auto}
.rl-card h4{margin:0 0 6px 0;font-size:14px}
.rl-card table{border-collapse:collapse;margin:4px 0}
.rl-card th,.rl-card td{padding:2px 8px;text-align:left;vertical-align:top;
border-bottom:1px solid #eee}
.rl-card th{font-weight:600;color:#555}
.rl-card td.rl-num{text-align:right;font-variant-numeric:tabular-nums}
.rl-badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:700;
font-size:12px;letter-spacing:.03em}
.rl-swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}
.rl-muted{color:#666}
</style>"""


class Html(str):
    """A string that is already HTML: :func:`esc` passes it through unchanged."""


def esc(value: Any) -> Html:
    """``value`` as escaped text (``Html`` passes through; None and NaN become a dash)."""
    if isinstance(value, Html):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Html(DASH)
    try:
        text = str(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return Html(html.escape(text))


def num(value: Any, digits: int = 3) -> str:
    """A number to ``digits`` significant digits (whole numbers in full, with thousands
    separators); anything else (None, NaN, text) a dash."""
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        return DASH
    if math.isnan(x):
        return DASH
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x.is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:.{digits}g}"


def percent(value: Any, digits: int = 1, *, signed: bool = False) -> str:
    """A fraction as a percent (``0.041`` → ``4.1%``, ``+4.1%`` when ``signed``); else a dash."""
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        return DASH
    if not math.isfinite(x):
        return DASH
    return f"{x:{'+' if signed else ''}.{digits}%}"


def pvalue(value: Any) -> str:
    """A p-value as people read it: ``0.032``, ``< 0.0001``, or a dash."""
    try:
        p = float(value)
    except (TypeError, ValueError, OverflowError):
        return DASH
    if math.isnan(p):
        return DASH
    return "< 0.0001" if p < 1e-4 else f"{p:.2g}"


def when(value: Any) -> str:
    """A datetime as ``2026-01-12 10:42 UTC`` (seconds shown when not zero); else a dash."""
    if not isinstance(value, datetime):
        return DASH if value is None else str(esc(value))
    try:
        fmt = "%Y-%m-%d %H:%M:%S" if value.second else "%Y-%m-%d %H:%M"
        zone = value.tzname() or "UTC"
        return f"{value:{fmt}} {zone}"
    except Exception:
        return DASH


def interval(ci: Any, unit: str = "", digits: int = 3) -> str:
    """``[lo, hi] unit`` from a pair; a dash when it is missing or malformed."""
    try:
        lo, hi = ci
    except (TypeError, ValueError):
        return DASH
    suffix = f" {unit}" if unit else ""
    return f"[{num(lo, digits)}, {num(hi, digits)}]{suffix}"


def estimate(value: Any, unit: str = "", digits: int = 3) -> str:
    """A point estimate with its unit (just a dash when missing)."""
    text = num(value, digits)
    return text if text == DASH or not unit else f"{text} {unit}"


def badge(label: Any, color: str | None = None) -> Html:
    """A coloured pill saying ``label`` in capitals; the colour comes from the decision
    or classification palettes unless given."""
    word = str(esc(label))
    key = word.lower()
    color = color or DECISION_COLORS.get(key) or CLASSIFICATION_COLORS.get(key, NEUTRAL_COLOR)
    text = "#222" if color in _DARK_TEXT else "#fff"
    return Html(
        f'<span class="rl-badge" style="background:{color};color:{text};padding:1px 8px;'
        f'border-radius:10px;font-weight:700">{word.upper()}</span>'
    )


def swatch(color: str) -> Html:
    """A small coloured square (a chart legend's key, in a table)."""
    return Html(
        f'<span class="rl-swatch" style="background:{esc(color)};display:inline-block;'
        'width:10px;height:10px"></span>'
    )


def treatment_colors(arms: Iterable[str]) -> dict[str, str]:
    """The treatment sequence given to ``arms`` in order (no control among them)."""
    names = dict.fromkeys(arms)
    return {a: TREATMENT_COLORS[i % len(TREATMENT_COLORS)] for i, a in enumerate(names)}


def variant_colors(variants: Iterable[str], control: str | None = None) -> dict[str, str]:
    """Each variant's colour: the control's fixed colour, the others the treatment
    sequence in the order given (``control`` defaults to the first variant)."""
    names = list(dict.fromkeys(variants))
    if control is None and names:
        control = names[0]
    others = treatment_colors(v for v in names if v != control)
    return others if control is None else {control: CONTROL_COLOR, **others}


def kv_table(rows: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> Html:
    """A two-column key/value table (values escaped unless ``Html``)."""
    items = rows.items() if isinstance(rows, Mapping) else rows
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in items)
    return Html(f"<table>{body}</table>")


def table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[str] = ()
) -> Html:
    """A result table with a header row; ``numeric`` columns are right-aligned."""
    right = [c in numeric for c in columns]
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    lines = []
    for row in rows:
        cells = "".join(
            f'<td class="rl-num" style="text-align:right;white-space:nowrap">{esc(v)}</td>'
            if r
            else f"<td>{esc(v)}</td>"
            for v, r in zip(row, right, strict=False)
        )
        lines.append(f"<tr>{cells}</tr>")
    return Html(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>")


def metric_table(results: Iterable[Any]) -> Html:
    """Per-metric results (anything shaped like ``MetricResult``) as one table row each."""
    rows = []
    for m in results:
        unit = getattr(m, "unit", "") or ""
        rows.append(
            (
                esc(getattr(m, "name", DASH)),
                badge(getattr(m, "classification", "?")),
                estimate(getattr(m, "estimate", None), unit),
                interval(getattr(m, "ci", None), unit),
                pvalue(getattr(m, "p_value", None)),
                esc(getattr(m, "reason", "")),
            )
        )
    columns = ("metric", "result", "estimate", "interval", "p", "why")
    return table(columns, rows, numeric=("estimate", "interval", "p"))


def card(title: Any, *parts: Any) -> Html:
    """A bordered card (with the stylesheet) holding a title and HTML parts."""
    body = "".join(str(esc(p)) for p in parts)
    return Html(f'{STYLE}<div class="rl-card"><h4>{esc(title)}</h4>{body}</div>')


def muted(text: Any) -> Html:
    """Secondary text (grey)."""
    return Html(f'<span class="rl-muted" style="color:#666">{esc(text)}</span>')


def never_raises(method: Callable[[Any], str]) -> Callable[[Any], str]:
    """Decorate a ``_repr_html_``: any error gives a minimal card naming the class and
    the error instead of an exception (a repr must never fail)."""

    @functools.wraps(method)
    def wrapper(self: Any) -> str:
        try:
            return method(self)
        except Exception as exc:
            return card(
                type(self).__name__,
                muted(f"(could not render this {type(self).__name__}: {type(exc).__name__})"),
            )

    return wrapper
