# ruff: noqa: F811  (the kube fixture imported from kube_emulator is shadowed by a parameter)
"""rolloutlab serve over real HTTP (uvicorn on 127.0.0.1) against a real, backfilled
Prometheus: Flagger's webhooks, Argo Rollouts' web provider, verdicts, auth, limits,
restarts and replicas.

Upstream contracts these tests hold the service to (read from the upstream code):

- Flagger's webhook payload is ``CanaryWebhookPayload`` {name, namespace, phase, checksum,
  metadata} (fluxcd/flagger ``pkg/apis/flagger/v1beta1/canary.go`` at 15bd6ad5), POSTed
  as JSON by ``callWebhook``, which treats any status above 202 as a failure
  (``pkg/controller/webhook.go``: ``if r.StatusCode > 202``). Hooks of type
  ``confirm-traffic-increase`` and ``confirm-promotion`` halt until they pass, a passing
  ``rollback`` hook rolls back at once, a failing ``rollout`` hook counts a failed check
  (``pkg/controller/scheduler_hooks.go``, ``scheduler.go`` ``runAnalysis``). Flagger
  sends no custom headers, so the credential rides in ``metadata``.
- Argo Rollouts' web provider GETs the URL, fails the measurement on a status outside
  200-299, and evaluates ``successCondition`` on the JSON body (``jsonPath`` defaults to
  ``{$}``, the whole body) (argoproj/argo-rollouts
  ``metricproviders/webmetric/webmetric.go`` at 9f8d111d).
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from kube_emulator import kube  # noqa: F401  (fixture)
from serve_helpers import (
    ARGO_ROLLOUT,
    NAMESPACE,
    Clock,
    flagger_weight,
    free_port,
    openmetrics,
    running,
    write_canaries,
)

from rolloutlab.serve import Auth, Engine, FolderCatalog, RevisionStore, create_app
from rolloutlab.sources.promserver import PrometheusServer

pytestmark = pytest.mark.prometheus

TOKEN = "s3cret-token-for-tests-0123456789"
AUTH = Auth(TOKEN)
BEARER = {"Authorization": f"Bearer {TOKEN}"}
HOOKS = ("confirm-traffic-increase", "confirm-promotion", "rollback", "rollout")


@pytest.fixture(scope="module")
def prometheus(prometheus_binary):
    """good: healthy; bad: 4x the primary's error rate; silent: declared, never scraped;
    held and held-blind: healthy but kept at 10% (Flagger halted the plan), with and
    without Flagger's own weight series."""
    texts = [openmetrics("good", seed=11), openmetrics("bad", errors_x=4.0, seed=12)]
    texts += [openmetrics(n, seed=13, weights=(90.0, 10.0)) for n in ("held", "held-blind")]
    texts += [flagger_weight("held", 10), flagger_weight("late", 10, from_minute=10)]
    texts.append(openmetrics("late", seed=14))
    with PrometheusServer(openmetrics=texts) as server:
        yield server.url


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    folder = write_canaries(
        tmp_path_factory.mktemp("gitops"), ["good", "bad", "silent", "held", "held-blind", "late"]
    )
    (folder / "guestbook.yaml").write_text(ARGO_ROLLOUT)
    return folder


def make_app(url, specs, clock, state=":memory:"):
    engine = Engine(url, FolderCatalog(specs), RevisionStore(state), clock=clock)
    return create_app(engine, AUTH)


def payload(name, checksum, namespace=NAMESPACE, **metadata):
    """Flagger's CanaryWebhookPayload as CallWebhook marshals it (phase Progressing)."""
    body = {"name": name, "namespace": namespace, "phase": "Progressing", "checksum": checksum}
    token = AUTH.canary_token(namespace, name)
    body["metadata"] = {"token": token, **metadata}
    return body


def hook(url, name, kind, checksum, **kw):
    return requests.post(f"{url}/flagger/{kind}", json=payload(name, checksum, **kw), timeout=30)


@pytest.fixture(scope="module")
def clock():
    return Clock()


@pytest.fixture(scope="module")
def service(prometheus, specs, clock):
    with running(make_app(prometheus, specs, clock)) as url:
        yield url


def test_a_4x_error_canary_is_rolled_back_and_never_promoted(service, clock):
    clock.at(0)
    assert hook(service, "bad", "confirm-traffic-increase", "bad-1").status_code == 200
    for minutes in (10, 30, 60):
        clock.at(minutes)
        promotion = hook(service, "bad", "confirm-promotion", "bad-1")
        assert promotion.status_code > 202, promotion.json()
    rollback = hook(service, "bad", "rollback", "bad-1")
    assert rollback.status_code == 200
    body = rollback.json()
    assert body["decision"] == "rollback"
    assert body["metrics"][0]["name"] == "request-success-rate"
    assert body["metrics"][0]["classification"] == "fail"
    assert hook(service, "bad", "rollout", "bad-1").status_code > 202
    assert hook(service, "bad", "confirm-traffic-increase", "bad-1").status_code > 202


def test_a_healthy_canary_with_enough_evidence_is_promoted(service, clock):
    clock.at(0)
    assert hook(service, "good", "rollout", "good-1").status_code == 200
    clock.at(10)  # two ticks: no evidence yet, so no promotion, but no harm either
    assert hook(service, "good", "confirm-promotion", "good-1").status_code > 202
    assert hook(service, "good", "confirm-traffic-increase", "good-1").status_code == 200
    assert hook(service, "good", "rollback", "good-1").status_code > 202
    clock.at(60)
    promotion = hook(service, "good", "confirm-promotion", "good-1")
    assert promotion.status_code == 200, promotion.json()
    assert promotion.json()["decision"] == "promote"
    assert promotion.json()["window_start"] == "2026-01-12T10:00:00+00:00"
    assert hook(service, "good", "rollback", "good-1").status_code > 202


def test_argo_web_provider_and_verdict_return_the_verdict_as_json(service, clock):
    clock.at(0)
    hook(service, "good", "rollout", "argo-1")
    clock.at(60)
    argo = requests.get(
        f"{service}/argo/namespaces/shop/rollouts/good",
        params={"revision": "argo-1"},
        headers=BEARER,
        timeout=30,
    )
    assert argo.status_code == 200
    result = argo.json()  # what successCondition sees as `result` with jsonPath {$}
    assert result["decision"] == "promote" and result["reason"]
    assert {m["name"] for m in result["metrics"]} == {"request-success-rate", "request-duration"}
    # without a revision: the one seen last for this canary
    assert (
        requests.get(f"{service}/verdict/shop/good", headers=BEARER, timeout=30).json()["revision"]
        == "argo-1"
    )


def test_an_argo_rollout_and_its_analysis_template_are_judged(service, clock):
    """A Rollout and its AnalysisTemplate from the folder: the template's query rendered for
    the canaryService and the stableService, judged canary against stable; what Argo's
    web provider reads before there is evidence, and once there is."""

    def ask(**params):
        url = f"{service}/argo/namespaces/shop/rollouts/guestbook"
        return requests.get(url, params=params, headers=BEARER, timeout=30)

    clock.at(0)
    first = ask(revision="6c8b9f")
    assert first.status_code == 200 and first.json()["status"] == "pending"
    assert first.json()["decision"] == "continue"  # successCondition != "rollback" holds
    clock.at(30)  # the plan is done, the evidence is not yet: Argo's promotion gate waits
    assert ask(revision="6c8b9f").json()["decision"] == "continue"
    clock.at(90)
    answer = ask(revision="6c8b9f").json()
    assert answer["decision"] == "promote" and answer["window_start"].startswith("2026-01-12T10:00")
    assert [m["name"] for m in answer["metrics"]] == ["success-rate"]
    assert ask(revision="new-hash").json()["status"] == "pending"  # a new revision starts over


def test_a_canary_with_no_data_is_never_promoted(service, clock):
    for minutes in (0, 5, 30, 60, 90):
        clock.at(minutes)
        answers = {kind: hook(service, "silent", kind, "silent-1") for kind in HOOKS}
        assert answers["confirm-promotion"].status_code > 202
        assert answers["rollback"].status_code > 202  # no evidence of harm either
        if minutes >= 5:
            assert answers["confirm-promotion"].json()["status"] == "nodata"
            assert answers["confirm-traffic-increase"].status_code > 202
            assert answers["rollout"].status_code > 202  # a failed check, as Flagger's own


def test_flaggers_own_weights_are_judged_when_prometheus_has_them(service, clock):
    """A canary Flagger held at 10% while the plan would be at 50%: with Flagger's
    flagger_canary_weight the judge sees the real split and lets the weight advance; without
    it the plan's weights disagree with the traffic (a sample-ratio mismatch), which holds."""
    clock.at(0)
    for name in ("held", "held-blind"):
        hook(service, name, "rollout", "held-1")
    clock.at(30)
    seen = hook(service, "held", "confirm-traffic-increase", "held-1")
    assert seen.status_code == 200, seen.json()
    assert seen.json()["weight"] == 10 and seen.json()["step"] == 1
    blind = hook(service, "held-blind", "confirm-traffic-increase", "held-1")
    assert blind.status_code == 412 and "sample-ratio mismatch" in blind.json()["why"]
    assert any("flagger_canary_weight" in note for note in blind.json()["notes"])
    for name in ("held", "held-blind"):  # neither is promoted below the plan's top weight
        assert hook(service, name, "confirm-promotion", "held-1").status_code > 202


def test_credentials(service, clock, caplog):
    caplog.set_level(logging.DEBUG)
    clock.at(60)
    assert requests.get(f"{service}/healthz", timeout=5).status_code == 200
    for path in ("/verdict/shop/good", "/argo/namespaces/shop/rollouts/good", "/metrics"):
        missing = requests.get(service + path, timeout=5)
        assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
        wrong = {"Authorization": f"Bearer {TOKEN[:-1]}x"}
        assert requests.get(service + path, headers=wrong, timeout=5).status_code == 401
    body = payload("good", "auth-1")
    del body["metadata"]
    assert requests.post(f"{service}/flagger/rollback", json=body, timeout=5).status_code == 401
    body["metadata"] = {"token": AUTH.canary_token("shop", "bad")}  # another canary's token
    assert requests.post(f"{service}/flagger/rollback", json=body, timeout=5).status_code == 401
    ok = requests.post(f"{service}/flagger/rollback", json=body, headers=BEARER, timeout=30)
    assert ok.status_code in (200, 412)  # the bearer token is valid for every canary
    assert hook(service, "good", "rollback", "auth-1").status_code in (200, 412)
    assert "rollback shop/good" in caplog.text  # logged, but never a credential
    for secret in (TOKEN, AUTH.canary_token("shop", "good"), AUTH.canary_token("shop", "bad")):
        assert secret not in caplog.text


def test_bad_requests_say_what_to_fix(service):
    unknown = hook(service, "nope", "confirm-promotion", "x")
    assert unknown.status_code == 404
    assert "shop/good" in unknown.json()["error"]  # lists the canaries it knows
    assert (
        requests.get(f"{service}/verdict/shop/nope", headers=BEARER, timeout=5).status_code == 404
    )
    post = f"{service}/flagger/confirm-promotion"
    assert requests.post(post, data=b"{not json", timeout=5).status_code == 400
    assert requests.post(post, json=["a"], timeout=5).status_code == 400
    assert requests.post(post, json={"namespace": "shop"}, timeout=5).status_code == 400
    bad_meta = {**payload("good", "c"), "metadata": {"token": 1}}
    assert requests.post(post, json=bad_meta, timeout=5).status_code == 400
    huge = payload("good", "c", padding="x" * 20_000)
    assert requests.post(post, data=json.dumps(huge), timeout=5).status_code == 413
    assert hook(service, "good", "confirm-rollout", "c").status_code == 404


def test_a_burst_of_webhooks_costs_one_evaluation(prometheus, specs):
    clock = Clock().at(0)
    app = make_app(prometheus, specs, clock)
    engine = app.state.engine
    with running(app) as url:
        hook(url, "good", "rollout", "burst-1")
        clock.at(40)
        before = engine.evaluations
        with ThreadPoolExecutor(16) as pool:
            codes = list(
                pool.map(
                    lambda i: hook(url, "good", HOOKS[i % 4], "burst-1").status_code, range(48)
                )
            )
        assert engine.evaluations == before + 1
        assert len(set(codes)) >= 2  # the four hooks answered from the one verdict
        metrics = requests.get(f"{url}/metrics", headers=BEARER, timeout=5).text
        assert 'rolloutlab_canary_status{name="good",namespace="shop"}' in metrics
        assert 'rolloutlab_serve_requests_total{code="200",endpoint="flagger/rollout"}' in metrics


def test_a_restart_keeps_the_window_and_the_verdict(prometheus, specs, tmp_path):
    state = tmp_path / "state.sqlite3"
    clock = Clock().at(0)
    with running(make_app(prometheus, specs, clock, state)) as url:
        assert hook(url, "good", "rollout", "restart-1").status_code == 200
    clock.at(60)
    with running(make_app(prometheus, specs, clock, state)) as url:
        promotion = hook(url, "good", "confirm-promotion", "restart-1")
    assert promotion.status_code == 200 and promotion.json()["decision"] == "promote"
    # without the state file, the window would start again at the restart: no promotion
    with running(make_app(prometheus, specs, clock)) as url:
        fresh = hook(url, "good", "confirm-promotion", "restart-1")
    assert fresh.status_code > 202 and fresh.json()["status"] == "pending"


def test_two_replicas_answer_the_same(prometheus, specs, tmp_path):
    state = tmp_path / "state.sqlite3"
    clock = Clock().at(0)
    a, b = make_app(prometheus, specs, clock, state), make_app(prometheus, specs, clock, state)
    with running(a) as url_a, running(b) as url_b:
        hook(url_a, "bad", "rollout", "replica-1")  # only replica A saw the start
        clock.at(45)
        for kind in HOOKS:
            answer_a, answer_b = (hook(u, "bad", kind, "replica-1") for u in (url_a, url_b))
            assert answer_a.status_code == answer_b.status_code
            assert answer_a.json() == answer_b.json()
        assert answer_a.json()["decision"] == "rollback"


def test_replicas_with_a_state_file_each_agree_through_flaggers_series(prometheus, specs):
    """Without a shared file, the window starts where Flagger's flagger_canary_weight shows
    the canary's traffic began: replicas (or a restart without the file) that first see the
    revision at different times agree; while the weight is 0 nothing is stored."""
    clock = Clock().at(5)  # "late" gets traffic from minute 10 on
    a, b = make_app(prometheus, specs, clock), make_app(prometheus, specs, clock)
    with running(a) as url_a, running(b) as url_b:
        early = hook(url_a, "late", "confirm-traffic-increase", "late-1")
        assert early.status_code == 200 and early.json()["status"] == "pending"
        assert a.state.engine.store.get("shop", "late", "late-1") is None
        clock.at(12)
        hook(url_a, "late", "rollout", "late-1")  # replica A sees the revision first here
        clock.at(40)
        hook(url_b, "late", "rollout", "late-1")  # and replica B only now
        clock.at(45)
        for kind in HOOKS:
            answer_a, answer_b = (hook(u, "late", kind, "late-1") for u in (url_a, url_b))
            assert answer_a.status_code == answer_b.status_code
            assert answer_a.json() == answer_b.json()
    assert answer_a.json()["window_start"] == "2026-01-12T10:10:00+00:00"


def test_prometheus_down_never_passes_a_promotion(specs):
    """A Prometheus that is not there (nothing listens on the port): the outage is real."""
    clock = Clock().at(0)
    app = make_app(f"http://127.0.0.1:{free_port()}", specs, clock)
    with running(app) as url:
        hook(url, "good", "rollout", "down-1")
        clock.at(60)
        answers = {kind: hook(url, "good", kind, "down-1") for kind in HOOKS}
    assert answers["confirm-promotion"].status_code == 503
    assert answers["confirm-promotion"].json()["status"] == "unavailable"
    assert answers["rollback"].status_code > 202  # an outage is not evidence of harm
    assert answers["rollout"].status_code == 503  # a failed check, as Flagger's own queries
    assert answers["confirm-traffic-increase"].status_code == 503


def test_serve_binds_loopback_by_default():
    from rolloutlab.cli import _parser

    args = _parser().parse_args(["serve", "--url", "http://prom:9090", "--spec", "x"])
    assert args.host == "127.0.0.1"


def test_the_service_token_is_required_and_never_shown(monkeypatch):
    from rolloutlab.errors import SpecError
    from rolloutlab.serve.auth import TOKEN_ENV

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(SpecError, match="--token-file"):
        Auth.load()
    with pytest.raises(SpecError, match="at least 16"):
        Auth("short")
    assert TOKEN not in repr(AUTH)


def test_canaries_read_from_the_cluster(prometheus, kube):
    """--kube: the Canary is read from the API (kmock emulator, real client over HTTP) when
    a webhook first names it; one that is not there is a 404 naming what the namespace holds."""
    import yaml
    from serve_helpers import CANARY

    from rolloutlab.serve import ClusterCatalog
    from rolloutlab.specs.kube import load_from_cluster

    canary = yaml.safe_load(CANARY.format(name="bad", namespace=NAMESPACE))
    kube.seed("flagger.app/v1beta1/canaries", canary)
    catalog = ClusterCatalog(lambda name, ns: load_from_cluster(name, ns, client=kube.client()))
    clock = Clock().at(0)
    engine = Engine(prometheus, catalog, RevisionStore(), clock=clock)
    with running(create_app(engine, AUTH)) as url:
        hook(url, "bad", "rollout", "kube-1")
        clock.at(45)
        assert hook(url, "bad", "rollback", "kube-1").status_code == 200
        missing = hook(url, "good", "rollback", "kube-1")
    assert missing.status_code == 404 and "bad" in missing.json()["error"]


def test_an_evaluation_reads_in_a_notebook_and_as_json(prometheus, specs):
    clock = Clock().at(0)
    engine = Engine(prometheus, FolderCatalog(specs), RevisionStore(), clock=clock)
    engine.evaluate("shop", "bad", "nb-1")
    clock.at(45)
    evaluation = engine.evaluate("shop", "bad", "nb-1")
    assert (
        repr(evaluation) == "<Evaluation shop/bad@nb-1: rollback (judged) at 2026-01-12 10:45 UTC>"
    )
    html = evaluation._repr_html_()
    assert "rollback" in html and "request-success-rate" in html and "step" in html
    assert json.loads(json.dumps(evaluation.to_dict()))["decision"] == "rollback"


def test_canary_token_is_printed_for_the_webhook_metadata(tmp_path, capsys):
    from rolloutlab.cli import main

    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    argv = ["serve", "--token-file", str(token_file), "--canary-token", "shop/good"]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == AUTH.canary_token("shop", "good")
    assert main([*argv[:-1], "shop"]) == 2
    assert "NAMESPACE/NAME" in capsys.readouterr().err
