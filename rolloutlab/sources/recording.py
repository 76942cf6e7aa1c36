"""Recordings on disk: one rollout's or experiment's data plus its metadata.

Parquet is the format (metadata as JSON under the key ``rolloutlab`` in the file's
key-value metadata, so one file carries everything). CSV is accepted on load and
written on request, with the metadata in a JSON sidecar ``<file>.meta.json``. A raw
Prometheus ``query_range`` JSON response saved to disk loads too.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import polars as pl

from rolloutlab import _html, frames
from rolloutlab.config import redact_url
from rolloutlab.errors import DataError, StorageError

META_KEY = b"rolloutlab"
#: The sidecar key holding the SHA-256 of the CSV it describes (see :meth:`Recording.save`).
DIGEST_KEY = "data_sha256"


class Recording:
    """A validated tidy frame (``.frame``) and its metadata (``.meta``).

    Metadata holds what is not a series: source URL, queries, preset, target, roles,
    step, creation time, format version, and the audit trail of any weight changes.
    """

    __slots__ = ("frame", "meta")

    def __init__(
        self,
        frame: pl.DataFrame,
        meta: Mapping[str, Any] | None = None,
        *,
        source: str = "<frame>",
    ) -> None:
        self.frame = frames.validate(frame, source=source)
        meta = dict(meta or {})
        if isinstance(meta.get("source"), str):  # never store or show a URL's credentials
            meta["source"] = redact_url(meta["source"])
        meta.setdefault("format_version", frames.FORMAT_VERSION)
        meta.setdefault("created_at", datetime.now(UTC).isoformat(timespec="seconds"))
        if meta.get("step_s") is None:
            meta["step_s"] = frames.step_seconds(self.frame)
        self.meta = meta

    # -- what is in it -------------------------------------------------------------

    @property
    def variants(self) -> list[str]:
        """Variant names, control first when roles say which it is."""
        names = self.frame["variant"].unique().sort().to_list()
        control = self.control
        return sorted(names, key=lambda v: (v != control, v))

    @property
    def control(self) -> str:
        """The baseline variant: roles' control, else ``primary``, else the first arm."""
        roles = self.meta.get("roles") or {}
        if roles.get("control"):
            return roles["control"]
        names = self.frame["variant"].unique().sort().to_list()
        if "primary" in names:
            return "primary"
        return names[0] if names else "primary"

    @property
    def treatments(self) -> list[str]:
        """Every variant other than the control (``weight`` rows excluded)."""
        return [v for v in self.variants if v != self.control]

    @property
    def metrics(self) -> list[str]:
        return self.frame["metric"].unique().sort().to_list()

    @property
    def start(self) -> datetime | None:
        """The first timestamp (None when the recording is empty)."""
        span = frames.time_span(self.frame)
        return span[0] if span else None

    @property
    def end(self) -> datetime | None:
        """The last timestamp (None when the recording is empty)."""
        span = frames.time_span(self.frame)
        return span[1] if span else None

    @property
    def step_s(self) -> float | None:
        return self.meta.get("step_s")

    def window(self, start: datetime | None = None, end: datetime | None = None) -> Recording:
        """The rows with ``start < timestamp <= end`` (step windows ending in that span)."""
        rows = self.frame
        if start is not None:
            rows = rows.filter(pl.col("timestamp") > start)
        if end is not None:
            rows = rows.filter(pl.col("timestamp") <= end)
        return Recording(rows, self.meta)

    def summary(self) -> pl.DataFrame:
        """One row per variant and metric: kind, ticks, and the total (counters,
        histogram observations) or mean (gauges)."""
        rows = self.frame
        observations = (
            rows.filter((pl.col("kind") == "bucket") & pl.col("le").is_infinite())
            .group_by("variant", "metric", "kind")
            .agg(
                pl.col("timestamp").n_unique().alias("ticks"), pl.col("value").sum().alias("total")
            )
        )
        counters = (
            rows.filter(pl.col("kind") == "counter")
            .group_by("variant", "metric", "kind")
            .agg(
                pl.col("timestamp").n_unique().alias("ticks"), pl.col("value").sum().alias("total")
            )
        )
        gauges = (
            rows.filter(pl.col("kind") == "gauge")
            .group_by("variant", "metric", "kind")
            .agg(
                pl.col("timestamp").n_unique().alias("ticks"), pl.col("value").mean().alias("mean")
            )
        )
        table = pl.concat([counters, observations, gauges], how="diagonal_relaxed")
        if table.is_empty():
            return table
        return table.sort("metric", "variant").select(
            "metric",
            "variant",
            "kind",
            "ticks",
            *(c for c in ("total", "mean") if c in table.columns),
        )

    # -- saving --------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write to ``.parquet`` (metadata inside) or ``.csv`` (metadata in a sidecar).

        The save is atomic: see :func:`_replace_atomically`. A failure raises
        :class:`StorageError` and leaves what was at ``path`` as it was.
        """
        path = Path(path)
        if path.suffix not in (".csv", ".parquet"):
            raise DataError(
                f"{path}: cannot save a recording as '{path.suffix or 'no suffix'}'. "
                "Use a .parquet (recommended) or .csv file name."
            )
        if path.suffix == ".csv":
            _replace_atomically(path, self.frame.write_csv, sidecar_meta=self.meta)
            return path
        import pyarrow.parquet as pq

        table = self.frame.to_arrow()
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), META_KEY: _meta_json(self.meta)}
        )
        _replace_atomically(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
        return path

    def __len__(self) -> int:
        return self.frame.height

    def __repr__(self) -> str:
        span, bounds = "empty", frames.time_span(self.frame)
        if bounds is not None:
            start, end = bounds
            same_day = start.date() == end.date()
            span = f"{start:%Y-%m-%d %H:%M}–{end:{'%H:%M' if same_day else '%Y-%m-%d %H:%M'}} UTC"
        step = f", step {self.step_s:g}s" if self.step_s else ""
        return (
            f"<Recording {', '.join(self.variants)} · {len(self.metrics)} metrics · {span}{step}>"
        )

    @_html.never_raises
    def _repr_html_(self) -> str:
        """A card: variants (in their chart colours), span, step, metrics, and each
        variant's counter totals."""
        colors = _html.variant_colors(self.variants, self.control)
        variants = _html.Html(
            ", ".join(f"{_html.swatch(c)}{_html.esc(v)}" for v, c in colors.items())
        )
        bounds = frames.time_span(self.frame)
        span = (
            f"{_html.when(bounds[0])} → {_html.when(bounds[1])} ({bounds[1] - bounds[0]})"
            if bounds
            else "empty"
        )
        facts = {
            "variants": variants,
            "control": self.control,
            "span": span,
            "step": f"{self.step_s:g} s" if self.step_s else None,
            "metrics": ", ".join(self.metrics),
            "kind": self.meta.get("kind"),
            "source": self.meta.get("source"),
        }
        counters = self.frame.filter(pl.col("kind") == "counter")
        totals = counters.pivot(
            on="metric", index="variant", values="value", aggregate_function="sum"
        )
        names = [c for c in totals.columns if c != "variant"]
        order = {v: i for i, v in enumerate(self.variants)}
        rows = sorted(totals.rows(), key=lambda r: order.get(r[0], len(order)))
        table = _html.table(
            ["variant", *(f"{n} (total)" for n in names)],
            ([r[0], *(_html.num(x) for x in r[1:])] for r in rows),
            numeric=[f"{n} (total)" for n in names],
        )
        return _html.card(
            f"Recording · {_html.num(len(self))} rows",
            _html.kv_table(facts),
            table if names else "",
        )


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def _meta_json(meta: Mapping[str, Any]) -> str:
    return json.dumps(meta, default=str, sort_keys=True)


def _replace_atomically(
    path: Path, write: Callable[[Path], Any], *, sidecar_meta: Mapping[str, Any] | None = None
) -> None:
    """Write ``path`` (and, for CSV, its metadata sidecar) all or nothing.

    Each file is written to a temporary file in the same folder, flushed to disk (fsync)
    and renamed over the old one, which POSIX makes atomic. The CSV and its sidecar are
    two renames: the sidecar goes first and records the SHA-256 of the data it describes,
    so a reader tells a pair cut between the renames (a crash) from a good one
    (:func:`_load_csv` refuses it); when the second rename fails, the old sidecar is put
    back. Any failure removes the temporary files and raises :class:`StorageError`.
    """
    temps: list[Path] = []
    sidecar, backup = _sidecar(path), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _temp_beside(path, temps)
        write(data)
        _fsync(data)
        if sidecar_meta is not None:
            meta = {**sidecar_meta, DIGEST_KEY: _digest(data)}
            side = _temp_beside(sidecar, temps)
            side.write_text(_meta_json(meta) + "\n")
            _fsync(side)
            if sidecar.exists():
                backup = _temp_beside(sidecar, temps, create=False)
                os.link(sidecar, backup)
            os.replace(side, sidecar)
        try:
            os.replace(data, path)
        except OSError:
            if backup is not None:
                os.replace(backup, sidecar)
            raise
        _fsync(path.parent)
    except Exception as exc:
        for temp in temps:
            temp.unlink(missing_ok=True)
        raise StorageError(
            f"{path}: could not save the recording ({_os_reason(exc)}); the file that was "
            "there is unchanged. Free some disk space or save somewhere else."
        ) from exc
    for temp in temps:
        temp.unlink(missing_ok=True)


def _temp_beside(path: Path, temps: list[Path], *, create: bool = True) -> Path:
    """A new, empty file beside ``path`` (made with the usual permissions, umask applied)."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    if create:
        os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    temps.append(temp)
    return temp


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _os_reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def load(path: str | Path, **json_options: Any) -> Recording:
    """Load a recording from Parquet, CSV, or a saved Prometheus ``query_range`` response.

    ``json_options`` (``metric``, ``kind``, ``variant_label``) apply to JSON responses only.
    Raises :class:`DataError` naming the file, row or column, and what is expected.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"{path}: no such file. Check the path, or record one with 'rolloutlab fetch'.",
            source=str(path),
        )
    if path.is_dir():
        raise DataError(f"{path}: is a folder; give a recording file.", source=str(path))
    suffix = path.suffix.lower()
    if suffix == ".json":
        from rolloutlab.sources.promjson import load_query_range_json

        return load_query_range_json(path, **json_options)
    if json_options:
        raise DataError(f"{path}: options {sorted(json_options)} apply only to JSON responses.")
    if suffix == ".csv":
        return _load_csv(path)
    if suffix == ".parquet":
        return _load_parquet(path)
    raise DataError(
        f"{path}: unknown file type '{suffix}'. Expected .parquet, .csv, or a Prometheus "
        "query_range response saved as .json."
    )


def _load_parquet(path: Path) -> Recording:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(META_KEY)
        # Polars panics (an exception `except Exception` misses) on invalid UTF-8 in text
        # values, column names, time zones or field metadata: have pyarrow decode them all.
        table.validate(full=True)
        table.schema.to_string(show_field_metadata=True, show_schema_metadata=False)
        # a Table gives a DataFrame (a Series only comes from an Array); pyarrow has no stubs
        frame = cast(pl.DataFrame, pl.from_arrow(table.replace_schema_metadata(None)))
    except (pa.ArrowException, OSError, UnicodeDecodeError, pl.exceptions.PolarsError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc}).", source=str(path)) from None
    meta = _parse_meta(raw, path) if raw else {}
    _check_version(meta, path)
    return Recording(frame, meta, source=str(path))


def _load_csv(path: Path) -> Recording:
    try:
        data = path.read_bytes()
        frame = pl.read_csv(data, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc}).", source=str(path)) from None
    sidecar = _sidecar(path)
    meta = _parse_meta(sidecar.read_bytes(), sidecar) if sidecar.is_file() else {}
    expected = meta.pop(DIGEST_KEY, None)
    if expected is not None and expected != hashlib.sha256(data).hexdigest():
        raise DataError(
            f"{path}: its metadata sidecar {sidecar.name} describes other data (a save cut "
            "short, or the CSV was edited). Save the recording again; if you edited the CSV "
            f"on purpose, delete '{DIGEST_KEY}' from the sidecar.",
            source=str(path),
        )
    _check_version(meta, path)
    return Recording(frame, meta, source=str(path))


def _parse_meta(raw: bytes, where: Path) -> dict[str, Any]:
    """The metadata object, with the keys the Recording reads checked for their type."""
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise DataError(
            f"{where}: recording metadata is not valid JSON ({exc}).", source=str(where)
        ) from None
    if not isinstance(meta, dict):
        raise DataError(f"{where}: recording metadata must be a JSON object.", source=str(where))
    step = meta.get("step_s")
    if step is not None and (
        isinstance(step, bool) or not isinstance(step, int | float) or not 0 < step < 1e9
    ):
        raise DataError(f"{where}: 'step_s' must be a positive number of seconds, got {step!r}.")
    roles = meta.get("roles")
    if roles is not None and not (
        isinstance(roles, dict) and isinstance(roles.get("control") or "", str)
    ):
        raise DataError(f'{where}: \'roles\' must be an object like {{"control": "primary"}}.')
    return meta


def _check_version(meta: Mapping[str, Any], path: Path) -> None:
    version = meta.get("format_version", frames.FORMAT_VERSION)
    if version != frames.FORMAT_VERSION:
        raise DataError(
            f"{path}: recording format v{version} is not supported by this rolloutlab "
            f"(it reads v{frames.FORMAT_VERSION}). Upgrade rolloutlab."
        )
