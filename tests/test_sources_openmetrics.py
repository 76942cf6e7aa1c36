"""The OpenMetrics writer: format, cumulative per-pod series that add up to the recording,
deterministic splits, preset label values that the preset's own queries select, and the
throwaway server (backfill, scrape of a live target, missing binary)."""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import requests

from rolloutlab.errors import DataError, SourceError
from rolloutlab.sources.openmetrics import to_openmetrics
from rolloutlab.sources.presets import PRESETS
from rolloutlab.sources.promserver import INSTALL_HINT, PrometheusServer, find_binaries
from rolloutlab.sources.simulate import simulate

LINE = re.compile(r"^(\w+)\{(.*)\} (\S+) (\S+)$")


def parse(text: str) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """Sample lines grouped by series: (name, labels) -> [(time, value)]."""
    series: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, labels, value, ts = LINE.match(line).groups()
        series[(name, labels)].append((float(ts), float(value)))
    return series


@pytest.fixture(scope="module")
def short():
    return simulate("healthy", seed=2, duration_min=20)


def test_format_types_eof_and_timestamps(short) -> None:
    text = to_openmetrics(short, pods_per_variant=2)
    assert text.endswith("# EOF\n") and text.count("# EOF") == 1
    assert "# TYPE istio_requests counter\n" in text
    assert "# TYPE istio_request_duration_milliseconds histogram\n" in text
    assert "# TYPE rolloutlab_weight gauge\n" in text
    series = parse(text)
    times = {t for points in series.values() for t, _ in points}
    first = short.start.timestamp()
    assert min(times) == first - 60 and max(times) == short.end.timestamp()
    assert all(float(t).is_integer() for t in times)  # seconds, on the step grid


def test_pods_are_cumulative_and_add_up_to_the_recording(short) -> None:
    text = to_openmetrics(short, pods_per_variant=3, scrapes_per_step=4)
    series = parse(text)
    totals: dict[str, float] = defaultdict(float)
    for (name, labels), points in series.items():
        values = np.array([v for _, v in points])
        assert points[0][1] == 0 or name.startswith("rolloutlab_") and "_total" not in name
        if name.endswith(("_total", "_bucket", "_count")):
            assert (np.diff(values) >= 0).all(), (name, labels)
        if name == "istio_requests_total":
            variant = "primary" if 'workload="podinfo-primary"' in labels else "canary"
            totals[variant] += values[-1]
            if 'response_code="503"' in labels:
                totals[variant + " errors"] += values[-1]
    for variant in ("primary", "canary"):
        rows = short.frame.filter(pl.col("variant") == variant)
        assert totals[variant] == rows.filter(pl.col("metric") == "requests")["value"].sum()
        assert (
            totals[variant + " errors"] == rows.filter(pl.col("metric") == "errors")["value"].sum()
        )


def test_split_is_even_and_deterministic(short) -> None:
    a = to_openmetrics(short, pods_per_variant=4)
    assert a == to_openmetrics(short, pods_per_variant=4)
    pods = [
        points[-1][1]
        for (name, labels), points in parse(a).items()
        if name == "istio_requests_total"
        and 'workload="podinfo-primary"' in labels
        and '"200"' in labels
    ]
    assert len(pods) == 4 and max(pods) - min(pods) <= 4  # round-robin remainders


def test_buckets_are_cumulative_by_le_per_pod(short) -> None:
    series = parse(to_openmetrics(short, preset="gatewayapi", pods_per_variant=2))
    by_pod: dict[str, dict[float, float]] = defaultdict(dict)
    for (name, labels), points in series.items():
        if name == "http_request_duration_seconds_bucket":
            le = re.search(r'le="([^"]+)"', labels).group(1)
            pod = re.sub(r',?le="[^"]+"', "", labels)
            by_pod[pod][float(le)] = points[-1][1]
    for buckets in by_pod.values():
        counts = [buckets[le] for le in sorted(buckets)]
        assert counts == sorted(counts)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_written_label_values_are_what_the_preset_reads(name: str) -> None:
    preset = PRESETS[name]
    names = preset.examples("podinfo")
    variants = preset.variants("podinfo", "test", names)
    fill = preset.names("podinfo", "test", names)
    for role in ("primary", "canary"):
        for pod in range(3):
            value = preset.write[role].format(**fill, pod=pod)
            assert variants.variant_of(value) == role, (name, role, value)


def test_histogram_count_presets_need_consistent_buckets(short) -> None:
    broken = short.frame.with_columns(
        pl.when((pl.col("metric") == "requests") & (pl.col("variant") == "canary"))
        .then(pl.col("value") + 1)
        .otherwise(pl.col("value"))
        .alias("value")
    )
    rec = type(short)(broken, short.meta)
    with pytest.raises(DataError, match="must equal requests"):
        to_openmetrics(rec, preset="gatewayapi")
    to_openmetrics(rec, preset="istio")  # separate requests counter: fine


def test_start_moves_the_recording(short) -> None:
    start = datetime(2025, 6, 1, tzinfo=UTC)
    series = parse(to_openmetrics(short, start=start))
    times = {t for points in series.values() for t, _ in points}
    assert max(times) - min(times) == (short.end - short.start).total_seconds() + 60
    assert min(times) == start.timestamp() - 60


# -- the throwaway server ------------------------------------------------------------


def test_missing_binary_names_the_install_command(monkeypatch) -> None:
    monkeypatch.setenv("ROLLOUTLAB_PROMETHEUS", "/nonexistent/prometheus")
    with pytest.raises(SourceError, match=re.escape(INSTALL_HINT)):
        find_binaries()
    with pytest.raises(SourceError, match=re.escape(INSTALL_HINT)):
        PrometheusServer().start()


def test_backfilled_server_is_loopback_and_not_9090(backfilled) -> None:
    server = backfilled.server
    assert server.url.startswith("http://127.0.0.1:") and server.port != 9090
    assert requests.get(f"{server.url}/-/ready", timeout=5).status_code == 200
    assert "rolloutlab-prometheus-" in str(server.data_dir)


def test_bad_openmetrics_fails_with_promtool_message(prometheus_binary) -> None:
    with pytest.raises(SourceError, match="promtool could not backfill"):
        PrometheusServer(openmetrics=["not openmetrics\n"]).start()


def test_scrapes_a_live_target_and_stops_cleanly(prometheus_binary) -> None:
    """The live-demo set-up: a real target on loopback scraped every second."""

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's API)
            body = b"# TYPE demo_hits counter\ndemo_hits_total 42\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    target = ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    thread = threading.Thread(target=target.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        address = f"127.0.0.1:{target.server_address[1]}"
        with PrometheusServer(scrape_targets=[address], scrape_interval="1s") as server:
            url, data_dir = server.url, server.data_dir
            deadline = time.monotonic() + 20
            value = None
            while time.monotonic() < deadline and value is None:
                answer = requests.get(
                    f"{url}/api/v1/query", params={"query": "demo_hits_total"}, timeout=5
                ).json()
                if answer["data"]["result"]:
                    value = answer["data"]["result"][0]["value"][1]
                time.sleep(0.2)
            assert value == "42"
        assert not Path(data_dir).exists()
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/-/ready", timeout=2)
    finally:
        target.shutdown()
        target.server_close()
