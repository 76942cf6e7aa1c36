"""Calibration charts and the fleet section of the report: which candidate spec to adopt.

The trade-off chart puts each candidate at (good rollouts stopped, bad rollouts caught):
up and to the left is better. The speed chart shows what it costs in release time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import altair as alt
import polars as pl

from rolloutlab import _html
from rolloutlab.views.reports import _page

_TOOLTIP = [
    alt.Tooltip("candidate:N"),
    alt.Tooltip("caught:Q", title="bad caught"),
    alt.Tooltip("bad:Q", title="bad rollouts"),
    alt.Tooltip("good_stopped:Q", title="good stopped"),
    alt.Tooltip("good:Q", title="good rollouts"),
    alt.Tooltip("median_minutes_to_promote:Q", title="median min to promote", format=".1f"),
]


def _points(table: pl.DataFrame) -> pl.DataFrame:
    return table.with_columns(
        (pl.col("good_held_back") + pl.col("good_rolled_back")).alias("good_stopped")
    ).select(
        "candidate",
        "judge",
        "caught",
        "bad",
        "good_stopped",
        "good",
        "caught_share",
        "good_stopped_share",
        "median_minutes_to_promote",
    )


def tradeoff(table: pl.DataFrame) -> alt.Chart:
    """Bad rollouts caught against good ones stopped (held back or rolled back), one
    point per candidate, coloured by judge; from :meth:`FleetReplay.calibration`."""
    x = alt.X(
        "good_stopped_share:Q",
        title="good rollouts stopped (held back or rolled back)",
        axis=alt.Axis(format="%"),
        scale=alt.Scale(domain=[0, 1]),
    )
    return _against_caught(table, x, "Catching bad releases vs stopping good ones")


def speed(table: pl.DataFrame) -> alt.Chart:
    """Median minutes to promote a good rollout against bad rollouts caught."""
    x = alt.X("median_minutes_to_promote:Q", title="median minutes to promote a good rollout")
    return _against_caught(table, x, "Release speed vs safety")


def _against_caught(table: pl.DataFrame, x: alt.X, title: str) -> alt.Chart:
    """One point per candidate at (``x``, share of bad rollouts caught), coloured by judge."""
    y = alt.Y(
        "caught_share:Q",
        title="bad rollouts caught (rolled back)",
        axis=alt.Axis(format="%"),
        scale=alt.Scale(domain=[0, 1]),
    )
    return (
        alt.Chart(_points(table).to_pandas())
        .mark_point(filled=True, size=90)
        .encode(x=x, y=y, color=alt.Color("judge:N", title="judge"), tooltip=_TOOLTIP)
        .properties(width=420, height=320, title=title)
    )


def calibration_table(table: pl.DataFrame) -> _html.Html:
    """The calibration as an HTML table, one row per candidate."""
    rows = [
        (
            _html.esc(r["candidate"]),
            f"{r['caught']} / {r['bad']}",
            _html.percent(r["caught_share"]) if r["caught_share"] is not None else _html.DASH,
            f"{r['escaped']}",
            f"{r['good_held_back']} + {r['good_rolled_back']} / {r['good']}",
            _html.percent(r["good_stopped_share"])
            if r["good_stopped_share"] is not None
            else _html.DASH,
            _html.num(r["median_minutes_to_promote"])
            if r["median_minutes_to_promote"] is not None
            else _html.DASH,
            f"{r['errors']}",
        )
        for r in table.iter_rows(named=True)
    ]
    return _html.table(
        (
            "candidate",
            "bad caught",
            "caught",
            "bad promoted",
            "good held back + rolled back",
            "good stopped",
            "median min to promote",
            "errors",
        ),
        rows,
    )


def summary(table: pl.DataFrame) -> str:
    """One sentence per candidate, best catch rate first."""
    lines = []
    for r in table.sort("caught_share", "good_stopped_share", descending=[True, False]).iter_rows(
        named=True
    ):
        if not r["bad"] + r["good"]:
            lines.append(
                f"{r['candidate']}: promotes {r['promoted']} and rolls back {r['rolled_back']} "
                f"of {r['rollouts']} rollouts; none has a known outcome or label to score it."
            )
            continue
        caught = f"catches {r['caught']} of {r['bad']} bad rollouts"
        stopped = r["good_held_back"] + r["good_rolled_back"]
        held = f"stops {stopped} of {r['good']} good ones"
        minutes = r["median_minutes_to_promote"]
        speed_text = f", promoting in {minutes:.3g} min (median)" if minutes is not None else ""
        lines.append(f"{r['candidate']}: {caught}, {held}{speed_text}.")
    return "\n".join(lines)


def render_fleet(result: Any, *, title: str = "Fleet calibration") -> str:
    """The fleet report page for a :class:`FleetReplay`: one sentence per candidate, the
    trade-off and speed charts, and the calibration table."""
    table = result.calibration()
    rollouts = result.rows["rollout"].n_unique()
    lead = f'<p class="rl-lead">{rollouts} rollouts replayed under {table.height} candidates.</p>'
    lines = "".join(f"<li>{_html.esc(line)}</li>" for line in summary(table).splitlines())
    figures = [
        ("Bad rollouts caught vs good ones stopped", tradeoff(table)),
        ("Release speed vs safety", speed(table)),
    ]
    details = _html.card("Calibration per candidate", calibration_table(table))
    return _page(title, f'{lead}<ul class="rl-judges">{lines}</ul>', figures, details)


def fleet_report(result: Any, path: str | Path = "fleet-report.html") -> Path:
    """Write the standalone fleet report for ``result``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_fleet(result), encoding="utf-8")
    return path
