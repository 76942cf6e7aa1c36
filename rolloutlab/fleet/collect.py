"""Find every past rollout in Flagger's own series and record each one into a fleet dataset.

Flagger sets ``flagger_canary_status{name, namespace}`` to 0 while a canary is
progressing, 2 when it failed and 1 otherwise (``SetStatus`` in fluxcd/flagger
pkg/metrics/recorder.go, commit 0743ef72b359dcf669a82ae28c2383334d14d8ab), with ``name``
the canary's targetRef name. A rollout is a run of 0s; the first value after it is the
outcome. Where the status series is missing, a run of canary weight above 0
(``flagger_canary_weight``) is a rollout with an unknown outcome. Each rollout is then
fetched as ``rolloutlab fetch --spec ... --flagger`` would, a few at once; a rerun skips
the rollouts already in the dataset, so an interrupted collection resumes.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from rolloutlab.durations import parse_duration
from rolloutlab.errors import EmptyResult, SpecError
from rolloutlab.fleet.dataset import FLAGGER_STATUS, Fleet, Outcome
from rolloutlab.fleet.engines import progress_bar
from rolloutlab.sources import flagger
from rolloutlab.sources.prometheus import Prometheus, to_utc
from rolloutlab.specs.documents import read_documents
from rolloutlab.specs.fetch import fetch_for_spec
from rolloutlab.specs.model import Spec


@dataclass(frozen=True)
class Episode:
    """One rollout found in Flagger's series: the first and last progressing step, and how
    it ended (``progressing`` when it had not ended by the end of the range)."""

    target: str
    namespace: str
    start: datetime
    end: datetime
    outcome: Outcome


def find_rollouts(
    prometheus: Prometheus, *, target: str, namespace: str, start: Any, end: Any, step: Any
) -> list[Episode]:
    """The rollouts of canary ``target`` in ``namespace`` between ``start`` and ``end``."""
    queries = flagger.queries(target, namespace)
    status = prometheus.query_range(queries["status"], start, end, step)
    if status:
        return list(_status_runs(status[0]["values"], target, namespace))
    weight = prometheus.query_range(queries["weight"], start, end, step)
    canary = [s for s in weight if s.get("metric", {}).get("workload") == target]
    if not canary:
        return []
    values = [(t, 0.0 if float(v) > 0 else 1.0) for t, v in canary[0]["values"]]
    return [
        Episode(e.target, e.namespace, e.start, e.end, "unknown")
        for e in _status_runs(values, target, namespace)
    ]


def _status_runs(values: list, target: str, namespace: str) -> Iterator[Episode]:
    """Runs of 0 in ``[[unix, value], ...]``, each with the value that ended it."""
    first = last = None
    for t, v in values:
        at, value = datetime.fromtimestamp(float(t), UTC), float(v)
        if value == 0:
            first, last = first or at, at
        elif first is not None:
            yield Episode(target, namespace, first, last, FLAGGER_STATUS.get(value, "unknown"))
            first = last = None
    if first is not None:
        yield Episode(target, namespace, first, last, "progressing")


def collect(
    url: str,
    spec: str | Path,
    output: str | Path,
    *,
    since: Any = "90d",
    until: Any = "now",
    step: Any = "1m",
    name: str | None = None,
    concurrency: int = 4,
    timeout: float = 30.0,
    progress: bool = False,
) -> pl.DataFrame:
    """Record every finished rollout of the Canaries in ``spec`` (a file or GitOps folder;
    ``name`` picks one) found between ``since`` (a duration back from ``until``, or a
    time) and ``until`` into the dataset at ``output``; returns the index rows added.

    ``concurrency`` rollouts are fetched at once. Rollouts still progressing at ``until``
    are left for a later run, and so are those already in the dataset.
    """
    if concurrency < 1:
        raise SpecError(f"concurrency={concurrency}: give 1 or more.")
    end = to_utc(until, "until")
    start = _since(since, end)
    step_s = parse_duration(step, "step")
    fleet = Fleet(Path(output))
    specs = {n: Spec.load(spec, name=n) for n in _canaries(Path(spec), name)}
    episodes = []
    with Prometheus(url, timeout=timeout) as prom:
        for canary, s in specs.items():
            if not (s.target and s.namespace):
                raise SpecError(
                    f"{spec}: Canary {canary!r} names no targetRef or namespace; collect needs both "
                    "to find its rollouts in Flagger's series."
                )
            found = find_rollouts(
                prom, target=s.target, namespace=s.namespace, start=start, end=end, step=step
            )
            episodes += [(canary, e) for e in found if e.outcome != "progressing"]
    todo = [(c, e) for c, e in episodes if not _known(fleet, e, step_s)]
    added = []
    bar = progress_bar(progress, len(episodes), len(episodes) - len(todo), "fleet collect")
    with ThreadPoolExecutor(concurrency) as pool:
        jobs = [pool.submit(_record, url, spec, c, e, step, step_s, timeout) for c, e in todo]
        try:
            for job in as_completed(jobs):
                added.append(fleet.add([job.result()]))
                if bar is not None:
                    bar.update(1)
        finally:
            for job in jobs:
                job.cancel()
            if bar is not None:
                bar.close()
    return pl.concat(added) if added else fleet.index.clear()


def _record(
    url: str, spec: Any, canary: str | None, e: Episode, step: Any, step_s: float, timeout: float
) -> Any:
    """One rollout's recording: the spec's metrics and Flagger's series, one step before
    the first progressing step to the step that ended it."""
    try:
        rec = fetch_for_spec(
            url,
            spec,
            name=canary,
            start=e.start - timedelta(seconds=step_s),
            end=e.end + timedelta(seconds=step_s),
            step=step,
            flagger=True,
            timeout=timeout,
        )
    except EmptyResult as exc:
        raise EmptyResult(f"rollout of {e.target} at {e.start:%Y-%m-%d %H:%M} UTC: {exc}") from None
    rec.meta.update(service=e.target, namespace=e.namespace, outcome=e.outcome)
    return rec


def _known(fleet: Fleet, e: Episode, step_s: float) -> bool:
    """Whether ``fleet`` already holds a rollout of this canary overlapping ``e``."""
    index = fleet.select(service=e.target)
    margin = timedelta(seconds=step_s)
    overlapping = index.filter(
        (pl.col("start") <= e.end + margin) & (pl.col("end") >= e.start - margin)
    )
    return overlapping.height > 0


def _canaries(path: Path, name: str | None) -> list[str | None]:
    """The Canaries to collect: ``name``, else every Canary in the file or folder."""
    if name is not None:
        return [name]
    if not path.exists():
        raise SpecError(f"{path}: no such file or folder of Canary manifests.")
    names = [d.name for d in read_documents(path) if d.kind == "Canary"]
    if not names:
        raise SpecError(
            f"{path}: no Flagger Canary found; collect reads Flagger's series "
            "(flagger_canary_status), so it needs the Canary manifests."
        )
    return names


def _since(value: Any, end: datetime) -> datetime:
    """``since`` as a time: a duration (``90d``) back from ``end``, or a time itself."""
    try:
        return end - timedelta(seconds=parse_duration(value, "since"))
    except SpecError:
        return to_utc(value, "since")
