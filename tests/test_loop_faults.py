"""The live loop through the Prometheus fault suite.

Every answer of tests/test_faults_prometheus.py (imported, not copied), and the faults a
loop meets besides (a server that takes the request and never answers, an HTML error page
with status 200, a 429 with a Retry-After, series with the wrong variant labels, counter
resets, a canary that disappears, a clock that jumps), served over real HTTP on 127.0.0.1
to the real Prometheus client, judged by the real rolloutlab judge, written to a
LocalRouter (a few also to an Istio VirtualService on the kmock emulator). The fault
suite's healthy answers are split by the router's weight, as the canary's real traffic
would be.

For each fault, from a canary at 40% (plan 20, 40, 60; at 60% a healthy tick promotes,
``promotion: plan``): ``step()`` returns, holds the weight and says why; when the fault
clears the loop advances again; the same fault at the top weight never promotes and
rolls back at the documented limit: ``failure_limit`` failed steps in a row for a fetch
that fails (2 here), the spec's ``threshold`` ticks in a row for data the judge finds
invalid (3 here). A sample-ratio mismatch holds for good, as the README says ("the judge
holds for good and says check the traffic routing"): no advance, no rollback.

Then: run() in real time through a fault; clocks that jump back, ahead, or run ahead of
Prometheus; and rollback or pause at once while the judge works through many ticks or
while the Slack webhook never answers.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import test_faults_prometheus as faults
from fake_prometheus import FakePrometheus, prom_text
from kube_emulator import NS, audit_log, kube, virtual_service  # noqa: F401 (fixtures)
from test_control_loop import (
    OUTAGE,
    FakeSource,
    Inbox,
    Scripted,
    fast,
    in_thread,
    make,
    tick,
    writes,
)

from rolloutlab.control.audit import AuditLog
from rolloutlab.control.local import LocalRouter
from rolloutlab.control.loop import Rollout, TickRecord
from rolloutlab.control.notify import SlackNotifier
from rolloutlab.control.routers import IstioRouter, Router
from rolloutlab.sources.prometheus import Prometheus, Retries
from rolloutlab.specs import Spec

VS = "networking.istio.io/v1beta1/virtualservices"
SPEC = Spec(interval_s=60, step_weight=20, max_weight=60, threshold=3, promotion="plan")
FAILURE_LIMIT = 2

#: How the loop meets a fault: a failed step, a tick the judge holds as invalid data, or a
#: sample-ratio mismatch (held for good).
FAILED, INVALID, MISMATCH = "failed step", "invalid data", "sample-ratio mismatch"
NO_VALID_DATA = "hold: no valid data for request-success-rate"
SRM = "hold: sample-ratio mismatch"


def never(handler: Any, params: dict[str, list[str]]) -> None:
    """Take the request and answer nothing until the server stops."""
    handler.server.script.stopping.wait(30)


def relabel(names: dict[str, str]) -> faults.Change:
    """Series carry other ``destination_workload`` values than the preset's."""

    def change(doc: dict[str, Any], metric: str) -> None:
        for series in doc["data"]["result"]:
            name = series["metric"]["destination_workload"]
            series["metric"]["destination_workload"] = names.get(name, name)

    return change


def canary_counts(scale: Callable[[float], float], metrics: tuple[str, ...]) -> faults.Change:
    """The canary's ``metrics`` read ``scale(value)`` at every step."""

    def change(doc: dict[str, Any], metric: str) -> None:
        for series in faults.canary(doc) if metric in metrics else []:
            series["values"] = [[t, prom_text(scale(float(v)))] for t, v in series["values"]]

    return change


def an_hour_old(doc: dict[str, Any], metric: str) -> None:
    """A caching proxy answers with the points of an hour before the range asked."""
    for series in doc["data"]["result"]:
        series["values"] = [[t - 3600, value] for t, value in series["values"]]


COUNTERS = ("requests", "errors")
ERROR_PAGE = b"<html><body><h1>Internal Server Error</h1><p>upstream timed out</p></body></html>"

#: (fault, answer, how the loop meets it, text its records carry)
CASES = [
    *[(name, answer, FAILED, text) for name, answer, _, _, text, _ in faults.ERRORS],
    ("accepts and never answers", never, FAILED, "did not answer within 0.5 s in total"),
    ("HTML error page with 200", faults.status(200, ERROR_PAGE, {"Content-Type": "text/html"}),
     FAILED, "not a Prometheus API response"),
    ("429 with Retry-After 1 s", faults.status(429, b"slow down", {"Retry-After": "1"}), FAILED,
     "(HTTP 429): slow down"),  # a wait beyond the 0.5 s deadline is not waited for
    ("empty result", faults.data(faults.only(lambda doc, s: False)), FAILED,
     "no data for variant 'primary'"),
    ("missing primary series", faults.data(faults.only(lambda doc, s: s in faults.canary(doc))),
     FAILED, "no data for variant 'primary'"),
    ("canary disappears", faults.data(faults.only(lambda doc, s: s not in faults.canary(doc))),
     FAILED, "no data for variant 'canary'"),
    ("missing steps", faults.data(faults.drop_first_steps), FAILED,
     "no data for variant 'canary'"),
    ("unknown variant label", faults.data(relabel({"podinfo": "podinfo-canary"})), FAILED,
     "no data for variant 'canary'"),
    ("stale answer from a cache", faults.data(an_hour_old), FAILED, "no data for ticks"),
    ("NaN", faults.data(faults.canary_value(math.nan)), INVALID, NO_VALID_DATA),
    ("+Inf", faults.data(faults.canary_value(math.inf, "requests")), INVALID, NO_VALID_DATA),
    ("-Inf", faults.data(faults.canary_value(-math.inf)), INVALID, NO_VALID_DATA),
    ("negative", faults.data(faults.canary_value(-1.0)), INVALID, NO_VALID_DATA),
    ("warnings", faults.data(faults.add_warning), INVALID, NO_VALID_DATA),
    # a reset read by a naive delta: the canary's counters drop
    ("counter reset as a drop", faults.data(canary_counts(lambda v: -50 * v, COUNTERS)),
     INVALID, NO_VALID_DATA),
    # a reset read by increase() over a summed series: the whole counter in one step
    ("counter reset as a jump", faults.data(canary_counts(lambda v: 1000 * v, COUNTERS)),
     MISMATCH, SRM),
    ("swapped variant labels",
     faults.data(relabel({"podinfo": "podinfo-primary", "podinfo-primary": "podinfo"})),
     MISMATCH, SRM),
    ("canary traffic drops to zero",
     faults.data(canary_counts(lambda v: 0.0, (*COUNTERS, "latency_ms"))), MISMATCH, SRM),
]  # fmt: skip


@pytest.fixture
def router(request, tmp_path) -> Router:
    """A LocalRouter, or (parametrized ``"istio"``) a Flagger-shaped Istio VirtualService
    on the kmock emulator, written through the real kubernetes client."""
    if getattr(request, "param", "local") == "local":
        return LocalRouter("podinfo", NS, audit=AuditLog(tmp_path / "audit.jsonl"))
    request.getfixturevalue("audit_log")
    emulator = request.getfixturevalue("kube")
    emulator.seed(VS, virtual_service())
    return IstioRouter("podinfo", NS, client=emulator.client())


@pytest.fixture
def server(router, monkeypatch) -> Iterator[faults.Scripted]:
    """The fault suite's scripted server, answering healthy data until told otherwise."""
    monkeypatch.setattr(faults, "healthy", FakePrometheus(router, error_rate=0.001)._answer)
    with faults.Scripted(faults.data()) as server:
        yield server


def client(url: str) -> Prometheus:
    """The fault suite's client (0.5 s in total per query), running the three queries at
    once as the default client does."""
    prom = faults.client(url)
    prom.max_workers = 3
    return prom


def rollout_on(router: Router, url: str, **options: Any) -> tuple[Rollout, Any]:
    """The real judge and client on ``url``; the canary at 20%."""
    options.setdefault("source", client(url))
    rollout, clock = make(router, "rolloutlab", spec=SPEC, failure_limit=FAILURE_LIMIT, **options)
    assert rollout.step().new_weight == 20
    return rollout, clock


def steps(rollout: Rollout, clock: Any, n: int) -> list[TickRecord]:
    """The next ``n`` ticks, one step just after each ends."""
    records = []
    for _ in range(n):
        k = max(0, (clock.now - rollout.origin) // timedelta(minutes=1))
        records.append(tick(rollout, clock, k))
    return records


def said(record: TickRecord) -> str:
    return (record.error or "") + " ".join(record.notes)


def test_healthy_answers_advance_and_promote_at_the_top_so_the_faults_are_a_real_test(
    router, server
):
    rollout, clock = rollout_on(router, server.url)
    assert [(r.action, r.new_weight) for r in steps(rollout, clock, 3)] == [
        ("advance", 40),
        ("advance", 60),
        ("promote", 0),
    ]


#: every fault on a LocalRouter, a few on an Istio VirtualService on the kmock emulator
ON_ISTIO = ("accepts and never answers", "NaN", "swapped variant labels")
FAULTS = [pytest.param("local", *case[1:], id=case[0]) for case in CASES] + [
    pytest.param("istio", *case[1:], id=f"{case[0]} (istio)")
    for case in CASES
    if case[0] in ON_ISTIO
]


@pytest.mark.parametrize(("router", "answer", "kind", "why"), FAULTS, indirect=["router"])
def test_each_fault_holds_says_why_resumes_and_rolls_back_at_the_limit(
    router, server, answer, kind, why
):
    rollout, clock = rollout_on(router, server.url)
    assert steps(rollout, clock, 1)[0].new_weight == 40
    limit = {FAILED: FAILURE_LIMIT, INVALID: SPEC.threshold, MISMATCH: 4}[kind]
    server.answer = answer
    held = steps(rollout, clock, limit - 1)
    assert [(r.action, r.new_weight) for r in held] == [("hold", 40)] * (limit - 1)
    assert all(why in said(r) for r in held), [said(r) for r in held]
    assert all((r.failures > 0) == (kind == FAILED) for r in held)
    assert why in rollout.status
    server.answer = faults.data()
    resumed = steps(rollout, clock, 1)[0]
    if kind == MISMATCH:  # invalid for good: held, never blamed nor promoted
        assert (resumed.action, resumed.new_weight) == ("hold", 40) and why in said(resumed)
        assert writes(rollout) == [(0, 20), (20, 40)] and rollout.notifier.kinds == ["halt"]
        said_once = rollout.notifier.events[0].message  # said once, when the hold began
        assert why.removeprefix("hold: ") in said_once
        return
    assert (resumed.action, resumed.new_weight, resumed.failures) == ("advance", 60, 0)
    server.answer = answer  # at the top weight, where a healthy tick promotes
    again = steps(rollout, clock, limit)
    assert [(r.action, r.new_weight) for r in again] == [("hold", 60)] * (limit - 1) + [
        ("rollback", 0)
    ]
    assert all(why in said(r) for r in again[:-1])
    assert rollout.phase == "rolled_back"
    assert writes(rollout) == [(0, 20), (20, 40), (40, 60), (60, 0)]
    last = rollout.notifier.events[-1]
    if kind == FAILED:  # once per streak, then the rollback saying why
        assert rollout.notifier.kinds == ["failure", "failure", "rollback"]
        assert f"{FAILURE_LIMIT} consecutive failures" in last.message and why in last.message
    else:
        # each hold said once when it began, then the rollback saying why
        assert rollout.notifier.kinds == ["halt", "halt", "rollback"]
        assert again[-1].decision == "rollback"
        assert all(why.removeprefix("hold: ") in e.message for e in rollout.notifier.events[:2])
        assert "no valid data for request-success-rate since" in last.message


@pytest.mark.parametrize(
    ("fault", "why"),
    [("accepts and never answers", "did not answer within"), ("NaN", NO_VALID_DATA)],
)
def test_run_through_a_fault_holds_then_rolls_back_and_returns(router, server, fault, why):
    """run() in real time (1 s ticks): however the steps fall on the ticks, it holds
    through the fault, rolls back at the limit and returns."""
    spec = SPEC.replace(interval_s=1, step_weight=50, max_weight=100)
    rollout = Rollout(
        client(server.url),
        router,
        spec,
        target="podinfo",
        namespace="test",
        lag_s=0.05,
        failure_limit=FAILURE_LIMIT,
        notifier=Inbox(),
    )
    server.answer = next(case[1] for case in CASES if case[0] == fault)
    assert rollout.run(max_ticks=10) == "rolled_back"
    start, *held, last = rollout.history
    assert start.new_weight == 50 and held and last.action == "rollback"
    assert all(r.action == "hold" and why in said(r) for r in held)
    assert writes(rollout) == [(0, 50), (50, 0)]


def test_a_short_retry_after_is_waited_for_within_the_deadline_and_the_loop_advances(
    router, server
):
    source = Prometheus(server.url, timeout=5, retries=Retries(max_wait_s=2.0))
    rollout, clock = rollout_on(router, server.url, source=source)
    server.answer = faults.in_turn(faults.status(429, b"", {"Retry-After": "1"}), faults.data())
    record = steps(rollout, clock, 1)[0]
    assert (record.action, record.new_weight, record.failures) == ("advance", 40, 0)
    # three queries and one retry, a second after the first (the server's clock)
    assert len(server.seen) == 4 and server.seen[-1] - server.seen[0] >= 0.9


def test_a_clock_that_jumps_back_waits_and_one_that_jumps_ahead_judges_every_tick_once(
    router, server
):
    rollout, clock = rollout_on(router, server.url)
    steps(rollout, clock, 1)  # tick 0: 40%
    clock.to(clock.now - timedelta(hours=1))
    record = rollout.step()
    assert (record.action, record.applied) == ("wait", False) and len(rollout.history) == 2
    clock.to(clock.now + timedelta(hours=1, minutes=30))  # 30 ticks at once
    record = rollout.step()
    assert (record.tick, record.weight, record.action, record.new_weight) == (30, 40, "advance", 60)
    assert len(rollout.judge.history) == 31  # each tick judged once, in order
    assert rollout.recording.frame["timestamp"].n_unique() == 31
    assert steps(rollout, clock, 1)[0].action == "promote"  # on data at the top weight


class Shifted:
    """The real clock, set ``offset`` wrong."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def test_run_catches_up_with_a_clock_set_back_and_then_right_again(router):
    """A clock set an hour back (a bad NTP step) and put right a moment later: run() goes
    on stepping within an interval of the fix, rather than sleeping the wrong hour away
    with the canary unwatched."""
    clock = Shifted()
    rollout = fast(router, Scripted(), clock=clock)
    seen: list[TickRecord] = []
    ticked = threading.Event()

    def on_tick(record: TickRecord) -> None:
        seen.append(record)
        ticked.set()
        if record.tick == 0:
            clock.offset = -timedelta(hours=1)  # before run() works out its next wait

    runner = threading.Thread(target=rollout.run, kwargs={"on_tick": on_tick})
    runner.start()
    try:
        while not seen or seen[-1].tick != 0:
            assert ticked.wait(5)
            ticked.clear()
        time.sleep(1.5)  # an hour behind: nothing to judge
        assert seen[-1].tick == 0
        clock.offset = timedelta(0)
        assert ticked.wait(5), "run() slept on after the clock was put right"
        assert seen[-1].tick >= 1  # the ticks since, judged (in order: the judge checks)
    finally:
        rollout.stop()
        runner.join(5)


def test_a_source_that_returns_no_recording_is_a_failed_step(router):
    """Any source may be plugged in: whatever it returns, the step holds rather than raises."""

    class Broken(FakeSource):
        def fetch(self, *args, **kwargs):
            return {"data": []}  # a raw answer instead of a Recording

    rollout, clock = make(router, source=Broken(router))
    rollout.step()  # 20%
    record = tick(rollout, clock, 0)
    assert (record.action, record.new_weight, record.failures) == ("hold", 20, 1)
    assert "unexpected AttributeError" in record.error


def test_a_judge_that_cannot_explain_its_rollback_still_rolls_back(router, caplog):
    class Mute(Scripted):
        def explain(self, state):
            raise RuntimeError("judge bug in explain")

    rollout, clock = make(router, Mute({0: "rollback"}))
    rollout.step()  # 20%
    with caplog.at_level(logging.ERROR, "rolloutlab.control.loop"):
        record = tick(rollout, clock, 0)
    assert (record.action, record.new_weight, record.applied) == ("rollback", 0, True)
    assert rollout.phase == "rolled_back" and router.weights().canary == 0
    message = rollout.notifier.events[-1].message
    assert "tick 0: scripted says rollback: judge scripted could not explain it" in message
    assert "judge bug in explain" in caplog.text  # with its traceback, as a bug


def test_a_clock_ahead_of_prometheus_judges_each_tick_once_it_is_in_never_as_missing(
    router, server
):
    """Prometheus has points only up to its own clock, 5 min behind the loop's (a clock set
    ahead, or remote-write ingestion that slow): the ticks it has not got yet are left
    for later, not judged as no data (which rolled a healthy canary back)."""
    rollout, clock = rollout_on(router, server.url)
    steps(rollout, clock, 1)  # tick 0: 40%
    behind = timedelta(minutes=5)

    def up_to_its_clock(doc: dict[str, Any], metric: str) -> None:
        for series in doc["data"]["result"]:
            now = (clock.now - behind).timestamp()
            series["values"] = [[t, value] for t, value in series["values"] if t <= now]

    server.answer = faults.data(up_to_its_clock)
    clock.to(clock.now + behind)
    first, *later = [rollout.step()] + steps(rollout, clock, 3)
    assert (first.action, first.failures) == ("hold", 1)  # all it asked for is still to come
    assert [(r.tick, r.action, r.new_weight) for r in later] == [
        (1, "advance", 60),
        (2, "hold", 60),  # tick 2 was still at 40%: no promotion on it
        (3, "hold", 60),
    ]
    assert all("no data for any variant yet" in said(r) for r in later)
    assert not any("no valid data" in (state.hold or "") for state in rollout.judge.history)


class Slow(Scripted):
    """Takes its time over tick 0 (until ``go``, at most 5 s): the rolloutlab judge takes
    about 9 s over the 2,880 ticks that a clock jumping two days ahead brings, and as
    long after a day's outage in manual mode at a 30 s interval."""

    def __init__(self) -> None:
        super().__init__()
        self.busy = threading.Event()
        self.go = threading.Event()

    def observe(self, table, k):
        self.busy.set()
        self.go.wait(5)
        return super().observe(table, k)


@pytest.mark.parametrize("action", ["rollback", "pause"])
def test_a_rollback_or_pause_while_the_step_judges_is_at_once(router, action):
    judge = Slow()
    rollout, clock = make(router, judge)
    rollout.step()  # 20%
    clock.to(rollout.origin + timedelta(minutes=1, seconds=1.5))
    thread, records = in_thread(rollout)
    assert judge.busy.wait(5)
    began = time.monotonic()
    getattr(rollout, action)()
    assert time.monotonic() - began < 1
    judge.go.set()
    thread.join(5)
    if action == "rollback":
        assert records[0].action == "wait" and records[0].notes == ("rolled_back",)
        assert writes(rollout) == [(0, 20), (20, 0)]
    else:  # judged, and only advised
        assert (records[0].action, records[0].applied, records[0].new_weight) == (
            "advance",
            False,
            40,
        )
        assert writes(rollout) == [(0, 20)]


@pytest.mark.parametrize("action", ["rollback", "pause"])
def test_a_rollback_or_pause_while_slack_never_answers_is_at_once(router, caplog, action):
    caplog.set_level(logging.WARNING, "rolloutlab.control.notify")
    with FakePrometheus() as webhook:  # a webhook that takes the post and never answers
        webhook.fault = "hang"
        rollout, clock = make(router, notifier=SlackNotifier(webhook.url, timeout=3))
        rollout.step()  # 20%
        rollout.source.error = OUTAGE  # the step posts its first failure
        clock.to(rollout.origin + timedelta(minutes=1, seconds=1.5))
        thread, records = in_thread(rollout)
        assert webhook.hung.wait(5)
        acting = threading.Thread(target=getattr(rollout, action))  # a rollback posts too
        began = time.monotonic()
        acting.start()
        while router.weights().canary != 0 and not rollout.paused and time.monotonic() < began + 5:
            time.sleep(0.01)
        assert time.monotonic() - began < 1
        thread.join(10)
        acting.join(10)
    assert not thread.is_alive() and not acting.is_alive()
    assert (records[0].action, records[0].failures) == ("hold", 1)
    assert "Slack notification failed (no answer within 3 s)" in caplog.text  # its deadline
    assert writes(rollout) == ([(0, 20), (20, 0)] if action == "rollback" else [(0, 20)])
