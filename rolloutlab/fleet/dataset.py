"""Many recordings as one partitioned Parquet dataset, with an index and a team's labels.

Layout under the dataset's folder::

    service=<service>/date=<YYYY-MM-DD>/rollout=<id>.parquet   one recording each (format v1)
    index.parquet                                              one row per rollout
    labels.csv                                                 optional, kept by the team

Each rollout file is exactly what :meth:`Recording.save` writes, metadata included, so
``rolloutlab.load`` reads it alone. The index says what is where (service, namespace,
start, end, the outcome as recorded, the source) without opening any recording;
:meth:`Fleet.scan` reads the rows lazily, the ``service`` and ``date`` partitions pruned
by polars' predicate pushdown.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl

from rolloutlab import _html
from rolloutlab.errors import DataError
from rolloutlab.sources.flagger import STATUS_METRIC
from rolloutlab.sources.prometheus import to_utc
from rolloutlab.sources.recording import Recording, load

INDEX = "index.parquet"
INDEX_LOCK = ".index.lock"
LABELS = "labels.csv"
Outcome = Literal["succeeded", "failed", "progressing", "unknown"]
OUTCOMES: tuple[Outcome, ...] = ("succeeded", "failed", "progressing", "unknown")
#: Flagger's ``flagger_canary_status``: 0 progressing, 1 succeeded (or any other
#: settled phase), 2 failed (fluxcd/flagger pkg/metrics/recorder.go, SetStatus).
FLAGGER_STATUS: dict[float, Outcome] = {0.0: "progressing", 1.0: "succeeded", 2.0: "failed"}
INDEX_SCHEMA: dict[str, pl.DataType] = {
    "rollout": pl.String(),
    "service": pl.String(),
    "namespace": pl.String(),
    "start": pl.Datetime("us", "UTC"),
    "end": pl.Datetime("us", "UTC"),
    "outcome": pl.String(),
    "source": pl.String(),
    "path": pl.String(),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Fleet:
    """A fleet dataset at ``root`` (see the module docstring for its layout)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # -- what is in it -------------------------------------------------------------

    @property
    def index(self) -> pl.DataFrame:
        """One row per rollout: rollout, service, namespace, start, end, outcome, source, path."""
        path = self.root / INDEX
        if not path.exists():
            return pl.DataFrame(schema=INDEX_SCHEMA)
        return pl.read_parquet(path)

    def select(
        self,
        *,
        service: str | Iterable[str] | None = None,
        since: Any = None,
        until: Any = None,
    ) -> pl.DataFrame:
        """The index rows of ``service`` (one or several) that started in ``[since, until)``."""
        return self.index.filter(_where(service, since, until, "start"))

    def path(self, rollout: str) -> Path:
        """The file of ``rollout`` (DataError naming the dataset when it is not there)."""
        rows = self.index.filter(pl.col("rollout") == rollout)
        if rows.is_empty():
            raise DataError(
                f"{self.root}: no rollout {rollout!r} in the index. List them with "
                f"Fleet({str(self.root)!r}).index, or add it with 'rolloutlab fleet add'."
            )
        return self.root / rows["path"][0]

    def load(self, rollout: str) -> Recording:
        """One rollout's recording, metadata included."""
        return load(self.path(rollout))

    def scan(
        self,
        *,
        service: str | Iterable[str] | None = None,
        since: Any = None,
        until: Any = None,
    ) -> pl.LazyFrame:
        """Every recording's rows, lazily, with ``service``, ``date`` and ``rollout`` columns.

        ``service`` and the days of ``since``/``until`` prune whole partitions before any
        file is opened (hive partitioning with predicate pushdown; a rollout's day is the
        day it started); of the rollouts kept, the rows with a timestamp in
        ``[since, until)`` are read.
        """
        if not self.index.height:
            raise DataError(f"{self.root}: the fleet dataset is empty. Add recordings first.")
        lazy = pl.scan_parquet(
            self.root / "service=*" / "date=*" / "rollout=*.parquet",
            hive_partitioning=True,
            hive_schema={"service": pl.String(), "date": pl.String()},
            include_file_paths="file",
        )
        days = []
        if since is not None:
            days.append(pl.col("date") >= f"{to_utc(since, 'since'):%Y-%m-%d}")
        if until is not None:
            days.append(pl.col("date") <= f"{to_utc(until, 'until'):%Y-%m-%d}")
        lazy = lazy.filter(_where(service, since, until, "timestamp"), *days)
        rollout = pl.col("file").str.extract(r"rollout=([^/\\]+)\.parquet$")
        return lazy.with_columns(rollout.alias("rollout")).drop("file")

    def labels(self, path: str | Path | None = None) -> pl.DataFrame:
        """The team's labels: ``rollout`` and ``incident`` (true/false/empty), optional
        ``link`` and any other columns; from ``path``, else ``labels.csv`` in the dataset,
        else none."""
        path = Path(path) if path is not None else self.root / LABELS
        if not path.exists():
            if path == self.root / LABELS:
                return pl.DataFrame(
                    schema={"rollout": pl.String, "incident": pl.Boolean, "link": pl.String}
                )
            raise DataError(f"{path}: no such labels file.")
        return read_labels(path)

    # -- adding --------------------------------------------------------------------

    def add(
        self,
        recordings: Iterable[Recording | str | Path],
        *,
        service: str | None = None,
        namespace: str | None = None,
        replace: bool = False,
    ) -> pl.DataFrame:
        """Write ``recordings`` into the dataset and the index; returns their index rows.

        The service is ``service``, else the recording's target, else its scenario's
        name; the rollout id is ``<service>-<start as YYYYmmddTHHMMSSZ>``, so adding the
        same rollout twice is refused (or, with ``replace``, overwrites it).
        """
        rows = []
        with _index_lock(self.root):  # another add (a process or thread) waits its turn
            index = self.index
            known = set(index["rollout"].to_list())
            for item in recordings:
                rec = item if isinstance(item, Recording) else load(item)
                where = str(item) if not isinstance(item, Recording) else "a recording"
                row = self._entry(rec, where, service=service, namespace=namespace)
                if row["rollout"] in known and not replace:
                    raise DataError(
                        f"{where}: rollout {row['rollout']!r} is already in {self.root}. "
                        "Pass replace=True (--replace) to overwrite it."
                    )
                _atomic(self.root / row["path"], rec.save)
                known.add(row["rollout"])
                rows.append(row)
            added = pl.DataFrame(rows, schema=INDEX_SCHEMA, orient="row")
            kept = index.filter(~pl.col("rollout").is_in(added["rollout"].to_list()))
            self._write_index(pl.concat([kept, added]).sort("start", "rollout"))
        return added

    def _entry(
        self, rec: Recording, where: str, *, service: str | None, namespace: str | None
    ) -> dict[str, Any]:
        start = rec.start
        if not len(rec) or start is None:
            raise DataError(f"{where}: the recording is empty; there is no rollout to add.")
        meta = rec.meta
        scenario = meta.get("scenario") or {}
        service = service or meta.get("service") or meta.get("target") or scenario.get("name")
        if not service or not _NAME.match(str(service)):
            raise DataError(
                f"{where}: service {service!r} cannot name a partition. Pass service= "
                "(--service NAME) with letters, digits, '.', '_' or '-'."
            )
        rollout = rollout_id(str(service), start)
        return {
            "rollout": rollout,
            "service": str(service),
            "namespace": namespace or meta.get("namespace") or "",
            "start": rec.start,
            "end": rec.end,
            "outcome": recorded_outcome(rec),
            "source": str(meta.get("source") or where),
            "path": f"service={service}/date={rec.start:%Y-%m-%d}/rollout={rollout}.parquet",
        }

    def _write_index(self, index: pl.DataFrame) -> None:
        _atomic(self.root / INDEX, index.write_parquet)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the folder and the index's rows."""
        rows = self.index.with_columns(pl.col("start", "end").dt.to_string("%Y-%m-%dT%H:%M:%SZ"))
        return {"root": str(self.root), "rollouts": rows.to_dicts()}

    def __repr__(self) -> str:
        index = self.index
        services = index["service"].n_unique() if index.height else 0
        return f"<Fleet {self.root} · {index.height} rollouts · {services} services>"

    @_html.never_raises
    def _repr_html_(self) -> str:
        index = self.index
        counts = index.group_by("outcome").len().sort("outcome").rows() if index.height else []
        facts = {
            "folder": str(self.root),
            "rollouts": index.height,
            "services": index["service"].n_unique() if index.height else 0,
            "span": (
                f"{_html.when(index['start'].min())} → {_html.when(index['end'].max())}"
                if index.height
                else "empty"
            ),
            "outcomes as recorded": ", ".join(f"{o}: {n}" for o, n in counts),
        }
        return _html.card("Fleet dataset", _html.kv_table(facts))


def rollout_id(service: str, start: datetime) -> str:
    """A rollout's id: its service and first timestamp, e.g. ``checkout-20260901T090100Z``."""
    return f"{service}-{start:%Y%m%dT%H%M%SZ}"


def recorded_outcome(rec: Recording) -> Outcome:
    """What happened to the rollout: the metadata's ``outcome`` when a collector or the
    simulator wrote one, else Flagger's last recorded status, else ``unknown``."""
    outcome = rec.meta.get("outcome")
    if outcome is not None:
        if outcome not in OUTCOMES:
            raise DataError(f"recording outcome {outcome!r}: expected one of {list(OUTCOMES)}.")
        return outcome
    status = rec.frame.filter(pl.col("metric") == STATUS_METRIC).sort("timestamp")
    if status.is_empty():
        return "unknown"
    return FLAGGER_STATUS.get(float(status["value"][-1]), "unknown")


def read_labels(path: Path) -> pl.DataFrame:
    """A labels CSV: ``rollout`` required, ``incident`` as true/false/yes/no/1/0 or empty."""
    try:
        labels = pl.read_csv(path, infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc}).") from None
    if "rollout" not in labels.columns:
        raise DataError(
            f"{path}: a labels file needs a 'rollout' column (the ids in the fleet's index), "
            f"it has {labels.columns}. First line e.g.: rollout,incident,link"
        )
    if "incident" not in labels.columns:
        return labels.with_columns(pl.lit(None, pl.Boolean).alias("incident"))
    words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    text = pl.col("incident").str.strip_chars().str.to_lowercase()
    bad = labels.filter(text.is_not_null() & (text != "") & ~text.is_in(list(words)))
    if bad.height:
        raise DataError(
            f"{path}: incident {bad['incident'][0]!r} for rollout {bad['rollout'][0]!r} is not "
            "true/false (yes/no, 1/0, or empty when unknown)."
        )
    duplicated = labels.filter(pl.col("rollout").is_duplicated())
    if duplicated.height:
        raise DataError(f"{path}: rollout {duplicated['rollout'][0]!r} is labelled twice.")
    return labels.with_columns(text.replace_strict(words, default=None, return_dtype=pl.Boolean))


def _where(service: Any, since: Any, until: Any, column: str) -> pl.Expr:
    conditions = [pl.lit(True)]
    if service is not None:
        names = [service] if isinstance(service, str) else list(service)
        conditions.append(pl.col("service").is_in(names))
    if since is not None:
        conditions.append(pl.col(column) >= to_utc(since, "since"))
    if until is not None:
        conditions.append(pl.col(column) < to_utc(until, "until"))
    return pl.all_horizontal(conditions)


@contextmanager
def _index_lock(root: Path) -> Iterator[None]:
    """Hold the dataset's index lock: adds read, extend and rewrite the index in turn, so
    two ``fleet add`` runs at once never drop each other's rows."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / INDEX_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic(path: Path, write: Any) -> None:
    """``write(tmp)`` then rename over ``path``, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp{os.getpid()}-{path.name}")
    write(tmp)
    os.replace(tmp, path)
