"""The standalone report (structure, offline, summary first) and saving charts."""

from __future__ import annotations

import html
import json
import re
import struct
from html.parser import HTMLParser

import pytest
from test_report_browser import chromium_binary

from rolloutlab.errors import RolloutlabError, StorageError
from rolloutlab.judges import Spec, Verdict
from rolloutlab.postmortem import Replay, replay
from rolloutlab.sources.simulate import simulate
from rolloutlab.views import charts, report, save_chart
from rolloutlab.views.reports import render_canary

JUDGES = ("flagger", "kayenta", "rolloutlab")


class Outline(HTMLParser):
    """Section ids in order, chart containers, and JSON spec blocks of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.charts: list[str] = []
        self.specs: dict[str, str] = {}
        self.sources: list[str] = []
        self._spec: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id", ""))
        if tag == "div" and "rl-chart" in (a.get("class") or "").split():
            self.charts.append(a["data-spec"])
        if tag == "script" and a.get("type") == "application/json":
            self._spec = a["id"]
        self.sources += [v for k, v in attrs if k in ("src", "href") and v]

    def handle_data(self, data):
        if self._spec:
            self.specs[self._spec] = self.specs.get(self._spec, "") + data

    def handle_endtag(self, tag):
        if tag == "script":
            self._spec = None


@pytest.fixture(scope="module")
def canary():
    return simulate("error-regression", duration_min=60, seed=2)


@pytest.fixture(scope="module")
def canary_page(canary, tmp_path_factory) -> str:
    path = report(canary, path=tmp_path_factory.mktemp("report") / "canary.html")
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def experiment_page(tmp_path_factory) -> str:
    rec = simulate("ab", duration_min=7 * 24 * 60, seed=4)
    path = report(rec, path=tmp_path_factory.mktemp("report") / "ab.html")
    return path.read_text(encoding="utf-8")


def outline(page: str) -> Outline:
    parser = Outline()
    parser.feed(page)
    return parser


@pytest.mark.parametrize("which", ["canary_page", "experiment_page"])
def test_page_is_standalone_and_offline(which, request):
    page = request.getfixturevalue(which)
    parts = outline(page)
    assert parts.sources == [], "no external scripts, styles or links"
    for cdn in ("cdn.jsdelivr", "unpkg.com", "cdnjs", "googleapis", "<link"):
        assert cdn not in page
    assert "window.vegaEmbed=" in page and len(page) > 500_000  # the bundle is inlined
    assert parts.sections == ["summary", "charts", "details"]  # the summary first
    assert len(parts.charts) >= 4
    assert sorted(parts.charts) == sorted(parts.specs)
    assert f'data-charts="{len(parts.charts)}"' in page
    for text in parts.specs.values():
        spec = json.loads(text)
        assert "$schema" not in spec  # no URL in the chart specs either
        assert "mark" in spec or any(k in spec for k in ("layer", "vconcat", "hconcat"))


def test_canary_summary_says_decision_why_when_for_each_judge(canary, canary_page):
    summary = canary_page.split('<section id="summary">')[1].split("</section>")[0]
    decisions = replay(canary).decisions
    assert set(decisions) == set(JUDGES)
    lead = summary.split("</p>")[0]
    assert html.escape(decisions["rolloutlab"].sentence()) in lead  # rolloutlab leads
    for d in decisions.values():
        assert d.decision.upper() in summary
        assert html.escape(d.sentence()) in summary  # who, what, when (minutes in), why
    assert "requests" in summary and "% to canary" in summary
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", canary_page)
    assert captions[:3] == [
        "Canary vs primary over time",
        "Each judge&#x27;s decision, tick by tick",
        "Sequential evidence (rolloutlab)",
    ]
    details = canary_page.split('<section id="details">')[1]
    assert details.count('<div class="rl-card">') == 2  # every judge's metrics, the recording


def test_canary_page_explains_its_terms_and_charts(canary_page):
    summary = canary_page.split('<section id="summary">')[1].split("</section>")[0]
    terms = re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", summary)
    words = {html.unescape(t) for t, _ in terms}
    assert {"p-value", "α (alpha)", "CS (confidence sequence)", "Kayenta score"} <= words
    assert {"sample-ratio mismatch (SRM)", "failed checks / threshold"} <= words
    assert all(len(meaning) > 30 for _, meaning in terms)  # words, not another symbol
    notes = re.findall(r'<figcaption>.*?</figcaption><p class="rl-note">(.*?)</p>', canary_page)
    assert len(notes) == len(re.findall("<figcaption>", canary_page))  # every chart has one
    assert "how surprising" in notes[2] and "α" in notes[2]


def test_canary_tables_give_units(canary, canary_page):
    details = canary_page.split('<section id="details">')[1].split("Recording")[0]
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", details)]
    rows = [cells[i : i + 7] for i in range(0, len(cells), 7)]
    by = {(r[0], r[1]): r for r in rows}
    assert set(by) == {(j, m) for j in JUDGES for m in ("request-success-rate", "request-duration")}
    verdicts = replay(canary).verdicts
    ratio = verdicts["rolloutlab"].metrics[0]
    assert by["rolloutlab", "request-success-rate"][3] == f"{ratio.estimate:.3g}× primary"
    shift = verdicts["rolloutlab"].metrics[1]
    assert by["rolloutlab", "request-duration"][3] == f"{shift.estimate:+.1%}"
    assert by["kayenta", "request-duration"][3].endswith(" ms")
    assert by["flagger", "request-success-rate"][3].endswith("%")


def test_canary_traffic_split_is_per_bin(canary_page):
    parts = outline(canary_page)
    specs = [json.loads(s) for s in parts.specs.values()]
    split = [s for s in specs if "to the canary (%)" in json.dumps(s)]
    assert len(split) == 1 and "step-before" in json.dumps(split[0])
    assert not any("share of requests (%)" in json.dumps(s) for s in specs)  # not cumulative


def test_report_title(canary, tmp_path):
    page = report(canary, path=tmp_path / "r.html", title="Checkout <canary>").read_text()
    assert "<title>Checkout &lt;canary&gt;</title>" in page
    assert "<h1>Checkout &lt;canary&gt;</h1>" in page


@pytest.mark.parametrize("name", ["r.docx", "r", "r.svg"])
def test_report_refuses_other_extensions(canary, tmp_path, name):
    with pytest.raises(RolloutlabError, match=r"use a file name ending in \.html, \.pdf, \.png"):
        report(canary, path=tmp_path / name)
    assert not (tmp_path / name).exists()


@pytest.fixture(scope="module")
def short_canary():
    """Twenty minutes: enough for every chart, quick to print."""
    return simulate("error-regression", duration_min=20, seed=2)


@pytest.mark.chromium
def test_report_prints_pdf_and_png_with_chromium(short_canary, tmp_path):
    chromium_binary()
    pdf = report(short_canary, path=tmp_path / "report.pdf", judges=("rolloutlab",))
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.count(b"/Type /Page") - data.count(b"/Pages") >= 2
    png = report(short_canary, path=tmp_path / "report.png", judges=("rolloutlab",))
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG")
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert width == 1280 and height > 2000  # the whole page at 1280 px, far taller than a screen


def test_report_without_chromium_says_how(short_canary, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no browser on the path: a fault made for real
    with pytest.raises(StorageError, match="apt-get install chromium"):
        report(short_canary, path=tmp_path / "r.pdf", judges=("rolloutlab",))


def test_experiment_summary_is_written_for_a_product_team(experiment_page):
    summary = experiment_page.split('<section id="summary">')[1].split("</section>")[0]
    assert "conversion" in summary
    assert "traffic split is as planned" in summary
    assert "guardrail" in summary
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", experiment_page)
    assert captions[0] == "Lift per metric"


def test_report_accepts_a_file_and_creates_folders(canary, tmp_path):
    rec_path = canary.save(tmp_path / "rec.parquet")
    out = report(rec_path, judges=("flagger",), path=tmp_path / "deep" / "r.html")
    summary = out.read_text(encoding="utf-8").split("</section>")[0]
    assert "flagger rolls back" in summary and "kayenta" not in summary


def test_render_canary_needs_a_verdict(canary):
    with pytest.raises(ValueError, match="at least one judge"):
        render_canary(Replay(canary, Spec(), {}))


def test_summary_escapes_reasons(canary):
    v = Verdict("rolloutlab", "continue", None, (), "<img src=x onerror=alert(1)>")
    page = render_canary(Replay(canary, Spec(), {"rolloutlab": v}))
    summary = page.split('<section id="summary">')[1].split("</section>")[0]
    assert "&lt;img src=x" in summary and "<img" not in summary


@pytest.mark.parametrize(("suffix", "magic"), [(".svg", b"<svg"), (".png", b"\x89PNG")])
def test_save_chart(canary, tmp_path, suffix, magic):
    path = save_chart(charts.latency_cdf(canary), tmp_path / "out" / f"cdf{suffix}")
    assert path.read_bytes().startswith(magic)


def test_save_chart_names_the_formats(canary, tmp_path):
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        save_chart(charts.latency_cdf(canary), tmp_path / "cdf.pdf")


def test_report_file_is_reasonably_small(canary_page):
    # The bundle is ~0.9 MB; the data of all charts for an hour-long canary stays small.
    assert len(canary_page.encode()) < 2_500_000


def test_cli_report_takes_a_title_and_refuses_other_extensions(short_canary, tmp_path, capsys):
    from rolloutlab.cli import main

    rec = str(short_canary.save(tmp_path / "rec.parquet"))
    out = tmp_path / "r.html"
    assert main(["report", rec, "--title", "Checkout", "-o", str(out)]) == 0
    assert "<h1>Checkout</h1>" in out.read_text(encoding="utf-8")
    assert main(["report", rec, "-o", str(tmp_path / "r.docx")]) == 2
    assert ".html or .pdf or .png" in capsys.readouterr().err
