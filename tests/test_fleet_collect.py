"""fleet collect on a real Prometheus: rollouts found in Flagger's series, recorded, resumed,
then replayed and reported end to end.

The server is backfilled with two simulated rollouts of podinfo in Istio's metric names
(an error regression at 10:00, a healthy canary at 12:00) and, beside them, the series
Flagger's controller exports for them (names, labels and values as SetStatus and
SetWeight write them in fluxcd/flagger pkg/metrics/recorder.go, commit
0743ef72b359dcf669a82ae28c2383334d14d8ab: status 0 while progressing, 2 failed, 1
otherwise; ``name`` is the targetRef name), and Argo Rollouts' ``rollout_phase`` for a
Rollout of the same name (one series per phase, 1 for the current one, as
``collectRollouts`` writes them in argoproj/argo-rollouts controller/metrics/rollouts.go,
commit 25d623c7e805bf1093c1a3ff58d1b969cfbdf2e1): Paused between steps, the first
rollout aborted, the second completed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

import rolloutlab
from rolloutlab.cli import main
from rolloutlab.fleet import Fleet, collect, find_rollouts
from rolloutlab.fleet.collect import _status_runs
from rolloutlab.sources.openmetrics import to_openmetrics
from rolloutlab.sources.promserver import PrometheusServer

DAY = datetime(2026, 1, 12, tzinfo=UTC)
#: (first progressing minute, last progressing minute, the status that ended it)
ROLLOUTS = [(DAY + timedelta(hours=10, minutes=1), DAY + timedelta(hours=10, minutes=10), 2)]
ROLLOUTS += [(DAY + timedelta(hours=12, minutes=1), DAY + timedelta(hours=12, minutes=10), 1)]
CANARY = """apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  provider: istio
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  service:
    port: 9898
  analysis:
    interval: 1m
    threshold: 3
    maxWeight: 30
    stepWeight: 10
    metrics:
    - name: request-success-rate
      thresholdRange:
        min: 99
      interval: 1m
"""


def flagger_series() -> str:
    """Flagger's status and weight for podinfo every 30 s from 09:50 to 12:30."""

    def write(s: int, value: int, w: int) -> list[str]:
        return [
            f'flagger_canary_status{{name="podinfo",namespace="test"}} {value} {s}',
            f'flagger_canary_weight{{workload="podinfo",namespace="test"}} {w} {s}',
            f'flagger_canary_weight{{workload="podinfo-primary",namespace="test"}} {100 - w} {s}',
        ]

    lines = series(write)
    return "\n".join(
        [
            "# TYPE flagger_canary_status gauge",
            *(x for x in lines if x.startswith("flagger_canary_status")),
            "# TYPE flagger_canary_weight gauge",
            *(x for x in lines if x.startswith("flagger_canary_weight")),
            "# EOF",
            "",
        ]
    )


ARGO_ROLLOUT = """apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: podinfo, namespace: test}
spec:
  strategy:
    canary:
      canaryService: podinfo
      stableService: podinfo-primary
      trafficRouting: {istio: {virtualService: {name: podinfo}}}
      analysis:
        templates: [{templateName: success-ratio}]
        args: [{name: workload, value: podinfo}]
      steps:
      - setWeight: 10
      - pause: {duration: 2m}
      - setWeight: 30
      - pause: {duration: 2m}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: success-ratio, namespace: test}
spec:
  args: [{name: workload}]
  metrics:
  - name: success-ratio
    interval: 1m
    successCondition: result[0] >= 0.99
    failureLimit: 1
    provider:
      prometheus:
        address: http://prometheus.istio-system:9090
        query: >-
          sum(rate(istio_requests_total{reporter="destination",
          destination_workload="{{args.workload}}",response_code!~"5.*"}[1m]))
          / sum(rate(istio_requests_total{reporter="destination",
          destination_workload="{{args.workload}}"}[1m]))
"""
#: Argo Rollouts' phases (controller/metrics/rollouts.go): the first rollout was aborted
ARGO_ENDS = {2: "Abort", 1: "Completed"}
ARGO_PHASES = ("Completed", "Progressing", "Paused", "Timeout", "Error", "Abort")


def series(write) -> list[str]:
    """``write(t, phase_or_status, weight)`` lines every 30 s from 09:50 to 12:30."""
    lines = []
    t = DAY + timedelta(hours=9, minutes=50)
    value, w = 1, 0
    while t <= DAY + timedelta(hours=12, minutes=30):
        for first, last, ended in ROLLOUTS:
            if first <= t <= last:
                value, w = 0, min(30, 10 * (1 + int((t - first).total_seconds() // 120)))
            elif last < t <= last + timedelta(seconds=30):
                value, w = ended, 0
        lines += write(int(t.timestamp()), value, w)
        t += timedelta(seconds=30)
    return lines


def argo_series() -> str:
    """Argo's rollout_phase for the Rollout podinfo: Paused between steps, as it is."""

    def write(s: int, value: int, w: int) -> list[str]:
        between_steps = "Paused" if s % 120 >= 60 else "Progressing"
        phase = ARGO_ENDS[value] if value else between_steps
        return [
            f'rollout_phase{{namespace="test",name="podinfo",strategy="canary",phase="{p}"}} '
            f"{int(p == phase)} {s}"
            for p in ARGO_PHASES
        ]

    return "\n".join(["# TYPE rollout_phase gauge", *series(write), "# EOF", ""])


@pytest.fixture(scope="module")
def server(prometheus_binary):
    bad = rolloutlab.simulate(
        "error-regression", seed=2, duration_min=14, start=DAY + timedelta(hours=9, minutes=58)
    )
    good = rolloutlab.simulate(
        "healthy", seed=3, duration_min=14, start=DAY + timedelta(hours=11, minutes=58)
    )
    texts = [
        to_openmetrics(rec, preset="istio", target="podinfo", namespace="test")
        for rec in (bad, good)
    ]
    with PrometheusServer(openmetrics=[*texts, flagger_series(), argo_series()]) as prom:
        yield prom


@pytest.fixture()
def canary(tmp_path):
    folder = tmp_path / "gitops"
    folder.mkdir()
    (folder / "canary.yaml").write_text(CANARY)
    return folder


def test_status_runs_by_hand():
    t0 = int(DAY.timestamp())
    values = [[t0 + 60 * k, v] for k, v in enumerate(["1", "0", "0", "2", "1", "0", "1", "0"])]
    runs = list(_status_runs(values, "podinfo", "test"))
    assert [(r.start.minute, r.end.minute, r.outcome) for r in runs] == [
        (1, 2, "failed"),
        (5, 5, "succeeded"),
        (7, 7, "progressing"),
    ]


def test_find_rollouts_in_flaggers_status(server):
    found = find_rollouts(
        rolloutlab.Prometheus(server.url),
        target="podinfo",
        namespace="test",
        start=DAY + timedelta(hours=9),
        end=DAY + timedelta(hours=13),
        step="1m",
    )
    assert [(e.start, e.end, e.outcome) for e in found] == [
        (ROLLOUTS[0][0], ROLLOUTS[0][1], "failed"),
        (ROLLOUTS[1][0], ROLLOUTS[1][1], "succeeded"),
    ]


def test_collect_records_each_rollout_and_resumes(server, canary, tmp_path):
    out = tmp_path / "fleet"
    options = dict(since="2026-01-12T09:00:00Z", until="2026-01-12T13:00:00Z", concurrency=2)
    added = collect(server.url, canary, out, **options)
    assert added.sort("start")["outcome"].to_list() == ["failed", "succeeded"]
    fleet = Fleet(out)
    for row, (first, last, _) in zip(fleet.index.iter_rows(named=True), ROLLOUTS, strict=True):
        assert row["service"] == "podinfo" and row["namespace"] == "test"
        assert first - timedelta(minutes=1) <= row["start"] <= first
        assert row["end"] == last + timedelta(minutes=1)
        rec = fleet.load(row["rollout"])
        assert {"requests", "errors", "weight", "flagger_status"} <= set(rec.metrics)
        canary_weight = rec.frame.filter(
            pl.col("metric") == "weight", pl.col("variant") == "canary"
        )
        assert canary_weight["value"].max() == 30.0  # Flagger's own timeline, not the plan
    again = collect(server.url, canary, out, **options)
    assert again.height == 0 and fleet.index.height == 2  # already there: skipped


def test_collect_replay_report_end_to_end(server, canary, tmp_path, capsys, monkeypatch):
    out = tmp_path / "fleet"
    # the connection comes as for every command: the URL from the environment, the token
    # from a file (Prometheus here takes no auth, so this shows they are accepted and used)
    monkeypatch.setenv("ROLLOUTLAB_URL", server.url)
    (tmp_path / "token").write_text("s3cret\n")
    argv = ["fleet", "collect", "--bearer-file", str(tmp_path / "token"), "--spec", str(canary)]
    argv += ["-o", str(out)]
    assert main([*argv, "--since", "4h", "--until", "2026-01-12T13:00:00Z"]) == 0
    collected = capsys.readouterr()
    assert "recorded 2 rollouts" in collected.out
    assert "s3cret" not in collected.out + collected.err
    (out / "labels.csv").write_text(f"rollout,incident\n{Fleet(out).index['rollout'][1]},false\n")
    replay_argv = ["fleet", "replay", str(out), "--spec", str(canary), "--judge", "rolloutlab"]
    assert main([*replay_argv, "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "gitops · rolloutlab: catches 1 of 1 bad rollouts" in printed
    folder = printed.split("results in ")[1].split(" ")[0]
    html = tmp_path / "fleet.html"
    assert main(["report", "--fleet", folder, "-o", str(html)]) == 0
    assert 'data-charts="2"' in html.read_text()


def test_collect_finds_argo_rollouts_in_rollout_phase(server, tmp_path):
    spec = tmp_path / "rollout.yaml"
    spec.write_text(ARGO_ROLLOUT)
    out = tmp_path / "fleet"
    added = collect(server.url, spec, out, since="4h", until="2026-01-12T13:00:00Z")
    rows = added.sort("start")
    assert rows["outcome"].to_list() == ["failed", "succeeded"]
    assert rows["service"].to_list() == ["podinfo", "podinfo"]
    for row, (first, last, _) in zip(rows.iter_rows(named=True), ROLLOUTS, strict=True):
        assert first - timedelta(minutes=1) <= row["start"] <= first
        assert row["end"] == last + timedelta(minutes=1)
        rec = Fleet(out).load(row["rollout"])
        ratio = rec.frame.filter(pl.col("metric") == "success-ratio")
        assert set(ratio["variant"]) == {"primary", "canary"}
