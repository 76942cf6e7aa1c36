"""Where the per-rollout tasks run: this process, local processes, or a Ray cluster.

Every engine runs ``task(item)`` for each item and yields ``(item, result)`` as tasks
finish, in whatever order they finish, so the caller can write results as they come.
Ray is an optional extra (``pip install 'rolloutlab[ray]'``): ``ray`` runs the same
tasks on a local Ray instance or joins a running cluster (``address``, e.g. the head of
a KubeRay cluster). A task on Ray receives the recording's bytes rather than its path,
so its workers need no access to the dataset's folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Any, Literal

from rolloutlab.errors import SpecError

Engine = Literal["local", "ray"]
ENGINES: tuple[Engine, ...] = ("local", "ray")
#: Tasks in flight per worker: enough to keep every worker busy, few enough that an
#: interrupted run has little unfinished work and the object store stays small.
IN_FLIGHT_PER_WORKER = 4


def run(
    task: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    engine: Engine = "local",
    workers: int | None = None,
    address: str | None = None,
    payload: Callable[[Any], Any] | None = None,
) -> Iterator[tuple[Any, Any]]:
    """Run ``task`` over ``items`` on ``engine``; yields ``(item, result)`` as they finish.

    ``workers`` defaults to every core (``local``) or the cluster's CPUs (``ray``);
    ``payload(item)`` is what a Ray task receives instead of the item (default: the item).
    """
    if engine not in ENGINES:
        raise SpecError(f"engine {engine!r}: choose one of {list(ENGINES)}.")
    if workers is not None and workers < 1:
        raise SpecError(f"workers={workers}: give 1 or more (or leave it unset: all cores).")
    if address is not None and engine != "ray":
        raise SpecError("address joins a Ray cluster: pass engine='ray' (--engine ray) too.")
    if engine == "ray":
        yield from _ray(task, items, workers, address, payload or (lambda item: item))
    elif (workers or os.cpu_count() or 1) == 1 or len(items) <= 1:
        for item in items:
            yield item, task(item)
    else:
        yield from _processes(task, items, workers or os.cpu_count() or 1)


def _processes(task: Callable, items: Sequence[Any], workers: int) -> Iterator[tuple[Any, Any]]:
    # spawn, not fork: polars' thread pool does not survive a fork
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
    try:
        yield from _bounded(lambda item: pool.submit(task, item), items, workers, _futures)
    finally:  # interrupted: drop the tasks not started, so the caller can save what is done
        pool.shutdown(wait=True, cancel_futures=True)


def _futures(pending: set) -> tuple[list, set]:
    done, rest = wait(pending, return_when=FIRST_COMPLETED)
    return [(f, f.result()) for f in done], rest


def _bounded(
    submit: Callable[[Any], Any], items: Sequence[Any], workers: int, finished: Callable
) -> Iterator[tuple[Any, Any]]:
    """Keep at most ``IN_FLIGHT_PER_WORKER * workers`` tasks submitted; yield as they end."""
    queue = list(reversed(items))
    owner: dict[Any, Any] = {}
    pending: set = set()
    while queue or pending:
        while queue and len(pending) < IN_FLIGHT_PER_WORKER * workers:
            item = queue.pop()
            handle = submit(item)
            owner[handle] = item
            pending.add(handle)
        done, pending = finished(pending)
        for handle, result in done:
            yield owner.pop(handle), result


def _ray(
    task: Callable,
    items: Sequence[Any],
    workers: int | None,
    address: str | None,
    payload: Callable[[Any], Any],
) -> Iterator[tuple[Any, Any]]:
    try:
        import ray
    except ImportError:
        raise SpecError(
            "engine 'ray' needs Ray: pip install 'rolloutlab[ray]' (or pip install ray)."
        ) from None
    started = not ray.is_initialized()
    if started:
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is None and workers is not None:
            options["num_cpus"] = workers
        ray.init(address=address, **options)
    try:
        remote, shared = ray.remote(num_cpus=1)(_apply), ray.put(task)
        cpus = workers or int(ray.cluster_resources().get("CPU", 1))

        def finished(pending: set) -> tuple[list, set]:
            done, rest = ray.wait(list(pending), num_returns=1)
            return [(ref, ray.get(ref)) for ref in done], set(rest)

        yield from _bounded(
            lambda item: remote.remote(shared, payload(item)), items, cpus, finished
        )
    finally:
        if started:
            ray.shutdown()


def progress_bar(show: bool, total: int, done: int, desc: str) -> Any:
    """A tqdm bar over ``total`` rollouts starting at ``done`` (None when not shown)."""
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="rollout", desc=desc)


def _apply(task: Callable[[Any], Any], item: Any) -> Any:
    """A Ray task: ``task`` (shared once through the object store) applied to ``item``."""
    return task(item)
