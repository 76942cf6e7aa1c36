"""Kayenta canary configs as specs: upstream's own configs, its query builder, its judge.

Upstream facts come from spinnaker/kayenta at a69573be9d8fededacf80817e4151a2c8df41276
(the fixtures in tests/fixtures/upstream/kayenta/, see SOURCES.md there); each test names
the file it follows.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from rolloutlab.errors import SpecError
from rolloutlab.judges import judge
from rolloutlab.judges.kayenta import metric_config
from rolloutlab.sources.recording import Recording
from rolloutlab.sources.simulate import simulate
from rolloutlab.specs import ManifestWarning, Spec
from rolloutlab.specs.fetch import fetch_for_spec, template_queries
from rolloutlab.specs.kayenta import (
    Scope,
    expand_template,
    is_kayenta_config,
    kayenta_spec,
    prometheus_query,
)

FIXTURES = Path(__file__).parent / "fixtures" / "upstream" / "kayenta"
CPU_CONFIG = FIXTURES / "kayenta-integration-tests__prometheus__integration-test-cpu.json"
CPU_REQUEST = FIXTURES / "kayenta-integration-tests__cpu-successful-analysis-case.request.yaml"
CPU = "CPU usage for service"


def quiet_load(source: Any, **kw: Any) -> Spec:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ManifestWarning)
        return Spec.load(source, **kw)


def config(*metrics: dict[str, Any], **top: Any) -> dict[str, Any]:
    """A Kayenta canary config (CanaryConfig.java's fields) holding ``metrics``."""
    return {"name": "cfg", "metrics": list(metrics), "classifier": {"groupWeights": {}}, **top}


def prom(name: str = "cpu", groups: tuple[str, ...] = ("g",), **canary: Any) -> dict[str, Any]:
    """A Prometheus metric config with ``analysisConfigurations.canary`` = ``canary``."""
    return {
        "name": name,
        "query": {
            "type": "prometheus",
            "metricName": "cpu",
            "customInlineTemplate": 'app="${scope}"',
        },
        "groups": list(groups),
        "analysisConfigurations": {"canary": canary},
        "scopeName": "default",
    }


REQUEST = {
    "scopes": [{"controlScope": "podinfo-primary", "experimentScope": "podinfo", "step": 60}],
    "thresholds": {"pass": 75, "marginal": 50},
    "lifetimeDurationMins": 180,
    "analysisIntervalMins": 30,
}


# -- upstream's own configs ---------------------------------------------------------------


def test_the_corpus_is_every_upstream_config_each_named_in_sources():
    sources = (FIXTURES / "SOURCES.md").read_text()
    files = sorted(p.name for p in FIXTURES.glob("*.json"))
    assert len(files) == 14
    assert all(f"`{name}`" in sources for name in files)
    assert all(is_kayenta_config(json.loads((FIXTURES / f).read_text())) for f in files)


def test_integration_test_cpu_config_maps_each_field():
    # integration-test-cpu.json: critical, direction increase, group pod-group weighing 100,
    # scoreThresholds marginal 50 / pass 75 (used when no request gives thresholds)
    spec = quiet_load(CPU_CONFIG)
    (metric,) = spec.metrics
    assert (spec.judge, spec.name) == ("kayenta", "integration-test-canary-config")
    assert (metric.name, metric.kind, metric.metric) == (CPU, "gauge", CPU)
    assert (metric.direction, metric.critical, metric.must_have_data) == ("increase", True, False)
    assert metric.groups == ("pod-group",)
    assert spec.kayenta.group_weights == (("pod-group", 100.0),)
    assert (spec.kayenta.pass_score, spec.kayenta.marginal_score) == (75.0, 50.0)
    assert metric.queries == ()  # no request: the recording must hold the metric
    assert "integration_test_cpu" in metric.template


def test_without_a_request_a_warning_says_the_queries_are_not_rendered():
    with pytest.warns(ManifestWarning, match="no Kayenta execution request"):
        Spec.load(CPU_CONFIG)


def test_config_with_the_integration_tests_request_renders_both_scopes(tmp_path):
    # PrometheusMetricsService.buildQuery: the custom filter template
    # "namespace='${namespace}', scope='${scope}'" expanded with the scope and the
    # extendedScopeParams, split on ",", inside avg(metricName{...}); the request's step
    # (1 s), lifetime and interval (1 min) and thresholds (50/75), from
    # StandaloneCanaryAnalysisSteps.prepareRequest and application-cases.yml
    for path in (CPU_CONFIG, CPU_REQUEST):
        shutil.copy(path, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec = Spec.load(tmp_path)
    assert spec.metrics[0].queries == (
        (
            "primary",
            "avg(integration_test_cpu{namespace='prod-namespace-1', scope='myapp-prod-control-1'})",
        ),
        (
            "canary",
            "avg(integration_test_cpu{namespace='prod-namespace-1', scope='myapp-prod-canary-1'})",
        ),
    )
    assert spec.interval_s == 1.0
    assert (spec.kayenta.lifetime_s, spec.kayenta.judgment_interval_s) == (60.0, 60.0)
    assert (spec.kayenta.pass_score, spec.kayenta.marginal_score) == (75.0, 50.0)


def test_a_multi_document_file_holds_config_and_request(tmp_path):
    both = tmp_path / "canary.yaml"
    both.write_text(CPU_CONFIG.read_text() + "\n---\n" + CPU_REQUEST.read_text())
    spec = Spec.load(both)
    assert spec.metrics[0].queries[1][1].endswith("scope='myapp-prod-canary-1'})")


@pytest.mark.filterwarnings("ignore:.*no Kayenta execution request")
def test_muted_metric_is_left_out_as_kayenta_leaves_it_out_of_the_score():
    # muted-metric.json with ScoringHelper.score (muted results filtered before the
    # WeightedSumScorer); the integration test expects SUCCEEDED while it is High
    with pytest.warns(ManifestWarning, match="muted metric.*Failing metric"):
        spec = Spec.load(FIXTURES / "kayenta-integration-tests__prometheus__muted-metric.json")
    assert [m.name for m in spec.metrics] == ["Successful metric"]
    assert (spec.metrics[0].direction, spec.metrics[0].critical) == ("increase", True)


def test_scratch_prometheus_config_keeps_netflix_defaults_and_names_what_kayenta_ignores():
    # scratch/prometheus_canary_config.json: empty analysisConfigurations, so
    # NetflixACAJudge.classifyMetric's defaults: direction "either", critical false;
    # aggregationPeriod / sumByFields are not fields of PrometheusCanaryMetricSetQueryConfig
    # and Kayenta's ObjectMapper ignores them (FAIL_ON_UNKNOWN_PROPERTIES disabled)
    path = FIXTURES / "scratch__prometheus_canary_config.json"
    with pytest.warns(ManifestWarning) as caught:
        spec = Spec.load(path)
    said = " ".join(str(w.message) for w in caught)
    assert "'dredd-v1.0'" in said and "'sumByFields'" in said and "'groupByFields'" in said
    (metric,) = spec.metrics
    assert (metric.direction, metric.critical) == (None, None)
    assert metric_config(metric) == ("either", False)
    assert (spec.kayenta.pass_score, spec.kayenta.marginal_score) == (95.0, 75.0)


def test_scratch_prometheus_config_with_a_request_is_refused_as_kayenta_refuses_it():
    # PrometheusMetricsService.addScopeFilter: "Either a resource type or a custom filter
    # is required." (no resourceType, no customInlineTemplate / customFilterTemplate)
    data = json.loads((FIXTURES / "scratch__prometheus_canary_config.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ManifestWarning)
        with pytest.raises(SpecError, match="either a resource type or a custom filter"):
            kayenta_spec(data, request=REQUEST)


@pytest.mark.parametrize(
    ("fixture", "sources"),
    [
        ("kayenta-integration-tests__graphite__integration-test-cpu.json", ["graphite"]),
        ("kayenta-graphite__integration-test-canary-config.json", ["graphite"]),
        ("kayenta-graphite__sample-config.json", ["graphite"]),
        ("kayenta-atlas__sample-config.json", ["atlas"]),
        ("kayenta-signalfx__integration-test-canary-config.json", ["signalfx"]),
        ("kayenta-judge__test-config.json", ["atlas"]),
        ("scratch__atlas_canary_config.json", ["atlas"]),
        ("scratch__stackdriver_canary_config.json", ["stackdriver"]),
        ("scratch__newrelic_canary_config.json", ["newrelic"]),
        ("scratch__newrelic_adhoc_canary.json", ["newrelic"]),
    ],
)
@pytest.mark.filterwarnings("ignore:.*judge 'dredd-v1.0'")
def test_configs_without_a_prometheus_metric_are_refused_naming_their_sources(fixture, sources):
    data = json.loads((FIXTURES / fixture).read_text())
    names = [m["name"] for m in data.get("canaryConfig", data)["metrics"]]
    with pytest.raises(SpecError, match="no Prometheus metric") as caught:
        Spec.load(FIXTURES / fixture)
    message = str(caught.value)
    assert all(name in message for name in names)
    assert all(f"query type {s}" in message for s in sources)


def test_an_adhoc_request_holds_config_and_request_in_one(tmp_path):
    # CanaryAnalysisAdhocExecutionRequest {canaryConfig, executionRequest}, what
    # StandaloneCanaryAnalysisSteps.prepareRequest posts; a request may leave out thresholds
    # (then the config's scoreThresholds serve)
    request = yaml.safe_load(CPU_REQUEST.read_text())
    del request["thresholds"]
    adhoc = {"canaryConfig": json.loads(CPU_CONFIG.read_text()), "executionRequest": request}
    (tmp_path / "adhoc.json").write_text(json.dumps(adhoc))
    spec = Spec.load(tmp_path / "adhoc.json")
    assert dict(spec.metrics[0].queries)["primary"].endswith("scope='myapp-prod-control-1'})")
    assert (spec.kayenta.pass_score, spec.interval_s) == (75.0, 1.0)


def test_duplicated_metric_name_is_refused_as_kayenta_web_refuses_it():
    # CanaryConfigControllerTest.postCanaryConfig_returnsBadRequestResponseForDuplicateMetricName
    with pytest.raises(SpecError, match="'mem' is duplicated"):
        Spec.load(FIXTURES / "kayenta-web__duplicated-metric-name.json")


# -- the query builder: PrometheusMetricsServiceSpec."Can dry-run query generation" ----------

TEMPLATES = {"someTemplate": "some-label=${scope}", "anotherTemplate": "my-server-group=${scope}"}
PROMQL = 'PromQL:histogram_quantile(0.5, prometheus_http_response_size_bytes_bucket{instance="localhost:9090",handler="/graph"})'
PROMQL_SCOPE = PROMQL.replace('"/graph"', '"${scope}"')
PROMQL_QUANTILE = PROMQL_SCOPE.replace("0.5", "${quantile}")
CUSTOM = "customFilter=something,andSomething=else"
CUSTOM_QUERY = "avg(some-metric-name{customFilter=something,andSomething=else,a=b})"


@pytest.mark.parametrize(
    ("bindings", "named", "inline", "resource", "scope", "extended", "expected"),
    [
        (["a=b"], None, None, "gce_instance", "some-server-group", None,
         'avg(some-metric-name{a=b,instance=~"some-server-group-.{4}",zone=~".+/zones/us-central1-.{1}"})'),
        (["a=b"], None, "", "gce_instance", "some-server-group", None,
         'avg(some-metric-name{a=b,instance=~"some-server-group-.{4}",zone=~".+/zones/us-central1-.{1}"})'),
        (["a=b"], None, None, "aws_ec2_instance", "some-server-group", None,
         'avg(some-metric-name{a=b,asg_groupName="some-server-group",zone=~"us-central1.{1}"})'),
        (["a=b"], None, "", "aws_ec2_instance", "some-server-group", None,
         'avg(some-metric-name{a=b,asg_groupName="some-server-group",zone=~"us-central1.{1}"})'),
        (["a=b"], "someTemplate", None, "gce_instance", "some-app-canary", None,
         "avg(some-metric-name{some-label=some-app-canary,a=b})"),
        (["a=b"], "someTemplate", CUSTOM, "gce_instance", None, None, CUSTOM_QUERY),
        (["a=b"], None, CUSTOM, "gce_instance", None, None, CUSTOM_QUERY),
        (["a=b"], None, CUSTOM, "aws_ec2_instance", None, None, CUSTOM_QUERY),
        (["a=b"], None, CUSTOM, "anything_else", None, None, CUSTOM_QUERY),
        (["a=b"], "anotherTemplate", None, None, "some-baseline", None,
         "avg(some-metric-name{my-server-group=some-baseline,a=b})"),
        (["a=b"], "anotherTemplate", None, "", "some-canary", None,
         "avg(some-metric-name{my-server-group=some-canary,a=b})"),
        (None, None, PROMQL, None, None, None, PROMQL[len("PromQL:"):]),
        (None, None, PROMQL_SCOPE, None, "/graph", None, PROMQL[len("PromQL:"):]),
        (None, None, PROMQL_QUANTILE, None, "/graph", {"quantile": "0.99"},
         PROMQL[len("PromQL:"):].replace("0.5", "0.99")),
    ],
)  # fmt: skip
def test_queries_match_kayentas_query_generation_table(
    bindings, named, inline, resource, scope, extended, expected
):
    # kayenta-prometheus/src/test/groovy/com/netflix/kayenta/prometheus/metrics/
    # PrometheusMetricsServiceSpec.groovy, every row (scopeLabel "instance", location us-central1)
    query = {
        "type": "prometheus",
        "metricName": "some-metric-name",
        "labelBindings": bindings,
        "customFilterTemplate": named,
        "customInlineTemplate": inline,
        "resourceType": resource,
    }
    where = Scope(scope, "us-central1", tuple((extended or {}).items()))
    assert prometheus_query(query, where, TEMPLATES) == expected


def test_group_by_fields_follow_the_average():
    # PrometheusMetricsService.addGroupByQuery: " by (a,b)" after avg(...)
    query = {
        "metricName": "m",
        "customInlineTemplate": 'app="${scope}"',
        "groupByFields": ["a", "b"],
    }
    assert prometheus_query(query, Scope("x")) == 'avg(m{app="x"}) by (a,b)'


def test_templates_expand_as_kayentas_string_substitutor():
    # QueryConfigUtils.expandCustomFilter: StringSubstitutor with undefined variables an error
    bindings = {"scope": "podinfo"}
    assert expand_template("a=${scope},b=${zone:-eu}", bindings) == "a=podinfo,b=eu"
    assert expand_template("$${scope}", bindings) == "${scope}"
    with pytest.raises(SpecError, match=r"\$\{namespace\}.*extendedScopeParams"):
        expand_template("ns=${namespace}", bindings)


# -- analysis settings as NetflixACAJudge.classifyMetric reads them -------------------------


def test_analysis_configuration_fields_map_to_the_judge_settings():
    canary = {
        "direction": "decrease",
        "critical": True,
        "mustHaveData": True,
        "nanStrategy": "replace",
        "outliers": {"strategy": "remove", "outlierFactor": 2.5},
        "effectSize": {
            "allowedIncrease": 1.1,
            "allowedDecrease": 0.9,
            "criticalIncrease": 1.5,
            "criticalDecrease": 0.5,
        },
    }
    spec = kayenta_spec(config(prom(**canary)), request=REQUEST)
    (metric,) = spec.metrics
    assert (metric.direction, metric.critical, metric.must_have_data) == ("decrease", True, True)
    k = spec.kayenta
    assert (k.nan_strategy, k.remove_outliers, k.outlier_factor) == ("replace", True, 2.5)
    assert (k.allowed_increase, k.allowed_decrease) == (1.1, 0.9)
    assert (k.critical_increase, k.critical_decrease) == (1.5, 0.5)
    assert (k.confidence, k.effect_size_rule) == (0.98, 0.25)  # MannWhitneyClassifier's, fixed
    assert metric.queries == (
        ("primary", 'avg(cpu{app="podinfo-primary"})'),
        ("canary", 'avg(cpu{app="podinfo"})'),
    )


def test_unset_fields_are_netflix_defaults_and_cles_is_neutral_at_one_half():
    # NetflixACAJudge: nanStrategy "none" -> Remove, outliers "none" -> Keep, factor 3.0,
    # effect sizes default to 0.5 when measure is cles, else 1.0
    plain = kayenta_spec(config(prom()), request=REQUEST).kayenta
    assert (plain.nan_strategy, plain.remove_outliers, plain.outlier_factor) == (
        "remove",
        False,
        3.0,
    )
    assert plain.allowed_increase == plain.critical_decrease == 1.0
    cles = kayenta_spec(config(prom(effectSize={"measure": "cles"})), request=REQUEST).kayenta
    assert cles.effect_size_measure == "cles"
    assert (cles.allowed_increase, cles.allowed_decrease) == (0.5, 0.5)
    assert (cles.critical_increase, cles.critical_decrease) == (0.5, 0.5)


@pytest.mark.filterwarnings("ignore:.*no Kayenta execution request")
def test_request_thresholds_win_over_the_configs_own():
    # Kayenta judges with the execution request's thresholds (ExecutionMapper: "Execution
    # request must contain thresholds"); the config's scoreThresholds are the UI's defaults
    data = config(
        prom(),
        classifier={"groupWeights": {"g": 100}, "scoreThresholds": {"pass": 90, "marginal": 60}},
    )
    assert kayenta_spec(data).kayenta.pass_score == 90.0
    assert kayenta_spec(data, request=REQUEST).kayenta.pass_score == 75.0


def test_the_core_request_shape_gives_scopes_too():
    # CanaryExecutionRequest: scopes {name: {controlScope: CanaryScope, experimentScope: ...}}
    request = {
        "scopes": {
            "default": {
                "controlScope": {"scope": "podinfo-primary", "location": "eu", "step": 30},
                "experimentScope": {"scope": "podinfo", "location": "eu", "step": 30},
            }
        },
        "thresholds": {"pass": 95, "marginal": 75},
    }
    spec = kayenta_spec(config(prom()), request=request)
    assert spec.interval_s == 30.0
    assert dict(spec.metrics[0].queries)["canary"] == 'avg(cpu{app="podinfo"})'


def test_other_sources_are_named_in_one_warning_and_the_weights_rescaled():
    datadog = {"name": "errors", "query": {"type": "datadog", "metricName": "x"}, "groups": ["b"]}
    data = config(prom(groups=("a",)), datadog, classifier={"groupWeights": {"a": 40, "b": 60}})
    with pytest.warns(ManifestWarning) as caught:
        spec = kayenta_spec(data, request=REQUEST)
    said = [str(w.message) for w in caught]
    assert any("errors (query type datadog)" in s for s in said)
    assert any("scales them to 100" in s for s in said)
    assert spec.kayenta.group_weights == (("a", 100.0),)


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (config({"name": "cpu", "groups": ["g"]}), r"metrics\[0\].query: metric 'cpu' has no query"),
        (config(prom(direction="increasing")), r"direction: unknown value 'increasing'. Did you mean 'increase'"),
        (config(prom(nanStrategy="drop")), r"nanStrategy: unknown value 'drop'"),
        (config(prom(effectSize={"measure": "ratio"})), r"effectSize.measure: unknown value"),
        (config(prom(critical="yes")), r"critical: expected true or false"),
        (config(prom(), classifier={"groupWeights": {"g": 60, "h": 60}}), r"more than 100"),
        (config(prom(), classifier={"groupWeights": {"g": 50}}), r"groups with metrics \(g\) total 50.*must total 100"),
        ({"name": "cfg", "metrics": [], "classifier": {}}, r"metrics: missing or empty"),
    ],
)  # fmt: skip
def test_bad_configs_are_refused_saying_what_and_how_to_fix(data, message):
    # group weights: CanaryClassifierConfig's schema says "Weights must total 100." (Kayenta
    # does not check it; its WeightedSumScorer then caps the score below 100, or gives
    # unweighted groups a negative share); unknown directions: Kayenta falls back to
    # "either" (MetricDirection.parse), rolloutlab refuses the typo
    with pytest.raises(SpecError, match=message):
        kayenta_spec(data, request=REQUEST)


def test_bad_query_references_are_refused():
    metric = prom()
    metric["query"] = {"type": "prometheus", "metricName": "m", "customFilterTemplate": "nope"}
    with pytest.raises(
        SpecError, match="template 'nope' is referenced, but the config defines no templates"
    ):
        kayenta_spec(config(metric), request=REQUEST)
    metric["query"] = {
        "type": "prometheus",
        "metricName": "m",
        "customInlineTemplate": "ns=${namespace}",
    }
    with pytest.raises(SpecError, match=r"\(control\): the template uses \$\{namespace\}"):
        kayenta_spec(config(metric), request=REQUEST)
    metric["scopeName"] = "other"
    with pytest.raises(SpecError, match="the request has no scope 'other'"):
        kayenta_spec(config(metric), request=REQUEST)


def test_request_features_rolloutlab_does_not_judge_are_refused():
    for key, value in (("lookbackMins", 10),):
        with pytest.raises(SpecError, match="lookbackMins"):
            kayenta_spec(config(prom()), request={**REQUEST, key: value})
    offset = {**REQUEST, "scopes": [{**REQUEST["scopes"][0], "controlOffsetInMinutes": 10}]}
    with pytest.raises(SpecError, match="controlOffsetInMinutes"):
        kayenta_spec(config(prom()), request=offset)


@pytest.mark.filterwarnings("ignore:.*no Kayenta execution request")
def test_a_dict_is_recognised_by_its_shape():
    spec = Spec.from_dict(config(prom()))
    assert spec.judge == "kayenta" and spec.metrics[0].name == "cpu"


# -- end to end: the upstream config drives the Kayenta judge on a simulated rollout ---------


def simulated(**overrides: Any) -> Recording:
    """A simulated rollout whose CPU gauge is recorded under the config's metric name."""
    rec = simulate("healthy", seed=1, **overrides)
    metric = pl.col("metric")
    frame = rec.frame.with_columns(
        pl.when(metric == "cpu").then(pl.lit(CPU)).otherwise(metric).alias("metric")
    )
    return Recording(frame, rec.meta)


@pytest.fixture(scope="module")
def cpu_spec() -> Spec:
    data = json.loads(CPU_CONFIG.read_text())
    return kayenta_spec(
        data,
        request={
            **REQUEST,
            "scopes": [{**REQUEST["scopes"][0], "extendedScopeParams": {"namespace": "test"}}],
        },
    )


def test_upstream_config_promotes_a_healthy_canary(cpu_spec):
    # PrometheusStandaloneCanaryAnalysisTest.canaryAnalysisIsSuccessful: Pass, score 100
    verdict = judge(simulated(), cpu_spec, judge="kayenta")
    assert verdict.decision == "promote"
    assert verdict.metric(CPU).details["label"] == "Pass"
    assert verdict.ticks[-1].state["score"] == 100.0
    assert [t.timestamp.minute for t in verdict.ticks if t.state["judged"]] == [30, 0, 30, 0, 30, 0]


def test_upstream_config_rolls_back_a_canary_using_more_cpu(cpu_spec):
    # canaryAnalysisIsFailed: High, a critical metric, so the score is 0 (not above marginal)
    verdict = judge(simulated(cpu_shift=(0.0, 0.1)), cpu_spec, judge="kayenta")
    assert verdict.decision == "rollback"
    assert verdict.metric(CPU).details["label"] == "High"
    assert verdict.ticks[-1].state["score"] == 0.0
    assert "<= marginal 50" in verdict.reason


def test_direction_increase_lets_a_canary_using_less_cpu_pass(cpu_spec):
    # MannWhitneyClassifier: with direction Increase a Low result is Pass
    verdict = judge(simulated(cpu_shift=(0.0, -0.1)), cpu_spec, judge="kayenta")
    assert (verdict.decision, verdict.metric(CPU).details["label"]) == ("promote", "Pass")


def test_each_metric_keeps_its_own_analysis_settings_as_kayenta_reads_them(cpu_spec):
    # NetflixACAJudge.classifyMetric reads nanStrategy, outliers and effectSize from each
    # metric's analysisConfigurations: a CPU rise that is High under the default allowed
    # increase (1.0) passes a metric that allows 1.5 times the control's mean
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ManifestWarning)
        spec = kayenta_spec(config(prom("a"), prom("b", effectSize={"allowedIncrease": 1.5})))
    strict, lenient = spec.metrics
    assert spec.kayenta.allowed_increase == 1.0 and strict.kayenta is None
    assert lenient.kayenta is not None and lenient.kayenta.allowed_increase == 1.5
    assert Spec.from_dict(spec.to_dict()).metrics == spec.metrics  # written out, read back
    rec = simulated(cpu_shift=(0.0, 0.1))
    own = dataclasses.replace(cpu_spec.metrics[0], kayenta=lenient.kayenta)
    verdict = judge(rec, dataclasses.replace(cpu_spec, metrics=(own,)), judge="kayenta")
    assert verdict.metric(CPU).details["label"] == "Pass"
    assert judge(rec, cpu_spec, judge="kayenta").metric(CPU).details["label"] == "High"


def test_rendered_queries_fetch_both_variants_from_a_real_prometheus(backfilled):
    # a PromQL: inline template (PrometheusMetricsService.buildQuery returns it as it is)
    # over the Istio series the session's Prometheus holds for test/podinfo
    ratio = (
        'PromQL:sum(increase(istio_requests_total{reporter="destination",'
        'destination_workload_namespace="${namespace}",destination_workload="${scope}",'
        'response_code=~"5.."}[1m])) / sum(increase(istio_requests_total{'
        'reporter="destination",destination_workload_namespace="${namespace}",'
        'destination_workload="${scope}"}[1m]))'
    )
    metric = prom("error-ratio", direction="increase", critical=True)
    metric["query"] = {"type": "prometheus", "customInlineTemplate": ratio}
    scope = {**REQUEST["scopes"][0], "extendedScopeParams": {"namespace": "test"}}
    spec = kayenta_spec(config(metric), request={**REQUEST, "scopes": [scope]})
    rec = fetch_for_spec(backfilled.url, spec, start="2026-01-12T10:01Z", end="2026-01-12T13:00Z")
    assert set(rec.frame["variant"]) == {"primary", "canary"}
    assert rec.meta["template_queries"]["error-ratio"]["canary"] == ratio[len("PromQL:") :].replace(
        "${namespace}", "test"
    ).replace("${scope}", "podinfo")
    verdict = judge(rec, spec, judge="kayenta")
    result = verdict.metric("error-ratio")
    assert result.details["n_control"] == result.details["n_experiment"] == 180  # 10:01-13:00
    assert result.details["label"] == "Pass" and verdict.decision == "promote"


def test_fetching_without_a_request_says_the_scopes_are_missing():
    spec = quiet_load(CPU_CONFIG)
    with pytest.raises(SpecError, match="no execution request gives its scopes"):
        template_queries(spec)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"passScore": 90}, r"metrics\[0\].kayenta.passScore: unknown field. Known fields here: confidence"),
        ({"alowedIncrease": 1.2}, r"Did you mean 'allowedIncrease'\?"),
        ({"allowedIncrease": -1}, r"kayenta.allowedIncrease: -1 is out of range"),
    ],
)  # fmt: skip
def test_a_metrics_own_kayenta_settings_are_checked_like_the_specs(settings, message):
    # the scores and the schedule belong to the whole analysis, not to one metric
    metric = {"name": "cpu", "kind": "gauge", "kayenta": settings}
    with pytest.raises(SpecError, match=message):
        Spec.from_dict({"judge": "kayenta", "metrics": [metric]})
