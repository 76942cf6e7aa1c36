"""Fuzzing the recording loaders (CSV, Parquet, query_range JSON) with hypothesis.

Seeded (``derandomize``: the same examples every run), bounded in time (examples and a
per-example deadline that a hang would break), asserting that nothing but a
``RolloutlabError`` escapes, and that what loads says what the input said: the rows of a
valid file come back as an independent reader (``csv``, ``json``, ``datetime``) reads them.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st

from rolloutlab.errors import RolloutlabError
from rolloutlab.frames import COLUMNS
from rolloutlab.sources.promjson import response_to_frame
from rolloutlab.sources.recording import Recording, load


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


BASE = datetime(2026, 1, 12, 10, tzinfo=UTC)


def loads_or_refuses(path: Path) -> Recording | None:
    """The recording, or None when a RolloutlabError refused the file; anything else fails."""
    try:
        return load(path)
    except RolloutlabError as exc:
        assert str(exc) and len(str(exc)) < 10_000
        return None


# -- CSV ---------------------------------------------------------------------------------

NASTY = st.sampled_from(
    [
        "", " ", "nan", "NaN", "inf", "+Inf", "-inf", "-5", "0", "1e400", "-1e400", "1e-400",
        "true", "False", "2026-01-12T10:00:00Z", "2026-01-12T10:00:00", "2026-13-45T10:00Z",
        "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1768212000", "counter", "gauge",
        "bucket", "primary", "canary", "é", "\x00", '"', "a,b", "9" * 400, "\ufeff",
    ]
)  # fmt: skip
CELL = st.one_of(NASTY, st.text(max_size=12))


@st.composite
def nasty_csv(draw) -> bytes:
    header = draw(st.one_of(st.just(list(COLUMNS)), st.lists(st.sampled_from(COLUMNS), max_size=7)))
    rows = draw(st.lists(st.lists(CELL, min_size=len(header), max_size=len(header)), max_size=8))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    data = out.getvalue().encode("utf-8", "surrogatepass")
    if draw(st.booleans()):  # raw byte damage: invalid UTF-8, cut lines
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=8)) + data[at + draw(st.integers(0, 8)) :]
    return data


@fuzz(500)
@given(nasty_csv())
def test_csv_loads_or_is_refused(workdir, data):
    path = workdir / "fuzz.csv"
    path.write_bytes(data)
    loads_or_refuses(path)


ROW = st.tuples(
    st.integers(0, 10**6),  # seconds after BASE
    st.sampled_from(["primary", "canary", "arm é"]),
    st.sampled_from(["requests", "errors", "latency_ms", "x,y"]),
    st.sampled_from(["counter", "gauge", "bucket"]),
    st.sampled_from([0.5, 25.0, 1000.0, math.inf]),
    st.one_of(st.floats(0, 1e15), st.sampled_from([math.nan, math.inf])),
)


@fuzz(250)
@given(st.lists(ROW, max_size=20, unique_by=lambda r: r[:3] + (r[4],)))
def test_a_valid_csv_loads_as_written(workdir, rows):
    path = workdir / "valid.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for seconds, variant, metric, kind, le, value in rows:
            when = (BASE + timedelta(seconds=seconds)).isoformat()
            writer.writerow(
                [when, variant, metric, kind, repr(le) if kind == "bucket" else "", repr(value)]
            )
    got = load(path).frame
    expected = sorted(
        (BASE + timedelta(seconds=s), v, m, k, le if k == "bucket" else None, repr(x))
        for s, v, m, k, le, x in rows
    )
    assert sorted((*r[:5], repr(r[5])) for r in got.rows()) == expected


# -- Parquet -----------------------------------------------------------------------------

INVALID_UTF8 = pa.array([b"\xff\xfe", b"ok"], pa.binary()).view(pa.string())
ARRAYS = [
    pa.array([True, False]),
    pa.array([1, 2]),
    pa.array([2**63 - 1, -(2**63)]),
    pa.array([1.5, math.nan]),
    pa.array([math.inf, -5.0]),
    pa.array(["primary", "canary"]),
    pa.array(["2026-01-12T10:00:00Z", "x"]),
    INVALID_UTF8,
    pa.array([None, None], pa.null()),
    pa.array([b"\x00", b"\xff"]),
    pa.array([[1], [2, 3]]),
    pa.array([{"a": 1}, {"a": 2}]),
    pa.array([0, 1], pa.timestamp("s", "UTC")),
    pa.array([2**62, -(2**62)], pa.timestamp("ns", "UTC")),
    pa.array([2**62, 0], pa.timestamp("ms", "UTC")),
    pa.array([1768212000, 1768212060], pa.timestamp("s")),
    pa.array([1768212000, 1768212000], pa.timestamp("s", "Europe/Paris")),
    pa.array([0, 1], pa.date32()),
    pa.array(["counter", "bucket"]).dictionary_encode(),
]


@fuzz(500)
@given(
    st.lists(st.sampled_from(range(len(ARRAYS))), min_size=6, max_size=6),
    st.booleans(),
    st.binary(max_size=4),
    st.integers(0, 10**6),
)
def test_parquet_loads_or_is_refused(workdir, choice, damage, junk, at):
    table = pa.table({name: ARRAYS[i] for name, i in zip(COLUMNS, choice, strict=True)})
    path = workdir / "fuzz.parquet"
    pq.write_table(table, path)
    if damage:  # a torn or flipped file
        data = path.read_bytes()
        at %= len(data)
        path.write_bytes(data[:at] + junk + data[at + len(junk) :])
    loads_or_refuses(path)


# -- query_range JSON --------------------------------------------------------------------

TIMES = st.one_of(
    st.integers(1_700_000_000, 1_800_000_000),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -1, 0, 10**400, True, "1", None]),
    st.floats(),
)
VALUES = st.one_of(
    st.sampled_from(["1", "0", "NaN", "+Inf", "-Inf", "-3", "abc", "", "1e400"]),
    st.floats(),
    st.none(),
    st.booleans(),
)
LABELS = st.dictionaries(
    st.sampled_from(["__name__", "variant", "le", "destination_workload", "reporter"]),
    st.one_of(
        st.sampled_from(["canary", "primary", "x_bucket", "x_total", "0.5", "+Inf", "nan", "-5"]),
        st.integers(),
        st.none(),
    ),
)
SERIES = st.fixed_dictionaries(
    {"metric": LABELS, "values": st.lists(st.tuples(TIMES, VALUES).map(list), max_size=6)}
)
SHAPES = st.one_of(
    st.lists(SERIES, max_size=4).map(
        lambda r: {"status": "success", "data": {"resultType": "matrix", "result": r}}
    ),
    st.lists(SERIES, max_size=4),
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=10,
    ),
    st.sampled_from(["[" * 50_000 + "]" * 50_000, '{"data": {"result": 5}}', "", "\xff"]),
)


def text_of(doc: Any) -> str:
    return doc if isinstance(doc, str) else json.dumps(doc, default=str)


@fuzz(900)
@given(SHAPES)
def test_query_range_json_loads_or_is_refused(workdir, doc):
    path = workdir / "fuzz.json"
    path.write_text(text_of(doc), errors="surrogatepass")
    loads_or_refuses(path)
    with contextlib.suppress(RolloutlabError):
        response_to_frame(
            text_of(doc).encode("utf-8", "surrogatepass"),
            label="variant",
            variant_of=lambda v: v or None,
            metric="requests",
            kind="counter",
        )


@fuzz(400)
@given(
    st.dictionaries(
        st.sampled_from(["primary", "canary", "b"]),
        st.dictionaries(
            st.integers(1_700_000_000, 1_800_000_000),
            st.one_of(st.floats(-1e12, 1e12), st.sampled_from([math.nan, math.inf])),
            min_size=1,
            max_size=5,
        ),
        min_size=1,
    )
)
def test_a_valid_response_loads_as_written(workdir, series):
    result = [
        {"metric": {"variant": name}, "values": [[t, repr(v)] for t, v in sorted(points.items())]}
        for name, points in series.items()
    ]
    path = workdir / "valid.json"
    path.write_text(
        json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}})
    )
    got = load(path).frame
    expected = sorted(
        (datetime.fromtimestamp(t, UTC), name, repr(v))
        for name, points in series.items()
        for t, v in points.items()
    )
    assert sorted((r[0], r[1], repr(r[5])) for r in got.rows()) == expected
    assert set(got["kind"]) == {"gauge"}
