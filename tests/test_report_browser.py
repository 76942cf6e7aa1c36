"""Open a generated report in real headless Chromium: every chart renders, no errors.

Skips when Chromium is not installed, unless ``ROLLOUTLAB_REQUIRE_CHROMIUM=1`` (CI),
in which case it fails. The page records its own errors (``window.onerror``, unhandled
promise rejections, ``console.error``, vega-embed failures) into ``#rl-errors``; the
test reads the DOM after a virtual-time budget, so it needs no DevTools client.
Chromium runs in its own process group with a timeout and is killed on the way out.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rolloutlab.sources.simulate import simulate
from rolloutlab.views import report

pytestmark = pytest.mark.chromium

TIMEOUT_S = 90
#: HTML elements without an end tag (SVG children in a serialized DOM have one).
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=15000",
)


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    reason = "headless Chromium is not installed (Debian: apt-get install chromium)"
    if os.environ.get("ROLLOUTLAB_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"ROLLOUTLAB_REQUIRE_CHROMIUM=1 but {reason}")
    pytest.skip(reason)


def artifact(name: str) -> Path:
    """Where a test keeps a file for people to look at: ``$ROLLOUTLAB_ARTIFACTS`` (CI can
    collect it), else ``rolloutlab-artifacts`` in the temporary folder. The path is printed with ``-s``."""
    default = Path(tempfile.gettempdir()) / "rolloutlab-artifacts"
    folder = Path(os.environ.get("ROLLOUTLAB_ARTIFACTS") or default)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"artifact: {folder / name}")
    return folder / name


def run_chromium(page: Path, profile: Path, *extra: str) -> str:
    """Chromium on ``page`` with a fresh profile; its stdout. Bounded and always reaped."""
    args = [chromium_binary(), *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()]
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: renderer and GPU helpers included
    )
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish {page.name} within {TIMEOUT_S} s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, f"chromium exited with {proc.returncode}"
    return out.decode("utf-8", "replace")


class RenderedDom(HTMLParser):
    """Counts, per chart container, the SVG elements vega drew; reads the error box."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: dict[str, int] = {}
        self.expected: int | None = None
        self.rendered: int | None = None
        self.widths: tuple[int, int] | None = None  # the page's scroll width, the window's
        self.errors = ""
        self._stack: list[tuple[str, str | None]] = []
        self._in_errors = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.expected = int(a["data-charts"])
            if "data-charts-rendered" in a:
                self.rendered = int(a["data-charts-rendered"])
            if "data-page-width" in a:
                self.widths = (int(a["data-page-width"]), int(a["data-view-width"]))
        chart = None
        if tag == "div" and "rl-chart" in (a.get("class") or "").split():
            chart = a["id"]
            self.svgs[chart] = 0
        if tag == "svg":
            for _, owner in reversed(self._stack):
                if owner:
                    self.svgs[owner] += 1
                    break
        self._in_errors = tag == "pre" and a.get("id") == "rl-errors"
        if tag not in VOID:
            self._stack.append((tag, chart or (self._stack[-1][1] if self._stack else None)))

    def handle_endtag(self, tag):
        while self._stack:
            if self._stack.pop()[0] == tag:
                break
        if tag == "pre":
            self._in_errors = False

    def handle_data(self, data):
        if self._in_errors:
            self.errors += data


def rendered(page: Path, profile: Path) -> RenderedDom:
    dom = RenderedDom()
    dom.feed(run_chromium(page, profile, "--dump-dom"))
    return dom


@pytest.fixture(scope="module")
def canary_report(tmp_path_factory) -> Path:
    chromium_binary()
    rec = simulate("error-regression", duration_min=90, seed=5)
    return report(rec, path=tmp_path_factory.mktemp("browser") / "report.html")


def test_every_chart_renders_without_errors(canary_report, tmp_path):
    dom = rendered(canary_report, tmp_path / "profile")
    assert dom.errors.strip() == "", f"the page logged errors:\n{dom.errors}"
    assert dom.expected and dom.expected >= 6
    assert dom.rendered == dom.expected, "vega-embed did not finish every chart"
    assert len(dom.svgs) == dom.expected
    empty = [chart for chart, n in dom.svgs.items() if n == 0]
    assert not empty, f"no SVG drawn in {empty}"


def test_a_broken_chart_is_reported(canary_report, tmp_path):
    # The harness must be able to fail: break one spec and expect the error to surface.
    page = canary_report.read_text(encoding="utf-8")
    broken = tmp_path / "broken.html"
    broken.write_text(page.replace('"mark":{"type":"line"', '"mark":{"type":"nonsense"', 1))
    dom = rendered(broken, tmp_path / "profile")
    assert "chart-0: " in dom.errors  # the timeseries holds the first line mark
    assert dom.rendered == dom.expected - 1


def test_no_horizontal_overflow_at_1280_px_and_a_screenshot(canary_report, tmp_path):
    dom = RenderedDom()
    dom.feed(
        run_chromium(canary_report, tmp_path / "profile", "--window-size=1280,1000", "--dump-dom")
    )
    assert dom.rendered == dom.expected
    page_width, view_width = dom.widths
    assert view_width == 1280 and page_width <= view_width, "the page scrolls sideways"
    shot = artifact("canary-report-1280.png")  # to look at, as a person would
    run_chromium(
        canary_report, tmp_path / "profile", "--window-size=1280,3000", f"--screenshot={shot}"
    )
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 50_000


def test_the_overflow_check_can_fail(canary_report, tmp_path):
    page = canary_report.read_text(encoding="utf-8")
    wide = tmp_path / "wide.html"
    wide.write_text(page.replace("<main>", '<main><div style="width:1500px">wide</div>', 1))
    dom = RenderedDom()
    dom.feed(run_chromium(wide, tmp_path / "profile", "--window-size=1280,1000", "--dump-dom"))
    assert dom.widths[0] > 1280
