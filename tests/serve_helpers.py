"""Shared by the serve tests and the load benchmark: Flagger Canary manifests, the
simulated canaries backfilled into a real Prometheus, a fake clock and uvicorn on a free
port in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvicorn

from rolloutlab.sources.openmetrics import to_openmetrics
from rolloutlab.sources.simulate import simulate

#: The simulated rollouts start here (rolloutlab.sources.simulate.Scenario.start) and step
#: their weight 10, 20, ... 50 every 5 minutes (Scenario.interval_s, step_weight, max_weight).
T0 = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)
NAMESPACE = "shop"

CANARY = """apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: {name}
  namespace: {namespace}
spec:
  provider: istio
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {name}
  service:
    port: 9898
  analysis:
    interval: 5m
    threshold: 5
    maxWeight: 50
    stepWeight: 10
    metrics:
      - name: request-success-rate
        thresholdRange:
          min: 99
        interval: 1m
      - name: request-duration
        thresholdRange:
          max: 500
        interval: 1m
"""


def write_canaries(folder: Path, names: list[str], namespace: str = NAMESPACE) -> Path:
    """One Canary manifest per name (same plan as the simulation), in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.yaml").write_text(CANARY.format(name=name, namespace=namespace))
    return folder


def openmetrics(
    name: str, *, errors_x: float = 1.0, seed: int = 0, minutes: int = 90, **overrides
) -> str:
    """A simulated canary ``name`` in namespace shop: healthy, or ``errors_x`` times the
    primary's error rate (``overrides`` go to the scenario, e.g. a fixed ``weights``)."""
    recording = simulate(
        "healthy",
        seed=seed,
        duration_min=minutes,
        error_ratio=(1.0, float(errors_x)),
        **overrides,
    )
    return to_openmetrics(recording, preset="istio", target=name, namespace=NAMESPACE)


class Clock:
    """A settable UTC clock for the engine."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, minutes: float) -> Clock:
        self.now = T0 + timedelta(minutes=minutes)
        return self


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(app, *, workers_log: str = "warning") -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1 (a free port) in a thread; yields its URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level=workers_log)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def flagger_weight(name: str, weight: float, *, minutes: int = 90, from_minute: int = 0) -> str:
    """Flagger's ``flagger_canary_weight{workload, namespace}`` series (pkg/metrics/recorder.go
    ``SetWeight``: ``<target>`` holds the canary's weight, ``<target>-primary`` the rest),
    every minute from :data:`T0`: 0 before ``from_minute``, then held at ``weight``."""
    lines = ["# TYPE flagger_canary_weight gauge"]
    for minute in range(minutes + 1):
        t = int(T0.timestamp()) + 60 * minute
        canary = weight if minute >= from_minute else 0
        for workload, value in ((f"{name}-primary", 100 - canary), (name, canary)):
            labels = f'workload="{workload}",namespace="{NAMESPACE}"'
            lines.append(f"flagger_canary_weight{{{labels}}} {value:g} {t}")
    return "\n".join([*lines, "# EOF", ""])


#: An Argo Rollout over the "good" canary's series (its canaryService and stableService name
#: the workloads) with an AnalysisTemplate of Argo's docs' shape (a Prometheus success rate).
ARGO_ROLLOUT = """apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: guestbook
  namespace: shop
spec:
  strategy:
    canary:
      canaryService: good
      stableService: good-primary
      steps:
        - setWeight: 10
        - pause: {duration: 5m}
        - setWeight: 20
        - pause: {duration: 5m}
        - setWeight: 30
        - pause: {duration: 5m}
        - setWeight: 40
        - pause: {duration: 5m}
        - setWeight: 50
        - pause: {duration: 5m}
      analysis:
        templates:
          - templateName: success-rate
        args:
          - name: service-name
            value: good
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: success-rate
  namespace: shop
spec:
  args:
    - name: service-name
  metrics:
    - name: success-rate
      interval: 5m
      successCondition: result[0] >= 0.95
      provider:
        prometheus:
          address: http://prometheus:9090
          query: >-
            sum(rate(istio_requests_total{destination_workload="{{args.service-name}}",response_code!~"5.*"}[5m]))
            / sum(rate(istio_requests_total{destination_workload="{{args.service-name}}"}[5m]))
"""
