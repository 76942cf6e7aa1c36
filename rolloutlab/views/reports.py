"""The standalone HTML report, and saving charts as PNG/SVG.

One file that works offline: vega, vega-lite and vega-embed are inlined from
vl-convert's bundle (no CDN), the chart specs sit in JSON script blocks, and a small
script renders them as SVG and writes any error into ``#rl-errors`` (which the
headless-browser test reads). The plain-language summary comes first and, like the
tables, is static HTML that reads fine without JavaScript.

``report(..., path)`` writes HTML, or prints the same page with headless Chromium to PDF
or to one full-page PNG, by the file name's extension.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import altair as alt
import vl_convert as vlc

from rolloutlab import _html
from rolloutlab.errors import SpecError, StorageError
from rolloutlab.experiments import experiment
from rolloutlab.postmortem import DEFAULT_JUDGES, replay
from rolloutlab.sources.recording import Recording, load
from rolloutlab.views import charts
from rolloutlab.views import experiment as experiment_views

PAGE_STYLE = """<style>
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;color:#222;margin:0;background:#fafafa}
main{max-width:1080px;margin:0 auto;padding:16px 24px 48px;background:#fff}
h1{font-size:22px;margin:8px 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
p.rl-lead{font-size:16px;line-height:1.5} ul.rl-judges{line-height:1.9;padding-left:18px}
figure{margin:12px 0 24px} figcaption{font-weight:600;margin-bottom:6px}
#rl-errors{color:#c62828;white-space:pre-wrap}
main table{max-width:100%} main td{overflow-wrap:break-word} main th,.rl-badge{white-space:nowrap}
p.rl-note{color:#555;margin:0 0 6px;max-width:820px;line-height:1.45}
dl.rl-terms{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;line-height:1.45}
dl.rl-terms dt{font-weight:600} dl.rl-terms dd{margin:0}
</style>"""

# Runs before the bundle, so an error while loading it is recorded too.
_ERROR_HOOK = """<script>
window.rlErrors = [];
window.addEventListener("error", function (e) { rlErrors.push("error: " + e.message); });
window.addEventListener("unhandledrejection", function (e) {
  rlErrors.push("unhandled rejection: " + (e.reason && e.reason.message || e.reason));
});
(function () {
  var original = console.error;
  console.error = function () {
    rlErrors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    original.apply(console, arguments);
  };
})();
</script>"""

_EMBED = """<script>
(function () {
  function show() {
    var box = document.getElementById("rl-errors");
    box.textContent = rlErrors.join("\\n");
    box.hidden = rlErrors.length === 0;
  }
  var jobs = Array.prototype.map.call(document.querySelectorAll(".rl-chart"), function (el) {
    try {
      var spec = JSON.parse(document.getElementById(el.dataset.spec).textContent);
      return vegaEmbed(el, spec, {mode: "vega-lite", renderer: "svg", actions: false})
        .then(function () { el.dataset.rendered = "1"; })
        .catch(function (err) { rlErrors.push(el.id + ": " + err.message); });
    } catch (err) {
      rlErrors.push(el.id + ": " + err.message);
      return Promise.resolve();
    }
  });
  Promise.all(jobs).then(function () {
    var page = document.documentElement;  // for PNG export and the overflow test
    document.body.dataset.pageHeight = String(page.scrollHeight);
    document.body.dataset.pageWidth = String(page.scrollWidth);
    document.body.dataset.viewWidth = String(page.clientWidth);
    document.body.dataset.chartsRendered =
      String(document.querySelectorAll('.rl-chart[data-rendered="1"]').length);
    show();
  });
  window.addEventListener("error", show);
})();
</script>"""


def _vl_version() -> str | None:
    """altair's Vega-Lite version as vl-convert names it (``6.4``), if bundled."""
    version = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return version if version in vlc.get_vegalite_versions() else None


@functools.cache
def _javascript() -> str:
    """vega, vega-lite and vega-embed as one script (cached: it takes a second or two)."""
    # vl-convert's stubs make the optional ``snippet`` (default: the globals) required
    bundle = vlc.javascript_bundle(vl_version=_vl_version())  # type: ignore[call-arg]
    return bundle.replace("</script", "<\\/script")


def _spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    spec = chart.to_dict()
    spec.pop("$schema", None)  # vega-embed is told the mode; no URL in the page
    return spec


def _figure(i: int, caption: str, chart: alt.TopLevelMixin, note: str = "") -> str:
    spec = json.dumps(_spec(chart), separators=(",", ":")).replace("</", "<\\/")
    note = f'<p class="rl-note">{_html.esc(note)}</p>' if note else ""
    return (
        f"<figure><figcaption>{_html.esc(caption)}</figcaption>{note}"
        f'<div class="rl-chart" id="chart-{i}" data-spec="spec-{i}"></div>'
        f'<script type="application/json" id="spec-{i}">{spec}</script></figure>'
    )


def _page(
    title: str,
    summary: str,
    figures: Sequence[tuple[str, alt.TopLevelMixin] | tuple[str, alt.TopLevelMixin, str]],
    details: str,
) -> str:
    """A standalone page: title, summary, the charts (rendered offline; each with a
    caption and an optional note in plain words), the details."""
    made = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    body = "".join(_figure(i, *figure) for i, figure in enumerate(figures))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_html.esc(title)}</title>{PAGE_STYLE}{_html.STYLE}{_ERROR_HOOK}</head>"
        f'<body data-charts="{len(figures)}"><main>'
        f"<h1>{_html.esc(title)}</h1>{_html.muted(f'generated by rolloutlab on {made}')}"
        f'<section id="summary"><h2>Summary</h2>{summary}</section>'
        f'<section id="charts"><h2>Charts</h2>'
        "<noscript><p>The charts need JavaScript; the summary and the tables are complete "
        f"without it.</p></noscript>{body}</section>"
        f'<section id="details"><h2>Details</h2>{details}</section>'
        '<pre id="rl-errors" hidden></pre>'
        f"<script>{_javascript()}</script>{_EMBED}</main></body></html>"
    )


def _sentence(decision: Any) -> _html.Html:
    """A badge and the replay's sentence for one judge ("flagger rolls back at 10:07 (7 min
    in): why")."""
    return _html.Html(f"{_html.badge(decision.decision)} {_html.esc(decision.sentence())}")


def _traffic(recording: Any) -> str:
    """'3 h of data at 60 s steps; 180,000 requests, 24% to the canary.'"""
    step_s = recording.step_s or 0.0
    span_s = (recording.end - recording.start).total_seconds() + step_s if len(recording) else 0
    hours = f"{span_s / 3600:.3g} h of data" if span_s else "no data"
    step = f" at {step_s:g} s steps" if step_s else ""
    summary = recording.summary()
    if summary.is_empty() or "total" not in summary.columns:
        return f"{hours}{step}."
    requests = summary.filter(summary["metric"] == "requests")
    total = requests["total"].sum()
    shares = ", ".join(
        f"{100 * t / total:.3g}% to {v}"
        for v, t in requests.select("variant", "total").iter_rows()
        if total and v != recording.control
    )
    return f"{hours}{step}; {_html.num(total)} requests{', ' + shares if shares else ''}."


def render_canary(replay: Any, *, title: str | None = None) -> str:
    """The canary report page for a ``Replay``: decision, why and when for each judge
    (rolloutlab's first), then the charts (rollout over time with every decision, the
    judges' tick-by-tick timeline, rolloutlab's evidence, scorecards, latency, split) and
    the per-metric tables."""
    verdicts = list(replay.verdicts.values())
    if not verdicts:
        raise ValueError("render_canary needs a replay with at least one judge")
    recording = replay.recording
    decisions = replay.decisions
    lead = next((v for v in verdicts if v.judge == "rolloutlab"), verdicts[0])
    others = "".join(f"<li>{_sentence(decisions[v.judge])}</li>" for v in verdicts)
    agree = len({v.decision for v in verdicts}) == 1
    summary = (
        f'<p class="rl-lead">{_sentence(decisions[lead.judge])}</p>'
        f"<p>{_html.esc(_traffic(recording))} "
        f"{'All judges agree.' if agree else 'The judges disagree:'}</p>"
        f'<ul class="rl-judges">{others}</ul>'
        f"<p><b>The terms, in plain words</b></p>{_terms(CANARY_TERMS)}"
    )
    figures = [
        (
            "Canary vs primary over time",
            charts.timeseries(recording, verdicts),
            "Each line is one variant. The orange shading is the share of traffic the canary "
            "had (darker: more); the vertical lines mark when each judge decided.",
        ),
        (
            "Each judge's decision, tick by tick",
            charts.timeline(replay),
            "A tick is one analysis interval: amber while a judge keeps watching, then green "
            "(promote) or red (roll back) once it decides.",
        ),
        (
            f"Sequential evidence ({lead.judge})",
            charts.evidence(lead),
            "Left: the p-value, how surprising the canary's numbers would be if it were no "
            "worse than the primary; it rolls back when the line falls below α. Right: the "
            "canary's estimate and the range still compatible with the data (the confidence "
            "sequence), against no effect and the margin of harm tolerated.",
        ),
        *(
            (
                f"Per-metric scorecard ({v.judge})",
                charts.scorecard(v),
                "Each metric's estimate as a dot with its range as a bar: green passed, "
                "red failed, amber not yet clear.",
            )
            for v in verdicts
        ),
        (
            "Latency distribution",
            charts.latency_cdf(recording),
            "The share of requests answered within each latency: a canary curve to the right "
            "of the primary's (wide, solid) is slower.",
        ),
        (
            "Traffic split",
            charts.split(recording),
            "The canary's share of requests in each time bin against the weight it was "
            "given: they should move together, step by step.",
        ),
    ]
    details = _html.card("What each judge measured", _metrics_table(verdicts))
    return _page(
        title or _title(recording, "Canary report"),
        summary,
        figures,
        details + recording._repr_html_(),
    )


#: The statistical words of the canary report, each with what it means.
CANARY_TERMS = {
    "p-value": "how surprising the canary's numbers would be if it were no worse than the "
    "primary; small (below α) means the difference is real",
    "α (alpha)": "the line a p-value must cross: the rate of false rollbacks the judge accepts",
    "CS (confidence sequence)": "the range of effects still compatible with the data, at the "
    "stated confidence, valid however often it is checked (92.5% CS: 92.5% confident)",
    "interval": "the range of effects compatible with the data; ∞ means no upper bound yet",
    "× primary (ratio)": "the canary's value divided by the primary's: 2× fails twice as often",
    "latency shift": "how much slower (+) or faster (−) the canary answers, in % of the primary",
    "overdispersed": "the counts vary more than chance alone would make them; the ranges are "
    "widened to match",
    "Kayenta score": "the share of metrics that passed (0–100); at or below the marginal score "
    "the canary fails",
    "failed checks / threshold": "Flagger's count of ticks where a metric missed its limit; at "
    "the threshold it rolls back",
    "sample-ratio mismatch (SRM)": "a test that the traffic was split as the weights said; a "
    "mismatch means broken routing, and every comparison is suspect",
}


def _terms(terms: dict[str, str]) -> str:
    """A glossary: each term beside its meaning."""
    items = "".join(f"<dt>{_html.esc(k)}</dt><dd>{_html.esc(v)}</dd>" for k, v in terms.items())
    return f'<dl class="rl-terms">{items}</dl>'


def _measure(value: Any, unit: str) -> str:
    """A judge's number in the unit people read: ``2.84× primary``, ``+3.1%``, ``97.9%``,
    ``-6.2 ms``."""
    unit = (unit or "").strip()
    text = _html.num(value)
    if text == _html.DASH:
        return text
    if unit == "ratio" or unit.endswith(" ratio") or unit == "×":
        return f"{text}× primary"
    if unit in ("latency shift", "relative change"):
        return _html.percent(value, signed=True) if text not in ("∞", "−∞") else text
    if unit == "%":
        return f"{text}%"
    return f"{text} {unit}" if unit else text


def _metrics_table(verdicts: Sequence[Any]) -> str:
    """Every judge's per-metric result in one table, numbers with their units."""
    rows = []
    for v in verdicts:
        for m in v.metrics:
            unit = getattr(m, "unit", "") or ""
            ci = getattr(m, "ci", None)
            lo_hi = (
                f"{_measure(ci[0], unit)} to {_measure(ci[1], unit)}"
                if isinstance(ci, tuple | list) and len(ci) == 2
                else _html.DASH
            )
            rows.append(
                (
                    v.judge,
                    m.name,
                    _html.badge(m.classification),
                    _measure(m.estimate, unit),
                    lo_hi,
                    _html.pvalue(m.p_value),
                    m.reason,
                )
            )
    columns = ("judge", "metric", "result", "canary", "range (interval)", "p-value", "why")
    return _html.table(columns, rows, numeric=("canary", "range (interval)", "p-value"))


def render_experiment(recording: Any, result: Any, *, title: str | None = None) -> str:
    """The A/B report page for an ``ExperimentReport``: the badge (WINNER / NO WINNER /
    INVALID) and its plain-language summary for a product team first, then the lift over
    time, the rates per arm, lift per metric, traffic split, guardrails and the table."""
    summary = (
        f'<p class="rl-lead">{experiment_views.badge(result)} {_html.esc(result.summary())}</p>'
    )
    details = _html.card("Every metric and arm", experiment_views.details(result))
    figures: list[tuple[str, alt.TopLevelMixin]] = [
        ("Lift per metric", charts.lift(result)),
        ("Lift over time", experiment_views.lift_over_time(result)),
        ("Goal rate per arm over time", experiment_views.rate_over_time(result)),
        *(
            [("Lift by segment", experiment_views.segment_forest(result))]
            if not result.segments.is_empty()
            else []
        ),
        ("Traffic split", charts.srm(recording, planned=_planned(result))),
        (
            "Guardrails over time",
            charts.timeseries(recording, panels=("request_rate", "error_rate", "latency_p99")),
        ),
        ("Latency distribution", charts.latency_cdf(recording)),
    ]
    return _page(
        title or result.title or _title(recording, "Experiment report"),
        summary,
        figures,
        details + recording._repr_html_(),
    )


def _planned(result: Any) -> dict[str, float] | None:
    """The experiment's planned split per variant, as its SRM check used it."""
    shares = getattr(result, "planned_split", None)
    if not shares:
        return None
    return dict(zip((result.control, *result.arms), shares, strict=True))


def _title(recording: Any, kind: str) -> str:
    name = recording.meta.get("target") or (recording.meta.get("scenario") or {}).get("name")
    return f"{kind}: {name}" if name else kind


def report(
    recording: Recording | str | Path,
    spec: Any = None,
    *,
    path: str | Path = "report.html",
    judges: Iterable[str] = DEFAULT_JUDGES,
    title: str | None = None,
) -> Path:
    """Judge ``recording`` (a Recording or a file) and write the standalone report:
    HTML, or that page printed by headless Chromium to PDF or to one full-page PNG,
    by ``path``'s extension (see :data:`REPORT_FORMATS`).

    A canary is replayed under each of ``judges``; an experiment (``meta['kind'] ==
    'experiment'``) gets the A/B analysis (``judges`` does not apply). ``spec`` is what
    ``replay``/``experiment`` accept; ``title`` heads the page (default: the kind of
    report and the target). Returns the path written.
    """
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in REPORT_FORMATS:
        raise SpecError(
            f"{path}: cannot write a report as '{path.suffix or 'no extension'}'; "
            f"use a file name ending in {', '.join(REPORT_FORMATS)}, e.g. report.html"
        )
    if not isinstance(recording, Recording):
        recording = load(recording)
    if recording.meta.get("kind") == "experiment":
        html = render_experiment(recording, experiment(recording, spec), title=title)
    else:
        html = render_canary(replay(recording, spec, judges=tuple(judges)), title=title)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == ".html":
        path.write_text(html, encoding="utf-8")
    else:
        _print_page(html, path)
    return path


#: What ``report`` writes, by the file name's extension.
REPORT_FORMATS = (".html", ".pdf", ".png")
#: The page width a PNG is taken at (the report's layout is made to fit it).
PNG_WIDTH = 1280
CHROMIUM_TIMEOUT_S = 120
_CHROMIUM_FLAGS = (
    "--headless",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=15000",  # lets every chart render before the print
)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    raise StorageError(
        "a PDF or PNG report is printed by headless Chromium, which is not installed "
        "(Debian: apt-get install chromium); or write the report as .html"
    )


def _print_page(html: str, path: Path) -> None:
    """Print the report page with headless Chromium: a PDF, or a PNG of the whole page
    (a first run measures its height)."""
    with tempfile.TemporaryDirectory(prefix="rolloutlab-report-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(html, encoding="utf-8")
        if path.suffix.lower() == ".pdf":
            _run_chromium(page, "--no-pdf-header-footer", f"--print-to-pdf={path.resolve()}")
        else:
            dom = _run_chromium(page, f"--window-size={PNG_WIDTH},1000", "--dump-dom")
            height = re.search(r'data-page-height="(\d+)"', dom)
            height_px = min(int(height[1]) if height else 4000, 16_000)
            _run_chromium(
                page, f"--window-size={PNG_WIDTH},{height_px}", f"--screenshot={path.resolve()}"
            )
    if not path.exists() or not path.stat().st_size:
        raise StorageError(f"{path}: headless Chromium wrote nothing; write .html instead")


def _run_chromium(page: Path, *flags: str) -> str:
    """Chromium on ``page`` with a fresh profile and ``flags``; its stdout. Bounded, and
    its whole process group is ended on the way out."""
    sandbox = ("--no-sandbox",) if os.geteuid() == 0 else ()  # Chromium refuses root otherwise
    args = [_chromium(), *_CHROMIUM_FLAGS, *sandbox, f"--user-data-dir={page.parent / 'profile'}"]
    proc = subprocess.Popen(
        [*args, *flags, page.as_uri()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=CHROMIUM_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise StorageError(
            f"headless Chromium did not print {page.name} within {CHROMIUM_TIMEOUT_S} s"
        ) from exc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.returncode:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        raise StorageError(f"headless Chromium failed ({proc.returncode}): {tail[0]}")
    return out.decode("utf-8", "replace")


def save_chart(chart: alt.TopLevelMixin, path: str | Path, *, scale: float = 2.0) -> Path:
    """Save a chart as ``.png`` (``scale`` × pixels, for slides) or ``.svg``, offline."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = _spec(chart)
    if path.suffix.lower() == ".png":
        path.write_bytes(vlc.vegalite_to_png(spec, vl_version=_vl_version(), scale=scale))
    elif path.suffix.lower() == ".svg":
        path.write_text(vlc.vegalite_to_svg(spec, vl_version=_vl_version()), encoding="utf-8")
    else:
        raise ValueError(
            f"{path}: cannot save a chart as '{path.suffix or 'no suffix'}'. "
            "Use a .png or .svg file name."
        )
    return path
