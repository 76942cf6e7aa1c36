"""Parsing query_range JSON: values, special floats, counter resets (checked against the real
Prometheus' increase()), malformed files, a property test on random matrices, and real
responses (tests/fixtures/upstream/prometheus, see its SOURCES.md) that must not be merged
silently, carry warnings, or have series on their own cadence."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import requests
from conftest import Backfilled
from fake_prometheus import prom_text
from hypothesis import given, settings
from hypothesis import strategies as st

import rolloutlab
from rolloutlab.errors import DataError, QueryError
from rolloutlab.sources.prometheus import Prometheus
from rolloutlab.sources.promjson import (
    PartialDataWarning,
    load_query_range_json,
    matrix_to_frame,
    response_to_frame,
)


def save(path: Path, doc: Any) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def response(result: list[dict[str, Any]]) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


def raw_query_range(url: str, query: str, start: float, end: float, step: int) -> dict[str, Any]:
    params = {"query": query, "start": start, "end": end, "step": step}
    return requests.get(f"{url}/api/v1/query_range", params=params, timeout=10).json()


def test_values_special_floats_and_variant_label(tmp_path: Path) -> None:
    doc = response(
        [
            {
                "metric": {"destination_workload": "web", "job": "x"},
                "values": [[1768212060, "1.5"], [1768212120, "NaN"], [1768212180.5, "+Inf"]],
            },
            {"metric": {"version": "v2"}, "values": [[1768212060, "-Inf"]]},
            {"metric": {"other": "z"}, "values": [[1768212060, "0"]]},
        ]
    )
    rec = load_query_range_json(save(tmp_path / "cpu.json", doc))
    frame = rec.frame
    assert frame["kind"].unique().to_list() == ["gauge"]
    assert frame["metric"].unique().to_list() == ["cpu"]  # from the file stem
    web = frame.filter(pl.col("variant") == "web")["value"].to_list()
    assert web[0] == 1.5 and math.isnan(web[1]) and web[2] == math.inf
    assert frame.filter(pl.col("variant") == "v2")["value"].to_list() == [-math.inf]
    assert frame.filter(pl.col("variant") == "all").height == 1
    assert frame["timestamp"].dtype == pl.Datetime("us", "UTC")
    assert frame["timestamp"].max().timestamp() == 1768212180.5

    # by job, two series without one fall into "all": refused, unless summed on purpose
    with pytest.raises(DataError, match=r"differ in other labels \(other in \['', 'z'\]; "):
        load_query_range_json(tmp_path / "cpu.json", variant_label="job")
    by_job = load_query_range_json(
        tmp_path / "cpu.json", variant_label="job", metric="load", aggregate="sum"
    )
    assert by_job.meta["aggregated"] == {"how": "sum", "labels": ["other", "version"]}
    assert set(by_job.frame["variant"]) == {"x", "all"}
    assert by_job.frame["metric"].unique().to_list() == ["load"]


def test_buckets_take_le_from_the_label(tmp_path: Path) -> None:
    doc = response(
        [
            {"metric": {"variant": "a", "le": "0.5"}, "values": [[1768212060, "3"]]},
            {"metric": {"variant": "a", "le": "+Inf"}, "values": [[1768212060, "4"]]},
        ]
    )
    rec = load_query_range_json(save(tmp_path / "lat.json", doc))
    assert rec.frame["kind"].unique().to_list() == ["bucket"]
    assert rec.frame.sort("le")["le"].to_list() == [0.5, math.inf]


def test_rolloutlab_load_accepts_saved_responses(tmp_path: Path) -> None:
    doc = response([{"metric": {"variant": "a"}, "values": [[1768212060, "2"]]}])
    rec = rolloutlab.load(save(tmp_path / "requests.json", doc), kind="counter")
    assert rec.frame.row(0, named=True)["kind"] == "counter"
    assert rec.meta["source"].endswith("requests.json")


def test_le_scale_rounds_seconds_to_exact_ms() -> None:
    result = [
        {"metric": {"le": le}, "values": [[1, "1"]]} for le in ("0.005", "0.025", "0.0005", "+Inf")
    ]
    frame = matrix_to_frame(result, variants=["a"] * 4, metric="m", kind="bucket", le_scale=1000)
    assert frame["le"].to_list() == [5.0, 25.0, 0.5, math.inf]


def test_series_mapping_to_one_variant_are_summed() -> None:
    result = [
        {"metric": {"pod": "a-1"}, "values": [[60, "1"], [120, "2"]]},
        {"metric": {"pod": "a-2"}, "values": [[60, "10"]]},
    ]
    frame = matrix_to_frame(result, variants=["a", "a"], metric="m", kind="counter")
    assert sorted(frame.select("value").to_series().to_list()) == [2.0, 11.0]


def test_counter_reset_matches_prometheus_increase(backfilled: Backfilled, tmp_path: Path) -> None:
    """Raw readings 0, 5, 9, 2, 6: a drop is a restart from 0, so the increases are
    5, 4, 2, 4, exactly what the real Prometheus' increase() reports for the same series."""
    start, end = 1768212000, 1768212240
    raw = raw_query_range(backfilled.url, "reset_demo_total", start, end, 60)
    assert [v for _, v in raw["data"]["result"][0]["values"]] == ["0", "5", "9", "2", "6"]
    ours = load_query_range_json(save(tmp_path / "reset.json", raw), variant_label="job")
    assert ours.frame["kind"].unique().to_list() == ["counter"]
    assert ours.frame["metric"].unique().to_list() == ["reset_demo_total"]

    theirs = Prometheus(backfilled.url).fetch(
        None,
        variant_label="job",
        variants=["reset"],
        queries={"requests": "increase(reset_demo_total[{{ step }}])"},
        start=start + 60,
        end=end,
        step=60,
    )
    assert ours.frame["value"].to_list() == [5.0, 4.0, 2.0, 4.0]
    assert theirs.frame["value"].to_list() == ours.frame["value"].to_list()
    assert theirs.frame["timestamp"].equals(ours.frame["timestamp"])


def test_raw_counters_from_the_server_give_the_simulated_increments(
    backfilled: Backfilled, tmp_path: Path
) -> None:
    """Raw per-pod, per-code istio_requests_total readings become per-step increases,
    summed by destination_workload (a default variant label)."""
    rec = backfilled.main
    start, end = rec.start.timestamp() - 60, rec.end.timestamp()
    query = 'istio_requests_total{destination_workload_namespace="test"}'
    raw = raw_query_range(backfilled.url, query, start, end, 60)
    assert len(raw["data"]["result"]) == 8  # 2 variants × 2 pods × 2 codes
    path = save(tmp_path / "raw.json", raw)
    with pytest.raises(DataError, match=r"differ in other labels \(pod in .*; response_code in"):
        load_query_range_json(path)
    got = load_query_range_json(path, aggregate="sum")
    assert got.meta["aggregated"]["labels"] == ["pod", "response_code"]
    assert got.meta["step_s"] == 60.0
    want = (
        rec.frame.filter(pl.col("metric") == "requests")
        .with_columns(
            pl.col("variant").replace({"primary": "podinfo-primary", "canary": "podinfo"}),
            pl.lit("istio_requests_total").alias("metric"),
        )
        .sort("timestamp", "variant")
    )
    assert got.frame.equals(want)


MALFORMED = {
    "not json": "{oops",
    "error response": {"status": "error", "errorType": "bad_data", "error": "parse error"},
    "no result": {"status": "success", "data": {"resultType": "matrix"}},
    "scalar result": {"status": "success", "data": {"resultType": "scalar", "result": [1, "1"]}},
    "result not a list": {"status": "success", "data": {"result": {"a": 1}}},
    "series without metric": response([{"values": [[1, "1"]]}]),
    "series without values": response([{"metric": {}}]),
    "point not a pair": response([{"metric": {}, "values": [[1, "1", 2]]}]),
    "timestamp as text": response([{"metric": {}, "values": [["1", "1"]]}]),
    "value not a number": response([{"metric": {}, "values": [[1, "abc"]]}]),
    "value not a string": response([{"metric": {}, "values": [[1, 1.5]]}]),
    "bad le": response([{"metric": {"le": "fast"}, "values": [[1, "1"]]}]),
    "raw counter NaN": response(
        [{"metric": {"__name__": "x_total"}, "values": [[1, "1"], [2, "NaN"]]}]
    ),
    "no samples": response([]),
}
MESSAGES = {
    "not json": "not valid JSON",
    "error response": "Prometheus error: bad_data: parse error",
    "no result": "no 'data.result' list",
    "scalar result": "resultType 'scalar'",
    "result not a list": "expected a list of series",
    "series without metric": "series 0 has no 'metric'",
    "series without values": "series 0 ({}) has no 'values'",
    "point not a pair": "point 0: expected [unix_seconds",
    "timestamp as text": "timestamp '1' is not a number",
    "value not a number": "value 'abc' is not a number string",
    "value not a string": "value 1.5 is not a number string",
    "bad le": "'le' value 'fast' is not a number",
    "raw counter NaN": "raw counter but holds nan",
    "no samples": "holds no samples",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_files_raise_data_error_naming_the_file(tmp_path: Path, case: str) -> None:
    path = save(tmp_path / "bad.json", MALFORMED[case])
    with pytest.raises(DataError) as info:
        load_query_range_json(path)
    assert str(path) in str(info.value)
    assert MESSAGES[case] in str(info.value)


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read file"):
        load_query_range_json(tmp_path / "absent.json")


series_strategy = st.lists(
    st.tuples(
        st.integers(min_value=1_000_000_000, max_value=2_000_000_000),
        st.floats(allow_nan=True, allow_infinity=True),
    ),
    max_size=30,
    unique_by=lambda p: p[0],
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(series_strategy, min_size=1, max_size=5),
    st.sampled_from(["response", "matrix", "file"]),
)
def test_random_matrices_parse_like_a_plain_python_reference(
    matrix: list[list[tuple[int, float]]], path: str
) -> None:
    """The fast (polars, raw bytes), matrix (decoded JSON) and file paths agree with
    Python's float() on every point, NaN and ±Inf included."""
    result = [
        {
            "metric": {"variant": f"v{i}"},
            "values": [[t, prom_text(x)] for t, x in sorted(points)],
        }
        for i, points in enumerate(matrix)
    ]
    expected = sorted(
        (t * 1_000_000, f"v{i}", x) for i, points in enumerate(matrix) for t, x in points
    )
    if path == "response":
        body = json.dumps(response(result)).encode()
        frame, skipped, *_ = response_to_frame(
            body, label="variant", variant_of=lambda v: v, metric="g", kind="gauge"
        )
        assert skipped == set()
    elif path == "file":
        if not any(matrix):
            return
        with tempfile.TemporaryDirectory() as tmp:
            frame = load_query_range_json(
                save(Path(tmp) / "g.json", response(result)), kind="gauge"
            ).frame
    else:
        variants = [f"v{i}" for i in range(len(result))]
        frame = matrix_to_frame(result, variants=variants, metric="g", kind="gauge")
    got = sorted(
        (int(t.timestamp() * 1_000_000), v, x)
        for t, v, x in frame.select("timestamp", "variant", "value").iter_rows()
    )
    assert len(got) == len(expected)
    for (t1, v1, x1), (t2, v2, x2) in zip(got, expected, strict=True):
        assert (t1, v1) == (t2, v2)
        assert x1 == x2 or (math.isnan(x1) and math.isnan(x2))


def test_response_fast_path_maps_sums_and_reports_unmatched() -> None:
    body = json.dumps(
        response(
            [
                {"metric": {"pod": "web-1", "le": "0.005"}, "values": [[60, "1"], [120, "2"]]},
                {"metric": {"pod": "web-2", "le": "0.005"}, "values": [[60, "3"]]},
                {"metric": {"pod": "web-2", "le": "+Inf"}, "values": [[60, "4"]]},
                {"metric": {"pod": "db-1", "le": "+Inf"}, "values": [[60, "9"]]},
            ]
        )
    ).encode()
    frame, skipped, *_ = response_to_frame(
        body,
        label="pod",
        variant_of=lambda v: "web" if v.startswith("web") else None,
        metric="latency_ms",
        kind="bucket",
        le_scale=1000.0,
    )
    assert skipped == {"db-1"}
    rows = sorted((r["timestamp"].timestamp(), r["le"], r["value"]) for r in frame.to_dicts())
    assert rows == [(60, 5.0, 4.0), (60, math.inf, 4.0), (120, 5.0, 2.0)]


def test_response_odd_shapes_fall_back_to_the_checked_path() -> None:
    vector = json.dumps(
        {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [{"metric": {"v": "a"}, "value": [60, "2"]}],
            },
        }
    ).encode()
    frame, *_ = response_to_frame(
        vector, label="v", variant_of=lambda v: v, metric="m", kind="counter"
    )
    assert frame["value"].to_list() == [2.0]
    with pytest.raises(DataError, match="not JSON"):
        response_to_frame(b"<html>", label="v", variant_of=str, metric="m", kind="gauge")
    bad = json.dumps(response([{"metric": {}, "values": [[1, "x"]]}])).encode()
    with pytest.raises(DataError, match="value 'x' is not a number string"):
        response_to_frame(bad, label="v", variant_of=str, metric="m", kind="gauge")


# -- nothing merged silently: real responses (tests/fixtures/upstream/prometheus) --------

FIXTURES = Path(__file__).parent / "fixtures" / "upstream" / "prometheus"


def canary_total(rec: rolloutlab.Recording) -> float:
    return rec.frame.filter(pl.col("variant") == "podinfo")["value"].sum()


def test_both_istio_reporters_are_refused_naming_the_label_and_the_fix() -> None:
    path = FIXTURES / "istio_reporters_raw.json"
    with pytest.raises(DataError) as info:
        load_query_range_json(path)
    text = str(info.value)
    assert str(path) in text
    assert "2 series give the same variant 'podinfo', metric 'istio_requests_total'" in text
    assert "differ in other labels (reporter in ['destination', 'source'])" in text
    assert "select={'reporter': 'destination'}" in text and "aggregate='sum'" in text


def test_selecting_one_reporter_counts_each_request_once() -> None:
    rec = load_query_range_json(
        FIXTURES / "istio_reporters_raw.json", select={"reporter": "destination"}
    )
    assert canary_total(rec) == 26.0
    assert rec.meta["select"] == {"reporter": "destination"}
    assert "aggregated" not in rec.meta


def test_summing_the_reporters_is_explicit_and_recorded() -> None:
    rec = load_query_range_json(FIXTURES / "istio_reporters_raw.json", aggregate="sum")
    assert canary_total(rec) == 52.0  # every request seen by both sidecars
    assert rec.meta["aggregated"] == {"how": "sum", "labels": ["reporter"]}


def test_a_selection_that_matches_nothing_lists_the_values() -> None:
    with pytest.raises(DataError, match=r"present are \{'reporter': \['destination', 'source'\]"):
        load_query_range_json(FIXTURES / "istio_reporters_raw.json", select={"reporter": "x"})


def test_step_is_inferred_per_series() -> None:
    """Four series on a 20 s cadence at offsets 0, 3, 7 and 11 s: the union of their
    timestamps is 3-4 s apart, each series' own spacing is 20 s."""
    rec = load_query_range_json(FIXTURES / "istio_reporters_raw.json", aggregate="sum")
    assert rec.meta["step_s"] == 20.0
    assert rolloutlab.frames.step_seconds(rec.frame) < 5  # what the union would say
    gaps = load_query_range_json(FIXTURES / "grafana__range_missing.result.json")
    assert gaps.meta["step_s"] == 1.0  # gaps of 1 s and 3 s: the 3 s is missing points
    assert "series_steps_s" not in gaps.meta


def test_series_on_different_cadences_are_listed(tmp_path: Path) -> None:
    doc = response(
        [
            {"metric": {"variant": "a"}, "values": [[t, "1"] for t in range(0, 300, 15)]},
            {"metric": {"variant": "b"}, "values": [[t, "1"] for t in range(0, 300, 30)]},
            {"metric": {"variant": "c"}, "values": [[t, "1"] for t in range(0, 300, 30)]},
        ]
    )
    rec = load_query_range_json(save(tmp_path / "g.json", doc))
    assert rec.meta["step_s"] == 30.0
    assert rec.meta["series_steps_s"] == [15.0, 30.0]


def test_prometheus_warnings_become_partial_data() -> None:
    path = FIXTURES / "partial_remote_read.json"
    with pytest.warns(PartialDataWarning, match="remote_read: error sending request"):
        rec = load_query_range_json(path, variant_label="destination_workload")
    assert rec.meta["partial"] is True
    assert rec.meta["warnings"][0].startswith("remote_read: error sending request")
    body = path.read_bytes()
    parsed = response_to_frame(
        body, label="destination_workload", variant_of=str, metric="m", kind="counter"
    )
    assert parsed.warnings == rec.meta["warnings"]
    assert parsed.frame.height == 6


def test_fetch_refuses_series_that_differ_in_other_labels(backfilled: Backfilled) -> None:
    """A custom query without ``sum by``: per-pod, per-code series of one workload."""
    rec = backfilled.main
    query = 'increase(istio_requests_total{destination_workload_namespace="test"}[{{ step }}])'
    options = {
        "target": "podinfo",
        "namespace": "test",
        "variant_label": "destination_workload",
        "queries": {"requests": query},
        "start": rec.start,
        "end": rec.end,
    }
    with pytest.raises(QueryError) as info:
        Prometheus(backfilled.url).fetch(None, **options)
    text = str(info.value)
    assert "differ in other labels (pod in " in text and "response_code in ['200', '503']" in text
    assert 'Select one in the query (pod="' in text and "aggregate='sum'" in text
    assert "query: increase(istio_requests_total" in text
    summed = Prometheus(backfilled.url).fetch(None, aggregate="sum", **options)
    want = rec.frame.filter(pl.col("metric") == "requests")["value"].sum()
    assert summed.frame["value"].sum() == want
    assert summed.meta["aggregate"] == "sum"


SERIES = {"metric": {"variant": "canary"}, "values": [[1768212060, "1"]]}


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        # a NaN or 1e300 time used to load as year -292277 and then panic in polars
        (response([{**SERIES, "values": [[math.nan, "1"]]}]), r"point 0: timestamp nan"),
        (response([{**SERIES, "values": [[1e300, "1"]]}]), r"timestamp 1e\+300 is not a time"),
        (response([{**SERIES, "values": [[-5, "1"]]}]), r"not a time between 1970 and 2200"),
        (
            response([{**SERIES, "values": [[10**400, "1"]]}]),
            r"point 0: timestamp 1000.* is not a number of seconds",
        ),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),  # RecursionError in json
        (response([{"metric": {"variant": 5}, "values": []}]), "labels as text"),
        (response([{"metric": "canary", "values": []}]), "labels as text"),
        (response(["canary"]), "labels as text"),
        (
            response(
                [{"metric": {"__name__": "x_bucket", "le": "NaN"}, "values": [[1, "1"], [2, "2"]]}]
            ),
            "bucket bound le=nan",
        ),
        (response([{**SERIES, "values": [[1768212060, "1"], [1768212060, "2"]]}]), "given twice"),
        (
            response([{"metric": {"variant": "a", "le": "-5"}, "values": [[1768212060, "1"]]}]),
            "le=-5",
        ),
        (
            response([{"metric": {"variant": "a", "le": "nan"}, "values": [[1768212060, "1"]]}]),
            "le=nan",
        ),
    ],
)
def test_broken_responses_raise_data_error_never_a_raw_exception(tmp_path, doc, expected) -> None:
    path = save(tmp_path / "r.json", doc)
    with pytest.raises(DataError, match=expected) as info:
        load_query_range_json(path)
    assert info.value.source == str(path)


def test_a_nan_time_from_a_server_is_a_data_error_on_the_fetch_path() -> None:
    body = json.dumps(response([{**SERIES, "values": [[math.nan, "1"]]}])).encode()
    with pytest.raises(DataError, match="timestamp nan"):
        response_to_frame(body, label="variant", variant_of=str, metric="requests", kind="counter")
