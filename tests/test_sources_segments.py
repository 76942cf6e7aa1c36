"""``fetch --segment-by LABEL``: the recording's ``segment`` column filled from a Prometheus
label, parsed from raw ``query_range`` bodies (both parser paths) and fetched from a real
Prometheus backfilled by promtool with series that carry a ``region`` label (and some that
do not: they land in the segment ``"(none)"``, so the segments add up to the totals).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import polars as pl
import pytest
from test_sources_prometheus import assert_same

from rolloutlab import experiment
from rolloutlab.cli import main
from rolloutlab.errors import SpecError
from rolloutlab.sources.openmetrics import to_openmetrics
from rolloutlab.sources.prometheus import Prometheus, fetch
from rolloutlab.sources.promjson import NO_SEGMENT, MergeRefused, response_to_frame
from rolloutlab.sources.promserver import PrometheusServer
from rolloutlab.sources.recording import Recording, load
from rolloutlab.sources.simulate import simulate

# -- parsing ----------------------------------------------------------------------------


def body(*series: tuple[dict[str, str], list[list[object]]]) -> bytes:
    result = [{"metric": labels, "values": values} for labels, values in series]
    return json.dumps(
        {"status": "success", "data": {"resultType": "matrix", "result": result}}
    ).encode()


def parse(raw: bytes, **options: object) -> pl.DataFrame:
    parsed = response_to_frame(
        raw,
        label="variant",
        variant_of=lambda v: v or None,
        metric="requests",
        kind="counter",
        segment="region",
        **options,  # type: ignore[arg-type]
    )
    return parsed.frame.sort("variant", "segment", "timestamp")


def rows(frame: pl.DataFrame) -> list[tuple[str, str, float]]:
    return [(v, s, x) for v, s, x in frame.select("variant", "segment", "value").iter_rows()]


def test_query_range_with_the_segment_label_fills_the_column() -> None:
    """Fast path: one row per series and step, the label's value in ``segment``; a series
    without the label is in ``(none)``."""
    raw = body(
        ({"variant": "A", "region": "eu"}, [[60, "1"], [120, "2"]]),
        ({"variant": "A", "region": "us"}, [[60, "3"], [120, "4"]]),
        ({"variant": "B", "region": "eu"}, [[60, "5"], [120, "6"]]),
        ({"variant": "B"}, [[60, "7"], [120, "NaN"]]),
    )
    frame = parse(raw)
    assert frame.columns[-1] == "segment"
    got = rows(frame)
    assert got[:6] == [
        ("A", "eu", 1.0),
        ("A", "eu", 2.0),
        ("A", "us", 3.0),
        ("A", "us", 4.0),
        ("B", NO_SEGMENT, 7.0),
        ("B", NO_SEGMENT, got[5][2]),
    ]
    assert got[5][2] != got[5][2]  # NaN read as NaN
    assert got[6:] == [("B", "eu", 5.0), ("B", "eu", 6.0)]


def test_series_of_one_segment_differing_in_another_label_are_refused_or_summed() -> None:
    """Slow path (two series share variant and segment): refused as a double count unless
    aggregate='sum', which adds them up within the segment only."""
    raw = body(
        ({"variant": "A", "region": "eu", "pod": "1"}, [[60, "1"]]),
        ({"variant": "A", "region": "eu", "pod": "2"}, [[60, "10"]]),
        ({"variant": "A", "region": "us", "pod": "1"}, [[60, "100"]]),
        ({"variant": "A", "pod": "3"}, [[60, "1000"]]),
    )
    with pytest.raises(MergeRefused, match=r"region 'eu'.*pod in \['1', '2'\]"):
        parse(raw)
    assert rows(parse(raw, aggregate="sum")) == [
        ("A", NO_SEGMENT, 1000.0),
        ("A", "eu", 11.0),
        ("A", "us", 100.0),
    ]


# -- a real Prometheus ------------------------------------------------------------------


def labelled(text: str, name: str, value: str) -> str:
    """OpenMetrics ``text`` with the label ``name="value"`` added to every sample."""
    return "".join(
        line.replace("{", f'{{{name}="{value}",', 1) if not line.startswith("#") else line
        for line in text.splitlines(keepends=True)
    )


REGIONS = {"eu": 5, "us": 6}  # region: the simulator's seed
UNLABELLED_SEED = 7
DAYS = 2  # short: each text is backfilled by promtool


@pytest.fixture(scope="module")
def regions(prometheus_binary) -> Iterator[tuple[str, dict[str, Recording]]]:
    """A Prometheus holding one A/B experiment per region (namespace "seg") plus one whose
    series have no region label."""
    seeds = {**REGIONS, NO_SEGMENT: UNLABELLED_SEED}
    recs = {
        region: simulate("ab", seed=seed, duration_min=DAYS * 1440)
        for region, seed in seeds.items()
    }
    texts = [
        to_openmetrics(rec, target="shop", namespace="seg", pods_per_variant=1)
        for rec in recs.values()
    ]
    texts = [
        text if region == NO_SEGMENT else labelled(text, "region", region)
        for region, text in zip(recs, texts, strict=True)
    ]
    with PrometheusServer(openmetrics=texts) as server:
        yield server.url, recs


def span(recs: dict[str, Recording]) -> dict[str, object]:
    rec = recs["eu"]
    return {"start": rec.start, "end": rec.end, "step": "1h"}


@pytest.mark.prometheus
def test_segmented_fetch_gives_each_region_and_the_same_totals(regions) -> None:
    url, recs = regions
    prom = Prometheus(url)
    args = {"namespace": "seg", "variants": ["A", "B"], **span(recs)}
    whole = prom.fetch("istio", **args)
    split = prom.fetch("istio", segment_by="region", **args)
    assert "segment" not in whole.frame.columns
    assert split.meta["segment_by"] == "region"
    assert "sum by (destination_workload, region, le)" in split.meta["queries"]["latency_ms"]
    assert sorted(split.frame["segment"].unique()) == sorted([NO_SEGMENT, *REGIONS])
    for region, rec in recs.items():  # each region is exactly its own experiment's data
        assert_same(rec.frame, split.frame.filter(pl.col("segment") == region).drop("segment"))
    keys = ["timestamp", "variant", "metric", "kind", "le"]
    summed = split.frame.group_by(keys).agg(pl.col("value").sum())
    assert_same(whole.frame, summed)


@pytest.mark.prometheus
def test_experiment_on_a_segmented_fetch_has_a_row_per_segment(regions, tmp_path) -> None:
    """CLI --segment-by (the preset's queries plus custom ones keeping the label), then
    experiment(): per segment a row per metric, and the conversion lift there is that
    region's own conversions/visitors ratio of B over A."""
    url, recs = regions
    queries = tmp_path / "queries.yaml"
    queries.write_text(
        "queries:\n"
        + "".join(
            f"  {m}:\n    kind: counter\n    query: sum by (destination_workload, region) "
            f'(label_replace(increase(rolloutlab_{m}_total{{namespace="seg",variant=~"A|B"}}'
            '[{{ step }}]), "destination_workload", "$1", "variant", "(.*)"))\n'
            for m in ("conversions", "visitors")
        )
    )
    out = tmp_path / "seg.parquet"
    rec = recs["eu"]
    argv = ["fetch", "--url", url, "--namespace", "seg", "--variants", "A,B"]
    argv += ["--queries", str(queries), "--step", "1h", "-o", str(out)]
    argv += ["--start", rec.start.isoformat(), "--end", rec.end.isoformat()]
    assert main([*argv, "--segment-by", "region"]) == 0
    table = experiment(load(out)).segments
    segments = sorted([NO_SEGMENT, *REGIONS])
    assert table.select("segment", "metric").unique().sort("segment", "metric").rows() == [
        (segment, metric)
        for segment in segments
        for metric in ("conversion", "error-rate", "latency")
    ]
    assert set(table["arm"]) == {"B"}
    table = table.filter(pl.col("metric") == "conversion")
    for region, own in recs.items():
        totals = own.frame.group_by("variant", "metric").agg(pl.col("value").sum())
        value = {(v, m): x for v, m, x in totals.iter_rows()}
        rate = {v: value[(v, "conversions")] / value[(v, "visitors")] for v in ("A", "B")}
        lift = table.filter(pl.col("segment") == region)["rel_lift"].item()
        assert lift == pytest.approx(rate["B"] / rate["A"] - 1, rel=1e-9)


def test_segment_by_must_be_another_label_and_is_refused_with_flagger() -> None:
    """Refused before any query is sent (port 9 is discard: nothing answers there)."""
    args = {"target": "x", "namespace": "y", "start": 0, "end": 60}
    prom = Prometheus("http://127.0.0.1:9")
    for bad in ("destination_workload", "le", "a-b"):
        with pytest.raises(SpecError, match="segment_by"):
            prom.fetch("istio", segment_by=bad, **args)
    with pytest.raises(SpecError, match="segment_by and flagger"):
        fetch("http://127.0.0.1:9", segment_by="region", flagger=True, **args)
