"""Recordings: the tidy format's validation at the boundary, and lossless save/load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rolloutlab
from rolloutlab.errors import DataError, StorageError
from rolloutlab.frames import KEY, SCHEMA, increments
from rolloutlab.sources.recording import Recording, load

GOOD_CSV = """timestamp,variant,metric,kind,le,value
2026-01-01T10:01:00Z,primary,requests,counter,,900
2026-01-01T10:01:00Z,canary,requests,counter,,100
2026-01-01T10:01:00Z,canary,latency_ms,bucket,50,60
2026-01-01T10:01:00Z,canary,latency_ms,bucket,+Inf,100
2026-01-01T10:01:00Z,canary,weight,gauge,,10
"""


def write(tmp_path, text, name="rec.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_loads_with_types(tmp_path):
    rec = load(write(tmp_path, GOOD_CSV))
    assert rec.frame.schema == pl.Schema(SCHEMA)
    assert rec.frame.height == 5
    assert rec.variants == ["primary", "canary"]
    inf_row = rec.frame.filter(pl.col("kind") == "bucket").sort("le")["le"].to_list()
    assert inf_row == [50.0, float("inf")]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace(",kind,", ",sort,"), r"missing column\(s\) \['kind'\]"),
        (lambda t: t.replace("bucket,50", "histogram,50"), "row 3: unknown kind 'histogram'"),
        (lambda t: t.replace("10:01:00Z,primary", "10:01:00,primary"), "row 1: naive timestamp"),
        (lambda t: t.replace(",,900", ",,-900"), "row 1: negative increase -900"),
        (lambda t: t.replace("bucket,50", "bucket,"), "row 3: bucket row without 'le'"),
        (lambda t: t.replace(",,100\n2026", ",,1OO\n2026", 1), "row 2: unparseable number '1OO'"),
        (
            lambda t: t.replace(
                "2026-01-01T10:01:00Z,canary,weight", "2026-13-45T10:00Z,canary,weight"
            ),
            "row 5: unparseable timestamp '2026-13-45T10:00Z'",
        ),
        (lambda t: t.replace("counter,,100", "counter,5,100", 1), "row 2: 'le' set on a row"),
    ],
)
def test_malformed_csv_names_file_row_and_fix(tmp_path, edit, expected):
    path = write(tmp_path, edit(GOOD_CSV))
    with pytest.raises(DataError, match=expected) as info:
        load(path)
    assert str(path) in str(info.value)


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load(tmp_path / "nope.parquet")
    with pytest.raises(DataError, match="unknown file type '.txt'"):
        load(write(tmp_path, "x", "rec.txt"))
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load(write(tmp_path, "not parquet", "rec.parquet"))


def test_metadata_travels_with_parquet_and_csv(tmp_path):
    rec = load(write(tmp_path, GOOD_CSV))
    rec.meta.update({"source": "http://prom:9090", "queries": {"requests": "sum(...)"}})
    for name in ("r.parquet", "r.csv"):
        back = load(rec.save(tmp_path / name))
        assert back.meta == rec.meta
        assert back.frame.equals(rec.frame)
    assert json.loads((tmp_path / "r.csv.meta.json").read_text())["format_version"] == 1


def test_newer_format_version_is_refused(tmp_path):
    rec = load(write(tmp_path, GOOD_CSV))
    rec.meta["format_version"] = 2
    with pytest.raises(DataError, match="format v2 is not supported"):
        load(rec.save(tmp_path / "r.parquet"))


def test_save_refuses_unknown_suffix(tmp_path):
    rec = load(write(tmp_path, GOOD_CSV))
    with pytest.raises(DataError, match=r"\.parquet \(recommended\) or \.csv"):
        rec.save(tmp_path / "r.xlsx")


def test_window_and_summary():
    rec = rolloutlab.simulate("aa", seed=3, duration_min=10)
    part = rec.window(end=rec.start + timedelta(minutes=4))
    assert part.frame["timestamp"].n_unique() == 5
    summary = rec.summary()
    requests = summary.filter(pl.col("metric") == "requests")
    latency = summary.filter(pl.col("metric") == "latency_ms")
    # every request is one latency observation: the +Inf bucket totals equal the requests
    assert requests["total"].to_list() == latency["total"].to_list()


def test_counter_reset_follows_prometheus():
    # 5, 9, 2 (restart), 4: increases 4, then 2 (the new reading), then 2
    assert increments([5, 9, 2, 4]).tolist() == [4.0, 2.0, 2.0]


KIND_ROWS = st.sampled_from(["counter", "gauge", "bucket"])


@st.composite
def frames_(draw):
    n = draw(st.integers(0, 25))
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for _ in range(n):
        kind = draw(KIND_ROWS)
        value = draw(
            st.floats(min_value=0, max_value=1e12, allow_nan=False)
            if kind != "gauge"
            else st.floats(allow_nan=True, allow_infinity=True)
        )
        le = draw(st.one_of(st.floats(0, 1e6), st.just(float("inf")))) if kind == "bucket" else None
        rows.append(
            {
                "timestamp": base + timedelta(seconds=draw(st.integers(0, 10**7))),
                "variant": draw(st.sampled_from(["primary", "canary", "B", "arm é"])),
                "metric": draw(st.sampled_from(["requests", "errors", "latency_ms", "x,y"])),
                "kind": kind,
                "le": le,
                "value": value,
            }
        )
    return pl.DataFrame(rows, schema=SCHEMA).unique(KEY, keep="first", maintain_order=True)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frame=frames_(), suffix=st.sampled_from([".parquet", ".csv"]))
def test_save_load_is_lossless(tmp_path, frame, suffix):
    rec = Recording(frame, {"note": "ünïcode", "nested": {"a": [1, 2]}})
    back = load(rec.save(tmp_path / f"rec{suffix}"))
    assert back.meta == rec.meta
    assert back.frame.equals(rec.frame)  # NaN == NaN and inf == inf under equals()


# -- atomic saves ------------------------------------------------------------------------


def _pair(tmp_path, name):
    """A saved recording and a different one to save over it."""
    path = rolloutlab.simulate("aa", seed=1, duration_min=5).save(tmp_path / name)
    return load(path), rolloutlab.simulate("aa", seed=2, duration_min=60), path


def _assert_intact(path, old):
    back = load(path)
    assert back.frame.equals(old.frame)
    assert back.meta == old.meta
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(
        [path.name] + ([path.name + ".meta.json"] if path.suffix == ".csv" else [])
    ), "temporary files left behind"


@pytest.mark.parametrize("name", ["r.parquet", "r.csv"])
def test_a_save_failing_mid_write_keeps_the_old_file(tmp_path, monkeypatch, name):
    # Injected fault (a full disk cannot be made here without root): the writer puts half
    # of its bytes down, then fails with ENOSPC as write(2) would.
    import errno

    import pyarrow.parquet as pq

    old, new, path = _pair(tmp_path, name)

    def half_then_full(self_or_table, target, *args, **kwargs):
        Path(target).write_bytes(b"PAR1 half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    if name.endswith(".csv"):
        monkeypatch.setattr(pl.DataFrame, "write_csv", half_then_full)
    else:
        monkeypatch.setattr(pq, "write_table", half_then_full)
    with pytest.raises(StorageError, match="No space left on device.*unchanged") as info:
        new.save(path)
    assert isinstance(info.value, OSError)
    monkeypatch.undo()
    _assert_intact(path, old)


def test_a_failed_second_rename_puts_the_old_sidecar_back(tmp_path, monkeypatch):
    # Injected fault: the CSV's rename (the second one, after the sidecar's) fails.
    old, new, path = _pair(tmp_path, "r.csv")
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst) == path:
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(StorageError, match="Input/output error"):
        new.save(path)
    monkeypatch.undo()
    _assert_intact(path, old)


def test_a_csv_pair_cut_between_its_renames_is_refused_on_load(tmp_path):
    # A crash between the two renames leaves the new sidecar beside the old data.
    old, new, path = _pair(tmp_path, "r.csv")
    old_data = path.read_bytes()
    new.save(path)
    path.write_bytes(old_data)
    with pytest.raises(DataError, match="sidecar r.csv.meta.json describes other data"):
        load(path)


FULL_DISK = """
import resource, signal, sys
from rolloutlab.sources.recording import load
from rolloutlab.errors import StorageError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write(2) instead of a kill
new = load(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), int(sys.argv[3])))
try:
    new.save(sys.argv[1])
except StorageError as exc:
    print("StorageError:", exc)
"""


@pytest.mark.parametrize("name", ["r.parquet", "r.csv"])
def test_a_real_write_past_the_file_size_limit_keeps_the_old_file(tmp_path, name):
    # A real failing write: RLIMIT_FSIZE makes the kernel refuse to grow any file past the
    # limit (EFBIG), in a child process, the way a full disk refuses (ENOSPC).
    old, new, path = _pair(tmp_path / "out", name)
    source = new.save(tmp_path / f"new{Path(name).suffix}")
    limit = path.stat().st_size + 64  # room for the old size, not for the new one
    assert source.stat().st_size > limit
    run = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(path), str(source), str(limit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "StorageError:" in run.stdout and "unchanged" in run.stdout
    _assert_intact(path, old)


# -- nothing coerced, nothing raw ----------------------------------------------------------


def _table(**columns):
    import pyarrow as pa

    base = {
        "timestamp": pa.array([1768212000, 1768212060], pa.timestamp("s", "UTC")),
        "variant": pa.array(["primary", "canary"]),
        "metric": pa.array(["requests", "requests"]),
        "kind": pa.array(["counter", "counter"]),
        "le": pa.array([None, None], pa.float64()),
        "value": pa.array([1.0, 2.0]),
    }
    return pa.table({**base, **columns})


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        ({"value": [True, False]}, "column 'value' holds Boolean values, not numbers"),
        ({"value": [datetime(2026, 1, 1), datetime(2026, 1, 2)]}, "'value' holds Datetime"),
        ({"variant": [["a"], ["b"]]}, "column 'variant' has type List"),
        (
            {"kind": ["bucket", "bucket"], "le": [float("nan"), 5.0]},
            "row 1: bucket bound le=nan",
        ),
        ({"kind": ["bucket", "bucket"], "le": [-5.0, 5.0]}, "row 1: bucket bound le=-5"),
        ({"variant": ["canary", "canary"], "timestamp": [datetime(2026, 1, 1, tzinfo=UTC)] * 2},
         r"canary 'requests' at 2026-01-01T00:00:00Z is given twice \(rows 1 and 2\)"),
    ],
)  # fmt: skip
def test_parquet_values_are_refused_not_coerced(tmp_path, columns, expected):
    import pyarrow.parquet as pq

    path = tmp_path / "r.parquet"
    pq.write_table(_table(**columns), path)
    with pytest.raises(DataError, match=expected) as info:
        load(path)
    assert info.value.source == str(path)


def test_a_duplicate_csv_row_is_refused_where_it_would_have_been_summed(tmp_path):
    # the case: a healthy canary with its error rows tripled was rolled back
    text = GOOD_CSV + "2026-01-01T10:01:00Z,canary,requests,counter,,100\n"
    with pytest.raises(DataError, match=r"rows 2 and 6") as info:
        load(write(tmp_path, text))
    assert info.value.row == 2


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param([-(2**62), 0], id="year 1823 in ns"),
        pytest.param([2**62, 0], id="ms past datetime range"),
    ],
)
def test_timestamps_outside_1970_2200_are_refused_before_any_conversion(tmp_path, raw):
    import pyarrow as pa
    import pyarrow.parquet as pq

    unit = "ns" if raw[0] < 0 else "ms"
    path = tmp_path / "r.parquet"
    pq.write_table(_table(timestamp=pa.array(raw, pa.timestamp(unit, "UTC"))), path)
    with pytest.raises(DataError, match="is outside 1970 to 2200"):
        load(path)


def test_invalid_utf8_in_parquet_and_a_folder_are_data_errors(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    broken = pa.array([b"\xff\xfe", b"canary"], pa.binary()).view(pa.string())
    pq.write_table(_table(variant=broken), tmp_path / "r.parquet")
    with pytest.raises(DataError, match="Invalid UTF8"):
        load(tmp_path / "r.parquet")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DataError, match="is a folder"):
        load(tmp_path / "dir.csv")


def test_the_text_repr_gives_both_dates_of_a_span_over_days():
    # a 14-day experiment used to read "2026-01-12 00:00–23:59 UTC", as if it were one day
    rec = rolloutlab.simulate("ab", seed=1)
    start, end = rec.start, rec.end
    assert start is not None and end is not None and start.date() != end.date()
    assert f"{start:%Y-%m-%d %H:%M}–{end:%Y-%m-%d %H:%M} UTC" in repr(rec)
    short = rolloutlab.simulate("healthy", seed=1)  # three hours: the date once
    assert short.start is not None and short.end is not None
    assert f"{short.start:%Y-%m-%d %H:%M}–{short.end:%H:%M} UTC" in repr(short)
