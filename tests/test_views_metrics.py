"""Verdicts as Prometheus series, shaped like Flagger's.

Flagger's recorder (fluxcd/flagger ``pkg/metrics/recorder.go`` at 15bd6ad5):
``canary_status{name, namespace}`` is 0 while Progressing, 2 when Failed and 1 otherwise
(``SetStatus``); ``canary_weight{workload, namespace}`` holds the canary's weight on
``<target>`` and the primary's on ``<target>-primary`` (``SetWeight``);
``canary_metric_analysis{name, namespace, metric}`` each metric's value (``SetAnalysis``);
``name`` is ``cd.Spec.TargetRef.Name``. The text is read back with prometheus_client's own
parser, not with rolloutlab code.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from rolloutlab.judges.verdict import MetricResult
from rolloutlab.views.metrics import CanaryState, exposition


def samples(states):
    text = exposition(states).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_series_are_named_and_labelled_like_flaggers():
    fail = MetricResult("request-success-rate", "fail", "4x errors", estimate=4.2, unit="ratio")
    nan = MetricResult("request-duration", "nodata", "no data", estimate=float("nan"))
    states = [
        CanaryState("podinfo", "test", "rollback", 30.0, (fail, nan)),
        CanaryState("shop", "prod", "promote", 50.0),
        CanaryState("cart", "prod", "continue", None, judged=False),
    ]
    got = samples(states)
    assert got[("rolloutlab_canary_status", (("name", "podinfo"), ("namespace", "test")))] == 2
    assert got[("rolloutlab_canary_status", (("name", "shop"), ("namespace", "prod")))] == 1
    assert got[("rolloutlab_canary_status", (("name", "cart"), ("namespace", "prod")))] == 0
    weight = "rolloutlab_canary_weight"
    assert got[(weight, (("namespace", "test"), ("workload", "podinfo")))] == 30
    assert got[(weight, (("namespace", "test"), ("workload", "podinfo-primary")))] == 70
    assert not any(k[0] == weight and ("workload", "cart") in k[1] for k in got)  # no weight
    analysis = "rolloutlab_canary_metric_analysis"
    ids = (("name", "podinfo"), ("namespace", "test"))
    assert got[(analysis, (("metric", "request-success-rate"), *ids))] == 4.2
    assert (analysis, (("metric", "request-duration"), *ids)) not in got  # NaN is left out
    decision = "rolloutlab_canary_decision"
    assert got[(decision, (("decision", "rollback"), *ids))] == 1
    assert got[(decision, (("decision", "promote"), *ids))] == 0
    result = "rolloutlab_canary_metric_result"
    labels = (("classification", "fail"), ("metric", "request-success-rate"), *ids)
    assert got[(result, labels)] == 1
    assert got[("rolloutlab_canary_judged", (("name", "cart"), ("namespace", "prod")))] == 0


def test_no_canary_gives_valid_empty_families():
    assert samples([]) == {}
