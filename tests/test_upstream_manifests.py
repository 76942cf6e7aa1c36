"""Every upstream Canary and Rollout in tests/fixtures/upstream/ (see the SOURCES.md files)
loads, with the fields upstream would use, or is refused with a clear error.

Expected values are computed here from the raw YAML by upstream's rules, not by rolloutlab:
fluxcd/flagger pkg/apis/flagger/v1beta1/canary.go (GetAnalysisInterval: default 60 s,
at least 10 s; GetAnalysisThreshold: 1 when unset; DeploymentStrategy: iterations mean
blue/green or A/B), pkg/controller/scheduler.go (maxWeight, nextStepWeight; the kubernetes
provider is blue/green with 10 iterations), pkg/controller/scheduler_metrics.go (template
lookup by name in templateRef.namespace or the Canary's) and pkg/apis/flagger/v1beta1/
metric.go (template variables); argoproj/argo-rollouts docs/features/canary.md (setWeight
and pause steps) and docs/features/analysis.md (templateName / clusterScope, args).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from rolloutlab.errors import SpecError
from rolloutlab.judges.spec import Spec
from rolloutlab.specs.flagger import render_query

UPSTREAM = Path(__file__).parent / "fixtures" / "upstream"
#: Argo's examples apply these shared templates first (examples/analysis-templates.yaml).
ARGO_SHARED = ("examples__analysis-templates", "examples__cluster-analysis-templates")
#: What a refusal may say: each names the field and the fix.
REFUSALS = (
    "spec.analysis: missing: Flagger skips the analysis",
    "spec.skipAnalysis: true",
    "has strategy blueGreen",
    "which is not among the manifests given",
)
GO_DURATION_S = {"s": 1, "m": 60, "h": 3600}


def _kind(path: Path) -> str:
    return (yaml.safe_load(path.read_text()) or {}).get("kind", "")


def _workloads(tool: str) -> list[Path]:
    files = sorted((UPSTREAM / tool).glob("*/*.yaml"))
    return [f for f in files if _kind(f) in ("Canary", "Rollout")]


def _gitops_folder(workload: Path, tmp_path: Path) -> Path:
    """The workload with the templates of its upstream file (an e2e test's templates live
    in the same test folder's scripts; Argo's examples share two template files)."""
    tool_dir = workload.parent.parent
    group = workload.parent.name
    if group.startswith("test__"):  # Flagger e2e: test/<provider>/*.sh
        group = "__".join(group.split("__")[:2])
    sources = list(tool_dir.glob(f"{group}*/*.yaml"))
    sources += [f for shared in ARGO_SHARED for f in (tool_dir / shared).glob("*.yaml")]
    out = tmp_path / "gitops"
    out.mkdir(parents=True)
    shutil.copy(workload, out / workload.name)
    for f in sources:
        if _kind(f) not in ("Canary", "Rollout"):
            shutil.copy(f, out / f"{f.parent.name}-{f.name}")
    return out


def _load(workload: Path, tmp_path: Path) -> Spec | SpecError:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return Spec.load(_gitops_folder(workload, tmp_path))
        except SpecError as exc:
            return exc


def _seconds(text: str | None, default: float) -> float:
    if not text:
        return default
    number, unit = float(text[:-1]), text[-1]
    return number * GO_DURATION_S[unit]


def _flagger_plan(analysis: dict, provider: str) -> tuple[float, ...]:
    """Canary weights by Flagger's maxWeight / nextStepWeight (scheduler.go)."""
    if analysis.get("iterations") or provider == "kubernetes":
        return ()
    step, steps = analysis.get("stepWeight") or 0, analysis.get("stepWeights") or []
    top = min(100, steps[-1]) if steps else (analysis.get("maxWeight") or 100)
    plan, weight = [], 0
    while weight < top:
        if step > 0 or not steps:
            add = step
        elif weight == 0:
            add = steps[0]
        else:
            add = steps[steps.index(weight) + 1] - weight
        if add <= 0:
            break
        weight = min(weight + add, 100)
        plan.append(float(weight))
    return tuple(plan)


@pytest.mark.parametrize(
    "fixture", _workloads("flagger"), ids=lambda p: p.parent.name + "/" + p.name
)
def test_flagger_canary(fixture: Path, tmp_path: Path) -> None:
    canary = yaml.safe_load(fixture.read_text())
    got = _load(fixture, tmp_path)
    if isinstance(got, SpecError):
        assert any(r in str(got) for r in REFUSALS), got
        analysis = canary["spec"].get("analysis")
        assert not analysis or canary["spec"].get("skipAnalysis") or "templateRef" in str(got)
        return
    analysis = canary["spec"]["analysis"]
    provider = str(canary["spec"].get("provider", "")).partition(":")[0]
    assert got.interval_s == max(10.0, _seconds(analysis.get("interval"), 60.0))
    assert got.threshold == (analysis.get("threshold") or 1)
    assert got.weight_plan() == _flagger_plan(analysis, provider)
    iterations = analysis.get("iterations") or (10 if provider == "kubernetes" else None)
    assert got.iterations == iterations
    target = (canary["spec"].get("targetRef") or {}).get("name")  # docs snippets omit it
    assert got.target == target
    assert got.namespace == canary["metadata"].get("namespace")
    by_name = {m.name: m for m in got.metrics}
    for raw in analysis.get("metrics") or []:
        metric = by_name[raw["name"]]
        bounds = raw.get("thresholdRange") or {}
        if bounds:
            assert (metric.threshold_min, metric.threshold_max) == (
                bounds.get("min"),
                bounds.get("max"),
            )
        if "templateRef" in raw:
            queries = dict(metric.queries)
            assert set(queries) == {"primary", "canary"}
            assert "{{" not in queries["canary"] + queries["primary"]
            assert queries["canary"].replace(target, "@") == queries["primary"].replace(
                f"{target}-primary", "@"
            )


def test_the_flagger_corpus_is_loaded_not_mostly_refused(tmp_path: Path) -> None:
    results = [_load(f, tmp_path / str(i)) for i, f in enumerate(_workloads("flagger"))]
    loaded = [r for r in results if isinstance(r, Spec)]
    assert len(results) >= 60 and len(loaded) >= 0.85 * len(results)
    templated = [r for r in loaded if any(m.queries for m in r.metrics)]
    assert len(templated) >= 13  # the Canaries whose metrics are all templateRef ones


@pytest.mark.parametrize("fixture", _workloads("argo"), ids=lambda p: p.parent.name + "/" + p.name)
def test_argo_rollout(fixture: Path, tmp_path: Path) -> None:
    rollout = yaml.safe_load(fixture.read_text())
    got = _load(fixture, tmp_path)
    strategy = rollout["spec"].get("strategy") or {}
    if isinstance(got, SpecError):
        assert any(r in str(got) for r in REFUSALS), got
        assert "canary" not in strategy or "which is not among" in str(got)
        return
    canary = strategy["canary"] or {}
    # setWeight 0 sends the canary no traffic; after the last step Argo goes to 100%
    steps = canary.get("steps") or []
    weights = [float(s["setWeight"]) for s in steps if s.get("setWeight", 0) > 0]
    assert got.weight_plan() == (tuple(weights) or (100.0,))
    assert got.name == rollout["metadata"]["name"] == got.target
    routing = canary.get("trafficRouting") or {}
    routers = [k for k in routing if k in ("istio", "smi", "nginx", "traefik")]
    assert got.router == (routers[0] if routers else None)
    for metric in got.metrics:
        assert metric.kind == "gauge" and metric.queries
        assert all("{{" not in q for _, q in metric.queries)


def test_argo_prometheus_templates_keep_their_conditions(tmp_path: Path) -> None:
    """docs/features/analysis.md's background analysis: success-rate, every 5m,
    successCondition result[0] >= 0.95, failureLimit 3, args.service-name rendered."""
    fixture = UPSTREAM / "argo" / "docs__features__analysis" / "01-rollout-guestbook.yaml"
    spec = _load(fixture, tmp_path)
    assert isinstance(spec, Spec), spec
    (metric,) = spec.metrics
    assert (metric.name, metric.interval_s, metric.failure_limit) == ("success-rate", 300.0, 3)
    assert metric.success_condition == "result[0] >= 0.95" and metric.threshold_min == 0.95
    (variant, query), *_ = metric.queries
    assert 'destination_service=~"guestbook-svc.default.svc.cluster.local"' in query
    assert spec.threshold == 4 and spec.interval_s == 300.0


def test_a_template_file_alone_says_what_to_give(tmp_path: Path) -> None:
    for path in (
        UPSTREAM / "argo" / "examples__analysis-templates",
        UPSTREAM / "flagger" / "test__gatewayapi__test-utils",
    ):
        with pytest.raises(SpecError, match="holds only .*Template objects"):
            Spec.load(path)


analyses = st.fixed_dictionaries(
    {},
    optional={
        "interval": st.sampled_from(["5s", "10s", "30s", "1m", "2m"]),
        "threshold": st.integers(0, 10),
        "maxWeight": st.integers(0, 100),
        "stepWeight": st.integers(0, 60),
        "stepWeights": st.lists(st.integers(1, 100), min_size=1, max_size=6, unique=True).map(
            sorted
        ),
        "iterations": st.integers(0, 12),
    },
)


@given(analysis=analyses, provider=st.sampled_from(["istio", "kubernetes", "linkerd"]))
@settings(max_examples=300, deadline=None)
def test_any_flagger_analysis_follows_flaggers_rules(analysis, provider):
    """Weight plan, threshold, interval and iterations as scheduler.go and canary.go give
    them, for analyses the corpus does not hold."""
    canary = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "app"},
        "spec": {"provider": provider, "targetRef": {"name": "app"}, "analysis": analysis},
    }
    plan = _flagger_plan(analysis, provider)
    iterations = analysis.get("iterations") or (10 if provider == "kubernetes" else None)
    try:
        spec = Spec.from_dict(canary)
    except SpecError as exc:  # Flagger would not advance either: no step and no iterations
        assert not plan and not iterations, exc
        return
    assert spec.weight_plan() == plan
    assert spec.iterations == iterations
    assert spec.threshold == (analysis.get("threshold") or 1)
    assert spec.interval_s == max(10.0, _seconds(analysis.get("interval"), 60.0))


def _model(**fields):
    """Flagger's MetricTemplateModel with its zero values (pkg/apis/flagger/v1beta1/metric.go)."""
    blank = dict.fromkeys(("name", "namespace", "target", "service", "ingress", "route"), "")
    return {**blank, "interval": "", "variables": {}, **fields}


def test_template_rendering_follows_flaggers_render_test():
    """The cases of pkg/metrics/observers/render_test.go (fluxcd/flagger), same inputs and
    expected queries."""
    plain = _model(name="standard", namespace="default", target="myapp", interval="1m")
    query = 'sum(envoy_cluster_upstream_rq{envoy_cluster_name=~"{{ namespace }}_{{ target }}"})'
    assert render_query(query, plain, "m", "here") == (
        'sum(envoy_cluster_upstream_rq{envoy_cluster_name=~"default_myapp"})'
    )
    kafka = (
        "delta(max by (consumer_group) (kafka_consumer_current_offset{"
        'cluster="{{ variables.cluster }}", consumer_group="{{ variables.consumer_group }}"}'
        "[{{ interval }}]))"
    )
    variables = {"cluster": "dev", "consumer_group": "my_consumer"}
    model = _model(name="kafka_consumer_offset", namespace="default", interval="1m")
    assert render_query(kafka, {**model, "variables": variables}, "m", "here") == (
        "delta(max by (consumer_group) (kafka_consumer_current_offset{"
        'cluster="dev", consumer_group="my_consumer"}[1m]))'
    )
    wrong = {"invalid": "dev", "consumer_group": "my_consumer"}
    with pytest.raises(SpecError, match=r"templateVariables have no 'cluster'"):
        render_query(kafka, {**model, "variables": wrong}, "m", "here")
