# ruff: noqa: F811  (pytest fixtures imported from kube_emulator are shadowed by parameters)
"""Specs read from a cluster (kmock emulator, real HTTP, real sync client) equal the specs
read from the same manifests as files."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_emulator import NS, KubeEmulator, kube  # noqa: F401  (fixture)

from rolloutlab.cli import main
from rolloutlab.errors import ActuationError, SpecError
from rolloutlab.specs import Spec
from rolloutlab.specs.kube import load_from_cluster

pytestmark = pytest.mark.timeout(60)

CANARY = {
    "apiVersion": "flagger.app/v1beta1",
    "kind": "Canary",
    "metadata": {"name": "podinfo", "namespace": NS},
    "spec": {
        "provider": "istio",
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": {"port": 9898},
        "analysis": {
            "interval": "1m",
            "threshold": 5,
            "maxWeight": 50,
            "stepWeight": 10,
            "metrics": [
                {
                    "name": "not-found-percentage",
                    "templateRef": {"name": "not-found-percentage"},
                    "thresholdRange": {"max": 5},
                    "interval": "1m",
                }
            ],
        },
    },
}
METRIC_TEMPLATE = {
    "apiVersion": "flagger.app/v1beta1",
    "kind": "MetricTemplate",
    "metadata": {"name": "not-found-percentage", "namespace": NS},
    "spec": {
        "provider": {"type": "prometheus", "address": "http://prometheus:9090"},
        "query": 'sum(rate(istio_requests_total{destination_workload="{{ target }}",'
        'response_code="404"}[{{ interval }}]))',
    },
}
ROLLOUT = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Rollout",
    "metadata": {"name": "guestbook", "namespace": NS},
    "spec": {
        "strategy": {
            "canary": {
                "canaryService": "guestbook-canary",
                "stableService": "guestbook-stable",
                "steps": [
                    {"setWeight": 20},
                    {"pause": {"duration": "1m"}},
                    {
                        "analysis": {
                            "templates": [{"templateName": "success-rate"}],
                            "args": [{"name": "service-name", "value": "guestbook-canary"}],
                        }
                    },
                    {"setWeight": 60},
                ],
            }
        }
    },
}
ANALYSIS_TEMPLATE = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "AnalysisTemplate",
    "metadata": {"name": "success-rate", "namespace": NS},
    "spec": {
        "args": [{"name": "service-name"}],
        "metrics": [
            {
                "name": "success-rate",
                "interval": "1m",
                "successCondition": "result[0] >= 0.95",
                "provider": {
                    "prometheus": {
                        "address": "http://prometheus:9090",
                        "query": "sum(rate(istio_requests_total{destination_service_name="
                        '"{{args.service-name}}",response_code!~"5.*"}[1m])) / '
                        "sum(rate(istio_requests_total{destination_service_name="
                        '"{{args.service-name}}"}[1m]))',
                    }
                },
            }
        ],
    },
}


def create(kube: KubeEmulator, *objects: dict[str, Any]) -> None:
    """Create ``objects`` in the emulator through the real client (``plural`` by kind)."""
    from kubernetes import client

    api = client.CustomObjectsApi(kube.client())
    for obj in objects:
        group, version = obj["apiVersion"].split("/")
        plural = obj["kind"].lower() + ("es" if obj["kind"] == "Canary" else "s")
        plural = plural.replace("canaryes", "canaries")
        api.create_namespaced_custom_object(group, version, NS, plural, obj)


def from_files(tmp_path: Path, *objects: dict[str, Any]) -> Spec:
    path = tmp_path / "manifests.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    return Spec.load(path)


@pytest.mark.parametrize(
    ("main", "template"), [(CANARY, METRIC_TEMPLATE), (ROLLOUT, ANALYSIS_TEMPLATE)]
)
def test_the_cluster_spec_equals_the_files_spec(kube, tmp_path, main, template) -> None:
    create(kube, main, template)
    spec = load_from_cluster(main["metadata"]["name"], NS, client=kube.client())
    assert spec == from_files(tmp_path, main, template)
    assert any(m.queries for m in spec.metrics)
    kind = main["kind"].lower()
    assert load_from_cluster(f"{kind}/{main['metadata']['name']}", NS, client=kube.client()) == spec


def test_not_found_names_the_object_and_what_the_namespace_holds(kube) -> None:
    create(kube, CANARY, METRIC_TEMPLATE)
    with pytest.raises(SpecError, match=r"named podinfoo in namespace test \(it holds Canary "):
        load_from_cluster("podinfoo", NS, client=kube.client())


def test_a_missing_template_is_named(kube) -> None:
    create(kube, ROLLOUT)
    with pytest.raises(SpecError, match=f"AnalysisTemplate {NS}/success-rate, which is not in"):
        load_from_cluster("guestbook", NS, client=kube.client())


def test_forbidden_says_what_to_grant(kube) -> None:
    kube.fail("GET", 403, times=5, message="canaries.flagger.app is forbidden")
    with pytest.raises(ActuationError, match="grant a Role with verbs get, list on canaries"):
        load_from_cluster("podinfo", NS, client=kube.client())


def test_cli_judges_with_kube_and_refuses_kube_with_spec(kube, tmp_path, monkeypatch, capsys):
    create(kube, CANARY, METRIC_TEMPLATE)
    config = tmp_path / "kubeconfig"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emu", "cluster": {"server": kube.url}}],
                "users": [{"name": "emu", "user": {}}],
                "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "emu"}}],
                "current-context": "emu",
            }
        )
    )
    recording = tmp_path / "rec.parquet"
    assert main(["simulate", "healthy", "-o", str(recording)]) == 0
    kube_args = ["--kube", "podinfo", "--namespace", NS, "--kubeconfig", str(config)]
    assert main(["judge", str(recording), *kube_args]) == 0
    assert "judge" in capsys.readouterr().out


@pytest.mark.parametrize(
    "command",
    [
        [
            "fetch",
            "--url",
            "http://127.0.0.1:1",
            "--start",
            "2026-01-01T00:00Z",
            "--end",
            "2026-01-01T01:00Z",
            "-o",
            "out.parquet",
        ],
        ["judge", "rec.parquet"],
        ["replay", "rec.parquet"],
        ["report", "rec.parquet"],
        ["run", "--url", "http://127.0.0.1:1"],
    ],
)
def test_cli_refuses_spec_and_kube_together(command, tmp_path, capsys) -> None:
    recording = tmp_path / "rec.parquet"
    assert main(["simulate", "healthy", "-o", str(recording)]) == 0
    command = [str(recording) if arg == "rec.parquet" else arg for arg in command]
    assert main([*command, "--spec", "x.yaml", "--kube", "podinfo"]) == 2
    assert "--spec and --kube both say where the spec is" in capsys.readouterr().err


def test_a_cluster_analysis_template_is_read_cluster_wide(kube, tmp_path) -> None:
    from kubernetes import client

    template = {**ANALYSIS_TEMPLATE, "kind": "ClusterAnalysisTemplate"}
    template["metadata"] = {"name": "success-rate"}
    analysis = {"templates": [{"templateName": "success-rate", "clusterScope": True}]}
    rollout = copy.deepcopy(ROLLOUT)
    rollout["spec"]["strategy"]["canary"]["steps"][2]["analysis"].update(analysis)
    create(kube, rollout)
    api = client.CustomObjectsApi(kube.client())
    api.create_cluster_custom_object(
        "argoproj.io", "v1alpha1", "clusteranalysistemplates", template
    )
    spec = load_from_cluster("guestbook", NS, client=kube.client())
    assert spec == from_files(tmp_path, rollout, template)
