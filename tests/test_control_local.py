"""The local live demo: its router, services, load generator, and the whole system on a
real Prometheus (which skips only when the binary is missing and CI does not require it)."""

from __future__ import annotations

import subprocess
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rolloutlab.control.audit import AuditLog
from rolloutlab.control.local import (
    LiveDemo,
    LoadGenerator,
    LocalRouter,
    Service,
    parse_multiplier,
)
from rolloutlab.control.routers import Router, Weights
from rolloutlab.errors import SourceError, SpecError, ValidationFailed
from rolloutlab.sources.simulate import ISTIO_BUCKETS_MS


@pytest.fixture
def router(tmp_path) -> LocalRouter:
    return LocalRouter("podinfo", "test", audit=AuditLog(tmp_path / "audit.jsonl"))


@pytest.mark.parametrize(
    ("text", "factor"),
    [("2x", 2.0), ("1.5x", 1.5), ("5×", 5.0), ("+30%", 1.3), ("-10%", 0.9), ("+0%", 1.0), (3, 3.0)],
)
def test_parse_multiplier(text, factor):
    assert parse_multiplier(text) == pytest.approx(factor)


@pytest.mark.parametrize("text", ["double", "30%", "2", "-200%"])
def test_parse_multiplier_refuses_with_the_fix(text):
    with pytest.raises(SpecError, match="canary_errors="):
        parse_multiplier(text, name="canary_errors")


# -- LocalRouter: the Router interface, in memory ------------------------------------------


def test_local_router_is_a_router_with_weights_that_sum_to_100(router):
    assert isinstance(router, Router)
    assert router.weights() == Weights(100, 0)
    change = router.set_weight(30, reason="tick 1 passed")
    assert (change.before, change.after, change.changed) == (Weights(100, 0), Weights(70, 30), True)
    assert router.weights() == Weights(70, 30) and router.canary == 30
    assert router.name == "podinfo" and "test/podinfo" in router.describe()


def test_local_router_dry_run_previews_without_writing(router):
    router.set_weight(10, reason="start")
    change = router.set_weight(40, reason="preview", dry_run=True)
    assert router.weights().canary == 10
    assert change.dry_run and change.after == Weights(60, 40)
    assert "-podinfo-canary: 10" in change.diff and "+podinfo-canary: 40" in change.diff


@pytest.mark.parametrize(("weight", "reason"), [(101, "x"), (12.5, "x"), (-1, "x"), (10, " ")])
def test_local_router_refuses_like_the_kubernetes_routers(router, weight, reason):
    with pytest.raises(ValidationFailed):
        router.set_weight(weight, reason=reason)
    assert router.weights().canary == 0


def test_local_router_audits_changes_and_dry_runs_but_not_no_ops(tmp_path):
    seen = []
    log = AuditLog(tmp_path / "audit.jsonl")
    router = LocalRouter("podinfo", "test", audit=log, on_change=seen.append)
    router.set_weight(20, reason="start")
    router.set_weight(20, reason="same again")  # no change: no record
    router.set_weight(50, reason="preview", dry_run=True)
    records = log.records()
    assert [(r.before, r.after, r.dry_run, r.kind) for r in records] == [
        ({"primary": 100, "canary": 0}, {"primary": 80, "canary": 20}, False, "local"),
        ({"primary": 80, "canary": 20}, {"primary": 50, "canary": 50}, True, "local"),
    ]
    assert seen == records


# -- the services and the load -----------------------------------------------------------


@pytest.fixture
def services():
    primary = Service("podinfo-primary", "test", error_rate=0.0, latency_median_ms=80, seed=1)
    canary = Service("podinfo", "test", error_rate=1.0, latency_median_ms=80, seed=2)
    primary.start()
    canary.start()
    yield primary, canary
    primary.stop()
    canary.stop()


def _families(service: Service) -> dict:
    text = urllib.request.urlopen(f"http://{service.address}/metrics", timeout=5).read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_services_export_istio_metrics_with_istio_labels_and_buckets(services):
    primary, canary = services
    for _ in range(3):
        urllib.request.urlopen(f"http://{primary.address}/", timeout=5).read()
    with pytest.raises(urllib.error.HTTPError, match="503"):
        urllib.request.urlopen(f"http://{canary.address}/", timeout=5)
    families = _families(primary)
    requests = {
        s.labels["response_code"]: s.value
        for s in families["istio_requests"].samples
        if s.name == "istio_requests_total"
    }
    assert requests == {"200": 3.0, "503": 0.0}  # both codes exist from the start
    sample = families["istio_requests"].samples[0]
    assert {k: sample.labels[k] for k in sample.labels if k != "response_code"} == {
        "reporter": "destination",
        "destination_workload": "podinfo-primary",
        "destination_workload_namespace": "test",
    }
    buckets = [
        float(s.labels["le"])
        for s in families["istio_request_duration_milliseconds"].samples
        if s.name.endswith("_bucket")
    ]
    assert tuple(buckets) == ISTIO_BUCKETS_MS
    canary_requests = [
        s for s in _families(canary)["istio_requests"].samples if s.name == "istio_requests_total"
    ]
    assert {s.labels["response_code"]: s.value for s in canary_requests} == {"200": 0, "503": 1}


def test_latency_is_sampled_not_slept():
    slow = Service("podinfo", "test", error_rate=0.0, latency_median_ms=60_000, seed=3)
    started = time.monotonic()
    for _ in range(50):
        slow.serve()
    assert time.monotonic() - started < 0.5
    count = slow.registry.get_sample_value(
        "istio_request_duration_milliseconds_bucket",
        {
            "reporter": "destination",
            "destination_workload": "podinfo",
            "destination_workload_namespace": "test",
            "le": "10000.0",
        },
    )
    assert count < 25  # the median is a minute: most requests are reported slower than 10 s


def test_load_splits_by_the_router_weight_and_is_bounded(router, services):
    primary, canary = services
    router.set_weight(25, reason="test")
    load = LoadGenerator(router, primary, canary, rate_per_s=400, max_requests=400, seed=7)
    started = time.monotonic()
    load.start()
    load._thread.join(10)
    assert not load.running
    assert 0.8 < time.monotonic() - started < 3  # paced: 400 requests at 400/s
    assert sum(load.sent.values()) == 400 and load.failed == 0
    assert 70 <= load.sent["canary"] <= 130  # Binomial(400, 0.25): mean 100, sd 8.7
    served = primary.registry.get_sample_value(
        "istio_request_duration_milliseconds_count",
        {
            "reporter": "destination",
            "destination_workload": "podinfo-primary",
            "destination_workload_namespace": "test",
        },
    )
    assert served == load.sent["primary"]


def test_load_stops_at_its_duration(router, services):
    load = LoadGenerator(router, *services, rate_per_s=50, duration_s=0.5)
    load.start()
    load._thread.join(5)
    assert not load.running and 15 <= load.sent["primary"] <= 26


def test_a_service_going_away_counts_failures_instead_of_crashing(router, services):
    primary, canary = services
    load = LoadGenerator(router, primary, canary, rate_per_s=200, max_requests=100)
    load.start()
    primary.stop()
    load._thread.join(10)
    assert not load.running and load.sent["primary"] == 100
    assert 50 < load.failed <= 100


@pytest.mark.parametrize("rate", [0, 5000])
def test_load_rate_is_bounded(router, services, rate):
    with pytest.raises(SpecError, match="rate_per_s"):
        LoadGenerator(router, *services, rate_per_s=rate)


# -- the whole demo on a real Prometheus ---------------------------------------------------


def test_live_demo_refuses_an_impossible_canary_before_starting_anything():
    with pytest.raises(SpecError, match="error rate must be in 0..1, got 1.2"):
        LiveDemo(canary_errors="60x")
    idle = LiveDemo()
    with pytest.raises(SourceError, match="not running"):
        _ = idle.prometheus_url
    idle.stop()  # stopping a demo that never started is fine


def _processes_listening_on(url: str) -> list[str]:
    address = url.removeprefix("http://")
    out = subprocess.run(
        ["pgrep", "-f", f"listen-address={address}"], capture_output=True, text=True
    )
    return out.stdout.split()


def test_live_demo_serves_istio_metrics_through_prometheus_and_cleans_up(prometheus_binary):
    before_threads = set(threading.enumerate())
    with LiveDemo(canary_errors="5x", rate_per_s=200, seed=1) as demo:
        assert demo.spec.weight_plan() == (10, 20, 30, 40, 50)
        assert demo.prometheus_url.startswith("http://127.0.0.1:")
        url = demo.prometheus_url
        assert len(_processes_listening_on(url)) == 1
        demo.router.set_weight(50, reason="test")
        time.sleep(3.5)
        end = datetime.now(UTC).replace(microsecond=0)
        window = {"start": end - timedelta(seconds=2), "end": end, "step": 2}
        rec = demo.source.fetch("istio", target="podinfo", namespace="test", **window)
        totals = rec.summary()
        requests = {
            r["variant"]: r["total"] for r in totals.filter(metric="requests").iter_rows(named=True)
        }
        errors = {
            r["variant"]: r["total"] for r in totals.filter(metric="errors").iter_rows(named=True)
        }
        assert requests["primary"] > 50 and requests["canary"] > 50
        assert errors["canary"] > errors["primary"]
        assert "latency_ms" in rec.metrics
    assert _processes_listening_on(url) == []
    left = {t for t in set(threading.enumerate()) - before_threads if t.name != "tqdm_monitor"}
    assert left == set()  # tqdm's process-wide monitor (from fetch's progress bar) may stay
    assert not demo.load.running


def test_live_demo_stops_everything_when_the_block_raises(prometheus_binary):
    before = set(threading.enumerate())
    with pytest.raises(KeyboardInterrupt), LiveDemo(seed=2) as demo:
        raise KeyboardInterrupt
    assert demo.source is None and not demo.load.running
    assert {t for t in threading.enumerate() if t.name.startswith("rolloutlab-")} <= {
        t for t in before if t.name.startswith("rolloutlab-")
    }
