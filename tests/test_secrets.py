"""A planted secret never leaves: stdout, stderr, the audit log, a saved recording, its
HTML report, the loop's status line, the Slack payload (sent to a local HTTP server) and
the logs are searched for it; the servers are checked to have received it where it
belongs.

Prometheus is tests/fake_prometheus.py (real HTTP): the real server checks no
credentials, and the test must see the headers that arrive. Its handler is wrapped to
record them.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import fake_prometheus
import pytest
from fake_prometheus import FakePrometheus
from kube_emulator import closed_port

from rolloutlab.cli import main
from rolloutlab.control.audit import AuditLog
from rolloutlab.control.local import LocalRouter
from rolloutlab.control.loop import Rollout
from rolloutlab.control.notify import SlackNotifier
from rolloutlab.sources.prometheus import Prometheus
from rolloutlab.specs import Spec

pytestmark = pytest.mark.timeout(60)

SECRET = "pl4nted-s3cret-7f3a"
START, END = "2026-01-12T10:00Z", "2026-01-12T10:20Z"


@pytest.fixture
def prometheus(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakePrometheus, list[Any]]]:
    """The fake Prometheus, and the headers of each request it received."""
    received: list[Any] = []
    serve = fake_prometheus._Handler.do_GET

    def recording(handler: Any) -> None:
        received.append(dict(handler.headers))
        serve(handler)

    monkeypatch.setattr(fake_prometheus._Handler, "do_GET", recording)
    with FakePrometheus() as fake:
        yield fake, received


class Slack(BaseHTTPRequestHandler):
    bodies: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's API)
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])).decode())
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slack() -> Iterator[str]:
    """A webhook on 127.0.0.1 whose path holds the secret, as Slack's do."""
    Slack.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Slack)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/{SECRET}hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def secret_files(tmp_path: Path) -> list[str]:
    token = tmp_path / "token"
    token.write_text(f"{SECRET}tok\n")
    headers = tmp_path / "headers"
    headers.write_text(f"X-Api-Key: {SECRET}hdr\n")
    return ["--bearer-file", str(token), "--header-file", str(headers)]


def fetch_args(url: str, output: Path) -> list[str]:
    return [
        "fetch", "--url", url, "--target", "podinfo", "--namespace", "test",
        "--start", START, "--end", END, "-o", str(output),
    ]  # fmt: skip


def test_fetch_show_report_keep_the_secrets_out(
    prometheus: tuple[FakePrometheus, list[Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    fake, received = prometheus
    url = fake.url.replace("http://", f"http://alice:{SECRET}pw@")
    rec = tmp_path / "rec.parquet"
    assert main(fetch_args(url, rec) + secret_files(tmp_path)) == 0
    # the secrets went where they belong: the token from its file, the header from its file
    assert {h["Authorization"] for h in received} == {f"Bearer {SECRET}tok"}
    assert {h["X-Api-Key"] for h in received} == {f"{SECRET}hdr"}

    html = tmp_path / "report.html"
    assert main(["show", str(rec)]) == 0
    assert main(["report", str(rec), "-o", str(html)]) == 0
    out, err = capsys.readouterr()
    assert fake.url.removeprefix("http://") in rec.read_bytes().decode("latin-1")  # the host stays
    for channel in (out, err, rec.read_bytes().decode("latin-1"), html.read_text(), caplog.text):
        assert SECRET not in channel


def test_url_credentials_become_basic_auth(
    prometheus: tuple[FakePrometheus, list[Any]], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    fake, received = prometheus
    url = fake.url.replace("http://", f"http://alice:{SECRET}pw@")
    assert main(fetch_args(url, tmp_path / "rec.csv")) == 0
    basic = "Basic " + base64.b64encode(f"alice:{SECRET}pw".encode()).decode()
    assert {h["Authorization"] for h in received} == {basic}
    out, err = capsys.readouterr()
    saved = "".join(p.read_text() for p in tmp_path.iterdir())
    assert all(SECRET not in text for text in (out, err, saved))


def test_errors_keep_the_secrets_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://alice:{SECRET}pw@127.0.0.1:{closed_port()}"
    args = fetch_args(url, tmp_path / "rec.parquet") + secret_files(tmp_path)
    assert main([*args, "--timeout", "2"]) == 2
    out, err = capsys.readouterr()
    assert "cannot reach Prometheus at http://127.0.0.1:" in err
    assert SECRET not in out + err


def test_the_loop_status_audit_log_and_slack_keep_the_secrets_out(
    slack: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3's DEBUG lines show the webhook's path
    now = [datetime(2026, 1, 12, 10, 0, 30, tzinfo=UTC)]
    log = AuditLog(tmp_path / "audit.jsonl")
    source = Prometheus(f"http://alice:{SECRET}pw@127.0.0.1:{closed_port()}", timeout=2)
    rollout = Rollout(
        source,
        LocalRouter("podinfo", "test", audit=log),
        Spec(interval_s=60, step_weight=20, max_weight=60),
        target="podinfo",
        namespace="test",
        notifier=SlackNotifier(slack),
        failure_limit=1,
        lag_s=1.0,
        clock=lambda: now[0],
    )
    rollout.step()  # start: canary 20%
    now[0] = rollout.origin + timedelta(minutes=1, seconds=2)
    record = rollout.step()  # Prometheus unreachable: the failure limit rolls back
    assert record.action == "rollback" and record.applied

    assert "cannot reach Prometheus at http://127.0.0.1" in Slack.bodies[-1]  # it did say why
    channels = [
        rollout.status,
        *Slack.bodies,
        log.path.read_text(),
        json.dumps(rollout.recording.meta, default=str),
        caplog.text,
    ]
    for channel in channels:
        assert SECRET not in channel
