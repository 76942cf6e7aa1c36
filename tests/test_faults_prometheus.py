"""The Prometheus fault suite: a real HTTP server on 127.0.0.1 misbehaving in every way the
issue lists, and the outcome each must have: the right error carrying ``status``, ``url``
and ``query``, or data flagged so that no judge promotes the canary.

Healthy answers come from :class:`fake_prometheus.FakePrometheus`'s generator (istio
series, 1000 requests a step, 0.1% errors); each fault rewrites them or replaces them.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from fake_prometheus import FakePrometheus, prom_text

from rolloutlab.errors import ConnectionFailed, EmptyResult, QueryError, SourceError, SpecError
from rolloutlab.judges import judge
from rolloutlab.sources.prometheus import Prometheus, Retries, Timeout
from rolloutlab.sources.promjson import PartialDataWarning
from rolloutlab.specs import MetricSpec, Spec

START = datetime(2026, 1, 12, 10, tzinfo=UTC)
END = START + timedelta(minutes=10)
QUERY = 'sum(rate(istio_requests_total{reporter="destination"}[1m]))'
#: Flagger's common plan (5 ticks to promotion), on the success rate only.
RATE = MetricSpec("request-success-rate", "ratio", "errors", "requests", threshold_min=99.0)
SPEC = Spec(interval_s=60, threshold=3, max_weight=50, step_weight=10, metrics=(RATE,))

Answer = Callable[["_Handler", dict[str, list[str]]], None]


class Scripted:
    """A server answering every request with ``answer(handler, params)``; :attr:`seen` holds
    the monotonic time of each request. Slow answers end when the server stops."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.seen: list[float] = []
        self.stopping = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.script = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> Scripted:
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,))
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's API)
        script: Scripted = self.server.script  # type: ignore[attr-defined]
        script.seen.append(time.monotonic())
        with contextlib.suppress(OSError):  # the client gave up
            script.answer(self, parse_qs(urlparse(self.path).query))

    def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def healthy(params: dict[str, list[str]]) -> dict[str, Any]:
    return FakePrometheus(error_rate=0.001)._answer(params)


Change = Callable[[dict[str, Any], str], None]


def data(change: Change | None = None) -> Answer:
    """Healthy answers, rewritten by ``change(response, metric)`` (the metric told apart by
    the query's text, as the fake does)."""

    def answer(handler: _Handler, params: dict[str, list[str]]) -> None:
        doc = healthy(params)
        if change is not None:
            query = params["query"][0]
            metric = "errors" if "response_code=~" in query else "requests"
            change(doc, "latency_ms" if "_bucket" in query else metric)
        handler.reply(200, json.dumps(doc).encode())

    return answer


def canary(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in doc["data"]["result"] if s["metric"]["destination_workload"] == "podinfo"]


def canary_value(value: float, metric: str = "errors") -> Change:
    """The canary's ``metric`` reads ``value`` at every step."""

    def change(doc: dict[str, Any], answered: str) -> None:
        for series in canary(doc) if answered == metric else []:
            series["values"] = [[t, prom_text(value)] for t, _ in series["values"]]

    return change


def status(code: int, body: bytes, headers: dict[str, str] | None = None) -> Answer:
    return lambda handler, params: handler.reply(code, body, headers)


def prom_error(kind: str, text: str) -> bytes:
    return json.dumps({"status": "error", "errorType": kind, "error": text}).encode()


def close_at_once(handler: _Handler, params: dict[str, list[str]]) -> None:
    handler.close_connection = True
    handler.connection.close()


def truncated(handler: _Handler, params: dict[str, list[str]]) -> None:
    body = json.dumps(healthy(params)).encode()
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body[: len(body) // 2])
    handler.wfile.flush()
    handler.close_connection = True


def slow(handler: _Handler, params: dict[str, list[str]]) -> None:
    handler.server.script.stopping.wait(5)  # type: ignore[attr-defined]
    data()(handler, params)


def byte_at_a_time(handler: _Handler, params: dict[str, list[str]]) -> None:
    body = json.dumps(healthy(params)).encode()
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    for i in range(len(body)):
        handler.wfile.write(body[i : i + 1])
        handler.wfile.flush()
        if handler.server.script.stopping.wait(0.02):  # type: ignore[attr-defined]
            return


def in_turn(*answers: Answer) -> Answer:
    """Each answer once, in order; the last one repeats."""
    count = iter(range(10**6))
    return lambda handler, params: answers[min(next(count), len(answers) - 1)](handler, params)


LOGIN = b"<!doctype html><html><body><form action=/login>Sign in</form></body></html>"

#: (fault, answer, error class, HTTP status it carries, text in its message, requests seen)
ERRORS = [
    ("400", status(400, prom_error("bad_data", "parse error")), QueryError, 400, "bad_data", 1),
    ("401", status(401, b"Unauthorized\n", {"Content-Type": "text/plain"}), QueryError, 401,
     "Check auth=", 1),
    ("422", status(422, prom_error("execution", "too many samples")), QueryError, 422,
     "too many samples", 1),
    ("429 for too long", status(429, b"slow down", {"Retry-After": "3600"}), QueryError, 429,
     "Retry-After: 3600", 1),
    ("429 unreadable", status(429, b"", {"Retry-After": "soon"}), QueryError, 429, "HTTP 429", 1),
    ("500", status(500, prom_error("internal", "boom")), QueryError, 500, "boom", 1),
    ("502 every time", status(502, b"Bad Gateway"), QueryError, 502, "Bad Gateway", 3),
    ("503", status(503, prom_error("timeout", "query timed out")), QueryError, 503,
     "query timed out", 1),
    ("closed connection", close_at_once, ConnectionFailed, None, "cannot reach", 1),
    ("truncated body", truncated, ConnectionFailed, None, "cut off", 1),
    ("HTML login page with 200", status(200, LOGIN, {"Content-Type": "text/html"}), QueryError,
     200, "does it need a login", 1),
    ("status error with 200", status(200, prom_error("execution", "query timed out")),
     QueryError, 200, "HTTP 200 with an error: execution: query timed out", 1),
    ("slow server", slow, ConnectionFailed, None, "did not answer within 0.5 s", 1),
    ("byte at a time", byte_at_a_time, ConnectionFailed, None, "did not answer within 0.5 s", 1),
]  # fmt: skip


def client(url: str) -> Prometheus:
    return Prometheus(
        url,
        timeout=Timeout(total_s=0.5, connect_s=0.5),
        retries=Retries(attempts=2, backoff_s=0.01, max_wait_s=2.0),
        max_workers=1,
    )


def fetch(prom: Prometheus) -> Any:
    return prom.fetch("istio", start=START, end=END, step="60s", target="podinfo", namespace="t")


@pytest.mark.parametrize(
    ("answer", "error", "code", "text", "requests"),
    [pytest.param(*case[1:], id=case[0]) for case in ERRORS],
)
@pytest.mark.parametrize("how", ["fetch", "query_range"])
def test_each_fault_is_the_right_error_with_its_context(how, answer, error, code, text, requests):
    with Scripted(answer) as server:
        prom = client(server.url)
        with pytest.raises(error, match=text) as info:
            if how == "fetch":
                fetch(prom)
            else:
                prom.query_range(QUERY, START, END, "60s")
    assert isinstance(info.value, SourceError)
    assert (info.value.status, info.value.url) == (code, server.url)
    assert info.value.query is not None and (how == "fetch" or info.value.query == QUERY)
    # fetch runs its three queries on one worker: one may start before the first failed
    assert len(server.seen) == requests if how == "query_range" else len(server.seen) >= requests


def test_a_short_retry_after_is_honoured_then_the_answer_used():
    answer = in_turn(status(429, b"slow down", {"Retry-After": "1"}), data())
    with Scripted(answer) as server:
        prom = Prometheus(server.url, timeout=5, retries=Retries(max_wait_s=2.0))
        assert prom.query_range(QUERY, START, END, "60s")
    assert len(server.seen) == 2
    assert server.seen[1] - server.seen[0] >= 0.9  # the server's own clock: it was waited for


def test_a_retry_after_beyond_the_calls_deadline_is_not_waited_for():
    # a 2 s wait within a 1 s call would overrun the total deadline (it took 2.04 s)
    answer = in_turn(status(429, b"slow down", {"Retry-After": "2"}), data())
    with Scripted(answer) as server:
        prom = Prometheus(server.url, timeout=1, retries=Retries(max_wait_s=5.0))
        with pytest.raises(QueryError, match="429"):
            prom.query_range(QUERY, START, END, "60s")
    assert len(server.seen) == 1


def test_an_injected_session_carries_the_requests_and_stays_open():
    import requests

    session = requests.Session()
    session.headers["X-Scope-OrgID"] = "tenant-a"
    got: list[str | None] = []

    def answer(handler: _Handler, params: dict[str, list[str]]) -> None:
        got.append(handler.headers.get("X-Scope-OrgID"))
        data()(handler, params)

    with Scripted(answer) as server:
        with Prometheus(server.url, session=session) as prom:
            prom.query_range(QUERY, START, END, "60s")
        with Prometheus(server.url, session=session) as again:  # not closed by the first
            again.query_range(QUERY, START, END, "60s")
    assert got == ["tenant-a", "tenant-a"]


def verdicts(answer: Answer) -> tuple[list[str], list[str]]:
    """The decisions of the Flagger and rolloutlab judges on what the server gave, and the
    warnings of the fetch."""
    with Scripted(answer) as server, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recording = fetch(client(server.url))
    decisions = [judge(recording, SPEC, judge=name).decision for name in ("flagger", "rolloutlab")]
    return decisions, [str(w.message) for w in caught if w.category is PartialDataWarning]


def test_healthy_data_promotes_so_the_faults_below_are_a_real_test():
    assert verdicts(data())[0][0] == "promote"


def drop_first_steps(doc: dict[str, Any], metric: str) -> None:
    # the first ones: a gap at the end would come after a promotion earned on full data
    for series in canary(doc):
        series["values"] = series["values"][5:]


def add_warning(doc: dict[str, Any], metric: str) -> None:
    doc["warnings"] = ["remote_read: store 2 of 3 unreachable"]


def only(keep: Callable[[dict[str, Any], dict[str, Any]], bool]) -> Change:
    """Keep the series for which ``keep(response, series)`` holds."""

    def change(doc: dict[str, Any], metric: str) -> None:
        doc["data"]["result"] = [s for s in doc["data"]["result"] if keep(doc, s)]

    return change


@pytest.mark.parametrize(
    ("change", "flag"),
    [
        pytest.param(canary_value(math.nan), None, id="NaN"),
        pytest.param(canary_value(math.inf, "requests"), "negative or infinite", id="+Inf"),
        pytest.param(canary_value(-math.inf), "negative or infinite", id="-Inf"),
        pytest.param(canary_value(-1.0), "negative or infinite", id="negative"),
        pytest.param(drop_first_steps, "steps missing", id="missing steps"),
        pytest.param(add_warning, "read as NaN: a partial answer", id="warnings"),
    ],
)
def test_broken_data_is_flagged_and_no_judge_promotes(change, flag):
    decisions, flagged = verdicts(data(change))
    assert "promote" not in decisions, decisions
    if flag is not None:
        assert any(flag in text for text in flagged), flagged


@pytest.mark.parametrize(
    ("change", "text"),
    [
        (only(lambda doc, s: False), "no data for variant 'primary'"),
        (only(lambda doc, s: s in canary(doc)), "no data for variant 'primary'"),
        (only(lambda doc, s: s not in canary(doc)), "no data for variant 'canary'"),
    ],
    ids=["empty result", "missing primary series", "missing canary series"],
)
def test_missing_series_are_an_empty_result_naming_the_variant(change, text):
    with Scripted(data(change)) as server, pytest.raises(EmptyResult, match=text):
        fetch(client(server.url))


@pytest.mark.parametrize(
    ("make", "text"),
    [
        (lambda: Timeout(total_s=0), "total_s must be a positive number"),
        (lambda: Timeout(connect_s=math.inf), "connect_s must be a positive number"),
        (lambda: Retries(attempts=-1), "attempts must be a whole number"),
        (lambda: Retries(max_wait_s=1e9), "max_wait_s"),
        (lambda: Prometheus("http://u:secret@host:9090", timeout=-1), "total_s"),
    ],
)
def test_client_settings_are_checked(make, text):
    with pytest.raises(SpecError, match=text) as info:
        make()
    assert "secret" not in str(info.value)


def test_the_url_an_error_carries_holds_no_credentials():
    with Scripted(status(401, b"Unauthorized\n")) as server:
        host = server.url.removeprefix("http://")
        prom = client(f"http://ann:s3cret@{host}")
        with pytest.raises(QueryError) as info:
            prom.query_range(QUERY, START, END, "60s")
    assert info.value.status == 401
    assert info.value.url == server.url
    assert "s3cret" not in str(info.value) and "s3cret" not in repr(vars(info.value))
