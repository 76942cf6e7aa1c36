"""`rolloutlab weight` and `rolloutlab demo --live` as a user runs them.

`weight` goes through a kubeconfig file to kmock's Kubernetes API emulator over real
HTTP (what kmock cannot model is listed in tests/kube_emulator.py).
"""

# ruff: noqa: F811
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kube_emulator import audit_log, kube, virtual_service  # noqa: F401

from rolloutlab.cli import main
from rolloutlab.sources.recording import load

VS = "networking.istio.io/v1beta1/virtualservices"
UPSTREAM = Path(__file__).parent / "fixtures" / "upstream"


@pytest.fixture
def kubeconfig(kube, tmp_path, monkeypatch):
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emu", "cluster": {"server": kube.url}}],
                "users": [{"name": "me", "user": {"token": "t"}}],
                "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "me"}}],
                "current-context": "emu",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


def weights(kube):
    route = kube.object(VS, "test", "podinfo")["spec"]["http"][0]["route"]
    return [r["weight"] for r in route]


def test_weight_reads_previews_and_sets(kube, kubeconfig, audit_log, capsys):
    kube.seed(VS, virtual_service(90, 10))
    base = ["weight", "--router", "istio", "--name", "podinfo", "--namespace", "test"]
    assert main(base) == 0
    assert capsys.readouterr().out.rstrip().endswith("): 90/10")

    assert main([*base, "--set", "30", "--dry-run"]) == 0
    assert "30" in capsys.readouterr().out
    assert weights(kube) == [90, 10]  # a preview writes nothing

    assert main([*base, "--set", "30", "--reason", "cli test"]) == 0
    assert weights(kube) == [70, 30]
    record = audit_log.records()[-1]
    assert (record.reason, record.dry_run) == ("cli test", False)


def test_weight_errors_are_one_line(kube, kubeconfig, audit_log, capsys):
    kube.seed(VS, virtual_service(90, 10))
    base = ["weight", "--router", "istio", "--name", "podinfo", "--namespace", "test"]
    assert main([*base, "--set", "130"]) == 2
    err = capsys.readouterr().err
    assert "130" in err and "Traceback" not in err
    assert main(["weight", "--router", "istio", "--name", "nope", "--namespace", "test"]) == 2
    assert "nope" in capsys.readouterr().err
    assert weights(kube) == [90, 10]


def test_demo_live_rolls_back_a_bad_canary(prometheus_binary, tmp_path, capsys):
    report = tmp_path / "live.html"
    argv = ["demo", "--live", "--canary-errors", "5x", "--interval", "3", "-o", str(report)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "rolled_back: rollback" in out and f"wrote {report}" in out


def test_judge_json_is_the_verdict(tmp_path, capsys):
    assert main(["judge", "data/error-regression.parquet", "--judge", "flagger", "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["decision"] == "rollback" and verdict["judge"] == "flagger"


def test_fetch_then_show_against_a_real_prometheus(backfilled, tmp_path, capsys):
    out = tmp_path / "rec.parquet"
    argv = [
        "fetch",
        "--url",
        backfilled.url,
        "--preset",
        "istio",
        "--target",
        "podinfo",
        "--namespace",
        "test",
        "--start",
        "2026-01-12T10:01Z",
        "--end",
        "2026-01-12T11:00Z",
        "--step",
        "1m",
        "-o",
        str(out),
    ]
    assert main(argv) == 0
    assert main(["show", str(out)]) == 0
    text = capsys.readouterr().out
    for column in ("requests", "error %", "p99 ms"):  # the terminal summary's columns
        assert column in text
    rec = load(out)
    assert set(rec.variants) == {"primary", "canary"}
    assert rec.meta["preset"] == "istio" and rec.meta["source"] == backfilled.url


def test_fetch_errors_are_one_line(backfilled, capsys):
    argv = [
        "fetch",
        "--url",
        backfilled.url,
        "--preset",
        "istio",
        "--target",
        "nope",
        "--namespace",
        "test",
        "--start",
        "2026-01-12T10:00Z",
        "--end",
        "2026-01-12T11:00Z",
        "-o",
        "unused.parquet",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no istio data for nope" in err and err.count("\n") == 1 and "Traceback" not in err


class MeshFollowingVirtualService:
    """Stands in for the mesh: the demo's load follows the VirtualService's canary weight
    (read from the API emulator at most every 0.2 s), as Istio's proxies would."""

    def __init__(self, kube):
        self.kube, self.read_at, self.value = kube, 0.0, 0

    @property
    def canary(self):
        import time

        if time.monotonic() - self.read_at > 0.2:
            self.value = weights(self.kube)[1]
            self.read_at = time.monotonic()
        return self.value


def test_run_rolls_back_a_bad_canary_through_the_virtual_service(
    prometheus_binary, kube, kubeconfig, audit_log, tmp_path, capsys
):
    from rolloutlab.control.local import LiveDemo

    kube.seed(VS, virtual_service(100, 0))
    spec = tmp_path / "spec.yaml"
    spec.write_text("interval: 3s\nthreshold: 2\nstepWeight: 10\nmaxWeight: 50\n")
    with LiveDemo(canary_errors="5x", interval_s=3, duration_s=120, seed=4) as demo:
        demo.load.router = MeshFollowingVirtualService(kube)
        argv = [
            "run",
            "--url",
            demo.prometheus_url,
            "--router",
            "istio",
            "--target",
            "podinfo",
            "--namespace",
            "test",
            "--spec",
            str(spec),
            "--auto",
        ]
        # the canary gets no traffic until the loop's first write (10%), then fails 5x
        assert main(argv) == 0
    out = capsys.readouterr().out
    assert "rolled_back" in out
    assert weights(kube) == [100, 0]
    canary = [r.after["canary"] for r in audit_log.records() if not r.dry_run]
    assert canary[0] == 10 and canary[-1] == 0


def fetch_argv(url: str, out, *options: str) -> list[str]:
    window = ["--start", "2026-01-12T10:01Z", "--end", "2026-01-12T10:30Z", "-o", str(out)]
    return ["fetch", "--url", url, "--target", "podinfo", *window, *options]


def test_fetch_passes_names_and_aggregate_to_the_preset(backfilled, tmp_path, capsys):
    # knative selects its variants by revision (Flagger's route names): without them the
    # preset cannot be filled; with them both variants come back
    out = tmp_path / "knative.parquet"
    knative = ["--preset", "knative", "--namespace", "rt-knative"]
    assert main(fetch_argv(backfilled.url, out, *knative)) == 2
    assert "route" in capsys.readouterr().err
    names = ["--name", "route=podinfo-00002", "--name", "primary_route=podinfo-00001"]
    assert main(fetch_argv(backfilled.url, out, *knative, *names, "--aggregate", "sum")) == 0
    rec = load(out)
    assert set(rec.variants) == {"primary", "canary"}
    assert rec.meta["names"] == {"route": "podinfo-00002", "primary_route": "podinfo-00001"}
    assert rec.meta["aggregate"] == "sum"
    assert main(fetch_argv(backfilled.url, out, *knative, "--name", "route")) == 2
    assert "--name 'route': expected KEY=VALUE" in capsys.readouterr().err


def test_weight_splits_by_subsets(kube, kubeconfig, audit_log, capsys):
    # Argo's Istio layout: one host, the stable and canary DestinationRule subsets
    # (argoproj/argo-rollouts examples/istio/istio-subset-split.yaml, in the corpus)
    docs = yaml.safe_load_all((UPSTREAM / "argo-objects" / "istio-subset-split.yaml").read_text())
    vs = next(doc for doc in docs if doc["kind"] == "VirtualService")
    vs["metadata"]["namespace"] = "test"
    kube.seed(VS, vs)
    name = vs["metadata"]["name"]
    base = ["weight", "--router", "istio", "--name", name, "--namespace", "test"]
    assert main(base) == 2  # one host for both: the same destination, refused with the fix
    assert "primary_subset" in capsys.readouterr().err
    subsets = ["--primary-subset", "stable", "--canary-subset", "canary"]
    assert main([*base, *subsets, "--set", "10"]) == 0
    route = kube.object(VS, "test", name)["spec"]["http"][0]["route"]
    assert [(r["destination"]["subset"], r["weight"]) for r in route] == [
        ("stable", 90),
        ("canary", 10),
    ]


def test_run_fills_the_pod_template_hashes_of_argo_templates(
    kube, kubeconfig, tmp_path, capsys, monkeypatch
):
    """As fetch does: an Argo template selecting pods by rollouts-pod-template-hash needs
    both hashes; without them run is refused naming the option, with them the loop's
    queries carry them (the loop itself is stubbed: it is tested in test_control_loop)."""
    from test_judges_manifests import HASH_ROLLOUT

    from rolloutlab import cli

    kube.seed(VS, virtual_service(100, 0))
    (tmp_path / "rollout.yaml").write_text(HASH_ROLLOUT)
    argv = ["run", "--url", "http://127.0.0.1:1", "--router", "istio", "--spec"]
    argv += [str(tmp_path / "rollout.yaml")]
    assert main(argv) == 2
    assert "needs the canary and stable hash. Pass them" in capsys.readouterr().err
    driven = []
    monkeypatch.setattr(cli, "_drive", lambda rollout: driven.append(rollout) or 0)
    assert main([*argv, "--pod-template-hash", "stable=6c8b,canary=5f7c"]) == 0
    queries = dict(driven[0].gauges["error-ratio"])
    assert '"5f7c"' in queries["canary"] and '"6c8b"' in queries["primary"]
