"""The live Prometheus source against a real Prometheus (backfilled by promtool) and, for
headers, auth and HTTP failures, a tiny real HTTP server on 127.0.0.1 that records requests.

Why the round trip is exact (tolerance 0): the OpenMetrics writer puts a sample at every
step boundary (plus sub-step scrapes), and fetch evaluates ``increase(x[step])`` on that
same grid. Prometheus 2.x selects the closed interval ``[t - step, t]``, so each window
holds a sample on both edges; ``increase()`` then extrapolates by zero and returns exactly
``x(t) - x(t - step)`` (integers summed in float64: exact). Prometheus ≥ 3 selects
``(t - step, t]``: the first sample is one scrape late and ``increase()`` stretches the
observed increase by ``step / (step - scrape)``. With our round-robin integer split over
``SCRAPES_PER_STEP`` scrapes each sub-step increment is within 1 of the mean, so the error
per pod series is below 2 counts; summed over the series of a variant that bounds it.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import polars as pl
import pytest
import requests
from conftest import PODS, ROUND_TRIP_PRESETS, Backfilled
from fake_prometheus import FakePrometheus

from rolloutlab import durations
from rolloutlab.errors import ActuationError, ConnectionFailed, EmptyResult, QueryError, SpecError
from rolloutlab.sources import prometheus
from rolloutlab.sources.openmetrics import bucket_sum_ms, to_openmetrics
from rolloutlab.sources.presets import PRESETS
from rolloutlab.sources.prometheus import (
    PartialDataWarning,
    Prometheus,
    fetch,
    parse_step,
    to_utc,
)
from rolloutlab.sources.promserver import PrometheusServer, free_port
from rolloutlab.sources.simulate import simulate

pytestmark = pytest.mark.prometheus
CORE = ["requests", "errors", "latency_ms"]


def prometheus_major(url: str) -> int:
    info = requests.get(f"{url}/api/v1/status/buildinfo", timeout=5).json()
    return int(info["data"]["version"].split(".")[0])


def core(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.filter(pl.col("metric").is_in(CORE))


def assert_same(expected: pl.DataFrame, got: pl.DataFrame, tolerance: float = 0.0) -> None:
    """Same rows (timestamp, variant, metric, kind, le) and values within ``tolerance``."""
    keys = ["timestamp", "variant", "metric", "kind", "le"]
    joined = core(expected).join(core(got), on=keys, how="full", nulls_equal=True, suffix="_got")
    missing = joined.filter(pl.col("value").is_null() | pl.col("value_got").is_null())
    assert missing.is_empty(), f"rows only on one side:\n{missing}"
    off = joined.filter((pl.col("value") - pl.col("value_got")).abs() > tolerance)
    assert off.is_empty(), f"values differ by more than {tolerance}:\n{off}"


# -- round trip ------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ROUND_TRIP_PRESETS)
def test_round_trip_reproduces_simulator_totals(backfilled: Backfilled, preset: str) -> None:
    """simulate → OpenMetrics → promtool → prometheus → fetch gives the simulator's numbers."""
    rec = backfilled.presets[preset]
    got = Prometheus(backfilled.url).fetch(
        preset,
        target="podinfo",
        namespace=f"rt-{preset}",
        names=PRESETS[preset].examples("podinfo"),
        start=rec.start,
        end=rec.end,
        step="1m",
    )
    # See the module docstring: exact on 2.x; on 3.x < 2 counts per pod series (×2 codes).
    tolerance = 0.0 if prometheus_major(backfilled.url) < 3 else 4.0 * PODS
    assert_same(rec.frame, got.frame, tolerance)
    assert got.meta["preset"] == preset
    assert got.meta["roles"] == {"control": "primary", "treatment": ["canary"]}
    assert got.meta["step_s"] == 60.0
    mean = PRESETS[preset].duration == "mean"
    assert set(got.meta["queries"]) == set(CORE + ["latency_ms_sum"] * mean)
    assert "histogram_quantile" not in json.dumps(got.meta["queries"])
    if mean:  # the histogram's _sum, written from the buckets, reads back in ms
        assert_same_sum(rec, got)


def assert_same_sum(rec, got) -> None:
    buckets = rec.frame.filter(pl.col("metric") == "latency_ms").sort("variant", "timestamp", "le")
    for (variant,), rows in buckets.partition_by("variant", as_dict=True).items():
        edges = np.sort(rows["le"].unique().to_numpy())
        cumulative = rows["value"].to_numpy().reshape(-1, len(edges))
        expected = bucket_sum_ms(edges, np.diff(cumulative, axis=1, prepend=0.0))
        sums = got.frame.filter(
            (pl.col("metric") == "latency_ms_sum") & (pl.col("variant") == variant)
        ).sort("timestamp")
        assert sums["kind"].unique().to_list() == ["counter"]
        np.testing.assert_allclose(sums["value"].to_numpy(), expected, rtol=1e-9)


def test_fetch_meta_and_timestamps(backfilled: Backfilled) -> None:
    rec = backfilled.main
    got = Prometheus(backfilled.url).fetch(
        "istio", target="podinfo", namespace="test", start=rec.start, end=rec.end, step=60
    )
    assert got.frame["timestamp"].dtype == pl.Datetime("us", "UTC")
    assert got.start == rec.start and got.end == rec.end
    meta = got.meta
    assert meta["source"] == backfilled.url
    assert meta["format_version"] == 1
    assert (meta["target"], meta["namespace"]) == ("podinfo", "test")
    assert datetime.fromisoformat(meta["created_at"]).tzinfo is not None
    assert 'destination_workload=~"podinfo-primary|podinfo"' in meta["queries"]["requests"]
    assert "[60s]" in meta["queries"]["latency_ms"]
    assert_same(rec.frame, got.frame)


def test_ab_variants_generic_mapping_and_custom_queries(backfilled: Backfilled) -> None:
    """A/B arms by any label: literal label values as variants, plus custom queries."""
    rec = backfilled.ab
    prom = Prometheus(backfilled.url)
    got = prom.fetch(
        "istio", namespace="ab", variants=["A", "B"], start=rec.start, end=rec.end, step="1h"
    )
    assert got.meta["roles"] == {"control": "A", "treatment": ["B"]}
    assert_same(rec.frame, got.frame)

    conversions = prom.fetch(
        None,
        variant_label="variant",
        variants={"control": "A", "treatment": "B"},
        queries={
            "conversions": {
                "query": 'sum by (variant) (increase(rolloutlab_conversions_total{namespace="ab",'
                "{{ variant_selector }}}[{{ step }}]))",
                "kind": "counter",
            }
        },
        start=rec.start,
        end=rec.end,
        step="1h",
    )
    want = (
        rec.frame.filter(pl.col("metric") == "conversions")
        .with_columns(pl.col("variant").replace({"A": "control", "B": "treatment"}))
        .sort("timestamp", "variant")
    )
    assert conversions.frame.select("timestamp", "variant", "value").equals(
        want.select("timestamp", "variant", "value")
    )


def test_queries_file_yaml(backfilled: Backfilled, tmp_path) -> None:
    rec = backfilled.main
    path = tmp_path / "queries.yaml"
    path.write_text(
        "variant_label: variant\n"
        "variants: {primary: primary, canary: canary}\n"
        "queries:\n"
        "  cpu:\n"
        '    query: avg by (variant) (rolloutlab_cpu{namespace="{{ namespace }}"})\n'
        "    kind: gauge\n"
    )
    got = fetch(
        backfilled.url, preset=None, namespace="test", queries=path, start=rec.start, end=rec.end
    )
    want = rec.frame.filter(pl.col("metric") == "cpu")
    joined = want.join(got.frame, on=["timestamp", "variant"], suffix="_got")
    assert joined.height == want.height
    assert (joined["value"] - joined["value_got"]).abs().max() < 1e-12


def test_cli_function_headers_bearer_and_variant_strings(backfilled: Backfilled) -> None:
    rec = backfilled.main
    got = fetch(
        backfilled.url,
        preset="istio",
        namespace="test",
        variants="primary=podinfo-primary,canary=podinfo",
        headers=["X-Scope-OrgID=tenant-1"],
        bearer="secret",
        start=rec.start.isoformat(),
        end=rec.end.isoformat().replace("+00:00", "Z"),
        step="1m",
    )
    assert_same(rec.frame, got.frame)


# -- chunking and concurrency -----------------------------------------------------------


def test_range_over_points_limit_is_chunked_without_gaps_or_duplicates(
    backfilled: Backfilled,
) -> None:
    """12,000 one-second steps (> 11,000). One worker: two chunks split at the points limit;
    four workers: four chunks of 3,000. Both stitch to every step exactly once and equal
    single-range fetches of sub-ranges that straddle each chunk boundary."""
    rec = backfilled.main
    start, end = rec.start, rec.start + timedelta(seconds=11_999)
    query = {"cpu": {"query": 'rolloutlab_cpu{namespace="test"}', "kind": "gauge"}}
    kwargs = {"variant_label": "variant", "variants": ["primary", "canary"], "queries": query}

    for workers, boundaries in ((1, [11_000]), (4, [3_000, 6_000, 9_000])):
        prom = Prometheus(backfilled.url, max_workers=workers)
        whole = prom.fetch(None, start=start, end=end, step=1, **kwargs)
        for variant in ("primary", "canary"):
            stamps = whole.frame.filter(pl.col("variant") == variant)["timestamp"]
            assert stamps.len() == 12_000 and stamps.n_unique() == 12_000
            assert (stamps.diff().drop_nulls() == timedelta(seconds=1)).all()
        for offset in boundaries:
            boundary = start + timedelta(seconds=offset)
            sub_start, sub_end = (
                boundary - timedelta(seconds=500),
                boundary + timedelta(seconds=499),
            )
            single = prom.fetch(None, start=sub_start, end=sub_end, step=1, **kwargs)
            part = whole.frame.filter(pl.col("timestamp").is_between(sub_start, sub_end))
            assert part.equals(single.frame)

    raw = Prometheus(backfilled.url).query_range(query["cpu"]["query"], start, end, step=1)
    assert len(raw) == 2
    for series in raw:
        times = [t for t, _ in series["values"]]
        assert times == list(range(int(start.timestamp()), int(end.timestamp()) + 1))

    # Prometheus itself refuses the whole range in one query.
    with pytest.raises(QueryError, match="11,000|11000"):
        Prometheus(backfilled.url, max_points=20_000, max_workers=1).fetch(
            None, start=start, end=end, step=1, **kwargs
        )


def test_many_small_chunks_run_concurrently_and_match(backfilled: Backfilled) -> None:
    rec = backfilled.main
    args = {"target": "podinfo", "namespace": "test", "start": rec.start, "end": rec.end}
    one = Prometheus(backfilled.url).fetch("istio", **args)
    many = Prometheus(backfilled.url, max_points=7, max_workers=8).fetch(
        "istio", progress=False, **args
    )
    assert many.frame.equals(one.frame)


def test_progress_bar_when_asked(backfilled: Backfilled, capsys) -> None:
    rec = backfilled.main
    args = {"target": "podinfo", "namespace": "test", "start": rec.start, "end": rec.end}
    Prometheus(backfilled.url).fetch("istio", progress=True, **args)
    assert "fetch: 100%" in capsys.readouterr().err
    Prometheus(backfilled.url).fetch("istio", **args)  # 3 queries: no bar by default
    assert capsys.readouterr().err == ""


def test_custom_query_mistakes_are_spec_errors(tmp_path) -> None:
    prom = Prometheus("http://127.0.0.1:1")
    args = {"variant_label": "v", "variants": ["a"], "start": "now-1h", "end": "now"}
    with pytest.raises(SpecError, match="unknown placeholder"):
        prom.fetch(None, queries={"requests": "x[{{ window }}]"}, **args)
    with pytest.raises(SpecError, match="give its kind"):
        prom.fetch(None, queries={"cpu": "avg(cpu)"}, **args)
    bad = tmp_path / "q.yaml"
    bad.write_text("queries: [1, 2]\n")
    with pytest.raises(SpecError, match="must map metric names"):
        prom.fetch(None, queries=bad, **args)


def test_start_end_snap_to_the_step_grid(backfilled: Backfilled) -> None:
    rec = backfilled.main
    start = rec.start + timedelta(seconds=7)
    end = start + timedelta(minutes=10)
    got = Prometheus(backfilled.url).fetch(
        "istio", target="podinfo", namespace="test", start=start, end=end, step="1m"
    )
    stamps = got.frame["timestamp"].unique().sort()
    assert stamps[0] == rec.start + timedelta(minutes=1)
    assert stamps[-1] == rec.start + timedelta(minutes=10)


# -- error paths against the real server ------------------------------------------------


def test_bad_promql_raises_query_error_with_prometheus_message(backfilled: Backfilled) -> None:
    rec = backfilled.main
    with pytest.raises(QueryError) as info:
        Prometheus(backfilled.url).fetch(
            None,
            variant_label="variant",
            variants=["primary"],
            queries={"requests": "sum by (variant) (increase(foo[1m]"},
            start=rec.start,
            end=rec.end,
        )
    message = str(info.value)
    assert "HTTP 400" in message and "parse error" in message
    assert "increase(foo[1m]" in message  # the query is quoted back


def test_wrong_port_fails_fast_with_connection_failed(backfilled: Backfilled) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    began = time.monotonic()
    with pytest.raises(ConnectionFailed) as info:
        Prometheus(url).fetch(
            "istio", target="podinfo", namespace="test", start="now-1h", end="now"
        )
    assert time.monotonic() - began < 2.0  # prometheus-api-client's default takes ~6 s
    assert url in str(info.value) and "refused" in str(info.value).lower()


def test_unknown_target_names_the_empty_variants(backfilled: Backfilled) -> None:
    rec = backfilled.main
    with pytest.raises(EmptyResult) as info:
        Prometheus(backfilled.url).fetch(
            "istio", target="nosuchapp", namespace="test", start=rec.start, end=rec.end
        )
    message = str(info.value)
    assert "no data for variant 'canary' (destination_workload=~'nosuchapp')" in message
    assert "no data for variant 'primary' (destination_workload=~'nosuchapp-primary')" in message


def test_only_one_variant_missing_is_named(backfilled: Backfilled) -> None:
    rec = backfilled.main
    with pytest.raises(EmptyResult, match="variant 'canary'") as info:
        Prometheus(backfilled.url).fetch(
            "istio",
            namespace="test",
            variants={"primary": "podinfo-primary", "canary": "podinfo-new"},
            start=rec.start,
            end=rec.end,
        )
    assert "'primary'" not in str(info.value)


def test_partial_data_names_the_missing_steps(backfilled: Backfilled) -> None:
    rec = backfilled.main
    end = rec.end + timedelta(minutes=3)
    args = {"target": "podinfo", "namespace": "test", "start": rec.start, "end": end}
    with pytest.warns(PartialDataWarning) as caught:
        got = Prometheus(backfilled.url).fetch("istio", **args)
    text = str(caught[0].message)
    first_missing = (rec.end + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    last_missing = end.isoformat().replace("+00:00", "Z")
    assert f"{first_missing}–{last_missing}" in text
    assert "variant 'canary' metric 'requests'" in text
    assert got.meta["missing_steps"]["canary/requests"] == [f"{first_missing}–{last_missing}"]
    with pytest.raises(EmptyResult, match="partial data"):
        Prometheus(backfilled.url).fetch("istio", missing="raise", **args)


def test_naive_datetimes_and_bad_steps_are_refused() -> None:
    prom = Prometheus("http://127.0.0.1:1")
    with pytest.raises(SpecError, match="naive"):
        prom.fetch("istio", target="a", namespace="b", start=datetime(2026, 1, 1), end="now")
    with pytest.raises(SpecError, match="whole number of seconds"):
        prom.fetch("istio", target="a", namespace="b", start="now-1h", end="now", step="1.5s")
    with pytest.raises(SpecError, match="unknown preset"):
        prom.fetch("nope", target="a", namespace="b", start="now-1h", end="now")
    with pytest.raises(SpecError, match="needs target"):
        prom.fetch("istio", namespace="b", start="now-1h", end="now")


def test_time_and_step_parsing() -> None:
    assert to_utc("2026-01-12T10:00:00Z") == datetime(2026, 1, 12, 10, tzinfo=UTC)
    assert to_utc(1768212000) == datetime(2026, 1, 12, 10, tzinfo=UTC)
    plus_two = datetime(2026, 1, 12, 12, tzinfo=UTC).astimezone(
        __import__("datetime").timezone(timedelta(hours=2))
    )
    assert to_utc(plus_two).tzinfo == UTC and to_utc(plus_two).hour == 12
    assert abs((to_utc("now-1h") - datetime.now(UTC)) + timedelta(hours=1)) < timedelta(seconds=5)
    with pytest.raises(SpecError, match="no UTC offset"):
        to_utc("2026-01-12T10:00:00")
    assert parse_step("1m") == 60 and parse_step("1h30m") == 5400 and parse_step(15) == 15
    assert parse_step(timedelta(minutes=2)) == 120
    with pytest.raises(SpecError):
        parse_step("fast")


def test_steps_and_relative_times_read_durations_as_the_rest_of_the_project():
    assert prometheus.parse_duration is durations.parse_duration
    assert parse_step("1d") == 86400 and parse_step("1m30s") == 90 and parse_step("90") == 90
    assert abs(to_utc("now-0s") - datetime.now(UTC)) < timedelta(seconds=5)  # zero allowed
    with pytest.raises(SpecError, match="step: the duration must be zero or positive"):
        parse_step(-60)
    with pytest.raises(SpecError, match="step must be a whole number of seconds ≥ 1"):
        parse_step("0s")
    with pytest.raises(SpecError, match="until: expected a duration"):
        to_utc("now-soon", "until")


# -- headers, auth and HTTP failures against a tiny recording HTTP server --------------

MATRIX = {
    "status": "success",
    "data": {
        "resultType": "matrix",
        "result": [
            {"metric": {"destination_workload": "web"}, "values": [[1768212060, "3"]]},
            {"metric": {"destination_workload": "web-primary"}, "values": [[1768212060, "7"]]},
        ],
    },
}


@contextmanager
def recording_server(responses: list[tuple[int, Any, float]]) -> Iterator[dict[str, Any]]:
    """A real HTTP server on 127.0.0.1 that records each request and answers the next
    (status, body, delay) from ``responses`` (the last one repeats)."""
    log: dict[str, Any] = {"requests": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's API)
            log["requests"].append(
                {
                    "path": urlparse(self.path).path,
                    "headers": dict(self.headers),
                    "params": parse_qs(urlparse(self.path).query),
                }
            )
            index = min(len(log["requests"]), len(responses)) - 1
            status, body, delay = responses[index]
            time.sleep(delay)
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    log["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield log
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


WINDOW = {"start": "2026-01-12T10:01:00Z", "end": "2026-01-12T10:01:00Z", "step": "1m"}


def web_fetch(prom: Prometheus, **kwargs: Any):
    return prom.fetch(
        None,
        variant_label="destination_workload",
        target="web",
        queries={"requests": "sum by (destination_workload) (x[{{ step }}])"},
        **WINDOW,
        **kwargs,
    )


def test_bearer_token_and_extra_headers_arrive() -> None:
    with recording_server([(200, MATRIX, 0)]) as log:
        prom = Prometheus(log["url"], auth="tok3n", headers={"X-Scope-OrgID": "team-a"})
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            rec = web_fetch(prom)
    sent = log["requests"][0]
    assert sent["path"] == "/api/v1/query_range"
    assert sent["headers"]["Authorization"] == "Bearer tok3n"
    assert sent["headers"]["X-Scope-OrgID"] == "team-a"
    assert sent["params"]["step"] == ["60s"]
    assert sent["params"]["start"] == ["1768212060"] and sent["params"]["end"] == ["1768212060"]
    totals = dict(rec.frame.select("variant", "value").iter_rows())
    assert totals == {"canary": 3.0, "primary": 7.0}


def test_basic_auth_arrives_and_path_prefix_is_kept() -> None:
    with recording_server([(200, MATRIX, 0)]) as log:
        web_fetch(Prometheus(log["url"] + "/prometheus/", auth=("ann", "pw")))
    sent = log["requests"][0]
    assert sent["path"] == "/prometheus/api/v1/query_range"
    assert sent["headers"]["Authorization"] == "Basic YW5uOnB3"


def test_http_4xx_5xx_and_non_prometheus_answers_are_query_errors() -> None:
    error = {"status": "error", "errorType": "execution", "error": "query timed out"}
    with recording_server([(503, error, 0)]) as log:
        with pytest.raises(QueryError, match=r"HTTP 503.*execution: query timed out"):
            web_fetch(Prometheus(log["url"]))
        assert len(log["requests"]) == 1  # 503 is not retried
    unauthorized = pytest.raises(QueryError, match=r"HTTP 401.*Unauthorized.*auth=")
    with recording_server([(401, "Unauthorized", 0)]) as log, unauthorized:
        web_fetch(Prometheus(log["url"]))
    not_prometheus = pytest.raises(QueryError, match="not a Prometheus API response")
    with recording_server([(200, "<html>login</html>", 0)]) as log, not_prometheus:
        web_fetch(Prometheus(log["url"]))


def test_gateway_errors_are_retried_then_succeed() -> None:
    with recording_server([(502, "bad gateway", 0), (200, MATRIX, 0)]) as log:
        rec = web_fetch(Prometheus(log["url"], retries=2))
    assert len(log["requests"]) == 2 and rec.frame.height == 2


def test_slow_server_times_out_as_connection_failed() -> None:
    with recording_server([(200, MATRIX, 2.0)]) as log:
        began = time.monotonic()
        with pytest.raises(ConnectionFailed, match=r"did not answer within 0.3 s"):
            web_fetch(Prometheus(log["url"], timeout=0.3))
        assert time.monotonic() - began < 1.5


# -- total deadlines and invalid data, against the scripted fake Prometheus ---------------

ISTIO = {"target": "podinfo", "namespace": "test", **WINDOW, "end": "2026-01-12T10:05:00Z"}


def test_timeout_is_a_total_deadline_on_a_trickling_body() -> None:
    """A server that sends its body a byte every 0.1 s never trips a per-read timeout; the
    call still ends at its total deadline."""
    with FakePrometheus() as fake:
        fake.fault = "trickle"
        began = time.monotonic()
        with pytest.raises(ConnectionFailed, match=r"did not answer within 0\.5 s in total"):
            Prometheus(fake.url, timeout=0.5).fetch("istio", **ISTIO)
        assert time.monotonic() - began < 1.5


def test_kubernetes_calls_have_a_total_deadline_too() -> None:
    """Routers share the deadline (sources.prometheus.Deadline): the kubernetes client's own
    _request_timeout only bounds each socket read, so a trickling API server held it."""
    from kubernetes.client import ApiClient, Configuration

    from rolloutlab.control.routers import IstioRouter

    with FakePrometheus() as fake:
        fake.fault = "trickle"
        client = ApiClient(Configuration(host=fake.url))
        router = IstioRouter("podinfo", "test", client=client, timeout=0.5, retries=0)
        began = time.monotonic()
        with pytest.raises(ActuationError, match=r"did not answer within 0\.5 s in total"):
            router.weights()
        assert time.monotonic() - began < 1.5


def test_negative_increases_become_nan_with_a_warning() -> None:
    """Prometheus' increase() is never negative, so a negative value (a broken exporter or
    proxy) is invalid data for that step, not a failed fetch."""
    with FakePrometheus() as fake:
        fake.fault = "negative"
        with pytest.warns(PartialDataWarning) as caught:
            rec = Prometheus(fake.url).fetch("istio", **ISTIO)
    text = str(caught[0].message)
    assert "negative or infinite increases" in text and "read as NaN" in text
    assert "variant 'canary' metric 'errors' at 2026-01-12T10:01:00Z–2026-01-12T10:05:00Z" in text
    errors = rec.frame.filter(pl.col("metric") == "errors").sort("variant", "timestamp")
    assert errors.filter(pl.col("variant") == "canary")["value"].is_nan().all()
    assert errors.filter(pl.col("variant") == "primary")["value"].to_list() == [5.0] * 5


def test_every_preset_queries_increments_for_both_variants() -> None:
    for name, preset in PRESETS.items():
        names = preset.examples("podinfo")
        variants = preset.variants("podinfo", "test", names)
        queries = preset.queries(
            variants, namespace="test", target="podinfo", step="60s", names=names
        )
        mean = ["latency_ms_sum"] if preset.duration == "mean" else []
        assert set(queries) == set(CORE + mean), name
        for query, _kind in queries.values():
            assert "increase(" in query and "[60s]" in query, name
            assert f"sum by ({preset.variant_label}" in query, name
            assert "histogram_quantile" not in query and "rate(" not in query, name


class DeadRemoteRead(PrometheusServer):
    """A real Prometheus whose remote-read endpoint is down: it answers from its local data
    and says so in the response's ``warnings``."""

    def _config(self) -> str:
        return super()._config() + "remote_read:\n  - url: http://127.0.0.1:9/read\n"


def test_fetch_records_prometheus_warnings_as_partial_data(prometheus_binary) -> None:
    rec = simulate("healthy", seed=4, duration_min=5)
    text = to_openmetrics(rec, preset="istio", target="podinfo", namespace="test")
    with DeadRemoteRead(openmetrics=[text]) as server:
        prom = Prometheus(server.url)
        with pytest.warns(PartialDataWarning, match="answered with warnings, the data may be"):
            got = prom.fetch(
                "istio",
                target="podinfo",
                namespace="test",
                start=rec.start,
                end=rec.end,
                partial="keep",
            )
        with pytest.warns(PartialDataWarning, match="remote_read: error sending request"):
            raw = prom.query_range(
                'istio_requests_total{reporter="destination"}', rec.start, rec.end
            )
    assert got.meta["partial"] is True
    assert set(got.meta["warnings"]) == set(CORE)
    assert "remote_read: error sending request" in got.meta["warnings"]["requests"][0]
    assert_same(rec.frame, got.frame)  # the local data itself is complete here
    assert len(raw) == 8  # the raw series are still returned
