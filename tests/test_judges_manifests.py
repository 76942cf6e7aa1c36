"""Specs from GitOps folders and multi-document files: Flagger Canary + MetricTemplates,
Argo Rollout + AnalysisTemplates, and the template metrics fetched per variant from a
real Prometheus and judged."""

from __future__ import annotations

import json
import warnings
from argparse import Namespace
from pathlib import Path

import polars as pl
import pytest
import yaml

from rolloutlab.cli import _from_spec, main
from rolloutlab.errors import SpecError
from rolloutlab.judges import judge
from rolloutlab.sources.recording import load
from rolloutlab.specs import ManifestWarning, Spec
from rolloutlab.specs.fetch import fetch_for_spec

CANARY = """\
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  provider: istio
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis:
    interval: 1m
    threshold: 3
    stepWeight: 10
    maxWeight: 50
    metrics:
    - name: error-rate
      templateRef: {name: error-rate, namespace: istio-system}
      thresholdRange: {max: 5}
      interval: 1m
    - name: by-reporter
      templateRef: {name: by-reporter}
      templateVariables: {reporter: destination}
      thresholdRange: {min: 0}
"""
ERROR_RATE = """\
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: error-rate, namespace: istio-system}
spec:
  provider: {type: prometheus, address: http://prometheus.istio-system:9090}
  query: |
    100 - sum(rate(istio_requests_total{reporter="destination",
      destination_workload_namespace="{{ namespace }}",destination_workload="{{ target }}",
      response_code!~"5.*"}[{{ interval }}]))
    / sum(rate(istio_requests_total{reporter="destination",
      destination_workload_namespace="{{ namespace }}",
      destination_workload="{{ target }}"}[{{ interval }}])) * 100
"""
BY_REPORTER = """\
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: by-reporter}
spec:
  provider: {type: prometheus, address: http://prometheus:9090}
  query: sum(rate(istio_requests_total{reporter="{{ variables.reporter }}",destination_workload=~"{{target}}"}[{{ interval }}]))
"""
DATADOG = """\
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: latency, namespace: test}
spec:
  provider: {type: datadog, address: https://api.datadoghq.com}
  query: avg:trace.http.request.duration{kube_deployment:{{ target }}}
"""
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo, namespace: test}
spec: {replicas: 2}
"""


def folder(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    return tmp_path


def test_a_folder_gives_the_canary_with_its_templates_rendered_per_variant(tmp_path):
    path = folder(
        tmp_path, canary=CANARY, error_rate=ERROR_RATE, by_reporter=BY_REPORTER, deploy=DEPLOYMENT
    )
    spec = Spec.load(path)
    assert (spec.target, spec.namespace, spec.provider, spec.router) == (
        "podinfo",
        "test",
        "istio",
        "istio",
    )
    error_rate, by_reporter = spec.metrics
    assert error_rate.template == "MetricTemplate istio-system/error-rate"
    queries = dict(error_rate.queries)
    assert 'destination_workload="podinfo-primary"' in queries["primary"]
    assert 'destination_workload="podinfo"' in queries["canary"]
    assert 'destination_workload_namespace="test"' in queries["canary"]
    assert "[1m]" in queries["canary"] and "{{" not in queries["canary"] + queries["primary"]
    # a template written without a namespace matches by name; variables are rendered
    assert dict(by_reporter.queries)["canary"] == (
        'sum(rate(istio_requests_total{reporter="destination",destination_workload=~"podinfo"}[1m]))'
    )
    # the same objects as one multi-document file give the same spec
    text = "---\n".join((DEPLOYMENT, ERROR_RATE, CANARY, BY_REPORTER))
    (tmp_path / "all.yml").write_text(text)
    assert Spec.load(tmp_path / "all.yml") == spec == Spec.load(text)


def test_a_missing_template_is_an_error_naming_it(tmp_path):
    path = folder(tmp_path, canary=CANARY, error_rate=ERROR_RATE)
    with pytest.raises(SpecError, match=r"MetricTemplate test/by-reporter, which is not among"):
        Spec.load(path)
    moved = ERROR_RATE.replace("namespace: istio-system", "namespace: other")
    path = folder(tmp_path, error_rate=moved, by_reporter=BY_REPORTER)
    with pytest.raises(SpecError, match=r"found only other/error-rate: check the namespace"):
        Spec.load(path)


def test_a_file_of_templates_only_says_what_it_is_and_what_to_give(tmp_path):
    path = folder(tmp_path, templates="---\n".join((ERROR_RATE, BY_REPORTER)))
    message = str(pytest.raises(SpecError, Spec.load, path / "templates.yaml").value)
    assert "holds only MetricTemplate objects (error-rate, by-reporter)" in message
    assert "together with the Canary" in message


def test_unsupported_providers_are_named_in_one_warning(tmp_path):
    canary = CANARY.replace(
        "      thresholdRange: {min: 0}\n",
        "      thresholdRange: {min: 0}\n"
        "    - name: latency\n      templateRef: {name: latency}\n"
        "      thresholdRange: {max: 500}\n",
    )
    path = folder(tmp_path, canary=canary, a=ERROR_RATE, b=BY_REPORTER, c=DATADOG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = Spec.load(path)
    messages = [str(w.message) for w in caught if w.category is ManifestWarning]
    assert len(messages) == 1
    assert "latency (MetricTemplate test/latency, provider datadog)" in messages[0]
    assert [m.name for m in spec.metrics] == ["error-rate", "by-reporter"]


def test_several_canaries_need_a_name(tmp_path):
    other = CANARY.replace("name: podinfo, namespace: test", "name: web, namespace: test")
    path = folder(tmp_path, a=CANARY, b=other, c=ERROR_RATE, d=BY_REPORTER)
    with pytest.raises(SpecError, match=r"2 specs to choose from: Canary podinfo .*Canary web"):
        Spec.load(path)
    assert Spec.load(path, name="web").name == "web"


def test_a_lone_canary_keeps_its_template_metrics_unresolved():
    spec = Spec.load(CANARY)
    assert spec.metrics[0].template == "MetricTemplate istio-system/error-rate"
    assert spec.metrics[0].queries == ()


def test_kubernetes_provider_is_blue_green_with_ten_iterations():
    # pkg/controller/scheduler.go (fluxcd/flagger): "use blue/green strategy for kubernetes
    # provider": no A/B match, iterations 10 when unset, so no traffic steps
    text = CANARY.replace("provider: istio", "provider: kubernetes")
    spec = Spec.load(text.split("    metrics:")[0])
    assert (spec.iterations, spec.weight_plan(), spec.ab_testing) == (10, (), False)
    assert (spec.provider, spec.router) == ("kubernetes", None)


ROLLOUT = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: guestbook, namespace: shop}
spec:
  strategy:
    canary:
      canaryService: guestbook-canary
      stableService: guestbook-stable
      trafficRouting:
        istio: {virtualService: {name: guestbook-vsvc}}
      analysis:
        templates: [{templateName: success-rate}]
        args: [{name: service-name, value: guestbook-canary}]
      steps:
      - setWeight: 20
      - pause: {duration: 5m}
      - setWeight: 40
      - pause: {}
      - analysis:
          templates: [{templateName: latency, clusterScope: true}]
      - setWeight: 80
      - pause: {duration: 300}
"""
SUCCESS_RATE = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: success-rate}
spec:
  args: [{name: service-name}]
  metrics:
  - name: success-rate
    interval: 2m
    count: 10
    successCondition: result[0] >= 0.95
    failureLimit: 2
    inconclusiveLimit: 1
    provider:
      prometheus:
        address: http://prometheus:9090
        query: sum(rate(requests_total{service="{{args.service-name}}",code!~"5.."}[2m])) / sum(rate(requests_total{service="{{args.service-name}}"}[2m]))
"""
LATENCY = """\
apiVersion: argoproj.io/v1alpha1
kind: ClusterAnalysisTemplate
metadata: {name: latency}
spec:
  metrics:
  - name: p99
    failureCondition: result[0] > 300
    provider:
      prometheus: {query: 'histogram_quantile(0.99, sum(rate(latency_bucket[1m])) by (le))'}
  - name: job-check
    provider: {job: {spec: {}}}
"""


def test_an_argo_rollout_with_its_analysis_templates(tmp_path):
    path = folder(tmp_path, rollout=ROLLOUT, rate=SUCCESS_RATE, latency=LATENCY)
    with pytest.warns(ManifestWarning, match=r"job-check \(ClusterAnalysisTemplate latency"):
        spec = Spec.load(path)
    assert spec.weight_plan() == (20.0, 40.0, 80.0)
    assert (spec.name, spec.namespace, spec.router) == ("guestbook", "shop", "istio")
    p99, rate = sorted(spec.metrics, key=lambda m: m.name)
    assert (rate.threshold_min, rate.threshold_max, rate.direction) == (0.95, None, "decrease")
    assert (rate.count, rate.failure_limit, rate.inconclusive_limit) == (10, 2, 1)
    assert rate.interval_s == 120.0 and rate.success_condition == "result[0] >= 0.95"
    queries = dict(rate.queries)
    assert 'service="guestbook-canary"' in queries["canary"]
    assert 'service="guestbook-stable"' in queries["primary"]
    assert (p99.threshold_min, p99.threshold_max, p99.direction) == (None, 300.0, "increase")
    assert [v for v, _ in p99.queries] == ["canary"]  # the same query for both: canary only
    # ticks at the shortest metric interval; rollback after failureLimit + 1 failures
    assert (spec.interval_s, spec.threshold) == (60.0, 1)


def test_an_argo_rollout_without_stable_service_queries_the_canary_only(tmp_path):
    # A basic canary may set canaryService alone (Argo requires both only with
    # trafficRouting). The primary has no service name then: its query used to name
    # service="" (the None stableService rendered empty) and select nothing.
    rollout = ROLLOUT.replace("      stableService: guestbook-stable\n", "").replace(
        "      trafficRouting:\n        istio: {virtualService: {name: guestbook-vsvc}}\n", ""
    )
    rollout = rollout.replace(
        "      - analysis:\n          templates: [{templateName: latency, clusterScope: true}]\n",
        "",
    )
    spec = Spec.load(folder(tmp_path, rollout=rollout, rate=SUCCESS_RATE))
    (rate,) = spec.metrics
    assert [v for v, _ in rate.queries] == ["canary"]
    assert 'service="guestbook-canary"' in rate.queries[0][1]


def test_argo_refusals_say_why(tmp_path):
    missing = folder(tmp_path, rollout=ROLLOUT, latency=LATENCY)
    with pytest.raises(SpecError, match="AnalysisTemplate shop/success-rate, which is not among"):
        Spec.load(missing)
    no_arg = ROLLOUT.replace("        args: [{name: service-name, value: guestbook-canary}]\n", "")
    with pytest.raises(SpecError, match=r"needs the argument 'service-name'"):
        Spec.load("---\n".join((no_arg, SUCCESS_RATE, LATENCY)))
    down = ROLLOUT.replace("setWeight: 80", "setWeight: 30")
    with pytest.raises(SpecError, match=r"steps\[5\].setWeight: 30 after 40"):
        Spec.load("---\n".join((down, SUCCESS_RATE, LATENCY)))
    blue_green = ROLLOUT.replace("    canary:\n", "    blueGreen:\n")
    with pytest.raises(SpecError, match="has strategy blueGreen"):
        Spec.load(blue_green)
    # Argo's pause is a mapping (RolloutPause{duration}); a bare number used to raise
    # AttributeError inside the parser
    bare = ROLLOUT.replace("pause: {duration: 5m}", "pause: 1")
    with pytest.raises(SpecError, match=r"steps\[1\]\.pause is 1; Argo's pause is a mapping"):
        Spec.load("---\n".join((bare, SUCCESS_RATE, LATENCY)))
    scalar = ROLLOUT.replace("- pause: {duration: 5m}", "- 5")
    with pytest.raises(SpecError, match=r"steps\[1\] is 5; a step is a mapping"):
        Spec.load("---\n".join((scalar, SUCCESS_RATE, LATENCY)))


# -- fetched from a real Prometheus and judged -------------------------------------


def test_fetch_with_a_spec_folder_records_template_metrics_per_variant(
    backfilled, tmp_path, capsys
):
    (tmp_path / "gitops").mkdir()
    specs = folder(
        tmp_path / "gitops", canary=CANARY, error_rate=ERROR_RATE, by_reporter=BY_REPORTER
    )
    out = tmp_path / "rec.parquet"
    argv = ["fetch", "--url", backfilled.url, "--spec", str(specs)]
    argv += ["--start", "2026-01-12T10:01Z", "--end", "2026-01-12T11:00Z", "-o", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    rec = load(out)
    # only template metrics: no preset query is needed, as Flagger runs no built-in check
    assert rec.meta["target"] == "podinfo" and "preset" not in rec.meta
    assert set(rec.frame["metric"]) == {"error-rate", "by-reporter"}
    frame = rec.frame
    # the template's error percentage, per variant, equals the recorded errors / requests
    truth = backfilled.main.frame
    for variant in ("primary", "canary"):
        got = frame.filter((frame["metric"] == "error-rate") & (frame["variant"] == variant))
        assert set(got["kind"]) == {"gauge"} and got.height == 60
        sums = {
            m: truth.filter((truth["metric"] == m) & (truth["variant"] == variant))
            .join(got.select("timestamp"), on="timestamp")
            .group_by("timestamp")
            .agg(value=pl.col("value").sum())
            .sort("timestamp")["value"]
            .to_numpy()
            for m in ("errors", "requests")
        }
        expected = 100 * sums["errors"] / sums["requests"]
        assert got.sort("timestamp")["value"].to_numpy() == pytest.approx(expected, rel=1e-9)
    capsys.readouterr()
    assert main(["judge", str(out), "--spec", str(specs), "--judge", "flagger", "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    names = {m["name"]: m for m in verdict["metrics"]}
    assert set(names) == {"error-rate", "by-reporter"}
    assert all(m["classification"] != "inconclusive" for m in names.values()), names


def test_fetch_with_a_lone_canary_names_the_missing_templates(backfilled, tmp_path, capsys):
    (tmp_path / "canary.yaml").write_text(CANARY)
    argv = ["fetch", "--url", backfilled.url, "--spec", str(tmp_path / "canary.yaml")]
    argv += ["--start", "2026-01-12T10:01Z", "--end", "2026-01-12T11:00Z", "-o", "x.parquet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error-rate (MetricTemplate istio-system/error-rate)" in err and err.count("\n") == 1


def test_judging_template_gauges_compares_canary_with_primary(backfilled):
    """Built-in metrics through the preset, template metrics as gauges: every judge reads
    both variants of each (no 'no data')."""
    builtin = "    - name: request-success-rate\n      thresholdRange: {min: 99}\n"
    canary = CANARY.replace("    metrics:\n", "    metrics:\n" + builtin)
    spec = Spec.load("---\n".join((canary, ERROR_RATE, BY_REPORTER)))
    rec = fetch_for_spec(backfilled.url, spec, start="2026-01-12T10:01Z", end="2026-01-12T12:00Z")
    assert {"requests", "errors", "error-rate", "by-reporter"} <= set(rec.frame["metric"])
    assert rec.meta["preset"] == "istio" and set(rec.meta["template_queries"]) == {
        "error-rate",
        "by-reporter",
    }
    error_rate = {}
    for name in ("rolloutlab", "kayenta", "flagger"):
        verdict = judge(rec, spec, judge=name)
        assert len(verdict.metrics) == 3
        for metric in verdict.metrics:
            assert "no data" not in metric.reason.lower(), (name, metric.reason)
        error_rate[name] = next(m for m in verdict.metrics if m.name == "error-rate")
        assert error_rate[name].classification not in ("nodata", "error"), error_rate[name]
    # the rolloutlab judge compares the template's values of canary and primary
    assert "canary error-rate" in error_rate["rolloutlab"].reason
    assert "vs primary" in error_rate["rolloutlab"].reason


def test_replay_and_report_take_the_spec_folder(backfilled, tmp_path, capsys):
    specs = folder(tmp_path, canary=CANARY, error_rate=ERROR_RATE, by_reporter=BY_REPORTER)
    out = tmp_path / "rec.parquet"
    argv = ["fetch", "--url", backfilled.url, "--spec", str(specs), "-o", str(out)]
    assert main([*argv, "--start", "2026-01-12T10:01Z", "--end", "2026-01-12T11:00Z"]) == 0
    capsys.readouterr()
    assert main(["replay", str(out), "--spec", str(specs), "--json"]) == 0
    replayed = json.loads(capsys.readouterr().out)
    for verdict in replayed["decisions"].values():
        assert {m["name"] for m in verdict["metrics"]} == {"error-rate", "by-reporter"}
    html = tmp_path / "report.html"
    assert main(["report", str(out), "--spec", str(specs), "-o", str(html)]) == 0
    assert "error-rate" in html.read_text()


ARGO_ROLLOUT = """\
apiVersion: argoproj.io/v1alpha1
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
      - pause: {duration: 1m}
      - setWeight: 50
      - pause: {duration: 1m}
"""
ARGO_TEMPLATE = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: success-ratio, namespace: test}
spec:
  args: [{name: workload}]
  metrics:
  - name: success-ratio
    interval: 1m
    successCondition: result[0] >= 0.9
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


def test_an_argo_folder_is_fetched_for_stable_and_canary_and_judged(backfilled, tmp_path, capsys):
    specs = folder(tmp_path, rollout=ARGO_ROLLOUT, template=ARGO_TEMPLATE)
    out = tmp_path / "rec.parquet"
    argv = ["fetch", "--url", backfilled.url, "--spec", str(specs), "-o", str(out)]
    assert main([*argv, "--start", "2026-01-12T10:01Z", "--end", "2026-01-12T11:00Z"]) == 0
    rec = load(out)
    ratio = rec.frame.filter(pl.col("metric") == "success-ratio")
    assert set(ratio["variant"]) == {"primary", "canary"}
    truth = backfilled.main.frame.filter(pl.col("variant") == "canary")
    errors = truth.filter(pl.col("metric") == "errors")["value"].sum()
    requests = truth.filter(pl.col("metric") == "requests")["value"].sum()
    canary = ratio.filter(pl.col("variant") == "canary")["value"]
    assert canary.min() > 0.9 and canary.mean() == pytest.approx(1 - errors / requests, abs=0.01)
    capsys.readouterr()
    assert main(["judge", str(out), "--spec", str(specs), "--judge", "flagger", "--json"]) == 0
    (metric,) = json.loads(capsys.readouterr().out)["metrics"]
    assert (metric["name"], metric["classification"]) == ("success-ratio", "pass")


def test_a_manifest_spec_written_out_reads_back_the_same(tmp_path):
    """Queries, Argo conditions and limits, provider and router survive to_yaml."""
    flagger = Spec.load(folder(tmp_path, canary=CANARY, a=ERROR_RATE, b=BY_REPORTER))
    argo = Spec.load("---\n".join((ROLLOUT, SUCCESS_RATE, LATENCY.split("  - name: job")[0])))
    for spec in (flagger, argo):
        assert Spec.load(spec.to_yaml()) == spec


def test_run_takes_target_namespace_and_router_from_the_spec(tmp_path, capsys):
    """A Canary with provider kubernetes has no router: run says which option to add
    (before any connection is made)."""
    canary = CANARY.replace("provider: istio", "provider: kubernetes")
    (tmp_path / "canary.yaml").write_text(canary)
    argv = ["run", "--url", "http://127.0.0.1:1", "--spec", str(tmp_path / "canary.yaml")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "does not say the router: pass --router ..." in err and err.count("\n") == 1
    spec = Spec.load(CANARY)
    given = Namespace(spec="canary.yaml", target=None, namespace=None, router=None)
    assert _from_spec(given, spec) == ("podinfo", "test", "istio")
    given = Namespace(spec="canary.yaml", target="web", namespace="prod", router="nginx")
    assert _from_spec(given, spec) == ("web", "prod", "nginx")


def test_a_gitops_folder_with_other_files(tmp_path):
    """Helm templates (not YAML) are skipped with a warning; Helm values and a Kustomization
    beside the Canary are ignored; a kubectl List is read item by item."""
    (tmp_path / "chart" / "templates").mkdir(parents=True)
    (tmp_path / "chart" / "templates" / "deploy.yaml").write_text(
        'metadata:\n  name: {{ .Release.Name }}\n  labels: {{- include "x" . }}\n'
    )
    (tmp_path / "chart" / "values.yaml").write_text("replicaCount: 2\nimage: {tag: 1.0}\n")
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n"
    )
    items = [yaml.safe_load(t) for t in (CANARY, ERROR_RATE, BY_REPORTER)]
    (tmp_path / "list.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items})
    )
    with pytest.warns(
        ManifestWarning, match=r"skipped 1 file\(s\) that are not plain YAML: .*deploy.yaml"
    ):
        spec = Spec.load(tmp_path)
    assert [len(m.queries) for m in spec.metrics] == [2, 2]


def test_a_template_without_target_is_fetched_for_the_canary_only():
    """Rendered the same for both variants, a query would make the primary a copy of the
    canary (an A/A comparison that proves nothing): only the canary's is kept, with a note."""
    fixed = BY_REPORTER.replace('destination_workload=~"{{target}}"', 'app="shop"')
    with pytest.warns(ManifestWarning, match=r"by-reporter: the query does not use"):
        spec = Spec.load("---\n".join((CANARY, ERROR_RATE, fixed)))
    assert [v for v, _ in spec.metrics[1].queries] == ["canary"]
    assert [v for v, _ in spec.metrics[0].queries] == ["primary", "canary"]


HASH_ROLLOUT = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: podinfo, namespace: test}
spec:
  strategy:
    canary:
      steps:
      - setWeight: 20
      - analysis:
          templates: [{templateName: by-hash}]
          args:
          - name: latest-hash
            valueFrom: {podTemplateHashValue: Latest}
          - name: stable-hash
            valueFrom: {podTemplateHashValue: Stable}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: by-hash}
spec:
  args: [{name: latest-hash}, {name: stable-hash}]
  metrics:
  - name: error-ratio
    successCondition: result[0] <= 0.05
    provider:
      prometheus:
        query: >-
          sum(rate(istio_requests_total{reporter="destination",response_code=~"5.*",
          destination_workload="{{args.latest-hash}}"}[1m]))
          / sum(rate(istio_requests_total{reporter="destination",
          destination_workload="{{args.latest-hash}}"}[1m]))
  - name: stable-rate
    provider:
      prometheus:
        query: sum(rate(istio_requests_total{destination_workload="{{args.stable-hash}}"}[1m]))
"""


def test_argo_pod_template_hash_arguments_are_filled_per_variant(backfilled, tmp_path, capsys):
    """podTemplateHashValue Latest names the canary's ReplicaSet, Stable the stable one's:
    the primary's query takes the stable hash for both. (The backfilled data label pods by
    workload, so the 'hashes' here are the workload names.)"""
    spec = Spec.load(HASH_ROLLOUT)
    ratio, stable_rate = spec.metrics
    assert "{{ podTemplateHash.canary }}" in dict(ratio.queries)["canary"]
    assert "{{ podTemplateHash.stable }}" in dict(ratio.queries)["primary"]
    assert [v for v, _ in stable_rate.queries] == ["canary"]  # the same for both
    (tmp_path / "rollout.yaml").write_text(HASH_ROLLOUT)
    out = tmp_path / "rec.parquet"
    argv = ["fetch", "--url", backfilled.url, "--spec", str(tmp_path / "rollout.yaml")]
    argv += ["--start", "2026-01-12T10:01Z", "--end", "2026-01-12T11:00Z", "-o", str(out)]
    assert main(argv) == 2
    assert "needs the canary and stable hash. Pass them" in capsys.readouterr().err
    argv += ["--pod-template-hash", "stable=podinfo-primary,canary=podinfo"]
    assert main(argv) == 0
    frame = load(out).frame.filter(pl.col("metric") == "error-ratio")
    truth = backfilled.main.frame
    for variant in ("primary", "canary"):
        sums = {
            m: truth.filter((pl.col("metric") == m) & (pl.col("variant") == variant))
            .join(frame.select("timestamp").unique(), on="timestamp")["value"]
            .sum()
            for m in ("errors", "requests")
        }
        got = frame.filter(pl.col("variant") == variant)["value"]
        assert got.mean() == pytest.approx(sums["errors"] / sums["requests"], rel=0.2)


def test_fetch_options_that_a_spec_defines_are_refused_beside_it(tmp_path, capsys):
    (tmp_path / "canary.yaml").write_text(CANARY)
    argv = ["fetch", "--url", "http://127.0.0.1:1", "--spec", str(tmp_path / "canary.yaml")]
    argv += ["--start", "2026-01-12T10:01Z", "--end", "2026-01-12T11:00Z", "-o", "x.parquet"]
    assert main([*argv, "--variants", "a,b"]) == 2
    assert "--variants cannot be combined with --spec" in capsys.readouterr().err


NGINX_CANARY = """\
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: rt-nginx}
spec:
  provider: nginx
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  ingressRef: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: INGRESS}
  analysis:
    interval: 1m
    stepWeight: 10
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
"""


def test_fetch_uses_the_canarys_ingress_name_as_flagger_does(backfilled, tmp_path, capsys):
    """nginx queries select the Canary's ingressRef (Flagger's toMetricModel): the right
    name finds the backfilled series, another name finds none."""
    spec = Spec.load(NGINX_CANARY.replace("INGRESS", "podinfo"))
    assert dict(spec.names) == {"ingress": "podinfo"} and spec.provider == "nginx"
    assert Spec.load(spec.to_yaml()) == spec
    for ingress, code in (("podinfo", 0), ("other", 2)):
        path = tmp_path / f"{ingress}.yaml"
        path.write_text(NGINX_CANARY.replace("INGRESS", ingress))
        argv = [
            "fetch",
            "--url",
            backfilled.url,
            "--spec",
            str(path),
            "-o",
            str(tmp_path / "r.parquet"),
        ]
        argv += ["--start", "2026-01-12T10:01Z", "--end", "2026-01-12T11:00Z"]
        assert main(argv) == code, capsys.readouterr().err
    assert 'ingress="other"' in capsys.readouterr().err


def test_an_argo_dry_run_metric_is_judged_and_shown_but_never_decides(backfilled):
    """Argo's dryRun (docs/features/analysis.md "Dry-Run Mode": a dry-run metric "won't
    impact the final state of the rollout ... even if it fails"), against a real
    Prometheus: a condition no tick meets (result[0] >= 1.5 on a success ratio) rolls the
    Flagger judge back; the same metric in dry-run mode fails on every check, is shown,
    and the Flagger judge promotes as if it were not there. No judge rolls back on it."""
    failing = ARGO_TEMPLATE.replace("result[0] >= 0.9", "result[0] >= 1.5")
    dry = failing.replace("spec:\n", "spec:\n  dryRun: [{metricName: success}]\n", 1)
    window = {"start": "2026-01-12T10:01Z", "end": "2026-01-12T11:00Z"}
    plain = Spec.load("---\n".join((ARGO_ROLLOUT, failing)))
    rec = fetch_for_spec(backfilled.url, plain, **window)
    assert judge(rec, plain, judge="flagger").decision == "rollback"
    spec = Spec.load("---\n".join((ARGO_ROLLOUT, dry)))
    assert spec.metrics[0].queries == plain.metrics[0].queries  # the same data
    flagger = judge(rec, spec, judge="flagger")
    (shown,) = flagger.metrics
    assert (shown.name, shown.classification, shown.critical) == ("success-ratio", "fail", False)
    assert flagger.decision == "promote"
    for name in ("rolloutlab", "kayenta"):
        verdict = judge(rec, spec, judge=name)
        assert verdict.decision != "rollback" and [m.name for m in verdict.metrics] == [
            "success-ratio"
        ]


def test_a_gitops_repository_as_it_is_drives_fetch_and_judge(prometheus_binary, tmp_path, capsys):
    """stefanprodan/gitops-istio copied as it is (tests/fixtures/upstream/flagger/gitops):
    the backend Canary in apps/backend/ and its MetricTemplates in istio/gateway/, given as
    the repository folder and the Canary's name. fetch renders the templates for backend and
    backend-primary, judge reads them; no PromQL typed. The error-rate template's value is
    Flagger's (100 - success%), computed here from the simulation's counts."""
    from rolloutlab.sources.openmetrics import to_openmetrics
    from rolloutlab.sources.promserver import PrometheusServer
    from rolloutlab.sources.simulate import simulate

    repo = Path(__file__).parent / "fixtures" / "upstream" / "flagger" / "gitops"
    repo = repo / "stefanprodan__gitops-istio"
    truth = simulate("healthy", seed=4, duration_min=60)  # 10:01 to 11:00
    # scraped every 15 s: the templates' rate(...[30s]) needs two samples in 30 s
    text = to_openmetrics(
        truth, preset="istio", target="backend", namespace="prod", scrapes_per_step=4
    )
    out = tmp_path / "rec.parquet"
    with PrometheusServer(openmetrics=[text]) as server:
        argv = ["fetch", "--url", server.url, "--spec", str(repo), "--spec-name", "backend"]
        window = ["--start", "2026-01-12T10:05Z", "--end", "2026-01-12T11:00Z", "--step", "1m"]
        assert main([*argv, *window, "-o", str(out)]) == 0
    rec = load(out)
    frame = rec.frame
    for metric in ("error-rate", "latency"):
        assert set(frame.filter(pl.col("metric") == metric)["variant"]) == {"primary", "canary"}
    rows = truth.frame.filter(pl.col("variant") == "canary")
    errors = rows.filter(pl.col("metric") == "errors")["value"].sum()
    requests = rows.filter(pl.col("metric") == "requests")["value"].sum()
    measured = frame.filter((pl.col("metric") == "error-rate") & (pl.col("variant") == "canary"))
    assert measured["value"].mean() == pytest.approx(100 * errors / requests, abs=0.5)
    capsys.readouterr()
    spec_args = ["--spec", str(repo), "--spec-name", "backend", "--json"]
    assert main(["judge", str(out), *spec_args, "--judge", "flagger"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert {m["name"] for m in verdict["metrics"]} == {"error-rate", "latency"}
    assert all("no data" not in m["reason"].lower() for m in verdict["metrics"])
