"""A scripted Prometheus HTTP API for tests: a simulated primary and canary over real HTTP.

The real client (:class:`rolloutlab.sources.prometheus.Prometheus`), and the live loop on
it, run end to end against it, faults included::

    with FakePrometheus(router) as fake:
        prom = Prometheus(fake.url)
        fake.fault = "nan-errors"
        ...

It serves ``/api/v1/query_range`` on 127.0.0.1 (a free port) for the istio preset's three
queries (requests, errors, latency buckets), told apart by their text, with the istio
label ``destination_workload``: ``<target>-primary`` is the primary, ``<target>`` the
canary. Every step has ``requests_per_step`` requests, split by the canary weight that
``router`` has when the query is answered (50/50 without a router); ``error_rate`` of
them fail and their latencies follow :data:`LATENCY`, in exact proportions (no noise).

``fault`` (None: healthy) switches on one misbehaviour:

- ``"nan-errors"``: the canary's errors are ``NaN``;
- ``"inf-requests"``: the canary's requests are ``+Inf``;
- ``"negative"``: the canary's errors are ``-1`` (a broken exporter or proxy);
- ``"no-canary"``: the canary's series are left out of every answer;
- ``"error"``: HTTP 503 with a Prometheus error body;
- ``"hang"``: no answer until :meth:`release` or :meth:`stop` (at most
  :data:`HANG_LIMIT_S`); :attr:`hung` is set as soon as a request waits;
- ``"trickle"``: the body goes out one byte every :attr:`trickle_s` seconds.

The transport faults (``error``, ``hang``, ``trickle``) apply to any path and method, so
the fake also stands in for a misbehaving webhook or API server. :attr:`queries` lists
what was asked: ``(metric, start, end, step_s)``. :attr:`gauges` maps other queries (a
spec's template metrics) to the one value they answer at every step, or to None for no
series; their metric in :attr:`queries` is the query itself. :meth:`stop` (the end of the ``with``)
ends hangs and trickles and joins every thread the server started.
"""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlparse

from rolloutlab.control.routers import Router

Fault = Literal["nan-errors", "inf-requests", "negative", "no-canary", "error", "hang", "trickle"]
#: The longest a ``hang`` lasts, so a forgotten one cannot block a test run.
HANG_LIMIT_S = 30.0
#: Latency buckets: (le in ms, cumulative share of the requests).
LATENCY = ((25.0, 0.2), (50.0, 0.5), (100.0, 0.8), (250.0, 0.95), (500.0, 0.99), (math.inf, 1.0))


class FakePrometheus:
    """The scripted server; see the module docstring. Start it with ``with`` (or start/stop)."""

    def __init__(
        self,
        router: Router | None = None,
        *,
        target: str = "podinfo",
        requests_per_step: float = 1000,
        error_rate: float = 0.01,
    ) -> None:
        self.router = router
        self.target = target
        self.requests_per_step = requests_per_step
        self.error_rate = error_rate
        self.fault: Fault | None = None
        self.trickle_s = 0.1
        self.hung = threading.Event()
        self.queries: list[tuple[str, int, int, int]] = []
        self.gauges: dict[str, float | None] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first (use it in a 'with' block)"
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> FakePrometheus:
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))
        self._thread.daemon = True
        self._thread.start()
        return self

    def release(self) -> None:
        """End the ``hang`` fault: waiting requests are answered normally."""
        if self.fault == "hang":
            self.fault = None

    def stop(self) -> None:
        """Stop serving: end hangs and trickles, close the port, join every thread."""
        self._stopping.set()
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            for thread in [self._thread, *self._server.threads]:
                thread.join(timeout=5)

    def __enter__(self) -> FakePrometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _hang(self) -> None:
        self.hung.set()
        waited = 0.0
        while self.fault == "hang" and waited < HANG_LIMIT_S:
            if self._stopping.wait(0.02):
                return
            waited += 0.02

    def _answer(self, params: dict[str, list[str]]) -> dict[str, Any]:
        """The ``query_range`` answer: one series per variant (and bucket) on the step grid."""
        query = params["query"][0]
        start, end = int(float(params["start"][0])), int(float(params["end"][0]))
        step = int(float(params["step"][0].removesuffix("s")))
        if query in self.gauges:
            self.queries.append((query, start, end, step))
            value, grid = self.gauges[query], range(start, end + 1, step)
            result = (
                []
                if value is None
                else [{"metric": {}, "values": [[t, prom_text(value)] for t in grid]}]
            )
            return {"status": "success", "data": {"resultType": "matrix", "result": result}}
        metric = (
            "latency_ms"
            if "_bucket" in query
            else ("errors" if "response_code=~" in query else "requests")
        )
        self.queries.append((metric, start, end, step))
        canary = self.router.weights().canary if self.router is not None else 50
        result = []
        for variant, share in (("primary", 100 - canary), ("canary", canary)):
            if variant == "canary" and self.fault == "no-canary":
                continue
            name = self.target if variant == "canary" else f"{self.target}-primary"
            requests = self.requests_per_step * share / 100
            if metric == "latency_ms":
                series = [({"le": prom_text(le)}, requests * part) for le, part in LATENCY]
            elif metric == "requests":
                bad = variant == "canary" and self.fault == "inf-requests"
                series = [({}, math.inf if bad else requests)]
            else:
                bad = {"nan-errors": math.nan, "negative": -1.0}.get(self.fault or "")
                errors = requests * self.error_rate
                series = [({}, bad if variant == "canary" and bad is not None else errors)]
            result += [
                {
                    "metric": {"destination_workload": name, **labels},
                    "values": [[t, prom_text(value)] for t in range(start, end + 1, step)],
                }
                for labels, value in series
            ]
        return {"status": "success", "data": {"resultType": "matrix", "result": result}}


def prom_text(value: float) -> str:
    """A sample value as Prometheus writes it in JSON."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


class _Server(ThreadingHTTPServer):
    """Keeps its handler threads, so that stop() can join them."""

    daemon_threads = True

    def __init__(self, fake: FakePrometheus) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake
        self.threads: list[threading.Thread] = []

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        self.threads.append(thread)
        thread.start()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's API)
        fake = self.server.fake
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if fake.fault == "hang":
            fake._hang()
        url = urlparse(self.path)
        if fake.fault == "error":
            status, body = 503, _error("execution", "the fake was told to fail")
        elif url.path == "/api/v1/query_range":
            status, body = 200, fake._answer(parse_qs(url.query))
        else:
            status, body = 404, _error("not_found", f"the fake has no {url.path}")
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if fake.fault != "trickle":
                self.wfile.write(data)
                return
            for i in range(len(data)):
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                if fake._stopping.wait(fake.trickle_s):
                    return
        except OSError:  # the client gave up
            pass

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


def _error(kind: str, message: str) -> dict[str, str]:
    return {"status": "error", "errorType": kind, "error": message}
