"""The control panel in a real JupyterLab, clicked in headless Chromium through Playwright.

JupyterLab (PyPI ``jupyterlab``) starts on 127.0.0.1 on a free port with a token, in a
folder holding a copy of ``notebooks/01-live-canary.ipynb``. Playwright (the PyPI
package, driving the system Chromium through its executable path: no browser download)
opens the notebook and runs its cells up to the panel: the local live demo (two services,
a load generator, a real Prometheus) and ``Panel(rollout)``. Then the rendered widget's
buttons are clicked as a person would (Apply with the slider's readout, Promote asked and
cancelled, Rollback confirmed); the test asserts on the router's writes (the audit log the
notebook keeps beside itself) and on the status the page shows. The notebook's last cell
stops the demo, then the server is stopped.

Skips when Chromium or Playwright is missing, unless ``ROLLOUTLAB_REQUIRE_CHROMIUM=1``.
Everything is bounded: the server start, every page wait, and the whole test.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_report_browser import artifact, chromium_binary

from rolloutlab.control.audit import AuditLog

pytestmark = [pytest.mark.chromium, pytest.mark.timeout(150)]

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "01-live-canary.ipynb"
AUDIT = "live-canary-audit.jsonl"  # where the notebook's demo router logs its writes
WAIT_MS = 60_000
#: JupyterLab's announcements would cover the page's corner: off.
SETTINGS = {"@jupyterlab/apputils-extension/notification": {"fetchNews": "false"}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path) -> Iterator[tuple[str, Path]]:
    """A JupyterLab server on 127.0.0.1 over a copy of notebook 01: (its URL, its folder)."""
    chromium_binary()
    if shutil.which("jupyter", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("JupyterLab is not installed (pip install -e '.[test]')")
    root, config = tmp_path / "notebooks", tmp_path / "jupyter"
    root.mkdir()
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, root / NOTEBOOK)
    for plugin, values in SETTINGS.items():
        path = config / "lab" / "user-settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(config), JUPYTER_RUNTIME_DIR=str(tmp_path))
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "jupyter"),
            "lab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.allow_root=True",  # CI runs as root
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, f"JupyterLab exited: {(tmp_path / 'lab.log').read_text()}"
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "JupyterLab did not answer within 60 s"
                time.sleep(0.2)
        yield f"{url}/lab/tree/{NOTEBOOK}?token={token}", root
    finally:
        server.send_signal(signal.SIGTERM)  # shuts its kernels down cleanly
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _writes(folder: Path) -> list[tuple[int, int, bool]]:
    records = AuditLog(folder / AUDIT).records() if (folder / AUDIT).exists() else []
    return [(r.before["canary"], r.after["canary"], r.dry_run) for r in records]


def _wait_for_writes(folder: Path, count: int) -> list[tuple[int, int, bool]]:
    deadline = time.monotonic() + 20
    while len(writes := _writes(folder)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return writes


def test_panel_buttons_in_jupyterlab_write_through_the_router(lab, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    url, folder = lab
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_binary(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(WAIT_MS)
        try:
            page.goto(url)
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()
            # run the title, the demo, the heading and the panel: four Shift+Enter
            page.locator(".jp-Notebook .jp-Cell").first.click()
            for _ in range(4):
                page.keyboard.press("Shift+Enter")
            panel = page.locator(".jp-OutputArea-output .widget-vbox").first
            apply = panel.get_by_role("button", name="Apply…")
            apply.wait_for()
            status = panel.locator(".widget-html-content").last
            assert status.inner_text().startswith("ready")

            # the slider's readout takes a typed weight; Apply previews it, Confirm writes
            readout = panel.locator(".widget-readout").first
            readout.click()
            page.keyboard.press("Control+A")
            page.keyboard.type("30")
            page.keyboard.press("Enter")
            apply.click()
            confirm = panel.get_by_role("button", name="Confirm")
            confirm.wait_for(state="visible")
            assert "70/30" in panel.inner_text()  # the dry run's preview
            assert _wait_for_writes(folder, 1) == [(0, 30, True)]
            confirm.click()
            sync_api.expect(panel).to_contain_text("primary 70% · canary 30%")
            sync_api.expect(status).to_contain_text("canary 30%")
            assert _wait_for_writes(folder, 2) == [(0, 30, True), (0, 30, False)]

            # Promote asks first; cancelled, it writes nothing
            panel.get_by_role("button", name="Promote…").click()
            sync_api.expect(panel).to_contain_text("Promote test/podinfo")
            panel.get_by_role("button", name="Cancel").click()
            sync_api.expect(confirm).to_be_hidden()

            # Rollback, confirmed: all traffic back to the primary
            panel.get_by_role("button", name="Rollback…").click()
            sync_api.expect(panel).to_contain_text("Rollback test/podinfo")
            confirm.click()
            sync_api.expect(status).to_contain_text("rolled_back")
            sync_api.expect(panel).to_contain_text("primary 100% · canary 0%")
            sync_api.expect(panel).to_contain_text('rollout.rollback(reason="manual: panel")')
            assert panel.get_by_role("button", name="Rollback…").is_disabled()
            writes = _wait_for_writes(folder, 3)
            assert writes == [(0, 30, True), (0, 30, False), (30, 0, False)]
            page.screenshot(path=artifact("lab-panel.png"), full_page=True)

            # the notebook's last cell closes the panel and stops the demo
            page.locator(".jp-Notebook .jp-Cell").last.click()
            page.keyboard.press("Shift+Enter")
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()
        except Exception:
            page.screenshot(path=artifact("lab-panel-failed.png"), full_page=True)
            raise
        finally:
            browser.close()
