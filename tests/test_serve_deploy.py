"""deploy/: every manifest validates offline against the Kubernetes OpenAPI schema
(the schemas bundled in the PyPI package kubernetes-validate) and the CRD schemas of
Flagger and Argo Rollouts (vendored in tests/fixtures/crds, sources in SOURCE.md); the
Deployment's command line is one rolloutlab parses; the examples point at the routes the
service has; and the image is built as the issue asks (slim, non-root, from the repo)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from rolloutlab.serve.gates import HOOKS

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
CRDS = Path(__file__).parent / "fixtures" / "crds"
KUBERNETES = "1.30"
CRD_SCHEMAS = {
    ("flagger.app/v1beta1", "Canary"): "canary-flagger.app-v1beta1.json",
    ("argoproj.io/v1alpha1", "AnalysisTemplate"): "analysistemplate-argoproj.io-v1alpha1.json",
}


def documents():
    for path in sorted(DEPLOY.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path.relative_to(ROOT), doc


DOCS = list(documents())


@pytest.mark.parametrize(
    "where,doc",
    DOCS,
    ids=[f"{p}:{d['kind']}/{d.get('metadata', {}).get('name', '')}" for p, d in DOCS],
)
def test_manifest_validates_against_its_schema(where, doc):
    key = (doc["apiVersion"], doc["kind"])
    if key in CRD_SCHEMAS:
        schema = json.loads((CRDS / CRD_SCHEMAS[key]).read_text())
        jsonschema.validate(doc, schema)
    elif doc["kind"] == "Kustomization":
        listed = {DEPLOY / name for name in doc["resources"]}
        assert listed == set(DEPLOY.glob("*.yaml")) - {DEPLOY / "kustomization.yaml"}
    else:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_validation_would_catch_a_mistake():
    deployment = next(d for _, d in DOCS if d["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)
    canary = next(d for _, d in DOCS if d["kind"] == "Canary")
    bad_hook = json.loads(json.dumps(canary))
    bad_hook["spec"]["analysis"]["webhooks"][0]["type"] = "confirm-everything"
    schema = json.loads((CRDS / CRD_SCHEMAS[("flagger.app/v1beta1", "Canary")]).read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad_hook, schema)


def test_the_deployment_runs_serve_as_configured():
    from rolloutlab.cli import _parser

    deployment = next(d for _, d in DOCS if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = _parser().parse_args(container["args"])
    assert args.command == "serve" and args.kube and args.host == "0.0.0.0"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(Path(args.state).parent) in mounts and str(Path(args.token_file).parent) in mounts


def test_examples_use_the_services_routes(tmp_path):
    from rolloutlab.serve import FolderCatalog

    canary = next(d for _, d in DOCS if d["kind"] == "Canary")
    hooks = {w["type"]: w for w in canary["spec"]["analysis"]["webhooks"]}
    assert set(hooks) == set(HOOKS)
    for kind, webhook in hooks.items():
        assert webhook["url"].endswith(f"/flagger/{kind}") and "token" in webhook["metadata"]
    catalog = FolderCatalog(DEPLOY / "examples" / "flagger-canary.yaml")
    assert [c.key for c in catalog] == ["test/podinfo"]  # rolloutlab reads the example
    route = re.compile(r"http://[^/]+/argo/namespaces/\{\{args\.namespace\}\}/rollouts/")
    templates = [d for _, d in DOCS if d["kind"] == "AnalysisTemplate"]
    assert len(templates) == 2
    for template in templates:
        web = template["spec"]["metrics"][0]["provider"]["web"]
        assert route.match(web["url"]) and web["headers"][0]["key"] == "Authorization"


def test_the_image_is_slim_non_root_and_built_from_the_repo():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:[\d.]+-slim$", dockerfile, re.M)
    user = re.search(r"^USER (\S+)$", dockerfile, re.M)
    assert user and not user.group(1).startswith(("0", "root"))
    assert 'pip install ".[serve]"' in dockerfile and "COPY rolloutlab ./rolloutlab" in dockerfile
