"""Load on ``rolloutlab serve``: N canaries judged concurrently against a real Prometheus.

Starts a real Prometheus (127.0.0.1, temporary data dir) backfilled with N simulated
canaries (istio names, namespace ``load``; every 4th with 4x the primary's error rate)
whose data end at the current 5-minute boundary, writes their Flagger Canaries to a spec
folder, seeds the state file with each revision's window start (as the first webhook of a
rollout would have), and runs ``rolloutlab serve`` as a separate process, so its CPU
and memory are its own. Then, from a pool of client threads:

- ``healthz`` (baseline floor): the same load on ``/healthz``, no evaluation at all;
- ``cold``: one ``confirm-promotion`` per canary, all at once: each is a full evaluation
  (fetch over the window + judge), which is what every webhook would cost without the
  per-tick cache;
- ``warm``: the four Flagger webhooks round-robin over all canaries, answered from the
  tick's cache.

It prints requests per second and the p50/p99 latency of each phase, the warm/cold ratios,
and the service's CPU (cores busy during the warm phase) and resident memory. The client
threads run on the same machine and compete for its cores.

    .venv/bin/python benchmarks/serve_load.py [--canaries 200] [--requests 8000] [--clients 32]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import requests

from rolloutlab.serve.auth import TOKEN_ENV, Auth
from rolloutlab.serve.gates import HOOKS
from rolloutlab.serve.store import RevisionStore
from rolloutlab.sources.openmetrics import to_openmetrics
from rolloutlab.sources.promserver import PrometheusServer
from rolloutlab.sources.simulate import simulate

NAMESPACE = "load"
INTERVAL_S = 300
TOKEN = "benchmark-token-0123456789abcdef"
REVISION = "bench"
CANARY = """apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  provider: istio
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}}}
  service: {{port: 9898}}
  analysis:
    interval: 5m
    maxWeight: 50
    stepWeight: 10
    metrics:
      - {{name: request-success-rate, thresholdRange: {{min: 99}}, interval: 1m}}
      - {{name: request-duration, thresholdRange: {{max: 500}}, interval: 1m}}
"""


def names(n: int) -> list[str]:
    return [f"c{i:03d}" for i in range(n)]


def backfill(n: int, minutes: int, end: datetime) -> list[str]:
    """OpenMetrics texts of ``n`` simulated canaries ending at ``end``."""
    start = end - timedelta(minutes=minutes)
    texts = []
    for i, name in enumerate(names(n)):
        errors_x = 4.0 if i % 4 == 0 else 1.0
        rec = simulate(
            "healthy", seed=i, duration_min=minutes, start=start, error_ratio=(1.0, errors_x)
        )
        texts.append(
            to_openmetrics(
                rec, preset="istio", target=name, namespace=NAMESPACE, pods_per_variant=1
            )
        )
    return texts


def start_service(url: str, specs: Path, state: Path) -> tuple[subprocess.Popen, str]:
    """``rolloutlab serve`` in a process of its own on a free port; (process, base URL)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = "from rolloutlab.cli import main; raise SystemExit(main())"
    argv = [sys.executable, "-c", code, "serve", "--url", url, "--spec", str(specs)]
    argv += ["--state", str(state), "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(argv, env={**os.environ, TOKEN_ENV: TOKEN})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/healthz", timeout=1).ok:
                return proc, base
        except requests.ConnectionError:
            time.sleep(0.1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("rolloutlab serve did not start")


def hammer(calls: list[tuple[str, str, dict | None]], clients: int) -> dict[str, Any]:
    """Run ``calls`` (method, url, json) from ``clients`` threads; latency and status stats."""
    local = threading.local()

    def one(call: tuple[str, str, dict | None]) -> tuple[float, int]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        method, url, body = call
        t = time.perf_counter()
        response = session.request(method, url, json=body, timeout=60)
        return time.perf_counter() - t, response.status_code

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, calls))
    wall = time.perf_counter() - t0
    latencies = sorted(r[0] for r in results)
    codes: dict[int, int] = {}
    for _, code in results:
        codes[code] = codes.get(code, 0) + 1
    return {
        "requests": len(calls),
        "wall_s": wall,
        "req_per_s": len(calls) / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)],
        "codes": codes,
    }


def run(
    n_canaries: int = 200,
    requests_total: int = 8000,
    clients: int = 32,
    minutes: int = 30,
    out=print,
) -> dict[str, Any]:
    """The benchmark; returns every figure it prints."""
    now = datetime.now(UTC)
    end = datetime.fromtimestamp(math.floor(now.timestamp() / INTERVAL_S) * INTERVAL_S, UTC)
    auth = Auth(TOKEN)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        specs = tmp_path / "specs"
        specs.mkdir()
        for name in names(n_canaries):
            (specs / f"{name}.yaml").write_text(CANARY.format(name=name, namespace=NAMESPACE))
        state = tmp_path / "state.sqlite3"
        store = RevisionStore(state)
        for name in names(n_canaries):  # the rollouts started `minutes` ago
            store.start(NAMESPACE, name, REVISION, end - timedelta(minutes=minutes))
        store.close()
        t = time.perf_counter()
        texts = backfill(n_canaries, minutes, end)
        with PrometheusServer(openmetrics=texts, startup_timeout=600) as prom:
            out(
                f"Prometheus backfilled with {n_canaries} canaries in {time.perf_counter() - t:.0f} s"
            )
            proc, base = start_service(prom.url, specs, state)
            try:
                return _load(proc, base, auth, n_canaries, requests_total, clients, out)
            finally:
                proc.terminate()
                proc.wait(10)


def _load(proc, base, auth, n_canaries, requests_total, clients, out) -> dict[str, Any]:
    service = psutil.Process(proc.pid)

    def hook_call(i: int, kind: str) -> tuple[str, str, dict]:
        name = names(n_canaries)[i % n_canaries]
        body = {
            "name": name,
            "namespace": NAMESPACE,
            "phase": "Progressing",
            "checksum": REVISION,
            "metadata": {"token": auth.canary_token(NAMESPACE, name)},
        }
        return "POST", f"{base}/flagger/{kind}", body

    figures: dict[str, Any] = {}
    figures["healthz"] = hammer([("GET", f"{base}/healthz", None)] * requests_total, clients)
    figures["cold"] = hammer(
        [hook_call(i, "confirm-promotion") for i in range(n_canaries)], clients
    )
    cpu0, t0 = service.cpu_times(), time.perf_counter()
    calls = [hook_call(i // len(HOOKS), HOOKS[i % len(HOOKS)]) for i in range(requests_total)]
    figures["warm"] = hammer(calls, clients)
    cpu1, wall = service.cpu_times(), time.perf_counter() - t0
    busy = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    figures["service_cpu_cores"] = busy / wall
    figures["service_rss_mib"] = service.memory_info().rss / 2**20
    metrics = requests.get(
        f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    ).text
    figures["canaries_exported"] = sum(
        line.startswith("rolloutlab_canary_status{") for line in metrics.splitlines()
    )
    out(f"{n_canaries} canaries, {clients} client threads, {os.cpu_count()} cores")
    out(f"{'phase':<10}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}  status codes")
    for phase in ("healthz", "cold", "warm"):
        f = figures[phase]
        out(
            f"{phase:<10}{f['requests']:>9}{f['req_per_s']:>9.0f}{f['p50_ms']:>9.1f}"
            f"{f['p99_ms']:>9.1f}  {dict(sorted(f['codes'].items()))}"
        )
    warm, cold = figures["warm"], figures["cold"]
    out(
        f"warm/cold p99: {warm['p99_ms'] / cold['p99_ms']:.3f} · "
        f"warm/healthz p99: {warm['p99_ms'] / figures['healthz']['p99_ms']:.2f}"
    )
    out(
        f"service during warm: {figures['service_cpu_cores']:.2f} cores busy, "
        f"RSS {figures['service_rss_mib']:.0f} MiB; /metrics exports "
        f"{figures['canaries_exported']} canaries"
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--canaries", type=int, default=200)
    parser.add_argument("--requests", type=int, default=8000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--minutes", type=int, default=30, help="data per canary")
    args = parser.parse_args()
    run(args.canaries, args.requests, args.clients, args.minutes)


if __name__ == "__main__":
    main()
