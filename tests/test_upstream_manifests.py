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

import json
import shutil
import warnings
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from rolloutlab.errors import SpecError
from rolloutlab.specs import ManifestWarning, Spec
from rolloutlab.specs.flagger import render_query

UPSTREAM = Path(__file__).parent / "fixtures" / "upstream"
#: Argo's examples apply these shared templates first (examples/analysis-templates.yaml).
ARGO_SHARED = ("examples__analysis-templates", "examples__cluster-analysis-templates")
#: What a refusal may say: each names the field and the fix.
REFUSALS = (
    "spec.analysis: missing: Flagger skips the analysis",
    "spec.skipAnalysis: true",
    "has strategy blueGreen",
    "has no spec.strategy",
    "has strategy at the top level",
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


def _templates_beside(workload: Path, tmp_path: Path) -> bool:
    """Whether the workload's GitOps folder holds any template at all."""
    folder = tmp_path / "gitops"
    return any(_kind(f).endswith("Template") for f in folder.glob("*.yaml"))


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
        if "templateRef" in raw and not _templates_beside(fixture, tmp_path):
            assert not metric.queries  # a lone Canary: the recording must hold the metric
        elif "templateRef" in raw:
            queries = dict(metric.queries)
            assert set(queries) == {"primary", "canary"}
            assert "{{" not in queries["canary"] + queries["primary"]
            assert queries["canary"].replace(target, "@") == queries["primary"].replace(
                f"{target}-primary", "@"
            )


def test_the_flagger_corpus_is_loaded_not_mostly_refused(tmp_path: Path) -> None:
    results = [_load(f, tmp_path / str(i)) for i, f in enumerate(_workloads("flagger"))]
    loaded = [r for r in results if isinstance(r, Spec)]
    # a Canary without spec.analysis (the FAQ's routing snippets) has nothing to judge
    judged = [
        f for f in _workloads("flagger") if yaml.safe_load(f.read_text())["spec"].get("analysis")
    ]
    assert len(results) >= 60 and len(loaded) >= 0.85 * len(judged)
    templated = [r for r in loaded if any(m.queries for m in r.metrics)]
    assert len(templated) >= 13  # the Canaries whose metrics are all templateRef ones


@pytest.mark.parametrize("fixture", _workloads("argo"), ids=lambda p: p.parent.name + "/" + p.name)
def test_argo_rollout(fixture: Path, tmp_path: Path) -> None:
    rollout = yaml.safe_load(fixture.read_text())
    got = _load(fixture, tmp_path)
    strategy = (rollout.get("spec") or {}).get("strategy") or {}
    if isinstance(got, SpecError):
        assert any(r in str(got) for r in REFUSALS), got
        assert "canary" not in strategy or "which is not among" in str(got)
        return
    canary = strategy["canary"] or {}
    # setWeight 0 sends the canary no traffic; after the last step Argo goes to 100%
    steps = canary.get("steps") or []
    weights = [float(s["setWeight"]) for s in steps if s.get("setWeight", 0) > 0]
    assert got.weight_plan() == (tuple(weights) or (100.0,))
    # docs snippets may leave the name out
    assert got.name == (rollout.get("metadata") or {}).get("name") == got.target
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


# -- GitOps repositories as they are (tests/fixtures/upstream/*/gitops/SOURCES.md) ---------
#
# Whole files copied from public repositories, in their folders (kustomize bases and
# overlays, multi-document files, Helm chart templates), loaded the way a user points
# rolloutlab at them. Expected values are read from the raw YAML by upstream's rules;
# Argo's: utils/analysis/factory.go (BuildArgumentsForRolloutAnalysisRun: value,
# podTemplateHashValue, fieldRef; ResolveMetricArgs substitutes {{args.*}} in the whole
# metric), utils/analysis/helpers.go (GetDryRunMetrics: metricName is a regular expression
# matched anywhere in the name; a rule matching none errors the run),
# pkg/apis/rollouts/v1alpha1/analysis_types.go (Metric, PrometheusMetric, DryRun) and
# types.go (RolloutAnalysisBackground.startingStep), all at argoproj/argo-rollouts
# 9f8d111d8f8e3e88b6d7f8bbdf62fd3cd863ef9d.

FLAGGER_GITOPS = UPSTREAM / "flagger" / "gitops"
ARGO_GITOPS = UPSTREAM / "argo" / "gitops"


def _load_warned(path: Path, **kwargs) -> tuple[Spec, str]:
    """The spec and the text of the ManifestWarnings loading it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = Spec.load(path, **kwargs)
    return spec, " ".join(str(w.message) for w in caught if w.category is ManifestWarning)


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


@pytest.mark.parametrize("app", ["backend", "frontend"])
def test_gitops_istio_canaries_take_their_templates_from_another_folder(app: str) -> None:
    """stefanprodan/gitops-istio: apps/<app>/ (a kustomize base with Deployment, HPA and
    Canary) and istio/gateway/flagger-metrics.yaml (the MetricTemplates); the repository
    root given with the Canary's name, as Flux applies it."""
    repo = FLAGGER_GITOPS / "stefanprodan__gitops-istio"
    spec, warned = _load_warned(repo, name=app)
    (canary,) = [d for d in _docs(repo / "apps" / app / "canary.yaml") if d["kind"] == "Canary"]
    analysis = canary["spec"]["analysis"]
    assert (spec.name, spec.namespace, spec.target) == (
        app,
        canary["metadata"]["namespace"],
        canary["spec"]["targetRef"]["name"],
    )
    assert spec.weight_plan() == _flagger_plan(analysis, "")
    assert spec.iterations == (analysis.get("iterations") or None)
    assert spec.threshold == analysis["threshold"]
    assert spec.interval_s == max(10.0, _seconds(analysis["interval"], 60.0))
    templates = {
        d["metadata"]["name"]: d for d in _docs(repo / "istio" / "gateway" / "flagger-metrics.yaml")
    }
    for raw in analysis["metrics"]:
        (metric,) = [m for m in spec.metrics if m.name == raw["name"]]
        bounds = raw["thresholdRange"]
        assert (metric.threshold_min, metric.threshold_max) == (
            bounds.get("min"),
            bounds.get("max"),
        )
        template = templates[raw["templateRef"]["name"]]
        assert raw["templateRef"]["namespace"] == template["metadata"]["namespace"]
        queries = dict(metric.queries)
        for variant, target in (("canary", app), ("primary", f"{app}-primary")):
            expected = render_query(
                template["spec"]["query"],
                _model(
                    name=app,
                    namespace=canary["metadata"]["namespace"],
                    target=target,
                    service=app,
                    interval=raw.get("interval", "1m"),
                ),
                raw["name"],
                "here",
            )
            assert queries[variant] == expected and target in expected
    # the base alone (no templates beside it) keeps the template metrics for the recording
    lone = Spec.load(repo / "apps" / app)
    assert all(not m.queries for m in lone.metrics) and len(lone.metrics) == 2


def test_a_canary_in_a_multi_document_file_with_other_objects() -> None:
    """grafana/flagger-k6-webhook: dev-workload.dist.yml holds a Deployment, a Service and
    the Canary (its load-test webhook is not a metric); example/canary.yml the Canary alone."""
    repo = FLAGGER_GITOPS / "grafana__flagger-k6-webhook"
    for path in (repo / "dev-workload.dist.yml", repo / "example" / "canary.yml"):
        (canary,) = [d for d in _docs(path) if d.get("kind") == "Canary"]
        spec = Spec.load(path)
        analysis = canary["spec"]["analysis"]
        assert spec.iterations == analysis["iterations"] and spec.weight_plan() == ()
        assert spec.threshold == analysis["threshold"]
        assert spec.namespace == canary["metadata"].get("namespace")
    # both are named my-app: a name cannot pick, the file can
    with pytest.raises(SpecError, match="2 specs to choose from, under one name: .*Give the file"):
        Spec.load(repo)


def test_a_kustomize_patch_of_a_rollout_says_to_render_the_overlay() -> None:
    """A strategic-merge patch holds only the fields it changes (here the image, as
    kustomize overlays write it): no strategy, so the error names kustomize build."""
    patch = (
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: guestbook}\n"
        "spec:\n  template:\n    spec:\n      containers: [{name: app, image: app:v2}]\n"
    )
    with pytest.raises(SpecError, match=r"has no spec.strategy.*kustomize build DIR"):
        Spec.load(patch)


def test_a_helm_chart_template_says_to_render_it_first(tmp_path: Path) -> None:
    """fluxcd/flagger charts/podinfo/templates/canary.yaml: Go template actions, not YAML."""
    chart = FLAGGER_GITOPS / "fluxcd__flagger" / "charts" / "podinfo" / "templates"
    with pytest.raises(SpecError, match=r"canary.yaml, line 1 .*looks like a Helm chart template"):
        Spec.load(chart / "canary.yaml")
    shutil.copytree(chart, tmp_path / "templates")
    (tmp_path / "templates" / "README.yaml").write_text("{{ .Values.x }}: [\n")
    with pytest.raises(SpecError, match=r"none of its 2 file\(s\) is plain YAML.*helm template"):
        Spec.load(tmp_path / "templates")


def test_argo_kustomize_folder_with_two_rollouts_needs_a_name() -> None:
    """argoproj/argo-rollouts test/kustomize/rollout: the kustomize input (rollout.yaml) and
    its expected output (expected.yaml, name prefix my-) side by side."""
    folder = ARGO_GITOPS / "argoproj__argo-rollouts" / "test" / "kustomize" / "rollout"
    with pytest.raises(SpecError, match="2 specs to choose from"):
        Spec.load(folder)
    for name, path in (("guestbook", "rollout.yaml"), ("my-guestbook", "expected.yaml")):
        spec, warned = _load_warned(folder, name=name)
        (rollout,) = [d for d in _docs(folder / path) if d["kind"] == "Rollout"]
        assert spec.router == "istio" and spec.name == name
        steps = rollout["spec"]["strategy"]["canary"]["steps"]
        weights = tuple(float(s["setWeight"]) for s in steps if s.get("setWeight"))
        assert spec.weight_plan() == (weights or (100.0,))
        # its only analysis templates run Jobs; each named once though used twice
        assert spec.metrics == () and warned.count("random-fail (") == 1
        assert "experiment" in warned


@pytest.mark.parametrize(
    ("file", "router"),
    [
        ("valid-istio-v1beta1.yml", "istio"),
        ("valid-ingress-smi.yml", "smi"),
        ("valid-with-another-empty-object.yml", None),
    ],
)
def test_argo_lint_testdata_multi_document_files(file: str, router: str | None) -> None:
    """pkg/kubectl-argo-rollouts/cmd/lint/testdata: the Rollout among Services, Ingresses,
    VirtualServices (and an empty document) in one file."""
    path = ARGO_GITOPS / "argoproj__argo-rollouts" / "pkg" / "kubectl-argo-rollouts" / "cmd"
    path = path / "lint" / "testdata" / file
    (rollout,) = [d for d in _docs(path) if d.get("kind") == "Rollout"]
    spec, _ = _load_warned(path)
    steps = rollout["spec"]["strategy"]["canary"].get("steps") or []
    weights = tuple(float(s["setWeight"]) for s in steps if s.get("setWeight"))
    assert spec.weight_plan() == (weights or (100.0,)) and spec.router == router
    assert spec.name == rollout["metadata"]["name"]


def test_argo_refusals_of_real_files_name_the_fix() -> None:
    base = ARGO_GITOPS / "argoproj__argo-rollouts"
    lint = base / "pkg" / "kubectl-argo-rollouts" / "cmd" / "lint" / "testdata"
    with pytest.raises(SpecError, match=r"AnalysisTemplate integrationtests, which is not among"):
        Spec.load(lint / "invalid-multiple-docs.yml")
    demo = base / "docs" / "features" / "kustomize" / "example" / "rollouts-demo.yaml"
    with pytest.raises(
        SpecError, match=r"document 1\): Rollout rollouts-demo has strategy blueGreen"
    ):
        Spec.load(demo)


def test_argo_background_analysis_with_pod_template_hash_and_starting_step() -> None:
    """aws-samples/amazon-eks-argo-rollouts examples/canary: background analysis from
    startingStep 2, args from a value and podTemplateHashValue Latest, condition
    'result[0] >= 0.90 || len(result) == 0' (a guard for an empty result)."""
    folder = ARGO_GITOPS / "aws-samples__amazon-eks-argo-rollouts" / "examples" / "canary"
    spec, warned = _load_warned(folder)
    (metric,) = spec.metrics
    raw = _docs(folder / "analysis_template.yaml")[0]["spec"]["metrics"][0]
    assert (metric.threshold_min, metric.threshold_max, metric.direction) == (0.9, None, "decrease")
    assert metric.interval_s == _seconds(raw["interval"], 0) and metric.failure_limit == 1
    assert spec.threshold == raw["failureLimit"] + 1 and spec.namespace == "app"
    queries = dict(metric.queries)
    # Latest is the canary's hash; the stable's selects the primary
    assert 'rollouts_pod_template_hash="{{ podTemplateHash.canary }}"' in queries["canary"]
    assert 'rollouts_pod_template_hash="{{ podTemplateHash.stable }}"' in queries["primary"]
    assert 'app="demo-app-canary"' in queries["canary"]
    assert "startingStep 2" in warned and "--start" in warned
    assert spec.weight_plan() == (25.0, 50.0, 75.0)


def test_argo_step_analysis_in_a_gitops_folder_with_other_objects() -> None:
    """adventurewave-labs/gitops-progressive-delivery-demo manifests-repo: Namespace,
    Services, ServiceMonitor, an Argo CD Application, load generator, Rollout and template."""
    folder = ARGO_GITOPS / "adventurewave-labs__gitops-progressive-delivery-demo"
    spec = Spec.load(folder / "manifests-repo")
    template = _docs(folder / "manifests-repo" / "analysis-template.yaml")[0]
    assert [m.name for m in spec.metrics] == [m["name"] for m in template["spec"]["metrics"]]
    for metric, raw in zip(spec.metrics, template["spec"]["metrics"], strict=True):
        # successCondition 'result[0] < x' is a maximum
        assert metric.threshold_max == float(raw["successCondition"].split("<")[1])
        assert (metric.count, metric.failure_limit) == (raw["count"], raw["failureLimit"])
        queries = dict(metric.queries)
        assert 'service="payments-api-canary"' in queries["canary"]
        assert 'service="payments-api-stable"' in queries["primary"]
    assert spec.weight_plan() == (20.0, 50.0, 100.0) and spec.namespace == "payment-prod"


def _rollout(analysis: str, namespace: str = "shop") -> str:
    """A canary Rollout around one background ``analysis`` (YAML, indented 6)."""
    return (
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n"
        f"  name: guestbook\n  namespace: {namespace}\n"
        "  labels: {region: eu-west-1}\n  annotations: {team: payments}\n"
        "spec:\n  strategy:\n    canary:\n      canaryService: gb-canary\n"
        "      stableService: gb-stable\n      steps: [{setWeight: 20}, {setWeight: 20},"
        " {pause: {duration: 1m}}, {setWeight: 50}]\n      analysis:\n" + analysis
    )


def _load_text(*documents: str) -> tuple[Spec, str]:
    """The spec of a multi-document text and the ManifestWarnings loading it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = Spec.load("---\n".join(documents))
    return spec, " ".join(str(w.message) for w in caught if w.category is ManifestWarning)


def test_argo_prometheus_provider_docs_templates() -> None:
    """docs/analysis/prometheus.md (tests/fixtures/upstream/argo/docs__analysis__prometheus):
    a rangeQuery template with 'all(result, # < 1000)', and one querying with an
    X-Scope-OrgID header; a repeated setWeight (20, 20) does not change the weight."""
    folder = UPSTREAM / "argo" / "docs__analysis__prometheus"
    ranged, headed = (f.read_text() for f in sorted(folder.glob("0[12]-*"))[::-1])
    args = "        args: [{name: service-name, value: gb-canary}]\n"
    rollout = _rollout("        templates: [{templateName: range-query-example}]\n" + args)
    spec, warned = _load_text(rollout, ranged)
    (metric,) = spec.metrics
    assert (metric.threshold_min, metric.threshold_max, metric.direction) == (
        None,
        1000,
        "increase",
    )
    assert spec.threshold == 4 and "has a rangeQuery" in warned
    assert spec.weight_plan() == (20.0, 50.0)
    assert dict(metric.queries) == {
        "canary": 'http_latency_ms{service="gb-canary"}',
        "primary": 'http_latency_ms{service="gb-stable"}',
    }
    rollout = _rollout("        templates: [{templateName: success-rate}]\n" + args)
    spec, warned = _load_text(rollout, headed)
    assert "with X-Scope-OrgID" in warned and "--header" in warned and "tenant_a" not in warned
    assert spec.metrics[0].threshold_min == 0.95 and spec.metrics[0].interval_s == 300


#: docs/features/analysis.md, "Dry-Run Mode" (lines 873-896 at 9f8d111d8f8e): a template
#: spec whose 5xx metric runs in dry-run mode.
DRY_RUN_SPEC = """\
  dryRun:
  - metricName: total-5xx-errors
  metrics:
  - name: total-5xx-errors
    interval: 5m
    failureCondition: result[0] >= 10
    failureLimit: 3
    provider:
      prometheus:
        address: http://prometheus.example.com:9090
        query: |
          sum(irate(
            istio_requests_total{reporter="source",destination_service=~"{{args.service-name}}",response_code~"5.*"}[5m]
          ))
  - name: total-4xx-errors
    interval: 5m
    failureCondition: result[0] >= 10
    failureLimit: 3
    provider:
      prometheus:
        address: http://prometheus.example.com:9090
        query: |
          sum(irate(
            istio_requests_total{reporter="source",destination_service=~"{{args.service-name}}",response_code~"4.*"}[5m]
          ))
"""


#: The same metrics without the dryRun rule.
METRICS_ONLY = "  metrics:\n" + DRY_RUN_SPEC.split("  metrics:\n", 1)[1]


def _errors_template(spec_text: str) -> str:
    return (
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata: {name: errors}\n"
        "spec:\n  args: [{name: service-name}]\n" + spec_text
    )


def test_argo_dry_run_metrics_are_kept_but_never_critical() -> None:
    """A dry-run metric "won't impact the final state of the rollout" (docs/features/
    analysis.md): rolloutlab keeps it (judged and shown) with critical False, and its
    failureLimit does not set the rollback threshold. metricName is a regular expression
    (GetDryRunMetrics), given in the template or in the Rollout's analysis."""
    args = "        args: [{name: service-name, value: gb-canary}]\n"
    rollout = _rollout("        templates: [{templateName: errors}]\n" + args)
    spec, _ = _load_text(rollout, _errors_template(DRY_RUN_SPEC))
    by_name = {m.name: m for m in spec.metrics}
    assert by_name["total-5xx-errors"].critical is False
    assert by_name["total-4xx-errors"].critical is None  # each judge's default
    # failureCondition 'result[0] >= 10' is a maximum
    assert by_name["total-4xx-errors"].threshold_max == 10.0
    assert spec.threshold == 4
    every = DRY_RUN_SPEC.replace("metricName: total-5xx-errors", "metricName: .*")
    spec, _ = _load_text(rollout, _errors_template(every))
    assert all(m.critical is False for m in spec.metrics)
    # "Dry-Run Rollouts": the rule in the Rollout's analysis stanza
    rollout_rule = _rollout(
        "        templates: [{templateName: errors}]\n"
        + args
        + "        dryRun: [{metricName: 4xx}]\n"
    )
    spec, _ = _load_text(rollout_rule, _errors_template(METRICS_ONLY))
    assert {m.name: m.critical for m in spec.metrics} == {
        "total-5xx-errors": None,
        "total-4xx-errors": False,
    }
    no_match = rollout_rule.replace("metricName: 4xx", "metricName: latency")
    with pytest.raises(SpecError, match=r"dryRun\[0\] metricName 'latency' matches no metric"):
        _load_text(no_match, _errors_template(METRICS_ONLY))


@pytest.mark.parametrize(
    ("field_path", "rendered"),
    [
        ("metadata.name", "guestbook"),
        ("metadata.namespace", "shop"),
        ("metadata.labels['region']", "eu-west-1"),
        ("metadata.annotations['team']", "payments"),
        ("spec.strategy.canary.canaryService", "gb-canary"),
    ],
)
def test_argo_field_ref_arguments_come_from_the_rollout(field_path: str, rendered: str) -> None:
    """fieldRef arguments as BuildArgumentsForRolloutAnalysisRun resolves them: metadata
    paths with k8s fieldpath (labels['k'], annotations['k']), others by walking the
    Rollout; the rendered value is substituted in the query."""
    template = _errors_template(METRICS_ONLY)
    rollout = _rollout(
        "        templates: [{templateName: errors}]\n"
        f'        args: [{{name: service-name, valueFrom: {{fieldRef: {{fieldPath: "{field_path}"}}}}}}]\n'
    )
    spec, _ = _load_text(rollout, template)
    assert len(spec.metrics) == 2
    for metric in spec.metrics:
        assert f'destination_service=~"{rendered}"' in dict(metric.queries)["canary"]


def test_argo_field_ref_arguments_known_only_in_the_cluster() -> None:
    """status.* is known only in the cluster: the metric is left out, named in the warning;
    a metadata.namespace the file leaves out is an error saying to set it."""
    template = _errors_template(METRICS_ONLY)
    arg = "        args: [{name: service-name, valueFrom: {fieldRef: {fieldPath: %s}}}]\n"
    status = _rollout("        templates: [{templateName: errors}]\n" + arg % "status.stableRS")
    spec, warned = _load_text(status, template)
    assert spec.metrics == () and "comes from fieldRef status.stableRS" in warned
    unset = _rollout("        templates: [{templateName: errors}]\n" + arg % "metadata.namespace")
    unset = unset.replace("  namespace: shop\n", "")
    with pytest.raises(SpecError, match=r"does not set \(Argo takes the namespace.*Set metadata"):
        _load_text(unset, template)


@pytest.mark.parametrize(
    ("provider", "router"),
    [
        ("gatewayapi:v1", "gatewayapi:v1"),
        ("gatewayapi:v1beta1", "gatewayapi:v1beta1"),
        ("smi:v1alpha2:linkerd", "smi:v1alpha2"),
        ("istio", "istio"),
    ],
)
def test_flagger_provider_names_the_router(provider: str, router: str) -> None:
    """fluxcd/flagger pkg/router/factory.go: gatewayapi:v1 and :v1beta1 are the Gateway API
    routers of those HTTPRoute versions and smi:v1alpha2:<mesh> the SMI v1alpha2 one (the
    provider values listed in artifacts/flagger/crd.yaml)."""
    canary = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "app"},
        "spec": {
            "provider": provider,
            "targetRef": {"name": "app"},
            "analysis": {"stepWeight": 10},
        },
    }
    assert Spec.from_dict(canary).router == router


def test_argo_metric_fields_take_arguments_and_templates_nest() -> None:
    """ResolveMetricArgs substitutes {{args.*}} in the whole metric (conditions, count,
    interval, failureLimit), and an AnalysisTemplate may name other templates
    (AnalysisTemplateSpec.templates); equality and unreadable conditions."""
    outer = (
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata: {name: outer}\n"
        "spec:\n  templates: [{templateName: errors}, {templateName: outer}]\n"
        "  args: [{name: limit, value: '2'}, {name: every, value: 30s}, {name: max, value: '5'}]\n"
        "  metrics:\n"
        "  - name: errors-total\n    interval: '{{args.every}}'\n    count: '{{args.limit}}'\n"
        "    initialDelay: 2m\n    consecutiveSuccessLimit: 3\n"
        "    failureLimit: '{{args.limit}}'\n"
        "    successCondition: len(result) == 0 || result[0] == 0\n"
        "    failureCondition: len(result) > 0 && result[0] > {{args.max}}\n"
        "    provider: {prometheus: {query: 'sum(errors{svc=\"{{args.service-name}}\"})'}}\n"
        "  - name: ratio\n    successCondition: result.ok / result.total > 0.9\n"
        "    provider: {prometheus: {query: 'ok{svc=\"{{args.service-name}}\"}'}}\n"
    )
    rollout = _rollout(
        "        templates: [{templateName: outer}]\n"
        "        args: [{name: service-name, value: gb-canary}]\n"
    )
    spec, warned = _load_text(rollout, outer, _errors_template(METRICS_ONLY))
    by_name = {m.name: m for m in spec.metrics}
    assert set(by_name) == {"errors-total", "ratio", "total-5xx-errors", "total-4xx-errors"}
    total = by_name["errors-total"]
    assert (total.interval_s, total.count, total.failure_limit) == (30.0, 2, 2)
    # success only at 0, failure above 5 (between is inconclusive in Argo): a measurement
    # fails above 5, the failure condition's bound; harm upwards
    assert (total.threshold_min, total.threshold_max, total.direction) == (0.0, 5.0, "increase")
    ratio = by_name["ratio"]
    assert (ratio.threshold_min, ratio.threshold_max, ratio.direction) == (None, None, None)
    assert "'result.ok / result.total > 0.9'" in warned and "without that bound" in warned
    assert "waits initialDelay 2m before its first measurement" in warned
    assert "consecutiveSuccessLimit 3 successes in a row" in warned  # analysis_types.go
    legacy = rollout.replace("templates: [{templateName: outer}]", "templateName: outer")
    with pytest.raises(SpecError, match=r"analysis.templateName: Argo Rollouts reads templates"):
        _load_text(legacy, outer, _errors_template(METRICS_ONLY))


def test_argo_fields_of_the_wrong_shape_are_named() -> None:
    """Shapes Argo's CRD would refuse, named with the field and the shape it takes; and
    failureLimit -1, which Argo documents as never failing the metric."""
    template = _errors_template(METRICS_ONLY)
    args = "        args: [{name: service-name, value: gb-canary}]\n"
    cases = {
        "        templates: {templateName: errors}\n": r"analysis templates is .*a list of objects",
        "        templates: [errors]\n": r"analysis templates is \['errors'\]",
        "        templates: [{clusterScope: true}]\n": r"\{'clusterScope': True\} has no templateName",
        "        templates: [{templateName: errors}]\n        args: {service-name: x}\n": (
            r"analysis args is .*\[\{name: service-name, value: my-svc\}\]"
        ),
        "        templates: [{templateName: errors}]\n"
        + args
        + "        dryRun: {metricName: x}\n": (r"analysis dryRun is"),
        "        templates: [{templateName: errors}]\n"
        + args
        + "        dryRun: [{metricName: '(['}]\n": (
            r"metricName '\(\[' is not a regular expression"
        ),
    }
    for analysis, message in cases.items():
        with pytest.raises(SpecError, match=message):
            _load_text(_rollout(analysis), template)
    rollout = _rollout("        templates: [{templateName: errors}]\n" + args)
    for line, message in (
        ("    interval: 5m\n    count: '{{args.service-name}}'\n", r"count: expected a whole"),
        ("    interval: 500ms\n", r"interval: 0.5 is out of range"),
    ):
        with pytest.raises(SpecError, match=r"metric 'total-5xx-errors' " + message):
            _load_text(rollout, template.replace("    interval: 5m\n", line))
    unlimited = template.replace("failureLimit: 3", "failureLimit: -1", 1)
    spec, warned = _load_text(rollout, unlimited)
    assert {m.name: m.critical for m in spec.metrics} == {
        "total-5xx-errors": False,
        "total-4xx-errors": None,
    }
    assert "failureLimit -1: Argo never fails it" in warned and spec.threshold == 4


def test_flagger_fields_of_the_wrong_shape_are_named() -> None:
    """stefanprodan/gitops-istio's backend Canary and MetricTemplates, each broken the way
    Flagger's CRD would refuse (MetricTemplateProvider and templateVariables are objects in
    pkg/apis/flagger/v1beta1/metric.go and canary.go), or holding a Helm value."""
    repo = FLAGGER_GITOPS / "stefanprodan__gitops-istio"
    canary = (repo / "apps" / "backend" / "canary.yaml").read_text()
    metrics = (repo / "istio" / "gateway" / "flagger-metrics.yaml").read_text()
    variables = canary.replace("templateRef:", "templateVariables: [a]\n        templateRef:", 1)
    with pytest.raises(SpecError, match=r"metric 'error-rate': templateVariables is \['a'\]"):
        Spec.load("---\n".join((variables, metrics)))
    block = (
        "provider:\n    type: prometheus\n    address: http://flagger-prometheus.istio-system:9090"
    )
    provider = metrics.replace(block, "provider: prometheus", 1)
    assert provider != metrics
    with pytest.raises(SpecError, match=r"spec.provider is 'prometheus'; Flagger reads a mapping"):
        Spec.load("---\n".join((canary, provider)))
    helm = metrics.replace("{{ namespace }}", "{{ .Release.Namespace }}", 1)
    assert helm != metrics
    with pytest.raises(SpecError, match=r"cannot render \{\{ .Release.Namespace \}\}.*Helm value"):
        Spec.load("---\n".join((canary, helm)))


def test_flagger_template_credentials_are_named_with_what_to_pass() -> None:
    """docs/gitbook/usage/metrics.md "Prometheus authentication": a MetricTemplate whose
    provider reads credentials from a Secret (secretRef). The docs show the provider block
    alone (no query, which Flagger's CRD requires: refused, naming it); with a query added,
    rolloutlab says it cannot read the Secret and which options carry credentials."""
    path = (
        UPSTREAM / "flagger" / "docs__gitbook__usage__metrics" / "05-metrictemplate-my-metric.yaml"
    )
    raw = yaml.safe_load(path.read_text())
    canary = (
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: app, namespace: test}\n"
        "spec:\n  targetRef: {name: app}\n  analysis:\n    stepWeight: 10\n    metrics:\n"
        "    - name: my-metric\n      templateRef: {name: my-metric, namespace: flagger}\n"
        "      thresholdRange: {max: 5}\n"
    )
    with pytest.raises(SpecError, match=r"MetricTemplate my-metric has no spec.query"):
        _load_text(canary, path.read_text())
    query = '  query: sum(rate(errors{app="{{ target }}"}[1m]))\n'
    spec, warned = _load_text(canary, path.read_text() + query)
    secret = raw["spec"]["provider"]["secretRef"]["name"]
    assert f"my-metric (Secret {secret})" in warned and "--bearer-file" in warned
    assert dict(spec.metrics[0].queries)["canary"] == 'sum(rate(errors{app="app"}[1m]))'


def test_a_canary_without_namespace_finds_its_template_but_needs_one_to_render() -> None:
    """A kustomize base often leaves the namespace to kustomization.yaml: the Canary and
    its templateRefs without one still find the one MetricTemplate of that name, but
    Flagger renders {{ namespace }} from where the Canary runs, which the file does not say."""
    repo = FLAGGER_GITOPS / "stefanprodan__gitops-istio"
    canary = (repo / "apps" / "backend" / "canary.yaml").read_text()
    unplaced = canary.replace("  namespace: prod\n", "").replace("namespace: istio-system", "")
    assert "namespace" not in unplaced
    metrics = (repo / "istio" / "gateway" / "flagger-metrics.yaml").read_text()
    with pytest.raises(SpecError, match=r"uses \{\{ namespace \}\} and the Canary has no"):
        Spec.load("---\n".join((unplaced, metrics)))
    # a template that does not render the namespace loads from the same manifests
    spec = Spec.load("---\n".join((unplaced, metrics.replace("{{ namespace }}", "prod"))))
    assert [len(m.queries) for m in spec.metrics] == [2, 2] and spec.namespace is None
    assert all("prod" in q for m in spec.metrics for _, q in m.queries)


def test_a_kubectl_json_list_of_the_same_objects_loads_the_same(tmp_path: Path) -> None:
    """What `kubectl get rollout,analysistemplate -o json` writes: a JSON List of the objects
    (here aws-samples/amazon-eks-argo-rollouts examples/canary, every document of the folder)."""
    folder = ARGO_GITOPS / "aws-samples__amazon-eks-argo-rollouts" / "examples" / "canary"
    items = [d for f in sorted(folder.glob("*.yaml")) for d in _docs(f)]
    listed = tmp_path / "objects.json"
    listed.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert Spec.load(listed) == Spec.load(folder)
