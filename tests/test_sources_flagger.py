"""Flagger's own series from a real Prometheus: the weight timeline that really happened.

The server is backfilled with a simulated error regression in Istio's metric names and,
beside it, the series Flagger's controller exports (names and labels as in Flagger's
pkg/metrics/recorder.go): the weight stepped 10, 20, 30 % every two minutes (as the mesh
traffic did), the success rate Flagger saw, and a failed status (2) for the last minutes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

import rolloutlab
from rolloutlab.errors import EmptyResult
from rolloutlab.postmortem import replay
from rolloutlab.sources.flagger import fetch_flagger, with_flagger
from rolloutlab.sources.openmetrics import to_openmetrics
from rolloutlab.sources.promserver import PrometheusServer

START = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)
#: canary weight Flagger set at each minute (from START + 1 min); 0 after the rollback
WEIGHTS = [10, 10, 20, 20, 30, 30, 30, 30, 30, 30]
SUCCESS = [99.5, 97.0, 99.2, 96.0, 95.5, 96.5, 96.0, 95.0, None, None]
#: request-duration as Flagger records it: seconds of a whole-ms duration (fluxcd/flagger
#: 15bd6ad, pkg/controller/scheduler_metrics.go: SetAnalysis(..., val.Seconds()))
DURATION_S = 0.412
FAILED_FROM = 9  # minute at which Flagger's status turned to failed


def flagger_openmetrics() -> str:
    weight, status, analysis = [], [], []
    for minute, (w, s) in enumerate(zip(WEIGHTS, SUCCESS, strict=True), start=1):
        for sub in range(0, 60, 15):  # Prometheus scrapes Flagger every 15 s
            t = int((START + timedelta(minutes=minute, seconds=sub)).timestamp())
            weight.append(f'flagger_canary_weight{{workload="podinfo",namespace="test"}} {w} {t}')
            weight.append(
                f'flagger_canary_weight{{workload="podinfo-primary",namespace="test"}} {100 - w} {t}'
            )
            status.append(
                f'flagger_canary_status{{name="podinfo",namespace="test"}} {2 if minute >= FAILED_FROM else 0} {t}'
            )
            if s is not None:
                analysis.append(
                    'flagger_canary_metric_analysis{name="podinfo",namespace="test",'
                    f'metric="request-success-rate"}} {s} {t}'
                )
                analysis.append(
                    'flagger_canary_metric_analysis{name="podinfo",namespace="test",'
                    f'metric="request-duration"}} {DURATION_S} {t}'
                )
    return "\n".join(
        [
            "# TYPE flagger_canary_weight gauge",
            *weight,
            "# TYPE flagger_canary_status gauge",
            *status,
            "# TYPE flagger_canary_metric_analysis gauge",
            *analysis,
            "# EOF",
            "",
        ]
    )


@pytest.fixture(scope="module")
def server(prometheus_binary):
    mesh = rolloutlab.simulate(
        "error-regression", seed=2, duration_min=12, interval_s=120, step_weight=10, max_weight=30
    )
    texts = [
        to_openmetrics(mesh, preset="istio", target="podinfo", namespace="test"),
        flagger_openmetrics(),
    ]
    with PrometheusServer(openmetrics=texts) as prom:
        yield prom


def test_fetch_with_flagger_series_rebuilds_the_real_timeline(server, tmp_path):
    end = START + timedelta(minutes=10)
    rec = rolloutlab.fetch(
        server.url,
        preset="istio",
        target="podinfo",
        namespace="test",
        start=START + timedelta(minutes=1),
        end=end,
        step="1m",
        flagger=True,
    )
    weights = (
        rec.frame.filter((pl.col("metric") == "weight") & (pl.col("variant") == "canary"))
        .sort("timestamp")["value"]
        .to_list()
    )
    assert weights == [float(w) for w in WEIGHTS]
    status = rec.frame.filter(pl.col("metric") == "flagger_status").sort("timestamp")
    assert status["value"].to_list()[-1] == 2.0
    seen = rec.frame.filter(pl.col("metric") == "flagger:request-success-rate").sort("timestamp")
    assert seen["value"].to_list()[:6] == SUCCESS[:6]
    duration = rec.frame.filter(pl.col("metric") == "flagger:request-duration")
    assert duration["value"].unique().to_list() == [DURATION_S]
    assert rec.meta["flagger_analysis_units"]["flagger:request-duration"] == "s"
    assert "flagger_canary_weight" in rec.meta["flagger_queries"]["weight"]
    # the recording keeps all of it
    back = rolloutlab.load(rec.save(tmp_path / "flagger.parquet"))
    assert back.frame.equals(rec.frame)

    # the replay follows the recorded weights, not the plan
    r = replay(back, judges=("flagger", "rolloutlab"))
    assert r.weights == "recorded"
    flagger_weights = r.timeline.filter(pl.col("judge") == "flagger").sort("timestamp")["weight"]
    assert flagger_weights.to_list()[:4] == [10.0, 10.0, 20.0, 20.0]
    assert "Flagger itself (recorded): weight up to 30%, failed at 10:09 UTC" in r.summary()


def test_missing_flagger_series_is_named(server):
    prom = rolloutlab.Prometheus(server.url)
    with pytest.raises(EmptyResult, match="no flagger_canary_weight for workload 'other'"):
        fetch_flagger(
            prom,
            target="other",
            namespace="test",
            start=START + timedelta(minutes=1),
            end=START + timedelta(minutes=5),
            step="1m",
        )


def test_with_flagger_replaces_the_recorded_weight(server):
    prom = rolloutlab.Prometheus(server.url)
    rec = prom.fetch(
        "istio",
        target="podinfo",
        namespace="test",
        start=START + timedelta(minutes=1),
        end=START + timedelta(minutes=10),
        step="1m",
    )
    merged = with_flagger(rec, prom, target="podinfo", namespace="test", step="1m")
    canary = merged.frame.filter((pl.col("metric") == "weight") & (pl.col("variant") == "canary"))
    assert canary.height == len(WEIGHTS)
