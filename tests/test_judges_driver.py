"""The judge() driver: spec forms, roles, the registry, and judging up to ``at``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import rolloutlab.judges as judges
from rolloutlab.errors import SpecError
from rolloutlab.judges import JUDGES, Spec, Verdict, judge, judge_class
from rolloutlab.sources.promjson import load_query_range_json
from rolloutlab.sources.simulate import simulate
from rolloutlab.specs import JUDGE_NAMES

START = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)
FLAGGER_YAML = """
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  targetRef: {name: podinfo}
  analysis:
    interval: 1m
    threshold: 2
    maxWeight: 30
    stepWeight: 10
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 95}
"""


@pytest.fixture(scope="module")
def healthy():
    return simulate("healthy", seed=5)


@pytest.fixture(scope="module")
def failing():
    return simulate("error-regression", seed=5, error_ratio=(1.0, 20.0))


def test_exports():
    for name in ("Spec", "MetricSpec", "Verdict", "MetricResult", "TickState", "judge"):
        assert name in judges.__all__ and getattr(judges, name) is not None


def test_registry_names_every_judge_a_spec_may_name():
    assert set(JUDGES) == set(JUDGE_NAMES)


@pytest.mark.parametrize("form", ["spec", "dict", "yaml", "path", "path-str"])
def test_spec_forms_give_the_same_verdict(form, healthy, tmp_path):
    path = tmp_path / "canary.yaml"
    path.write_text(FLAGGER_YAML)
    spec = Spec.load(FLAGGER_YAML)
    given = {
        "spec": spec,
        "dict": spec.to_dict(),
        "yaml": FLAGGER_YAML,
        "path": path,
        "path-str": str(path),
    }[form]
    verdict = judge(healthy, given, judge="flagger")
    assert isinstance(verdict, Verdict)
    # 3 steps (10, 20, 30): promotion at the third tick
    assert (verdict.decision, verdict.decided_at) == ("promote", START + timedelta(minutes=3))


def test_no_spec_uses_the_defaults(healthy):
    verdict = judge(healthy, judge="flagger")
    assert verdict.spec == Spec()
    assert verdict.judge == "flagger"


def test_the_spec_names_the_judge(healthy):
    spec = Spec.load(FLAGGER_YAML).replace(judge="kayenta")
    assert judge(healthy, spec).judge == "kayenta"


def test_at_judges_only_the_ticks_complete_by_then(failing):
    spec = Spec.load(FLAGGER_YAML)
    full = judge(failing, spec, judge="flagger")
    assert (full.decision, full.decided_at) == ("rollback", START + timedelta(minutes=3))
    early = judge(failing, spec, judge="flagger", at=START + timedelta(minutes=2, seconds=30))
    assert early.decision == "continue" and early.decided_at is None
    assert [t.state["failed_checks"] for t in early.ticks] == [1, 2]
    as_text = judge(failing, spec, judge="flagger", at="2026-01-12T10:02:30+00:00")
    assert as_text.ticks == early.ticks


def test_at_before_the_first_tick(healthy):
    verdict = judge(healthy, judge="flagger", at=START)
    assert (verdict.decision, verdict.ticks) == ("continue", ())


def test_kayenta_lifetime_is_the_whole_recording_even_with_at(healthy):
    every = {"kayenta": {"judgmentInterval": "30m"}}
    verdict = judge(healthy, every, judge="kayenta", at=START + timedelta(hours=1))
    assert verdict.decision == "continue"  # judged at 30 and 60 min, lifetime runs to 3 h
    assert [t.state["judged"] for t in verdict.ticks].count(True) == 2
    # no analysis interval (NetflixACAJudge's default): one judgment, at the lifetime's end
    verdict = judge(healthy, judge="kayenta", at=START + timedelta(hours=1))
    assert [t.state["judged"] for t in verdict.ticks].count(True) == 0
    verdict = judge(healthy, judge="kayenta")
    assert [t.timestamp for t in verdict.ticks if t.state["judged"]] == [healthy.end]


def test_roles_come_from_the_spec_or_the_recording(healthy):
    verdict = judge(healthy, {"control": "primary", "treatment": "canary"}, judge="flagger")
    assert verdict.decision == "promote"
    with pytest.raises(SpecError, match="treatment: 'canary2' is not a variant"):
        judge(healthy, {"treatment": "canary2"}, judge="flagger")
    with pytest.raises(SpecError, match="both 'canary'"):
        judge(healthy, {"control": "canary", "treatment": "canary"}, judge="flagger")
    swapped = judge(healthy, {"control": "canary"}, judge="flagger")  # the other variant
    assert swapped.ticks[0].metrics[0].details["value"] > 98  # the primary's success rate


def test_unknown_judge_lists_the_choices(healthy):
    with pytest.raises(SpecError, match=r"unknown judge 'flager'.*\['flagger', 'kayenta'"):
        judge(healthy, judge="flager")


def test_unknown_option_is_a_spec_error(healthy):
    with pytest.raises(SpecError, match="follow_weights"):
        judge(healthy, judge="flagger", follow_weights=True)


def test_options_reach_the_judge(healthy):
    verdict = judge(healthy, judge="flagger", follow_recorded_weights=True)
    assert verdict.ticks[0].weight == 10.0  # the simulator's recorded weight


def test_naive_at_is_refused(healthy):
    with pytest.raises(SpecError, match="no time zone"):
        judge(healthy, judge="flagger", at=datetime(2026, 1, 12, 11, 0))
    with pytest.raises(SpecError, match="ISO 8601"):
        judge(healthy, judge="flagger", at="eleven o'clock")


def test_rolloutlab_judge_is_looked_up_at_call_time():
    assert JUDGES["rolloutlab"] == "rolloutlab.judges.rolloutlab:RolloutlabJudge"
    pytest.importorskip("rolloutlab.judges.rolloutlab")
    assert judge_class("rolloutlab").name == "rolloutlab"


def test_a_judge_that_cannot_be_loaded(monkeypatch):
    monkeypatch.setitem(JUDGES, "rolloutlab", "rolloutlab.judges.nowhere:Judge")
    with pytest.raises(SpecError, match="'rolloutlab' cannot be loaded"):
        judge_class("rolloutlab")


def test_verdict_is_json_ready(failing):
    data = judge(failing, FLAGGER_YAML, judge="flagger").to_dict()
    assert data["decision"] == "rollback"
    assert data["decided_at"] == "2026-01-12T10:03:00+00:00"
    assert data["ticks"][0]["state"]["phase"] == "Progressing"


def test_an_interval_shorter_than_the_data_step_is_judged_per_step_with_a_note(healthy):
    # Flagger's own tests use 10 s and 15 s intervals; a 1-minute recording cannot be cut
    # finer, and without data a tick must not count (it used to promote before any sample)
    for name in ("rolloutlab", "flagger"):
        verdict = judge(healthy, {"interval": "15s"}, judge=name)
        assert verdict.details["notes"] == [
            "the spec's interval 15s is shorter than the recording's 1m step, so each tick "
            "covers one step (judged every 1m)"
        ]
        assert verdict.reason.endswith("(judged every 1m))")
        ticks = verdict.ticks
        gaps = {b.timestamp - a.timestamp for a, b in zip(ticks, ticks[1:], strict=False)}
        assert gaps <= {timedelta(minutes=1)}
        assert verdict.ticks[0].timestamp == START + timedelta(minutes=1)


def test_the_interval_is_fitted_to_the_recordings_own_step_not_the_union_of_timestamps():
    # four series on a 20 s cadence at offsets 0, 3, 7 and 11 s: all timestamps together
    # are 3-4 s apart, so a 10 s interval used to pass as coarser than the data
    raw = (
        Path(__file__).parent / "fixtures" / "upstream" / "prometheus" / "istio_reporters_raw.json"
    )
    recording = load_query_range_json(raw, aggregate="sum")
    assert recording.step_s == 20.0
    verdict = judge(recording, {"interval": "10s"}, judge="flagger")
    assert verdict.details["notes"] == [
        "the spec's interval 10s is shorter than the recording's 20s step, so each tick "
        "covers one step (judged every 20s)"
    ]
    assert "notes" not in judge(recording, {"interval": "20s"}, judge="flagger").details
