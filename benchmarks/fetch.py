"""Fetch-to-tidy-frame speed and memory: rolloutlab vs prometheus-api-client + pandas vs raw.

Starts a real Prometheus (127.0.0.1, temporary data dir) backfilled with a simulated 24 h
rollout at a 15 s step, 20 pods per variant, in the istio preset's metric names. Then, on
the same server and the same three istio queries (requests, errors, latency buckets; 15 s
step, 5,761 points per series), it times:

- ``rolloutlab``: ``Prometheus(url).fetch("istio", ...)`` to a validated Recording
  (queries run concurrently, the default);
- ``rolloutlab, 1 worker``: the same with ``max_workers=1`` (queries one after another);
- ``prometheus-api-client + pandas``: ``custom_query_range`` per query, then
  ``MetricRangeDataFrame`` (pandas), one query after another;
- ``raw floor``: ``requests.get`` of the same query_range URLs + ``json.loads``.

Routes are interleaved and repeated; the median wall time is reported, with the client's
and the server's CPU seconds. A second table times only the client side (response bodies
to frame) in CPU seconds, which is what a client library controls. Peak memory is the
rise of the peak RSS (VmHWM) over the post-import baseline, each route measured once in
a fresh process (so Rust/numpy allocations count too) after the imports and a first tiny
polars call (its thread pool exists in every route's process).

    .venv/bin/python benchmarks/fetch.py [--hours 24] [--step 15] [--pods 20] [--repeat 7]
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import requests
from prometheus_api_client import MetricRangeDataFrame, PrometheusConnect

from rolloutlab.sources.openmetrics import to_openmetrics
from rolloutlab.sources.presets import get_preset
from rolloutlab.sources.prometheus import Prometheus
from rolloutlab.sources.promjson import response_to_frame
from rolloutlab.sources.promserver import PrometheusServer
from rolloutlab.sources.recording import Recording
from rolloutlab.sources.simulate import simulate

TARGET, NAMESPACE = "podinfo", "bench"


def routes(url: str, start, end, step_s: int) -> dict[str, Callable[[], int]]:
    """Each route fetches the same queries and returns how many points it holds."""
    preset = get_preset("istio")
    queries = [
        q
        for q, _ in preset.queries(
            preset.variants(TARGET, NAMESPACE), namespace=NAMESPACE, step=f"{step_s}s"
        ).values()
    ]

    def rolloutlab(workers: int) -> Callable[[], int]:
        def run() -> int:
            with Prometheus(url, max_workers=workers) as prom:
                rec = prom.fetch(
                    "istio",
                    target=TARGET,
                    namespace=NAMESPACE,
                    start=start,
                    end=end,
                    step=step_s,
                    progress=False,
                )
            return rec.frame.height

        return run

    def pandas_route() -> int:
        client = PrometheusConnect(url=url)
        frames = [
            MetricRangeDataFrame(client.custom_query_range(q, start, end, f"{step_s}s"))
            for q in queries
        ]
        client.close()
        return sum(len(f) for f in frames)

    def raw_floor() -> int:
        points = 0
        with requests.Session() as session:
            for q in queries:
                params = {
                    "query": q,
                    "start": int(start.timestamp()),
                    "end": int(end.timestamp()),
                    "step": f"{step_s}s",
                }
                body = session.get(f"{url}/api/v1/query_range", params=params, timeout=60)
                result = json.loads(body.content)["data"]["result"]
                points += sum(len(s["values"]) for s in result)
        return points

    return {
        "rolloutlab": rolloutlab(4),
        "rolloutlab, 1 worker": rolloutlab(1),
        "prometheus-api-client + pandas": pandas_route,
        "raw floor (requests + json.loads)": raw_floor,
    }


def client_side(url: str, start, end, step_s: int, repeat: int) -> dict[str, float]:
    """Median CPU seconds from the same response bodies (fetched once) to each route's
    frame: the part of the work a client library controls, free of server time."""
    preset = get_preset("istio")
    variants = preset.variants(TARGET, NAMESPACE)
    queries = preset.queries(variants, namespace=NAMESPACE, step=f"{step_s}s")
    params = {"start": int(start.timestamp()), "end": int(end.timestamp()), "step": f"{step_s}s"}
    bodies = {
        metric: requests.get(
            f"{url}/api/v1/query_range", params={"query": q, **params}, timeout=60
        ).content
        for metric, (q, _) in queries.items()
    }

    def ours() -> None:
        parts = [
            response_to_frame(
                bodies[metric],
                label=variants.label,
                variant_of=variants.variant_of,
                metric=metric,
                kind=kind,
            )[0]
            for metric, (_, kind) in queries.items()
        ]
        Recording(pl.concat(parts), {"source": url})  # validated and sorted, as fetch does

    def pandas_route() -> None:
        for body in bodies.values():
            MetricRangeDataFrame(json.loads(body)["data"]["result"])

    def floor() -> None:
        for body in bodies.values():
            json.loads(body)

    todo = {"rolloutlab": ours, "prometheus-api-client + pandas": pandas_route, "json.loads": floor}
    times: dict[str, list[float]] = {name: [] for name in todo}
    for _ in range(repeat):
        for name, run in todo.items():
            t0 = time.process_time()  # CPU of all threads: robust on a busy machine
            run()
            times[name].append(time.process_time() - t0)
    return {name: statistics.median(values) for name, values in times.items()}


def _high_water_mib() -> float:
    """This process image's peak RSS (VmHWM; unlike ru_maxrss it is not inherited from
    the parent across fork+exec, whose peak here includes the 1 GB OpenMetrics text)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _peak_rss_child(args: tuple[str, str, Any, Any, int], out: Any) -> None:
    """Run one route in this fresh process; send the peak RSS rise in MiB."""
    name, url, start, end, step_s = args
    run = routes(url, start, end, step_s)[name]
    # Start polars' thread pool and JSON reader first: loaded in every route's process.
    pl.read_json(io.BytesIO(b'{"a": [[1]]}')).group_by("a").len()
    before = _high_water_mib()
    run()
    out.send(_high_water_mib() - before)


def peak_rss(name: str, url: str, start, end, step_s: int) -> float:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_peak_rss_child, args=((name, url, start, end, step_s), child))
    proc.start()
    value = parent.recv()
    proc.join(60)
    return value


def server_cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) the server process has used so far; 0 if unknown."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, pid: int | None, start, end, args: argparse.Namespace) -> dict[str, Any]:
    """Interleaved timed runs of every route, then peak memory per route."""
    todo = routes(url, start, end, args.step)
    points = {name: run() for name, run in todo.items()}  # warm-up + sanity
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in todo}
    for _ in range(args.repeat):
        for name, run in todo.items():
            wall, cpu, server = time.perf_counter(), time.process_time(), server_cpu_s(pid)
            run()
            runs[name].append(
                (
                    time.perf_counter() - wall,
                    time.process_time() - cpu,
                    server_cpu_s(pid) - server,
                )
            )
    memory = {name: peak_rss(name, url, start, end, args.step) for name in todo}
    client = client_side(url, start, end, args.step, args.repeat)
    return {"points": points, "runs": runs, "memory": memory, "client": client}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--step", type=int, default=15, help="seconds")
    parser.add_argument("--pods", type=int, default=20, help="pods per variant")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--url", help="use a running server already holding this backfill (skips set-up)"
    )
    parser.add_argument("--pid", type=int, help="that server's process id, for its CPU time")
    args = parser.parse_args()

    began = time.perf_counter()
    rec = simulate("healthy", seed=0, duration_min=args.hours * 60, step_s=args.step)
    start, end = rec.start, rec.end
    if args.url:
        result, size = measure(args.url, args.pid, start, end, args), "(existing server)"
    else:
        with tempfile.TemporaryDirectory(prefix="rolloutlab-bench-") as tmp:
            path = Path(tmp) / "bench.om"
            text = to_openmetrics(
                rec, preset="istio", target=TARGET, namespace=NAMESPACE, pods_per_variant=args.pods
            )
            path.write_text(text)
            size = f"OpenMetrics {len(text) / 1e6:.0f} MB"
            del text
            with PrometheusServer(openmetrics=[path]) as server:
                size += f", set-up {time.perf_counter() - began:.0f} s"
                result = measure(server.url, server.pid, start, end, args)

    span = end - start + timedelta(seconds=args.step)
    points = result["points"]["raw floor (requests + json.loads)"]
    print(
        f"rollout: {span} at {args.step}s step, {args.pods} pods/variant, istio preset; {size}\n"
        f"3 queries, {points:,} points; {args.repeat} interleaved runs per route; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n"
    )
    med = {
        name: [statistics.median(col) for col in zip(*runs, strict=True)]
        for name, runs in result["runs"].items()
    }
    best = {name: min(r[0] for r in runs) for name, runs in result["runs"].items()}
    floor, pandas = "raw floor (requests + json.loads)", "prometheus-api-client + pandas"
    header = (
        f"{'route':34} {'median s':>8} {'min s':>6} {'÷floor':>7} {'pandas÷':>8} "
        f"{'min ÷floor':>10} {'min pandas÷':>11} {'client CPU s':>12} {'server CPU s':>12} "
        f"{'peak MiB':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, (wall, cpu, server) in med.items():
        print(
            f"{name:34} {wall:8.3f} {best[name]:6.3f} {wall / med[floor][0]:6.2f}x "
            f"{med[pandas][0] / wall:7.2f}x {best[name] / best[floor]:9.2f}x "
            f"{best[pandas] / best[name]:10.2f}x {cpu:12.3f} {server:12.3f} "
            f"{result['memory'][name]:8.0f}"
        )
    client = result["client"]
    print("\nclient side only (same response bodies, no server): median CPU s, and ratios")
    for name, seconds in client.items():
        print(
            f"  {name:32} {seconds:7.3f}  {seconds / client['json.loads']:5.2f}x json.loads  "
            f"{client[pandas] / seconds:5.2f}x faster than pandas route"
        )


if __name__ == "__main__":
    main()
