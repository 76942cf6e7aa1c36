"""Fleet replay at scale: a simulated fleet × 3 judges × a 12-point what-if grid.

The full workload is 2,000 rollouts (30-minute recordings at 1-minute steps, a fifth of
them bad) × flagger, kayenta and rolloutlab × threshold {2, 5, 10} × margin {0, 0.05,
0.1, 0.25}: 36 candidates, i.e. 12 post-mortem replays (each under the three judges) per rollout. On a
2-core machine that is an hour or more, so by default the benchmark measures a sample of
``--rollouts`` of them on each engine and projects the full run from the measured cost
per rollout (``--rollouts 2000`` runs it all).

Engines, each on the same sample in the same run: one local worker (this process; the
baseline), two local worker processes, and Ray on a local instance with two CPUs (its
start-up measured apart). Memory per worker is the peak resident set of each worker
process, sampled from /proc every 0.2 s. The 100-core projection divides the full
run's single-worker time by 100 × the parallel efficiency measured with two workers.

    .venv/bin/python benchmarks/fleet_replay.py              # 40 rollouts per engine
    .venv/bin/python benchmarks/fleet_replay.py --rollouts 2000 --no-ray
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from rolloutlab.fleet import replay, simulated_fleet

FULL_ROLLOUTS = 2000
JUDGES = ("flagger", "kayenta", "rolloutlab")
GRID = {"threshold": [2, 5, 10], "margin": [0.0, 0.05, 0.1, 0.25]}


class PeakMemory:
    """Peak VmRSS (MB) of this process's descendants and Ray workers, sampled from /proc."""

    def __init__(self) -> None:
        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.2):
            for pid in _pids():
                if pid == me:
                    continue
                cmd, rss = _process(pid)
                if "multiprocessing.spawn" in cmd or cmd.startswith("ray::"):
                    self.peaks[pid] = max(self.peaks.get(pid, 0.0), rss)

    @property
    def per_worker_mb(self) -> float:
        return max(self.peaks.values(), default=float("nan"))


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _process(pid: int) -> tuple[str, float]:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "", 0.0
    rss = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")), "0")
    return cmd, int(rss) / 1024


def _self_peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(fleet, engine: str, workers: int, out: Path) -> dict[str, float]:
    """Wall time, rollouts per second and peak MB per worker of one replay; on Ray, the
    instance is started here first, so its start-up is timed apart (``startup_s``)."""
    with PeakMemory() as memory:
        start = time.perf_counter()
        if engine == "ray":
            import ray

            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        ready = time.perf_counter()
        try:
            result = replay(
                fleet, judges=JUDGES, grid=GRID, engine=engine, workers=workers, out=out
            )
        finally:
            if engine == "ray":
                ray.shutdown()
        wall_s = time.perf_counter() - start
    rollouts = result.rows["rollout"].n_unique()
    mb = _self_peak_mb() if workers == 1 and engine == "local" else memory.per_worker_mb
    return {
        "wall_s": wall_s,
        "startup_s": ready - start,
        "rollouts": rollouts,
        "per_s": rollouts / wall_s,
        "mb": mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=40, help="rollouts measured per engine")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    try:
        start = time.perf_counter()
        fleet = simulated_fleet(folder / "fleet", args.rollouts, seed=0)
        made_s = time.perf_counter() - start
        size_mb = sum(p.stat().st_size for p in fleet.root.rglob("*.parquet")) / 1e6
        candidates = len(JUDGES) * 12
        print(
            f"fleet: {args.rollouts} rollouts ({size_mb:.1f} MB on disk, made in {made_s:.1f} s) "
            f"× {candidates} candidates (3 judges × 12-point grid); {os.cpu_count()} cores, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        runs = {"local, 1 worker (baseline)": ("local", 1), "local, 2 workers": ("local", 2)}
        if not args.no_ray:
            runs["ray, local instance, 2 CPUs (start-up included)"] = ("ray", 2)
        results = {}
        for i, (name, (engine, workers)) in enumerate(runs.items()):
            results[name] = measure(fleet, engine, workers, folder / f"out{i}")
        base = results["local, 1 worker (baseline)"]
        print("\n| engine | wall s | rollouts/s | speed-up | peak MB per worker |")
        print("|---|---:|---:|---:|---:|")
        for name, r in results.items():
            print(
                f"| {name} | {r['wall_s']:.1f} | {r['per_s']:.2f} | "
                f"{base['wall_s'] / r['wall_s']:.2f}× | {r['mb']:.0f} |"
            )
        for name, r in results.items():
            if name.startswith("ray"):
                steady_s = r["wall_s"] - r["startup_s"]
                print(
                    f"| ray, less its start-up ({r['startup_s']:.1f} s) | {steady_s:.1f} | "
                    f"{r['rollouts'] / steady_s:.2f} | {base['wall_s'] / steady_s:.2f}× | |"
                )
        per_rollout_s = base["wall_s"] / base["rollouts"]
        two = results["local, 2 workers"]
        efficiency = min(1.0, base["wall_s"] / two["wall_s"] / 2)
        full_1 = FULL_ROLLOUTS * per_rollout_s
        full_100 = full_1 / (100 * efficiency)
        print(
            f"\ncost: {per_rollout_s:.2f} s per rollout ({per_rollout_s / candidates * 1000:.0f} ms "
            f"per rollout × candidate) on one worker; 2-worker parallel efficiency {efficiency:.2f}"
        )
        print(
            f"projection, {FULL_ROLLOUTS} rollouts × {candidates} candidates: "
            f"{full_1 / 60:.0f} min on 1 worker, {full_1 / 2 / efficiency / 60:.0f} min on 2, "
            f"{full_100:.0f} s on 100 cores at the same efficiency "
            f"({FULL_ROLLOUTS / full_100:.0f} rollouts/s)"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
