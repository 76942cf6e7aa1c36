"""A canary rollout on this machine: no cluster, a real Prometheus, real HTTP traffic.

Everything binds 127.0.0.1 on free ports:

- two small HTTP services, the primary (``<target>-primary``) and the canary
  (``<target>``), each exporting Istio's standard metrics with prometheus_client
  (``istio_requests_total`` and ``istio_request_duration_milliseconds``, reporter
  ``destination``), so the ``istio`` preset reads them as it reads a mesh. Errors are
  drawn per request; latency is drawn from a log-normal and *reported*, not slept, so
  the demo costs almost nothing;
- :class:`LocalRouter`: the traffic split, in memory, behind the same :class:`Router`
  interface (and audit log) as the Kubernetes routers;
- :class:`LoadGenerator`: a thread that sends requests at a bounded rate, each to the
  canary with probability equal to the router's current canary weight, as a mesh does;
- a Prometheus server scraping both services every second.

:class:`LiveDemo` starts and stops all of it. Threads are daemons and are joined on
stop; the load is bounded in time and in requests.
"""

from __future__ import annotations

import atexit
import http.client
import random
import re
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from rolloutlab.control.audit import AuditLog, Auditor, AuditRecord, OnChange
from rolloutlab.control.loop import Rollout
from rolloutlab.control.routers import (
    Change,
    Router,
    Weights,
    check_reason,
    check_weight,
    weights_diff,
)
from rolloutlab.errors import SourceError, SpecError
from rolloutlab.judges.base import Judge
from rolloutlab.sources.prometheus import Prometheus
from rolloutlab.sources.promserver import PrometheusServer
from rolloutlab.sources.simulate import ISTIO_BUCKETS_MS
from rolloutlab.specs import Spec, default_metrics

_MULTIPLIER = re.compile(r"^\s*(?:(?P<x>[0-9.]+)\s*[x×]|(?P<pct>[+-][0-9.]+)\s*%)\s*$")


def parse_multiplier(value: str | float, *, name: str = "value") -> float:
    """``"2x"`` → 2.0, ``"+30%"`` → 1.3, ``"-10%"`` → 0.9; a number is taken as is."""
    if isinstance(value, int | float):
        factor = float(value)
    else:
        match = _MULTIPLIER.match(value)
        if match is None:
            raise SpecError(
                f"{name}={value!r} is not a multiplier; write e.g. '2x', '1.5x', '+30%' or '-10%'"
            )
        factor = float(match["x"]) if match["x"] else 1.0 + float(match["pct"]) / 100.0
    if not factor >= 0:
        raise SpecError(f"{name}={value!r} gives a negative factor {factor:g}")
    return factor


# -- the traffic split ---------------------------------------------------------------


class LocalRouter(Router):
    """An in-memory primary/canary split, audited like the Kubernetes routers.

    The load generator reads it for every request, so a write takes effect at once.
    Backends are named as Flagger names services: ``<name>-primary``, ``<name>-canary``.
    """

    kind = "local"

    def __init__(
        self,
        name: str = "podinfo",
        namespace: str = "test",
        *,
        canary_weight: int = 0,
        audit: AuditLog | None = None,
        on_change: OnChange | None = None,
    ) -> None:
        self._name = name
        self.namespace = namespace
        self._weights = Weights.split(check_weight(canary_weight))
        self._lock = threading.Lock()
        self._audit = Auditor(audit, on_change)

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"LocalRouter({self._name!r}, {self.namespace!r}, canary_weight={self.canary})"

    def describe(self) -> str:
        return (
            f"local: in-memory split {self.namespace}/{self._name} "
            f"(primary {self._name}-primary, canary {self._name}-canary)"
        )

    @property
    def canary(self) -> int:
        """The current canary percent (a lock-free read for the load generator)."""
        return self._weights.canary

    def weights(self) -> Weights:
        return self._weights

    def set_weight(self, canary_percent: float, *, reason: str, dry_run: bool = False) -> Change:
        """Set the split in one assignment; a dry run only shows the diff. Changes are audited."""
        target = Weights.split(check_weight(canary_percent))
        reason = check_reason(reason)
        with self._lock:
            before = self._weights
            if not dry_run:
                self._weights = target
        title = f"{self.kind} {self.namespace}/{self._name}" + (" dry run" if dry_run else "")
        change = Change(
            router=f"{self.kind} {self.namespace}/{self._name}",
            before=before,
            after=target,
            reason=reason,
            dry_run=dry_run,
            diff=weights_diff(
                before,
                target,
                labels=(f"{self._name}-primary", f"{self._name}-canary"),
                title=title,
            ),
        )
        if change.changed:
            self._audit(
                AuditRecord.now(
                    kind=self.kind,
                    namespace=self.namespace,
                    name=self._name,
                    action="set_weight",
                    before=before.as_dict(),
                    after=target.as_dict(),
                    reason=reason,
                    dry_run=dry_run,
                )
            )
        return change


# -- the two services ------------------------------------------------------------------


class Service:
    """One workload: answers ``GET /`` (200, or 503 with probability ``error_rate``) and
    ``GET /metrics``, recording each request in Istio's metrics with a sampled latency.
    """

    def __init__(
        self,
        workload: str,
        namespace: str,
        *,
        error_rate: float,
        latency_median_ms: float,
        latency_sigma: float = 0.6,
        seed: int | None = None,
    ) -> None:
        if not 0 <= error_rate <= 1:
            raise SpecError(f"{workload}: error rate must be in 0..1, got {error_rate:g}")
        self.workload = workload
        self.error_rate = error_rate
        self.latency_median_ms = latency_median_ms
        self.latency_sigma = latency_sigma
        self.closing = False
        self._random = random.Random(seed)
        self.registry = CollectorRegistry()
        labels = {
            "reporter": "destination",
            "destination_workload": workload,
            "destination_workload_namespace": namespace,
        }
        requests = Counter(
            "istio_requests_total",
            "Requests served, as Istio's standard metric.",
            [*labels, "response_code"],
            registry=self.registry,
        )
        # Both codes exist from the start, so increase() sees every error from zero.
        self._requests = {
            code: requests.labels(**labels, response_code=code) for code in (200, 503)
        }
        self._duration = Histogram(
            "istio_request_duration_milliseconds",
            "Request duration in ms, as Istio's standard metric.",
            list(labels),
            buckets=ISTIO_BUCKETS_MS,
            registry=self.registry,
        ).labels(**labels)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"service {self.workload} is not started")
        return self._server.server_port

    @property
    def address(self) -> str:
        """``127.0.0.1:port``, the scrape target."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Bind a free 127.0.0.1 port and serve from a thread."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _ServiceHandler)
        self._server.daemon_threads = False  # so server_close() joins connection threads
        self._server.service = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},  # how long shutdown() may wait
            name=f"rolloutlab-{self.workload}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and join every thread (idle connections time out within a second)."""
        self.closing = True
        if self._server is None or self._thread is None:  # never started, or stopped
            return
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()
        self._server = None

    def serve(self) -> int:
        """Handle one request: draw its outcome and latency, record them, return the status."""
        status = 503 if self._random.random() < self.error_rate else 200
        latency = self._random.lognormvariate(0.0, self.latency_sigma) * self.latency_median_ms
        self._requests[status].inc()
        self._duration.observe(latency)
        return status


class _ServiceHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection per client
    timeout = 1.0  # idle connections close, so stop() can join their threads
    wbufsize = 1 << 16  # one write per response (flushed by the base class) ...
    disable_nagle_algorithm = True  # ... sent at once, not after a delayed ACK

    def do_GET(self) -> None:
        service: Service = self.server.service  # type: ignore[attr-defined]
        if self.path == "/metrics":
            status, body, kind = 200, generate_latest(service.registry), CONTENT_TYPE_LATEST
        else:
            status = service.serve()
            body, kind = f"{service.workload} {status}\n".encode(), "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = self.close_connection or service.closing

    def log_message(self, *args: object) -> None:
        pass


# -- the load --------------------------------------------------------------------------


class LoadGenerator:
    """Sends ``GET /`` at ``rate_per_s``, each request to the canary with probability
    ``router.canary / 100``, until ``max_requests`` are sent or ``duration_s`` passes.

    Counts the requests sent to each service (``sent``) and those that got no answer
    at all (``failed``). Pacing never bursts to catch up after a stall.
    """

    def __init__(
        self,
        router: LocalRouter,
        primary: Service,
        canary: Service,
        *,
        rate_per_s: float = 100.0,
        duration_s: float = 600.0,
        max_requests: int | None = None,
        seed: int | None = None,
    ) -> None:
        if not 0 < rate_per_s <= 1000:
            raise SpecError(f"rate_per_s must be in (0, 1000], got {rate_per_s:g}")
        self.router = router
        self.services = {"primary": primary, "canary": canary}
        self.rate_per_s = rate_per_s
        self.duration_s = duration_s
        self.max_requests = (
            max_requests if max_requests is not None else int(rate_per_s * duration_s)
        )
        self.sent = {"primary": 0, "canary": 0}
        self.failed = 0
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rolloutlab-load", daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        connections = {
            role: http.client.HTTPConnection("127.0.0.1", service.port, timeout=2.0)
            for role, service in self.services.items()
        }
        period = 1.0 / self.rate_per_s
        deadline = time.monotonic() + self.duration_s
        next_at = time.monotonic()
        try:
            for _ in range(self.max_requests):
                now = time.monotonic()
                if now >= deadline or self._stop.wait(max(0.0, next_at - now)):
                    break
                next_at = max(next_at + period, time.monotonic() - period)
                role = "canary" if self._random.random() * 100 < self.router.canary else "primary"
                self._send(connections[role])
                self.sent[role] += 1
        finally:
            for connection in connections.values():
                connection.close()

    def _send(self, connection: http.client.HTTPConnection) -> None:
        try:
            connection.request("GET", "/")
            connection.getresponse().read()
        except (OSError, http.client.HTTPException):
            connection.close()  # reconnects on the next request
            self.failed += 1


# -- all of it together ------------------------------------------------------------------


class LiveDemo:
    """Two services, a load generator, a Prometheus scraping them, and a :class:`LocalRouter`.

    ``canary_errors`` and ``canary_latency`` set the canary against the primary
    (``"2x"``, ``"+30%"``, see :func:`parse_multiplier`); the primary fails
    ``error_rate`` of its requests with a log-normal latency of median
    ``latency_median_ms``. Load: ``rate_per_s`` for at most ``duration_s`` seconds.
    ``spec`` is a short plan (``interval_s`` ticks, 10 % steps to 50 %), so a rollout
    takes about ``6 × interval_s`` and its analysis at most ``40 × interval_s``; its Flagger success-rate floor is 95 % (the primary
    fails ``error_rate`` of its requests too). Use it as a context manager (or :meth:`start` and
    :meth:`stop`); stopping joins every thread and ends the Prometheus process, and an
    unstopped demo is stopped when Python exits.

    ``rollout(...)`` builds a :class:`rolloutlab.control.loop.Rollout` wired to it.
    """

    def __init__(
        self,
        *,
        canary_errors: str | float = "1x",
        canary_latency: str | float = "+0%",
        error_rate: float = 0.02,
        latency_median_ms: float = 80.0,
        rate_per_s: float = 200.0,
        duration_s: float = 600.0,
        interval_s: int = 5,
        target: str = "podinfo",
        namespace: str = "test",
        seed: int | None = None,
        audit: AuditLog | None = None,
        ready_timeout_s: float = 30.0,
    ) -> None:
        errors = error_rate * parse_multiplier(canary_errors, name="canary_errors")
        latency = latency_median_ms * parse_multiplier(canary_latency, name="canary_latency")
        seeds = random.Random(seed)
        self.target = target
        self.namespace = namespace
        self.ready_timeout_s = ready_timeout_s
        # Flagger's success-rate floor goes from 99% to 95%: the demo's primary itself
        # fails 2% of its requests, and a static floor only sees the canary.
        metrics = tuple(
            replace(m, threshold_min=95.0) if m.name == "request-success-rate" else m
            for m in default_metrics()
        )
        # the bake is bounded at 40 ticks (about 3 minutes at 5 s), not a production hour
        self.spec = Spec(
            interval_s=interval_s,
            threshold=2,
            step_weight=10,
            max_weight=50,
            metrics=metrics,
            max_analysis_s=40.0 * interval_s,
        )
        self._tmp = tempfile.TemporaryDirectory(prefix="rolloutlab-demo-")
        self.router = LocalRouter(
            target, namespace, audit=audit or AuditLog(Path(self._tmp.name) / "audit.jsonl")
        )
        self.primary = Service(
            f"{target}-primary",
            namespace,
            error_rate=error_rate,
            latency_median_ms=latency_median_ms,
            seed=seeds.getrandbits(32),
        )
        self.canary = Service(
            target,
            namespace,
            error_rate=errors,
            latency_median_ms=latency,
            seed=seeds.getrandbits(32),
        )
        self.load = LoadGenerator(
            self.router,
            self.primary,
            self.canary,
            rate_per_s=rate_per_s,
            duration_s=duration_s,
            seed=seeds.getrandbits(32),
        )
        self.prometheus: PrometheusServer | None = None
        self.source: Prometheus | None = None

    def __repr__(self) -> str:
        state = self.prometheus_url if self.source else "stopped"
        return f"<LiveDemo {self.namespace}/{self.target} · {state} · canary {self.router.canary}%>"

    @property
    def prometheus_url(self) -> str:
        if self.prometheus is None:
            raise SourceError("the demo is not running; use it in a 'with' block or start() it")
        return self.prometheus.url

    def __enter__(self) -> LiveDemo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LiveDemo:
        """Start the services, the load and Prometheus; wait until both are scraped."""
        atexit.register(self.stop)
        try:
            self.primary.start()
            self.canary.start()
            self.load.start()
            self.prometheus = PrometheusServer(
                scrape_targets=[self.primary.address, self.canary.address], scrape_interval="1s"
            ).start()
            self.source = Prometheus(self.prometheus.url, timeout=5.0, retries=0)
            self._wait_for_scrapes()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_scrapes(self) -> None:
        """Block until Prometheus has scraped both services twice (increase() needs two)."""
        assert self.source is not None
        deadline = time.monotonic() + self.ready_timeout_s
        query = 'count_over_time(up{job="rolloutlab"}[1m]) >= 2'
        while time.monotonic() < deadline:
            now = datetime.now(UTC)
            if len(self.source.query_range(query, now - timedelta(seconds=2), now, "1s")) == 2:
                return
            time.sleep(0.25)
        raise SourceError(
            f"Prometheus at {self.source.url} did not scrape the demo services within "
            f"{self.ready_timeout_s:g} s"
        )

    def stop(self) -> None:
        """Stop the load, Prometheus and the services, joining every thread (idempotent)."""
        atexit.unregister(self.stop)
        self.load.stop()
        if self.prometheus is not None:
            self.prometheus.stop()
            self.prometheus = None
        if self.source is not None:
            self.source.close()
            self.source = None
        self.primary.stop()
        self.canary.stop()
        self._tmp.cleanup()

    def rollout(
        self, judge: str | Judge = "rolloutlab", *, spec: Spec | None = None, **options: Any
    ) -> Rollout:
        """A :class:`Rollout` of this demo's canary: its source, router, names, and
        :attr:`spec` unless another is given. ``options`` go to :class:`Rollout`."""
        if self.source is None:
            raise SourceError("the demo is not running; use it in a 'with' block or start() it")
        options.setdefault("lag_s", 0.25)
        return Rollout(
            self.source,
            self.router,
            spec or self.spec,
            judge,
            target=self.target,
            namespace=self.namespace,
            preset="istio",
            **options,
        )
