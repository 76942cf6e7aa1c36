"""Write a Recording as OpenMetrics text, as real exporters would have exposed it.

The output feeds ``promtool tsdb create-blocks-from openmetrics`` so a simulated rollout can
live in a real Prometheus and be read back by the same preset's queries. Each variant's
per-step increments are split deterministically over ``pods_per_variant`` pods (integer
counts round-robin, so pods differ by at most one) and written as **cumulative** counters
and cumulative-by-``le`` histogram buckets per pod, with the preset's metric names and labels.

Samples: one at ``first timestamp - step`` with every counter at 0, then ``scrapes_per_step``
evenly spaced scrapes per step, the last exactly at the step's end (the recording's
timestamp). With Prometheus 2.x's closed range selector and ``increase(x[step])`` evaluated
on that grid, both window edges hold a sample, so the read-back increase is exact.
Missing steps are written as no increase. Metrics other than requests/errors/latency_ms are
written as ``rolloutlab_<metric>`` (gauges) or ``rolloutlab_<metric>_total`` (counters)
with labels ``namespace``, ``target`` and ``variant``, one series per variant.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, cast

import numpy as np
import polars as pl

from rolloutlab import frames
from rolloutlab.errors import DataError, SpecError
from rolloutlab.sources.presets import LATENCY_SUM, Preset, get_preset, promql_string
from rolloutlab.sources.prometheus import to_utc
from rolloutlab.sources.recording import Recording

_CORE = ("requests", "errors", "latency_ms", LATENCY_SUM)


def to_openmetrics(
    recording: Recording,
    *,
    preset: str | Preset = "istio",
    target: str = "podinfo",
    namespace: str = "test",
    pods_per_variant: int = 2,
    start: Any = None,
    scrapes_per_step: int = 1,
    variant_values: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
) -> str:
    """OpenMetrics text of ``recording`` in ``preset``'s metric names and labels.

    ``start`` moves the recording so its first timestamp is ``start`` (default: unchanged).
    ``variant_values`` gives the variant label's value for each variant (``{pod}`` is the
    pod index); by default ``primary``/``canary`` follow Flagger's naming for the preset and
    other variants use their own name. ``names`` are the preset's template names (see
    :meth:`Preset.names`; default: the preset's ``example_names``). A preset whose Flagger
    request-duration is a mean gets the histogram's ``_sum``: the recording's
    ``latency_ms_sum`` rows, or :func:`bucket_sum_ms` of its buckets.
    """
    p = get_preset(preset) if isinstance(preset, str) else preset
    if pods_per_variant < 1 or scrapes_per_step < 1:
        raise SpecError("pods_per_variant and scrapes_per_step must be at least 1")
    frame = recording.frame
    if frame.is_empty():
        raise DataError("cannot write an empty recording as OpenMetrics")
    step_s = recording.step_s or frames.step_seconds(frame) or 60.0
    # A validated, non-empty recording's timestamps are datetimes; polars types min() widely.
    t_first = cast(datetime, frame["timestamp"].min())
    t_last = cast(datetime, frame["timestamp"].max())
    offset = 0.0 if start is None else (to_utc(start, "start") - t_first).total_seconds()
    first = t_first.timestamp() + offset
    n_steps = int(round((t_last - t_first).total_seconds() / step_s)) + 1
    step_index = (
        ((pl.col("timestamp") - pl.lit(t_first)).dt.total_microseconds() / (step_s * 1e6))
        .round()
        .cast(pl.Int64)
    )
    frame = frame.with_columns(step_index.alias("k"))
    scrape_times = (
        first - step_s + step_s / scrapes_per_step * np.arange(n_steps * scrapes_per_step + 1)
    )
    writer = _Writer(
        p,
        fill=p.names(target, namespace, {**p.examples(target), **(names or {})}),
        target=target,
        pods=pods_per_variant,
        scrapes=scrapes_per_step,
        n_steps=n_steps,
        times=[_num(t) for t in scrape_times],
    )
    served = frame.filter(pl.col("metric") == "requests")["variant"].unique().sort().to_list()
    if not served:
        raise DataError("the recording has no 'requests' rows to write as OpenMetrics")
    names = {v: (variant_values or {}).get(v, p.write.get(v, v)) for v in served}
    return "".join(writer.lines(frame, names)) + "# EOF\n"


class _Writer:
    """Turns per-step increments into per-pod cumulative OpenMetrics sample lines."""

    def __init__(
        self,
        preset: Preset,
        *,
        fill: Mapping[str, str],
        target: str,
        pods: int,
        scrapes: int,
        n_steps: int,
        times: list[str],
    ) -> None:
        self.p = preset
        self.fill = fill
        self.target = target
        self.pods = pods
        self.scrapes = scrapes
        self.n_steps = n_steps
        self.times = times

    def lines(self, frame: pl.DataFrame, names: Mapping[str, str]) -> Iterator[str]:
        p = self.p
        per_variant = {v: self._variant_data(frame, v) for v in names}
        if p.requests_from_histogram:
            yield f"# TYPE {p.histogram} histogram\n"
            for variant, data in per_variant.items():
                yield from self._histogram(variant, names[variant], data, coded=True)
        else:
            family, mtype = _family(p.requests)
            yield f"# TYPE {family} {mtype}\n"
            for variant, data in per_variant.items():
                requests, errors = data["requests"], data["errors"]
                for code, values in ((p.ok_code, requests - errors), (p.error_code, errors)):
                    for pod, series in enumerate(self._per_pod(values)):
                        labels = self._labels(variant, names[variant], pod)
                        labels[p.code_label] = code
                        yield from self._series(p.requests, {**labels, **p.requests_labels}, series)
                        if mtype == "histogram":  # requests are another histogram's +Inf bucket
                            yield from self._series(f"{family}_count", labels, series)
            yield f"# TYPE {p.histogram} histogram\n"
            for variant, data in per_variant.items():
                yield from self._histogram(variant, names[variant], data, coded=False)
        yield from self._extras(frame)

    def _variant_data(self, frame: pl.DataFrame, variant: str) -> dict[str, Any]:
        rows = frame.filter(pl.col("variant") == variant)
        data: dict[str, Any] = {}
        for metric in ("requests", "errors"):
            data[metric] = self._dense(rows.filter(pl.col("metric") == metric))
        buckets = rows.filter(pl.col("metric") == "latency_ms")
        edges = np.sort(buckets["le"].unique().to_numpy())
        if not len(edges) or not np.isinf(edges[-1]):
            raise DataError(
                f"variant {variant!r}: latency_ms needs histogram buckets ending in le=+Inf "
                "to be written as a Prometheus histogram"
            )
        cumulative = np.zeros((self.n_steps, len(edges)))
        cumulative[buckets["k"].to_numpy(), np.searchsorted(edges, buckets["le"].to_numpy())] = (
            buckets["value"].to_numpy()
        )
        data["edges"] = edges
        data["bins"] = np.diff(cumulative, axis=1, prepend=0.0)
        sums = rows.filter(pl.col("metric") == LATENCY_SUM)
        data["sum_ms"] = self._dense(sums) if sums.height else bucket_sum_ms(edges, data["bins"])
        if (data["bins"] < 0).any():
            raise DataError(f"variant {variant!r}: latency_ms buckets are not cumulative by le")
        if (data["errors"] > data["requests"]).any():
            raise DataError(f"variant {variant!r}: more errors than requests in some step")
        return data

    def _dense(self, rows: pl.DataFrame) -> np.ndarray:
        out = np.zeros(self.n_steps)
        np.add.at(out, rows["k"].to_numpy(), rows["value"].to_numpy())
        return out

    def _histogram(
        self, variant: str, value: str, data: dict[str, Any], *, coded: bool
    ) -> Iterator[str]:
        p = self.p
        bins: np.ndarray = data["bins"]
        if coded:
            if not np.allclose(bins.sum(axis=1), data["requests"]):
                raise DataError(
                    f"variant {variant!r}: preset {p.name!r} counts requests with the latency "
                    "histogram's _count, so latency_ms{le=+Inf} must equal requests every step"
                )
            # Errors take the slowest bins first (any split with these margins reads back).
            above = np.cumsum(bins[:, ::-1], axis=1)[:, ::-1] - bins
            error_bins = np.clip(data["errors"][:, None] - above, 0.0, bins)
            parts: tuple[tuple[str | None, np.ndarray], ...] = (
                (p.ok_code, bins - error_bins),
                (p.error_code, error_bins),
            )
        else:
            parts = ((None, bins),)
        edges = [_num(e * 1.0 / p.le_to_ms) if np.isfinite(e) else "+Inf" for e in data["edges"]]
        for code, part in parts:
            # Split each bin over pods, then make each pod's buckets cumulative by le.
            per_pod = np.stack([self._split(part[:, j], self.pods) for j in range(part.shape[1])])
            for pod in range(self.pods):
                labels = {**self._labels(variant, value, pod), **p.latency_labels}
                if code is not None:
                    labels[p.code_label] = code
                cumulative_le = np.cumsum(per_pod[:, :, pod], axis=0)
                for j, le in enumerate(edges):
                    yield from self._series(
                        p.latency, {**labels, "le": le}, self._over_time(cumulative_le[j])
                    )
                count = self._over_time(cumulative_le[-1])
                yield from self._series(f"{p.histogram}_count", labels, count)
                if p.duration == "mean":  # Flagger reads _sum / _count
                    total = data["sum_ms"] / p.le_to_ms / self.pods
                    yield from self._series(f"{p.histogram}_sum", labels, self._over_time(total))

    def _per_pod(self, values: np.ndarray) -> Iterator[np.ndarray]:
        split = self._split(values, self.pods)
        for pod in range(self.pods):
            yield self._over_time(split[:, pod])

    def _over_time(self, increments: np.ndarray) -> np.ndarray:
        """Cumulative readings at every scrape, starting with 0 one step before the first."""
        sub = self._split(increments, self.scrapes).reshape(-1)
        return np.concatenate([[0.0], np.cumsum(sub)])

    @staticmethod
    def _split(values: np.ndarray, parts: int) -> np.ndarray:
        """Split each value into ``parts`` shares (rows × parts); integers stay integers.

        The remainder goes round-robin, starting one share later each row, so over many
        rows every share gets the same.
        """
        values = np.asarray(values, dtype=float)
        if parts == 1:
            return values[:, None]
        if np.all(values == np.round(values)):
            base = np.floor(values / parts)
            rest = values - base * parts
            phase = (np.arange(parts)[None, :] - np.arange(len(values))[:, None]) % parts
            return base[:, None] + (phase < rest[:, None])
        return np.repeat(values[:, None] / parts, parts, axis=1)

    def _labels(self, variant: str, value: str, pod: int) -> dict[str, str]:
        p = self.p
        fill = {**self.fill, "pod": pod}
        labels = {k: v.format(**fill) for k, v in p.labels.items()}
        labels[p.variant_label] = value.format(**fill)
        if p.pod_label:
            labels[p.pod_label] = f"{self.target}-{variant}-{pod}".lower()
        return labels

    def _series(self, name: str, labels: Mapping[str, str], values: np.ndarray) -> Iterator[str]:
        prefix = f"{name}{{{','.join(f'{k}={promql_string(v)}' for k, v in labels.items())}}} "
        yield "".join(
            f"{prefix}{_num(v)} {t}\n" for v, t in zip(values.tolist(), self.times, strict=True)
        )

    def _extras(self, frame: pl.DataFrame) -> Iterator[str]:
        """Metrics outside requests/errors/latency_ms, one series per variant."""
        other = frame.filter(~pl.col("metric").is_in(_CORE) & (pl.col("kind") != "bucket"))
        for (metric, kind), rows in sorted(
            other.partition_by("metric", "kind", as_dict=True).items()
        ):
            name = f"rolloutlab_{metric}"
            yield f"# TYPE {name} {'counter' if kind == 'counter' else 'gauge'}\n"
            for (variant,), part in sorted(rows.partition_by("variant", as_dict=True).items()):
                labels = {
                    "namespace": self.fill["namespace"],
                    "target": self.target,
                    "variant": variant,
                }
                values = self._dense(part)
                if kind == "counter":
                    yield from self._series(f"{name}_total", labels, self._over_time(values))
                else:
                    steps = np.repeat(values, self.scrapes)
                    yield from self._series(name, labels, np.concatenate([[values[0]], steps]))


def bucket_sum_ms(edges: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Per-step sum of observations (ms) estimated from bucket counts: each observation at
    the middle of its bucket (0 is the first bucket's lower bound), those in +Inf at the
    last finite bound. What the writer exposes as a histogram's ``_sum`` when the recording
    has no ``latency_ms_sum``."""
    finite = np.asarray(edges[:-1], dtype=float)
    lower = np.concatenate([[0.0], finite[:-1]])
    middle = np.concatenate([(lower + finite) / 2, finite[-1:] if finite.size else [0.0]])
    return np.asarray(bins, dtype=float) @ middle


def _family(name: str) -> tuple[str, str]:
    """OpenMetrics family name and type of a requests sample name."""
    if name.endswith("_total"):
        return name.removesuffix("_total"), "counter"
    if name.endswith("_bucket"):
        return name.removesuffix("_bucket"), "histogram"
    return name, "unknown"


def _num(x: float) -> str:
    """Shortest exact text of a number (integers without a decimal point)."""
    if not np.isfinite(x):
        return "NaN" if np.isnan(x) else ("+Inf" if x > 0 else "-Inf")
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return repr(float(x))


__all__ = ["bucket_sum_ms", "to_openmetrics"]
