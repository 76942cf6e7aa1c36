"""SlackNotifier against a real HTTP server on 127.0.0.1 that records what it is sent (and
the fake Prometheus, as a webhook that trickles its answer)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fake_prometheus import FakePrometheus

from rolloutlab.control.notify import Event, SlackNotifier


class _Webhook(ThreadingHTTPServer):
    """Answers every POST with ``status`` after recording its JSON body."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.posts: list[dict] = []
        self.status = 200
        self.delay = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/services/T000/B000/XXXX"


class _Handler(BaseHTTPRequestHandler):
    server: _Webhook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append(
            {"path": self.path, "type": self.headers["Content-Type"], "json": json.loads(body)}
        )
        self.server.delay.wait(2.0)  # set: answer at once; clear: outlast the client's timeout
        self.send_response(self.server.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[_Webhook]:
    server = _Webhook()
    server.delay.set()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.delay.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


def _rollback() -> Event:
    return Event("rollback", "test/podinfo", "errors 2.1x the primary's", weight=0)


def test_posts_the_event_text_as_json(webhook: _Webhook) -> None:
    SlackNotifier(webhook.url).notify(_rollback())
    assert webhook.posts == [
        {
            "path": "/services/T000/B000/XXXX",
            "type": "application/json",
            "json": {
                "text": ":rotating_light: rollout test/podinfo: rollback: "
                "errors 2.1x the primary's (canary weight 0%)"
            },
        }
    ]


def test_rejection_is_logged_not_raised(webhook: _Webhook, caplog) -> None:
    webhook.status = 404
    with caplog.at_level(logging.WARNING, "rolloutlab.control.notify"):
        SlackNotifier(webhook.url).notify(_rollback())
    assert len(webhook.posts) == 1
    assert "rejected (HTTP 404" in caplog.text


def test_timeout_is_logged_not_raised(webhook: _Webhook, caplog) -> None:
    webhook.delay.clear()
    with caplog.at_level(logging.WARNING, "rolloutlab.control.notify"):
        SlackNotifier(webhook.url, timeout=0.2).notify(_rollback())
    assert "Slack notification failed (no answer within 0.2 s)" in caplog.text


def test_a_trickling_answer_is_cut_off_at_the_timeout(caplog) -> None:
    """The timeout bounds the whole post: a webhook that answers a byte every 0.1 s (each
    read well within any per-read timeout) is given up after 0.5 s."""
    with FakePrometheus() as hook, caplog.at_level(logging.WARNING, "rolloutlab.control.notify"):
        hook.fault = "trickle"
        began = time.monotonic()
        SlackNotifier(f"{hook.url}/services/T000/B000/XXXX", timeout=0.5).notify(_rollback())
        assert time.monotonic() - began < 1.5
    assert "Slack notification failed (no answer within 0.5 s)" in caplog.text


def test_unreachable_is_logged_not_raised(caplog) -> None:
    with caplog.at_level(logging.WARNING, "rolloutlab.control.notify"):
        SlackNotifier("http://127.0.0.1:9/hook", timeout=1.0).notify(_rollback())
    assert "Slack notification failed (ConnectionError)" in caplog.text


def test_repr_hides_the_webhook_secret(webhook: _Webhook) -> None:
    assert "XXXX" not in repr(SlackNotifier(webhook.url))
