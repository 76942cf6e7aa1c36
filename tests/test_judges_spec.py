"""Spec loading: Flagger Canary manifests, rolloutlab's YAML, validation, round trips."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rolloutlab.errors import SpecError
from rolloutlab.specs import (
    JUDGE_NAMES,
    KayentaSettings,
    MetricSpec,
    Spec,
    default_metrics,
    format_duration,
    parse_duration,
)

PODINFO = """
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  provider: istio
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo-deploy
  progressDeadlineSeconds: 60
  service:
    port: 9898
  analysis:
    interval: 1m
    threshold: 5
    maxWeight: 50
    stepWeight: 10
    metrics:
    - name: request-success-rate
      thresholdRange:
        min: 99
      interval: 1m
    - name: request-duration
      thresholdRange:
        max: 500
      interval: 30s
    - name: not-found-percentage
      templateRef:
        name: not-found-percentage
        namespace: istio-system
      thresholdRange:
        max: 5
      interval: 1m
    webhooks:
    - name: load-test
      url: http://flagger-loadtester.test/
      timeout: 5s
"""


def analysis(body: str) -> str:
    """A Canary manifest whose spec.analysis is ``body`` (indented YAML)."""
    head = "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: app}\n"
    return head + "spec:\n  targetRef: {name: app}\n  analysis:\n" + body


def raises(text: str, *fragments: str) -> str:
    with pytest.raises(SpecError) as info:
        Spec.load(text)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


# -- Flagger manifests --------------------------------------------------------------


def test_flagger_canary_manifest():
    spec = Spec.load(PODINFO)
    assert (spec.name, spec.namespace, spec.target) == ("podinfo", "test", "podinfo-deploy")
    assert (spec.interval_s, spec.threshold, spec.max_weight, spec.step_weight) == (60, 5, 50, 10)
    assert spec.weight_plan() == (10, 20, 30, 40, 50)
    rate, duration, template = spec.metrics
    assert (rate.kind, rate.metric, rate.denominator) == ("ratio", "errors", "requests")
    assert (rate.threshold_min, rate.threshold_max, rate.interval_s) == (99, None, 60)
    assert (duration.kind, duration.metric, duration.quantile) == ("latency", "latency_ms", 0.99)
    assert (duration.threshold_min, duration.threshold_max, duration.interval_s) == (None, 500, 30)
    assert template.template == "MetricTemplate istio-system/not-found-percentage"
    assert (template.kind, template.metric, template.threshold_max) == (
        "gauge",
        "not-found-percentage",
        5,
    )


def test_flagger_defaults_are_flaggers():
    spec = Spec.load(analysis("    stepWeight: 5\n"))
    # GetAnalysisThreshold: 0 means 1; maxWeight 0 means 100; interval default 60s
    assert (spec.threshold, spec.max_weight, spec.interval_s) == (1, 100, 60)
    assert spec.metrics == ()


def test_flagger_interval_is_clamped_to_ten_seconds():
    assert Spec.load(analysis("    interval: 5s\n    stepWeight: 5\n")).interval_s == 10


def test_flagger_step_weights_set_max_weight():
    spec = Spec.load(analysis("    maxWeight: 80\n    stepWeights: [1, 5, 25, 50]\n"))
    assert spec.weight_plan() == (1, 5, 25, 50)
    assert (spec.max_weight, spec.step_weight) == (50, 0)


def test_flagger_step_weight_wins_over_step_weights():
    spec = Spec.load(analysis("    stepWeight: 10\n    stepWeights: [5, 25, 30]\n"))
    assert spec.step_weights == ()
    assert spec.max_weight == 30  # maxWeight still comes from stepWeights (Flagger's maxWeight())
    assert spec.weight_plan() == (10, 20, 30)


def test_flagger_iterations_ab_and_blue_green():
    ab = Spec.load(analysis("    iterations: 10\n    match: [{headers: {x: {exact: a}}}]\n"))
    bg = Spec.load(analysis("    iterations: 10\n"))
    assert (ab.iterations, ab.ab_testing) == (10, True)
    assert (bg.iterations, bg.ab_testing) == (10, False)


def test_flagger_deprecated_canary_analysis_and_threshold():
    text = PODINFO.replace("analysis:", "canaryAnalysis:").replace(
        "thresholdRange:\n        max: 500", "threshold: 500"
    )
    spec = Spec.load(text)
    assert spec.metrics[1].threshold_max == 500


def test_flagger_metric_without_range_keeps_flaggers_zero_threshold():
    spec = Spec.load(analysis("    stepWeight: 5\n    metrics:\n    - name: request-duration\n"))
    assert spec.metrics[0].threshold_max == 0  # Flagger fails any duration > 0 ms here
    spec = Spec.load(
        analysis("    stepWeight: 5\n    metrics:\n    - name: request-success-rate\n")
    )
    assert spec.metrics[0].threshold_min is None


def test_multi_document_file_uses_the_canary(tmp_path):
    path = tmp_path / "podinfo.yaml"
    path.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n---\n" + PODINFO)
    assert Spec.load(path).name == "podinfo"
    assert Spec.load(str(path)).name == "podinfo"


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            PODINFO.replace("min: 99", "min: abc"),
            ("spec.analysis.metrics[0].thresholdRange.min", "expected a number like 99, got 'abc'"),
        ),
        (
            PODINFO.replace(
                "thresholdRange:\n        max: 5\n", "tresholdRange:\n        max: 5\n"
            ),
            ("spec.analysis.metrics[2].tresholdRange", "Did you mean 'thresholdRange'?"),
        ),
        (PODINFO.replace("stepWeight: 10", "stepWieght: 10"), ("Did you mean 'stepWeight'?",)),
        (PODINFO.replace("analysis:", "analisys:"), ("spec.analisys", "Did you mean 'analysis'?")),
        (
            PODINFO.replace("interval: 1m\n    threshold", "interval: soon\n    threshold"),
            ("spec.analysis.interval", "expected a duration like '1m'"),
        ),
        (PODINFO.replace("maxWeight: 50", "maxWeight: 150"), ("maxWeight", "between 0 and 100")),
        (PODINFO.replace("threshold: 5", "threshold: 2.5"), ("expected a whole number",)),
        (PODINFO.replace("min: 99", "min: 99\n        max: 90"), ("min 99 is above max 90",)),
        (
            PODINFO.replace("provider: istio", "provider: istio\n  skipAnalysis: true"),
            ("spec.skipAnalysis",),
        ),
        (
            PODINFO.replace(
                "      templateRef:\n        name: not-found-percentage\n"
                "        namespace: istio-system\n",
                "",
            ),
            ("not a Flagger built-in", "templateRef"),
        ),
        (analysis("    threshold: 5\n"), ("stepWeight", "no weight plan")),
        (PODINFO.replace("flagger.app/v1beta1", "example.com/v1"), ("apiVersion",)),
    ],
)
def test_flagger_errors_name_the_field_and_the_fix(text, fragments):
    raises(text, *fragments)


# -- rolloutlab's own YAML ------------------------------------------------------------


def test_rolloutlab_yaml():
    spec = Spec.load(
        """
        judge: kayenta
        interval: 30s
        threshold: 3
        max_weight: 60          # snake_case is accepted
        stepWeight: 20
        alpha: 0.01
        minExposure: 500
        control: stable
        treatment: preview
        kayenta: {judgmentInterval: 1h, lifetime: 3h, groupWeights: {errors: 70, latency: 30}}
        metrics:
          - name: request-success-rate
            thresholdRange: {min: 98}
          - name: cpu
            kind: gauge
            direction: either
            critical: false
            margin: 0.2
            groups: [system]
        """
    )
    assert (spec.judge, spec.interval_s, spec.threshold, spec.max_weight) == ("kayenta", 30, 3, 60)
    assert spec.weight_plan() == (20, 40, 60)
    assert (spec.alpha, spec.min_exposure, spec.control, spec.treatment) == (
        0.01,
        500,
        "stable",
        "preview",
    )
    assert (spec.kayenta.judgment_interval_s, spec.kayenta.lifetime_s) == (3600, 10800)
    assert dict(spec.kayenta.group_weights) == {"errors": 70, "latency": 30}
    rate, cpu = spec.metrics
    assert rate == MetricSpec(
        "request-success-rate",
        "ratio",
        "errors",
        "requests",
        direction="increase",  # a built-in keeps its direction and criticality
        critical=True,
        margin=0.0,
        threshold_min=98,
    )
    assert cpu == MetricSpec(
        "cpu", "gauge", "cpu", direction="either", critical=False, margin=0.2, groups=("system",)
    )


def test_no_spec_means_defaults():
    assert Spec.load(None) == Spec()
    assert Spec().metrics == default_metrics()


def test_cles_measure_defaults_to_its_neutral_value():
    kayenta = Spec.load("kayenta: {effectSizeMeasure: cles, allowedIncrease: 0.8}").kayenta
    assert (kayenta.allowed_increase, kayenta.allowed_decrease, kayenta.critical_decrease) == (
        0.8,
        0.5,
        0.5,
    )


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("maxWieght: 3", ("maxWieght: unknown field", "Did you mean 'maxWeight'?")),
        ("metrics: [{name: x, knd: gauge}]", ("metrics[0].knd", "Did you mean 'kind'?")),
        ("metrics: [{name: x, kind: guage}]", ("metrics[0].kind", "Did you mean 'gauge'?")),
        ("metrics: [{name: x}]", ("metrics[0].kind", "missing")),
        ("metrics: [{name: e, kind: ratio}]", ("metrics[0].denominator", "denominator: requests")),
        ("metrics: [{kind: gauge}]", ("metrics[0].name", "missing")),
        (
            "metrics: [{name: x, kind: gauge}, {name: x, kind: gauge}]",
            ("metric names ['x'] appear twice",),
        ),
        ("judge: kayanta", ("judge", "Did you mean 'kayenta'?")),
        ("alpha: 1.5", ("alpha", "out of range", "> 0 and < 1")),
        ("kayenta: {confidence: 1}", ("kayenta.confidence", "< 1")),
        ("interval: -1", ("interval", "positive")),
        ("threshold: 0", ("threshold", ">= 1")),
        ("stepWeight: 0", ("no weight plan",)),
        ("stepWeights: [20, 10]", ("stepWeights", "rising order")),
        ("kayenta: {passScore: 50}", ("kayenta.marginalScore", "above passScore")),
        ("kayenta: {groupWeights: {a: 80, b: 30}}", ("kayenta.groupWeights", "more than 100")),
        ("maxWeight: 10\nmax_weight: 20", ("max_weight", "given twice")),
        ("abTesting: true", ("iterations", "A/B testing without iterations")),
        ("metrics: {name: x}", ("metrics", "expected a list")),
        ("interval: [1m", ("line 1", "not valid YAML")),
        ("- a\n- b", ("expected a mapping",)),
    ],
)
def test_rolloutlab_errors_name_the_field_and_the_fix(text, fragments):
    raises(text, *fragments)


def test_missing_file():
    with pytest.raises(SpecError, match="no such spec file"):
        Spec.load("nowhere/spec.yaml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1m", 60),
        ("30s", 30),
        ("1m30s", 90),
        ("1.5h", 5400),
        ("500ms", 0.5),
        (45, 45),
        ("2h", 7200),
    ],
)
def test_go_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_whole_seconds_are_written_as_go_durations():
    assert [format_duration(s) for s in (60, 90, 7200, 0.5)] == ["1m", "90s", "2h", 0.5]


# -- writing, replace, round trip ---------------------------------------------------


def test_replace_validates_and_accepts_both_spellings():
    spec = Spec()
    assert spec.replace(max_weight=80, stepWeight=20).weight_plan() == (20, 40, 60, 80)
    assert spec.replace(step_weights=[5, 25]).weight_plan() == (5, 25)
    assert spec.replace(kayenta={"pass_score": 90}).kayenta.pass_score == 90
    assert spec.replace(metrics=[spec.metrics[0]]).metrics == spec.metrics[:1]
    assert spec.replace(interval_s=30).interval_s == 30
    with pytest.raises(SpecError, match="Did you mean 'threshold'"):
        spec.replace(treshold=3)
    with pytest.raises(SpecError, match="alpha"):
        spec.replace(alpha=2)


def test_flagger_manifest_round_trips_through_rolloutlab_yaml():
    spec = Spec.load(PODINFO)
    assert Spec.from_yaml(spec.to_yaml()) == spec


names = st.text(alphabet=string.ascii_lowercase + string.digits + "-_", min_size=1, max_size=10)
positive = st.floats(min_value=1.0, max_value=1e6, allow_nan=False)  # schema.MIN_INTERVAL_S
durations = st.one_of(positive, st.integers(min_value=1, max_value=10**7).map(float))
fractions = st.floats(min_value=1e-6, max_value=1.0, exclude_max=True)
percent = st.floats(min_value=0.0, max_value=100.0)
bounds = st.tuples(st.none() | st.floats(-1e6, 1e6), st.none() | st.floats(-1e6, 1e6)).map(
    lambda b: tuple(sorted(b)) if None not in b else b
)


@st.composite
def metric_specs(draw, name):
    kind = draw(st.sampled_from(["ratio", "latency", "gauge", "counter"]))
    low, high = draw(bounds)
    return MetricSpec(
        name=name,
        kind=kind,
        metric=draw(names),
        denominator=draw(names) if kind == "ratio" else draw(st.none() | names),
        direction=draw(st.sampled_from(["increase", "decrease", "either"])),
        critical=draw(st.booleans()),
        margin=draw(st.floats(0, 10)),
        alpha=draw(st.none() | fractions),
        threshold_min=low,
        threshold_max=high,
        interval_s=draw(durations),
        quantile=draw(st.floats(0, 1)),
        must_have_data=draw(st.booleans()),
        groups=tuple(draw(st.lists(names, max_size=3))),
        template=draw(st.none() | names),
    )


@st.composite
def kayenta_settings(draw):
    marginal, passing = sorted(draw(st.tuples(percent, percent)))
    return KayentaSettings(
        pass_score=passing,
        marginal_score=marginal,
        confidence=draw(fractions),
        allowed_increase=draw(st.floats(0, 10)),
        allowed_decrease=draw(st.floats(0, 10)),
        critical_increase=draw(st.floats(0, 10)),
        critical_decrease=draw(st.floats(0, 10)),
        effect_size_rule=draw(st.floats(0, 1)),
        judgment_interval_s=draw(durations),
        lifetime_s=draw(st.none() | durations),
        remove_outliers=draw(st.booleans()),
        outlier_factor=draw(positive),
        nan_strategy=draw(st.sampled_from(["remove", "replace"])),
        effect_size_measure=draw(st.sampled_from(["meanRatio", "cles"])),
        group_weights=tuple(draw(st.dictionaries(names, st.floats(0, 25), max_size=4)).items()),
    )


@st.composite
def specs(draw):
    metric_names = draw(st.lists(names, unique=True, max_size=4))
    iterations = draw(st.none() | st.integers(1, 100))
    steps = sorted(set(draw(st.lists(st.floats(0.5, 100), max_size=4))))
    return Spec(
        interval_s=draw(durations),
        threshold=draw(st.integers(1, 100)),
        max_weight=draw(st.floats(0.5, 100)),
        step_weight=draw(st.floats(0.5, 100)),
        step_weights=tuple(steps),
        step_weight_promotion=draw(st.just(0.0) | st.floats(0.1, 100)),  # MIN_STEP_WEIGHT
        iterations=iterations,
        ab_testing=iterations is not None and draw(st.booleans()),
        metrics=tuple(draw(metric_specs(n)) for n in metric_names),
        alpha=draw(fractions),
        judge=draw(st.sampled_from(JUDGE_NAMES)),
        min_exposure=draw(st.floats(0, 1e9)),
        control=draw(st.none() | names),
        treatment=draw(st.none() | names),
        name=draw(st.none() | names),
        namespace=draw(st.none() | names),
        target=draw(st.none() | names),
        kayenta=draw(kayenta_settings()),
    )


@settings(max_examples=200, deadline=None)
@given(specs())
def test_to_dict_from_dict_is_lossless(spec):
    assert Spec.from_dict(spec.to_dict()) == spec


@settings(max_examples=50, deadline=None)
@given(specs())
def test_yaml_round_trip_is_lossless(spec):
    assert Spec.from_yaml(spec.to_yaml()) == spec
