"""Recordings on disk: one rollout's or experiment's data plus its metadata.

Parquet is the format (metadata as JSON under the key ``rolloutlab`` in the file's
key-value metadata, so one file carries everything). CSV is accepted on load and
written on request, with the metadata in a JSON sidecar ``<file>.meta.json``. A raw
Prometheus ``query_range`` JSON response saved to disk loads too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from rolloutlab import _html, frames
from rolloutlab.errors import DataError

META_KEY = b"rolloutlab"


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
        return self.frame["timestamp"].min()

    @property
    def end(self) -> datetime | None:
        return self.frame["timestamp"].max()

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
        """Write to ``.parquet`` (metadata inside) or ``.csv`` (metadata in a sidecar)."""
        path = Path(path)
        meta_json = json.dumps(self.meta, default=str, sort_keys=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".csv":
            self.frame.write_csv(path)
            _sidecar(path).write_text(meta_json + "\n")
        elif path.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = self.frame.to_arrow()
            table = table.replace_schema_metadata(
                {**(table.schema.metadata or {}), META_KEY: meta_json}
            )
            pq.write_table(table, path, compression="zstd")
        else:
            raise DataError(
                f"{path}: cannot save a recording as '{path.suffix or 'no suffix'}'. "
                "Use a .parquet (recommended) or .csv file name."
            )
        return path

    def __len__(self) -> int:
        return self.frame.height

    def __repr__(self) -> str:
        span = f"{self.start:%Y-%m-%d %H:%M}–{self.end:%H:%M} UTC" if self.frame.height else "empty"
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
        span = (
            f"{_html.when(self.start)} → {_html.when(self.end)} ({self.end - self.start})"
            if self.frame.height
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


def load(path: str | Path, **json_options: Any) -> Recording:
    """Load a recording from Parquet, CSV, or a saved Prometheus ``query_range`` response.

    ``json_options`` (``metric``, ``kind``, ``variant_label``) apply to JSON responses only.
    Raises :class:`DataError` naming the file, row or column, and what is expected.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"{path}: no such file. Check the path, or record one with 'rolloutlab fetch'."
        )
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
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc}).") from None
    raw = (table.schema.metadata or {}).get(META_KEY)
    meta = _parse_meta(raw, path) if raw else {}
    _check_version(meta, path)
    return Recording(pl.from_arrow(table), meta, source=str(path))


def _load_csv(path: Path) -> Recording:
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc}).") from None
    sidecar = _sidecar(path)
    meta = _parse_meta(sidecar.read_bytes(), sidecar) if sidecar.exists() else {}
    _check_version(meta, path)
    return Recording(frame, meta, source=str(path))


def _parse_meta(raw: bytes, where: Path) -> dict[str, Any]:
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise DataError(f"{where}: recording metadata is not valid JSON ({exc}).") from None
    if not isinstance(meta, dict):
        raise DataError(f"{where}: recording metadata must be a JSON object.")
    return meta


def _check_version(meta: Mapping[str, Any], path: Path) -> None:
    version = meta.get("format_version", frames.FORMAT_VERSION)
    if version != frames.FORMAT_VERSION:
        raise DataError(
            f"{path}: recording format v{version} is not supported by this rolloutlab "
            f"(it reads v{frames.FORMAT_VERSION}). Upgrade rolloutlab."
        )
