"""Fuzzing spec YAML (rolloutlab specs, Flagger Canaries with MetricTemplates, Argo
Rollouts with AnalysisTemplates, and damaged text) with hypothesis.

Seeded, bounded in time, asserting that nothing but a ``RolloutlabError`` escapes and that
an accepted spec is within the sane ranges: its weight plan and intervals cannot size
anything absurdly.
"""

from __future__ import annotations

import math

import pytest
import yaml
from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st

from rolloutlab.errors import RolloutlabError
from rolloutlab.specs import Spec
from rolloutlab.specs.schema import MAX_DURATION_S, MIN_INTERVAL_S

SCALARS = st.one_of(
    st.sampled_from(
        [
            0, 1, -1, 10, 50, 100, 101, 10**30, 2**63, 0.5, 1e-300, 1e300, math.inf, -math.inf,
            math.nan, True, False, None, "", "1m", "30s", "1ms", "0s", "-1m", "1e300h", "10y",
            "1h30m", "abc", "rolloutlab", "flagger", "kayenta", "increase", "ratio", "latency",
            "gauge", "counter", "errors", "requests", "latency_ms", "hold", "rollback",
        ]
    ),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
)  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
SPEC_KEYS = [
    "name", "judge", "interval", "threshold", "maxWeight", "stepWeight", "stepWeights",
    "stepWeightPromotion", "iterations", "abTesting", "alpha", "minExposure", "promotion",
    "maxAnalysisTime", "onInconclusive", "metrics", "kayenta", "step_weight", "bogus",
]  # fmt: skip
METRIC_KEYS = [
    "name", "kind", "metric", "denominator", "direction", "critical", "margin", "alpha",
    "thresholdRange", "interval", "quantile", "mustHaveData", "queries", "count",
]  # fmt: skip


def mapping(keys: list[str], values: st.SearchStrategy = VALUES) -> st.SearchStrategy:
    return st.dictionaries(st.sampled_from(keys), values, max_size=len(keys))


NATIVE = mapping(SPEC_KEYS, st.one_of(VALUES, st.lists(mapping(METRIC_KEYS), max_size=3)))
CANARY = st.builds(
    lambda analysis, metrics: [
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "targetRef": {"kind": "Deployment", "name": "podinfo"},
                "analysis": {**analysis, "metrics": metrics},
            },
        },
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "MetricTemplate",
            "metadata": {"name": "t", "namespace": "test"},
            "spec": {"provider": {"type": "prometheus"}, "query": "sum(x)"},
        },
    ],
    mapping(["interval", "threshold", "maxWeight", "stepWeight", "stepWeights", "iterations"]),
    st.lists(
        st.one_of(
            mapping(["name", "interval", "thresholdRange", "query", "templateRef"]),
            st.just({"name": "t", "templateRef": {"name": "t"}, "thresholdRange": {"max": 1}}),
        ),
        max_size=3,
    ),
)
ROLLOUT = st.builds(
    lambda steps, interval, condition: [
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "app"},
            "spec": {"strategy": {"canary": {"steps": steps}}},
        },
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": {"name": "rate"},
            "spec": {
                "metrics": [
                    {
                        "name": "rate",
                        "interval": interval,
                        "successCondition": condition,
                        "provider": {"prometheus": {"address": "http://p:9090", "query": "x"}},
                    }
                ]
            },
        },
    ],
    st.lists(
        st.one_of(
            st.fixed_dictionaries({"setWeight": SCALARS}),
            st.fixed_dictionaries(
                {"pause": st.one_of(st.just({}), st.fixed_dictionaries({"duration": SCALARS}))}
            ),
            st.just({"analysis": {"templates": [{"templateName": "rate"}]}}),
            mapping(["setWeight", "pause", "analysis", "experiment"]),
        ),
        max_size=5,
    ),
    SCALARS,
    st.sampled_from(["result[0] >= 0.95", "result[0] <", "", "len(result) > 1e400"]),
)


def dump(doc) -> str:
    if isinstance(doc, list):
        return yaml.safe_dump_all(doc, allow_unicode=True)
    return yaml.safe_dump(doc, allow_unicode=True)


TRICKS = st.sampled_from(
    [
        "a: &a [1]\nb: [*a, *a]\n",
        "!!python/object/apply:os.system ['true']\n",
        "interval: !!binary aGVsbG8=\n",
        "interval: 2026-01-12\n",
        "x: &x {y: *x}\n",
        "stepWeights: [" + ",".join(["10"] * 5000) + "]\n",
        "---\n---\n---\n",
        "%YAML 1.1\n---\nname: x\n",
        "? [a, b]\n: c\n",
        "interval: 1m\ninterval_s: 60\n",
        "{" * 70 + "}" * 70,
        "\t- x",
        'name: "\\ud800"\n',
    ]
)


def damaged(text: str, cut: int, junk: str) -> str:
    at = cut % (len(text) + 1)
    return text[:at] + junk + text[at:]


SPEC_TEXT = st.one_of(
    NATIVE.map(dump),
    CANARY.map(dump),
    ROLLOUT.map(dump),
    TRICKS,
    st.builds(
        damaged,
        st.one_of(NATIVE.map(dump), CANARY.map(dump)),
        st.integers(0, 4000),
        st.text(max_size=4),
    ),
)


@pytest.mark.filterwarnings("ignore::UserWarning")  # ManifestWarning: what is left out
@fuzz(500)
@given(SPEC_TEXT)
def test_any_spec_text_loads_within_bounds_or_is_refused(text):
    try:
        spec = Spec.from_yaml(text)
    except RolloutlabError as exc:
        assert str(exc) and len(str(exc)) < 10_000
        return
    assert len(spec.weight_plan()) <= 1_000
    for interval in (spec.interval_s, *(m.interval_s for m in spec.metrics)):
        assert MIN_INTERVAL_S <= interval <= MAX_DURATION_S


@pytest.mark.filterwarnings("ignore::UserWarning")
@fuzz(200)
@given(st.one_of(NATIVE, CANARY.map(lambda docs: docs[0]), ROLLOUT.map(lambda docs: docs[0])))
def test_any_spec_mapping_loads_or_is_refused(data):
    try:
        Spec.load(data)
    except RolloutlabError as exc:
        assert str(exc) and len(str(exc)) < 10_000
