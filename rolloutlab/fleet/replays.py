"""Replay every rollout of a fleet under every candidate: spec × what-if grid point × judge.

One task per rollout: it loads the recording once and runs the post-mortem replay
(:func:`rolloutlab.postmortem.replay`) for each spec and grid point, so a row here is
exactly what a post-mortem of that recording alone would say. Results go to a folder of
Parquet parts as tasks finish; a rerun with the same candidates skips the rollouts
already judged, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import polars as pl

from rolloutlab import _html
from rolloutlab.errors import DataError, RolloutlabError, SpecError
from rolloutlab.fleet import engines
from rolloutlab.fleet.calibration import calibration, truth
from rolloutlab.fleet.dataset import INDEX, Fleet, _atomic
from rolloutlab.judges import Spec
from rolloutlab.postmortem import (
    DEFAULT_JUDGES,
    WeightSource,
    changed_spec,
    grid_cell,
    grid_points,
)
from rolloutlab.postmortem import replay as replay_one
from rolloutlab.sources.recording import load
from rolloutlab.specs.model import JUDGE_NAMES

RUN = "run.json"
#: Results are written when this many rollouts are judged, or this many seconds passed.
FLUSH_ROLLOUTS = 50
FLUSH_S = 10.0
RESULT_SCHEMA: dict[str, pl.DataType] = {
    "rollout": pl.String(),
    "candidate": pl.String(),
    "spec": pl.String(),
    "judge": pl.String(),
    "decision": pl.String(),
    "decided_at": pl.Datetime("us", "UTC"),
    "minutes_to_decision": pl.Float64(),
    "reason": pl.String(),
    "error": pl.String(),
}


@dataclass(frozen=True)
class Plan:
    """What each task does: every (spec name, changed spec, grid point) under ``judges``."""

    points: tuple[tuple[str, Spec, tuple[tuple[str, Any], ...]], ...]
    judges: tuple[str, ...]
    weights: WeightSource | None
    grid_keys: tuple[str, ...]

    @cached_property
    def key(self) -> str:
        """A short hash of the candidates: same candidates, same results folder."""
        return hashlib.sha256(self.describe().encode()).hexdigest()[:12]

    def describe(self) -> str:
        data = {
            "points": [
                [name, spec.to_dict(), list(changes)] for name, spec, changes in self.points
            ],
            "judges": list(self.judges),
            "weights": self.weights,
        }
        return json.dumps(data, default=str, sort_keys=True)

    @property
    def candidates(self) -> list[str]:
        return [_label(n, j, c) for n, _, c in self.points for j in self.judges]


def plan(
    specs: Sequence[Any] | Mapping[str, Any] = (None,),
    judges: Sequence[str] = DEFAULT_JUDGES,
    grid: Mapping[str, Any] | None = None,
    weights: WeightSource | None = None,
) -> Plan:
    """The candidates: each spec (a Spec, file, folder, YAML text, dict, or None for the
    defaults; a mapping names them) at each point of ``grid``, under each judge."""
    if isinstance(judges, str):
        judges = (judges,)
    if specs is None or isinstance(specs, str | Path | Spec):
        specs = [specs]
    named = dict(specs) if isinstance(specs, Mapping) else _names(list(specs))
    if not named or not judges:
        raise SpecError("fleet replay needs at least one spec and one judge.")
    points = []
    for name, raw in named.items():
        spec = Spec.load(raw)
        for changes in grid_points(grid or {}):
            points.append((name, changed_spec(spec, changes), tuple(changes.items())))
    return Plan(tuple(points), tuple(judges), weights, tuple(grid or {}))


def judge_rollout(plan: Plan, item: tuple[str, str | bytes]) -> list[dict[str, Any]]:
    """One task: every candidate's decision on one rollout (its path, or its file's bytes).

    A recording the judges cannot read (no such variant, a broken file) gives rows with
    no decision and the error, so one bad rollout does not stop a fleet run; it never
    counts as a promotion.
    """
    rollout, source = item
    rows = []
    try:
        rec = _recording(source)
    except RolloutlabError as exc:
        rec, failure = None, str(exc)
    for name, spec, changes in plan.points:
        base = {"rollout": rollout, "spec": name, **{k: grid_cell(v) for k, v in changes}}
        try:
            if rec is None:
                raise DataError(failure)
            decisions = replay_one(rec, spec, plan.judges, weights=plan.weights).decisions
        except RolloutlabError as exc:
            for judge in plan.judges:
                rows.append(
                    {**base, "candidate": _label(name, judge, changes), "judge": judge}
                    | {"error": str(exc)}
                )
            continue
        for d in decisions.values():
            rows.append(
                {
                    **base,
                    "candidate": _label(name, d.judge, changes),
                    "judge": d.judge,
                    "decision": d.decision,
                    "decided_at": d.at,
                    "minutes_to_decision": d.minutes,
                    "reason": d.reason,
                }
            )
    return rows


def replay(
    dataset: Fleet | str | Path,
    specs: Sequence[Any] | Mapping[str, Any] = (None,),
    judges: Sequence[str] = DEFAULT_JUDGES,
    grid: Mapping[str, Any] | None = None,
    *,
    weights: WeightSource | None = None,
    out: str | Path | None = None,
    engine: engines.Engine = "local",
    workers: int | None = None,
    address: str | None = None,
    service: Any = None,
    since: Any = None,
    until: Any = None,
    labels: str | Path | None = None,
    progress: bool = False,
) -> FleetReplay:
    """Judge every rollout of ``dataset`` under every candidate; one row per rollout × candidate.

    ``specs``, ``grid`` and ``judges`` make the candidates (see :func:`plan`; ``grid`` as
    ``Replay.what_if``: ``{"threshold": [2, 5], "margin": [0, 0.1]}``). ``weights``: Flagger
    steps each candidate's own plan (``"plan"``, the default: what the candidate would have
    done) or follows each recording's weights (``"recorded"``). ``service``, ``since`` and
    ``until`` pick rollouts from the index.
    Results go to ``out`` (default ``<dataset>/replays/<hash of the candidates>``) as
    rollouts are judged; a rerun skips what is there. ``engine`` is ``local`` (processes,
    ``workers`` of them, default every core) or ``ray`` (``address`` joins a cluster).
    ``labels`` is the team's labels CSV (default: ``labels.csv`` in the dataset).
    """
    fleet = dataset if isinstance(dataset, Fleet) else Fleet(Path(dataset))
    if not (fleet.root / INDEX).exists():
        raise DataError(
            f"{fleet.root}: no fleet dataset here (no {INDEX}). Build one with "
            "'rolloutlab fleet collect' or 'rolloutlab fleet add'."
        )
    chosen = fleet.select(service=service, since=since, until=until)
    if chosen.is_empty():
        raise DataError(
            f"{fleet.root}: no rollout to replay (the index has {fleet.index.height}; check "
            "the service, since and until filters, or add recordings with 'rolloutlab fleet add')."
        )
    the_plan = plan(specs, judges, grid, weights)
    store = Results(Path(out) if out else fleet.root / "replays" / the_plan.key)
    store.start(the_plan, fleet.root)
    done = store.rollouts()
    todo = [
        (r, str(fleet.root / p))
        for r, p in chosen.select("rollout", "path").iter_rows()
        if r not in done
    ]
    bar = engines.progress_bar(progress, chosen.height, chosen.height - len(todo), "fleet replay")
    try:
        for _, rows in engines.run(
            partial(judge_rollout, the_plan),
            todo,
            engine=engine,
            workers=workers,
            address=address,
            payload=_with_bytes,
        ):
            store.add(rows)
            if bar is not None:
                bar.update(1)
    finally:
        store.flush()
        if bar is not None:
            bar.close()
    return open_results(store.folder, fleet=fleet, labels=labels, rollouts=chosen["rollout"])


@dataclass(frozen=True, eq=False)
class FleetReplay:
    """The rows of a fleet replay joined with the index (outcome as recorded) and labels.

    ``rows``: one per rollout × candidate with the decision, minutes to it, ``bad`` (the
    label's incident, else the recorded outcome) and agreement with the outcome and the
    label. :meth:`calibration` sums them per candidate.
    """

    rows: pl.DataFrame
    folder: Path
    grid_keys: tuple[str, ...] = ()

    def calibration(self) -> pl.DataFrame:
        """Per candidate: bad caught, good held back or rolled back, minutes to decision."""
        return calibration(self.rows, self.grid_keys)

    def chart(self) -> Any:
        """The trade-off between bad rollouts caught and good ones held back (altair)."""
        from rolloutlab.views.fleet import tradeoff

        return tradeoff(self.calibration())

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "rollouts": self.rows["rollout"].n_unique(),
            "calibration": self.calibration().to_dicts(),
        }

    def __repr__(self) -> str:
        return (
            f"<FleetReplay {self.rows['rollout'].n_unique()} rollouts × "
            f"{self.rows['candidate'].n_unique()} candidates · {self.folder}>"
        )

    @_html.never_raises
    def _repr_html_(self) -> str:
        from rolloutlab.views.fleet import calibration_table

        return _html.card(repr(self).strip("<>"), calibration_table(self.calibration()))


def open_results(
    folder: str | Path,
    *,
    fleet: Fleet | None = None,
    labels: str | Path | None = None,
    rollouts: Any = None,
) -> FleetReplay:
    """A results folder written by :func:`replay`, joined with its dataset's index and labels."""
    store = Results(Path(folder))
    run = store.run()
    fleet = fleet or Fleet(Path(run["dataset"]))
    rows = store.read()
    if rollouts is not None:
        rows = rows.filter(pl.col("rollout").is_in(list(rollouts)))
    index = fleet.index.select("rollout", "service", "namespace", "start", "outcome")
    rows = rows.join(index, on="rollout", how="left")
    marks = fleet.labels(labels)
    keep = [c for c in ("rollout", "incident", "link") if c in marks.columns]
    rows = rows.join(marks.select(keep), on="rollout", how="left")
    if "link" not in rows.columns:
        rows = rows.with_columns(pl.lit(None, pl.String).alias("link"))
    return FleetReplay(truth(rows).sort("rollout", "candidate"), store.folder, tuple(run["grid"]))


class Results:
    """A results folder: ``run.json`` (the candidates) and ``part-<id>.parquet`` files,
    each written whole (a rollout's rows are always in one part)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._buffer: list[dict[str, Any]] = []
        self._pending = 0
        self._since = time.monotonic()

    def start(self, the_plan: Plan, dataset: Path) -> None:
        """Write ``run.json``, or check that the one there is for the same candidates."""
        path = self.folder / RUN
        run = {
            "key": the_plan.key,
            "dataset": str(dataset.resolve()),
            "candidates": the_plan.candidates,
            "grid": list(the_plan.grid_keys),
            "plan": json.loads(the_plan.describe()),
        }
        if path.exists():
            if self.run().get("key") != the_plan.key:
                raise SpecError(
                    f"{self.folder} holds results for other candidates. Give another --out "
                    "(out=...) or delete that folder to start over."
                )
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        _atomic(path, lambda tmp: tmp.write_text(json.dumps(run, indent=1, default=str)))

    def run(self) -> dict[str, Any]:
        path = self.folder / RUN
        if not path.exists():
            raise DataError(f"{self.folder}: no {RUN}; not a fleet replay results folder.")
        return json.loads(path.read_text())

    def parts(self) -> list[Path]:
        return sorted(self.folder.glob("part-*.parquet"))

    def rollouts(self) -> set[str]:
        """The rollouts already judged (each rollout's rows are written together)."""
        if not self.parts():
            return set()
        frame = pl.scan_parquet(self.parts()).select("rollout").unique().collect()
        return set(frame["rollout"].to_list())

    def read(self) -> pl.DataFrame:
        parts = [pl.read_parquet(p) for p in self.parts()]
        if not parts:
            return pl.DataFrame(schema=RESULT_SCHEMA)
        # two runs sharing a folder may both judge a rollout: its rows are the same
        rows = pl.concat(parts, how="diagonal_relaxed")
        return rows.unique(subset=["rollout", "candidate"], keep="first", maintain_order=True)

    def add(self, rows: list[dict[str, Any]]) -> None:
        self._buffer.extend(rows)
        self._pending += 1
        if self._pending >= FLUSH_ROLLOUTS or time.monotonic() - self._since >= FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rollouts as one new part (atomically)."""
        if self._buffer:
            frame = pl.DataFrame(
                self._buffer, schema_overrides=RESULT_SCHEMA, infer_schema_length=None
            )
            missing = [
                pl.lit(None, t).alias(c) for c, t in RESULT_SCHEMA.items() if c not in frame.columns
            ]
            frame = frame.with_columns(missing)
            _atomic(self.folder / f"part-{uuid.uuid4().hex}.parquet", frame.write_parquet)
        self._buffer, self._pending, self._since = [], 0, time.monotonic()


def _recording(source: str | bytes) -> Any:
    if isinstance(source, bytes):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "rollout.parquet"
            path.write_bytes(source)
            return load(path)
    return load(source)


def _with_bytes(item: tuple[str, str]) -> tuple[str, bytes]:
    """What a Ray task gets: the rollout's file contents, not a path its node may lack."""
    rollout, path = item
    return rollout, Path(path).read_bytes()


def _label(spec: str, judge: str, changes: tuple[tuple[str, Any], ...]) -> str:
    point = ", ".join(f"{k}={grid_cell(v)}" for k, v in changes)
    return " · ".join(part for part in (spec, judge, point) if part)


def _names(specs: list[Any]) -> dict[str, Any]:
    """A name per spec: its own, its file's or folder's, else ``default`` / ``spec<i>``."""
    named: dict[str, Any] = {}
    for i, raw in enumerate(specs):
        if raw is None:
            name = "default"
        elif isinstance(raw, Spec):
            name = raw.name or f"spec{i + 1}"
        elif isinstance(raw, Path) or (isinstance(raw, str) and "\n" not in raw):
            if raw in JUDGE_NAMES and not Path(raw).exists():
                raise SpecError(
                    f"specs: {raw!r} is a judge, not a spec. Pass judges=[{raw!r}, ...] "
                    "(replay(dataset, judges=...)); specs are Spec objects, files or folders."
                )
            name = Path(raw).stem
        else:
            name = f"spec{i + 1}"
        while name in named:
            name = f"{name}-{i + 1}"
        named[name] = raw
    return named
