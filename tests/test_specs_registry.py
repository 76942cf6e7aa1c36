"""One registry of judge names and of router kinds: the specs package's, used by the CLI."""

from __future__ import annotations

from rolloutlab import cli
from rolloutlab.control.routers import ROUTERS
from rolloutlab.judges import JUDGES
from rolloutlab.specs import JUDGE_NAMES, ROUTER_KINDS, Spec


def test_every_name_a_spec_accepts_is_a_registered_judge_and_router():
    assert set(JUDGE_NAMES) == set(JUDGES)
    assert set(ROUTER_KINDS) == set(ROUTERS)


def test_the_cli_offers_the_registries():
    parser = cli._parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    judge = next(a for a in sub["judge"]._actions if a.dest == "judge")
    router = next(a for a in sub["weight"]._actions if a.dest == "router")
    assert tuple(judge.choices) == JUDGE_NAMES and tuple(router.choices) == ROUTER_KINDS


def test_smi_versions_are_router_kinds_and_flagger_meshes_map_to_them():
    assert {"smi:v1alpha1", "smi:v1alpha2", "smi:v1alpha3"} <= set(ROUTER_KINDS)
    for provider, kind in [
        ("smi:v1alpha2:linkerd", "smi:v1alpha2"),  # Flagger's smi:<version>:<mesh>
        ("smi:v1alpha3", "smi:v1alpha3"),
        ("linkerd", "linkerd"),
        ("gatewayapi:v1beta1", "gatewayapi:v1beta1"),  # Flagger's gateway_api.go versions
        ("kubernetes", None),
    ]:
        spec = Spec.load(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: web, namespace: t}\n"
            f"spec:\n  provider: {provider}\n  targetRef: {{name: web}}\n"
            "  analysis: {stepWeight: 10}\n"
        )
        assert spec.router == kind, provider
