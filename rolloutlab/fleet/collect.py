"""Find every past rollout in Flagger's or Argo Rollouts' own series and record each one.

Flagger sets ``flagger_canary_status{name, namespace}`` to 0 while a canary is
progressing, 2 when it failed and 1 otherwise (``SetStatus`` in fluxcd/flagger
pkg/metrics/recorder.go, commit 0743ef72b359dcf669a82ae28c2383334d14d8ab), with ``name``
the canary's targetRef name. Argo Rollouts' controller sets
``rollout_phase{namespace, name, strategy, phase}`` to 1 for the Rollout's current phase
(Progressing, Paused, Completed, Abort, Timeout, Error, InvalidSpec; ``collectRollouts``
in argoproj/argo-rollouts controller/metrics/rollouts.go, commit
25d623c7e805bf1093c1a3ff58d1b969cfbdf2e1). A rollout is a run of progressing (Flagger's 0,
Argo's Progressing or Paused); what follows it is the outcome (Flagger's 1 or Argo's
Completed: succeeded; Flagger's 2 or Argo's Abort, Timeout or Error: failed). Where
Flagger's status series is missing, a run of canary weight above 0
(``flagger_canary_weight``) is a rollout with an unknown outcome. Each rollout is then
fetched as ``rolloutlab fetch --spec ...`` would (with ``--flagger`` for a Canary), a few
at once; a rerun skips the rollouts already in the dataset, so an interrupted collection
resumes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import polars as pl

from rolloutlab.durations import parse_duration
from rolloutlab.errors import EmptyResult, SpecError
from rolloutlab.fleet.dataset import FLAGGER_STATUS, Fleet, Outcome
from rolloutlab.fleet.engines import progress_bar
from rolloutlab.sources import flagger
from rolloutlab.sources.presets import promql_string
from rolloutlab.sources.prometheus import Prometheus, to_utc
from rolloutlab.specs.documents import read_documents
from rolloutlab.specs.fetch import fetch_for_spec
from rolloutlab.specs.model import Spec


@dataclass(frozen=True)
class Episode:
    """One rollout found in its controller's series: the first and last progressing step, how
    it ended (``progressing`` when it had not ended by the end of the range)."""

    target: str
    namespace: str
    start: datetime
    end: datetime
    outcome: Outcome


#: Argo's ``rollout_phase`` phases as Flagger's status values (0 progressing, 1
#: succeeded, 2 failed; anything else is read as an unknown end)
ARGO_PHASES = {"Progressing": 0, "Paused": 0, "Completed": 1, "Abort": 2, "Timeout": 2, "Error": 2}
Controller = Literal["flagger", "argo"]


def find_rollouts(
    prometheus: Prometheus,
    *,
    target: str,
    namespace: str,
    start: Any,
    end: Any,
    step: Any,
    controller: Controller = "flagger",
) -> list[Episode]:
    """The rollouts of ``target`` (a Flagger Canary's targetRef, or an Argo Rollout's name)
    in ``namespace`` between ``start`` and ``end``."""
    if controller == "argo":
        query = (
            f"max by (phase) (rollout_phase{{namespace={promql_string(namespace)}, "
            f"name={promql_string(target)}}})"
        )
        return list(
            _status_runs(
                _argo_status(prometheus.query_range(query, start, end, step)), target, namespace
            )
        )
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


def _argo_status(series: list) -> list[tuple[Any, float]]:
    """One ``(unix, status)`` per step from the per-phase series: the phase at 1."""
    at: dict[float, float] = {}
    for one in series:
        status = ARGO_PHASES.get(one.get("metric", {}).get("phase"), 3)
        for t, v in one["values"]:
            if float(v) == 1:
                at[float(t)] = status
    return sorted(at.items())


def _status_runs(values: list, target: str, namespace: str) -> Iterator[Episode]:
    """Runs of 0 in ``[[unix, value], ...]``, each with the value that ended it."""
    run: tuple[datetime, datetime] | None = None  # first and last 0 of the current run
    for t, v in values:
        at, value = datetime.fromtimestamp(float(t), UTC), float(v)
        if value == 0:
            run = (run[0] if run else at, at)
        elif run is not None:
            yield Episode(target, namespace, *run, FLAGGER_STATUS.get(value, "unknown"))
            run = None
    if run is not None:
        yield Episode(target, namespace, *run, "progressing")


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
    headers: Mapping[str, str] | None = None,
    bearer: str | None = None,
    progress: bool = False,
) -> pl.DataFrame:
    """Record every finished rollout of the Canaries in ``spec`` (a file or GitOps folder;
    ``name`` picks one) found between ``since`` (a duration back from ``until``, or a
    time) and ``until`` into the dataset at ``output``; returns the index rows added.

    ``headers`` and ``bearer`` (a token) go with every request, as for :func:`fetch_for_spec`.
    ``concurrency`` rollouts are fetched at once. Rollouts still progressing at ``until``
    are left for a later run, and so are those already in the dataset.
    """
    if concurrency < 1:
        raise SpecError(f"concurrency={concurrency}: give 1 or more.")
    end = to_utc(until, "until")
    start = _since(since, end)
    step_s = parse_duration(step, "step")
    fleet = Fleet(Path(output))
    mains = _mains(Path(spec), name)
    episodes = []
    connection: dict[str, Any] = {"headers": headers, "bearer": bearer, "timeout": timeout}
    with Prometheus(url, headers=headers, auth=bearer, timeout=timeout) as prom:
        for main, controller in mains.items():
            s = Spec.load(spec, name=main)
            if not (s.target and s.namespace):
                raise SpecError(
                    f"{spec}: {main!r} names no target or namespace; collect needs both to find "
                    "its rollouts in the controller's series."
                )
            found = find_rollouts(
                prom,
                target=s.target,
                namespace=s.namespace,
                start=start,
                end=end,
                step=step,
                controller=controller,
            )
            episodes += [(main, e) for e in found if e.outcome != "progressing"]
    todo = [(m, e) for m, e in episodes if not _known(fleet, e, step_s)]
    added = []
    bar = progress_bar(progress, len(episodes), len(episodes) - len(todo), "fleet collect")
    with ThreadPoolExecutor(concurrency) as pool:
        jobs = [
            pool.submit(_record, url, spec, m, mains[m] == "flagger", e, step, step_s, connection)
            for m, e in todo
        ]
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
    url: str,
    spec: Any,
    main: str,
    with_flagger: bool,
    e: Episode,
    step: Any,
    step_s: float,
    connection: Mapping[str, Any],
) -> Any:
    """One rollout's recording: the spec's metrics (and Flagger's series for a Canary), one
    step before the first progressing step to the step that ended it."""
    try:
        rec = fetch_for_spec(
            url,
            spec,
            name=main,
            start=e.start - timedelta(seconds=step_s),
            end=e.end + timedelta(seconds=step_s),
            step=step,
            flagger=with_flagger,
            **connection,
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


def _mains(path: Path, name: str | None) -> dict[str, Controller]:
    """The Canaries and Rollouts to collect (``name`` only, if given) and their controller."""
    if not path.exists():
        raise SpecError(f"{path}: no such file or folder of Canary or Rollout manifests.")
    kinds: dict[str, Controller] = {"Canary": "flagger", "Rollout": "argo"}
    mains = {
        d.name: kinds[d.kind]
        for d in read_documents(path)
        if d.kind in kinds and d.name and name in (None, d.name)
    }
    if not mains:
        raise SpecError(
            f"{path}: no Flagger Canary or Argo Rollout{f' named {name!r}' if name else ''} "
            "found; collect reads their controllers' series, so it needs their manifests."
        )
    return mains


def _since(value: Any, end: datetime) -> datetime:
    """``since`` as a time: a duration (``90d``) back from ``end``, or a time itself."""
    try:
        return end - timedelta(seconds=parse_duration(value, "since"))
    except SpecError:
        return to_utc(value, "since")
