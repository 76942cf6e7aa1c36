"""rolloutlab watch: the advisory view from Prometheus alone, and its /metrics, against a
real backfilled Prometheus (the simulated canaries of tests/serve_helpers.py)."""

from __future__ import annotations

import argparse
import io
import threading
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from serve_helpers import T0, Clock, free_port, openmetrics, write_canaries

from rolloutlab.cli import main
from rolloutlab.cli.watch import build_engine, serve_metrics, sparkline, watch
from rolloutlab.sources.promserver import PrometheusServer


@pytest.fixture(scope="module")
def prometheus(prometheus_binary):
    texts = [openmetrics("good", seed=11), openmetrics("bad", errors_x=4.0, seed=12)]
    with PrometheusServer(openmetrics=texts) as server:
        yield server.url


@pytest.fixture(scope="module")
def specs(tmp_path_factory) -> Path:
    return write_canaries(tmp_path_factory.mktemp("gitops"), ["good", "bad"])


def once(url, specs, name, at, capsys):
    code = main(
        ["watch", "--url", url, "--spec", str(specs), "--spec-name", name, "--once"]
        + ["--since", "2026-01-12T10:00Z", "--at", at]
    )
    return code, capsys.readouterr()


@pytest.mark.prometheus
def test_once_shows_weight_step_evidence_and_decision(prometheus, specs, capsys):
    code, out = once(prometheus, specs, "bad", "2026-01-12T10:45Z", capsys)
    assert code == 0, out.err
    text = out.out
    assert "shop/bad" in text and "ROLLBACK" in text
    assert "weight   50%" in text and "step 5 of 5" in text  # rolled back at 30 min, at 50%
    assert "request-success-rate  fail" in text and "ratio [" in text
    code, out = once(prometheus, specs, "good", "2026-01-12T11:00Z", capsys)
    assert code == 0 and "PROMOTE" in out.out
    code, out = once(prometheus, specs, "good", "2026-01-12T10:10Z", capsys)
    assert "CONTINUE" in out.out and "step 2 of 5" in out.out


def test_watch_refuses_what_it_cannot_do(capsys):
    assert main(["watch", "--url", "http://127.0.0.1:1", "--once"]) == 2
    assert "--target and --namespace" in capsys.readouterr().err
    args = ["watch", "--url", "http://127.0.0.1:1", "--target", "a", "--namespace", "b"]
    assert main([*args, "--at", "now"]) == 2
    assert "with --once" in capsys.readouterr().err


@pytest.mark.prometheus
def test_live_watch_exposes_the_decision_series(prometheus, specs):
    clock = Clock().at(45)
    args = argparse.Namespace(
        url=prometheus,
        spec=specs,
        spec_name="bad",
        target=None,
        namespace=None,
        preset=None,
        judge=None,
        header=[],
    )
    engine, canary = build_engine(args, clock=clock)
    port = free_port()
    server = serve_metrics(lambda: [e.state() for e in engine.latest()], "127.0.0.1", port)
    out, stop = io.StringIO(), threading.Event()
    thread = threading.Thread(
        target=watch, args=(engine, canary, T0), kwargs={"out": out, "stop": stop}
    )
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while "ROLLBACK" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        stop.set()
        thread.join(10)
        server.shutdown()
    assert not thread.is_alive()
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    ids = (("name", "bad"), ("namespace", "shop"))
    assert got[("rolloutlab_canary_status", ids)] == 2  # Flagger's "failed"
    assert got[("rolloutlab_canary_decision", (("decision", "rollback"), *ids))] == 1
    assert got[("rolloutlab_canary_weight", (("namespace", "shop"), ("workload", "bad")))] == 50


def test_metrics_port_binds_loopback_by_default():
    from rolloutlab.cli import _parser

    args = _parser().parse_args(["watch", "--url", "u", "--target", "a", "--namespace", "b"])
    assert args.metrics_host == "127.0.0.1"


def test_sparkline_scales_low_to_high():
    assert sparkline([0.0, 1.0, None, 0.5]) == "▁█ ▅"
    assert sparkline([None]) == ""


def test_run_exposes_a_live_rollouts_decision(tmp_path):
    """run --metrics-port: the live loop's state as the same series (the loop over real
    HTTP on the scripted Prometheus of tests/fake_prometheus.py, a LocalRouter)."""
    from datetime import timedelta

    from fake_prometheus import FakePrometheus

    from rolloutlab.cli.watch import exported, rollout_state
    from rolloutlab.control.audit import AuditLog
    from rolloutlab.control.local import LocalRouter
    from rolloutlab.control.loop import Rollout
    from rolloutlab.sources.prometheus import Prometheus
    from rolloutlab.specs import Spec

    router = LocalRouter("podinfo", "test", audit=AuditLog(tmp_path / "audit.jsonl"))
    clock = Clock(T0 + timedelta(seconds=30))
    with FakePrometheus(router) as fake:
        rollout = Rollout(
            Prometheus(fake.url, timeout=5),
            router,
            Spec(interval_s=60, step_weight=20, max_weight=60),
            "rolloutlab",
            target="podinfo",
            namespace="test",
            lag_s=1.0,
            clock=clock,
        )
        rollout.step()  # the canary gets 20%
        clock.now = rollout.origin + timedelta(minutes=1, seconds=2)
        rollout.step()  # tick 0 judged: healthy, so 40%
        port = free_port()
        args = argparse.Namespace(metrics_port=port, metrics_host="127.0.0.1")
        with exported(args, lambda: [rollout_state(rollout)]):
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    ids = (("name", "podinfo"), ("namespace", "test"))
    assert got[("rolloutlab_canary_status", ids)] == 0  # running
    assert got[("rolloutlab_canary_judged", ids)] == 1
    weight = "rolloutlab_canary_weight"
    assert got[(weight, (("namespace", "test"), ("workload", "podinfo")))] == 40
    assert got[(weight, (("namespace", "test"), ("workload", "podinfo-primary")))] == 60
    assert ("rolloutlab_canary_metric_analysis", (("metric", "request-success-rate"), *ids)) in got
