"""The rollout loop.

Mechanics (plan, hold, failures, manual mode, pause, notifications, recording) are tested
with a scripted judge, a fake source and a fake clock, so every tick is deterministic.
Manual actions during a hanging fetch run the real Prometheus client against the scripted
fake Prometheus (tests/fake_prometheus.py). End to end, the loop runs on the local live
demo against a real Prometheus with the real judge (bottom of the file).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from fake_prometheus import FakePrometheus

from rolloutlab import frames
from rolloutlab.control.audit import AuditLog
from rolloutlab.control.local import LiveDemo, LocalRouter
from rolloutlab.control.loop import Rollout, TickRecord
from rolloutlab.control.notify import Event
from rolloutlab.errors import ActuationError, ConnectionFailed, DataError, SpecError
from rolloutlab.judges.base import Judge
from rolloutlab.judges.rolloutlab import RolloutlabJudge
from rolloutlab.judges.verdict import MetricResult, TickState
from rolloutlab.sources.prometheus import Prometheus
from rolloutlab.sources.recording import Recording
from rolloutlab.sources.simulate import simulate
from rolloutlab.specs import MetricSpec, Spec, default_metrics

SPEC = Spec(interval_s=60, step_weight=20, max_weight=60)  # plan 20, 40, 60
PLAN_OF_SPEC = {"interval_s": 60, "step_weight": 20, "max_weight": 60}
SPLIT = ("primary", "canary")
T0 = datetime(2026, 1, 12, 10, 0, 30, tzinfo=UTC)  # 30 s before a minute boundary


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def to(self, when: datetime) -> None:
        self.now = when


OUTAGE = ConnectionFailed("cannot reach Prometheus at http://127.0.0.1:1: refused")


class FakeSource:
    """Per step: 100 requests split by the router's weight, 1% errors; or raises ``error``."""

    def __init__(self, router: LocalRouter) -> None:
        self.router = router
        self.error: Exception | None = None
        self.no_canary = False
        self.calls: list[tuple[datetime, datetime]] = []

    def fetch(self, preset, *, start, end, step, target, namespace) -> Recording:
        assert (preset, target, namespace) == ("istio", "podinfo", "test")
        self.calls.append((start, end))
        if self.error is not None:
            raise self.error
        rows = []
        t = start
        while t <= end:
            canary = self.router.canary
            for variant, share in (("primary", 100 - canary), ("canary", canary)):
                if variant == "canary" and self.no_canary:
                    continue
                rows.append((t, variant, "requests", "counter", None, float(share)))
                rows.append((t, variant, "errors", "counter", None, share / 100))
            t += timedelta(seconds=step)
        frame = pl.DataFrame(rows, schema=frames.SCHEMA, orient="row")
        return Recording(frame, {"source": "fake", "preset": preset, "audit": []})


class Scripted(Judge):
    """Says ``decisions[k]`` at tick k (continue past the end), holds with ``holds[k]``,
    raises at the ticks in ``broken``; checks the tick order."""

    name = "scripted"

    def __init__(
        self,
        decisions: dict[int, str] | None = None,
        *,
        holds: dict[int, str] | None = None,
        broken: set[int] | None = None,
    ) -> None:
        super().__init__(SPEC, control="primary", treatment="canary")
        self.decisions = decisions or {}
        self.holds = holds or {}
        self.broken = broken or set()
        self.seen: list[tuple[int, float, float]] = []

    def observe(self, table: frames.TickTable, k: int) -> TickState:
        if k in self.broken:
            raise RuntimeError(f"judge bug at tick {k}")
        assert k == len(self.history), "ticks must arrive in order, each once"
        weight = float(table.weight("canary")[k])
        self.seen.append((k, weight, float(table.counter("requests", "canary")[k])))
        rate = {  # smoothed: a variant may have no traffic
            v: (table.counter("errors", v)[k] + 0.5) / (table.counter("requests", v)[k] + 1)
            for v in SPLIT
        }
        ratio = rate["canary"] / rate["primary"]
        evidence = MetricResult(
            "error-rate", "pass", "canary/primary error-rate ratio", estimate=ratio,
            ci=(ratio * 0.8, ratio * 1.25), p_value=0.5 / (k + 1), unit="ratio",
        )  # fmt: skip
        decision = self.decisions.get(k, "continue")
        state = TickState(table.ends[k], weight, decision, (evidence,), hold=self.holds.get(k))
        self.history.append(state)
        return state


class Inbox:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def notify(self, event: Event) -> None:
        self.events.append(event)

    @property
    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


@pytest.fixture
def router(tmp_path) -> LocalRouter:
    return LocalRouter("podinfo", "test", audit=AuditLog(tmp_path / "audit.jsonl"))


def make(
    router: LocalRouter, judge: Judge | str | None = None, source=None, spec=SPEC, **options
) -> tuple[Rollout, Clock]:
    clock = Clock()
    options.setdefault("notifier", Inbox())
    rollout = Rollout(
        source or FakeSource(router),
        router,
        spec,
        judge or Scripted(),
        target="podinfo",
        namespace="test",
        lag_s=1.0,
        clock=clock,
        **options,
    )
    return rollout, clock


def tick(rollout: Rollout, clock: Clock, k: int):
    """Move the clock just past tick k's end and step."""
    clock.to(rollout.origin + timedelta(minutes=k + 1, seconds=1.5))
    return rollout.step()


def test_start_gives_the_canary_the_first_weight_and_starts_the_grid(router):
    rollout, clock = make(router)
    record = rollout.step()
    assert (record.action, record.new_weight, record.applied) == ("start", 20, True)
    assert router.weights().canary == 20
    assert rollout.origin == datetime(2026, 1, 12, 10, 1, tzinfo=UTC)  # next boundary
    assert rollout.phase == "progressing"
    # nothing complete yet: a wait, not added to the history
    clock.to(rollout.origin + timedelta(seconds=59))
    assert rollout.step().action == "wait"
    assert len(rollout.history) == 1


def test_healthy_ticks_follow_the_plan_then_the_judge_promotes(router):
    judge = Scripted({3: "promote"})
    rollout, clock = make(router, judge)
    rollout.step()
    actions = [tick(rollout, clock, k) for k in range(4)]
    assert [(r.tick, r.weight, r.action, r.new_weight) for r in actions] == [
        (0, 20, "advance", 40),
        (1, 40, "advance", 60),
        (2, 60, "hold", 60),  # end of the plan: the judge must promote
        (3, 60, "promote", 0),
    ]
    assert rollout.phase == "promoted" and router.weights().canary == 0
    # the judge saw each tick once, in order, with the weight in force and its traffic
    assert judge.seen == [(0, 20, 20), (1, 40, 40), (2, 60, 60), (3, 60, 60)]
    assert rollout.notifier.kinds == ["promote"]
    assert "tick 3: scripted says promote" in rollout.notifier.events[0].message
    # a done rollout does not step again
    assert (tick(rollout, clock, 4).action, len(rollout.history)) == ("wait", 5)


def test_recording_holds_the_data_the_weights_and_the_audit_trail(router):
    rollout, clock = make(router, Scripted({2: "rollback"}))
    rollout.step()
    for k in range(3):
        tick(rollout, clock, k)
    rec = rollout.recording
    weight = rec.frame.filter(pl.col("metric") == "weight").pivot(
        on="variant", index="timestamp", values="value"
    )
    assert weight["canary"].to_list() == [20, 40, 60]
    assert weight["primary"].to_list() == [80, 60, 40]
    assert rec.frame.filter(pl.col("metric") == "requests").height == 6
    assert [(a["from"]["canary"], a["to"]["canary"]) for a in rec.meta["audit"]] == [
        (0, 20),
        (20, 40),
        (40, 60),
        (60, 0),
    ]
    assert rec.meta["audit"][-1]["reason"].startswith("rollback: tick 2: scripted says rollback")
    assert rec.meta["rollout"]["phase"] == "rolled_back"
    assert [h["action"] for h in rec.meta["rollout"]["history"]] == [
        "start",
        "advance",
        "advance",
        "rollback",
    ]
    assert rec.meta["start"] == "2026-01-12T10:01:00+00:00"
    # the router's own audit log has the same four writes
    assert len(router._audit.log.records()) == 4
    # and it round-trips through a file
    assert frames.tick_table(rec.frame, 60).weight("canary").tolist() == [20, 40, 60]


def test_a_rollback_from_the_judge_sets_the_canary_to_zero(router):
    rollout, clock = make(router, Scripted({1: "rollback"}))
    rollout.step()
    tick(rollout, clock, 0)
    record = tick(rollout, clock, 1)
    assert (record.action, record.decision, record.new_weight) == ("rollback", "rollback", 0)
    assert rollout.phase == "rolled_back" and router.weights().canary == 0
    assert rollout.notifier.kinds == ["rollback"]


def test_prometheus_outage_holds_then_rolls_back_at_the_limit(router):
    rollout, clock = make(router, failure_limit=3)
    rollout.step()
    tick(rollout, clock, 0)  # 20 -> 40
    rollout.source.error = OUTAGE
    records = [tick(rollout, clock, k) for k in (1, 2, 3)]
    assert [(r.action, r.failures, r.new_weight) for r in records] == [
        ("hold", 1, 40),
        ("hold", 2, 40),
        ("rollback", 3, 0),
    ]
    assert all(r.error.startswith("Prometheus: cannot reach") for r in records)
    assert rollout.phase == "rolled_back" and router.weights().canary == 0
    assert rollout.notifier.kinds == ["failure", "rollback"]
    assert "3 consecutive failures (limit 3)" in rollout.notifier.events[1].message


def test_after_an_outage_the_missed_ticks_are_fetched_and_judged_in_order(router):
    judge = Scripted()
    rollout, clock = make(router, judge)
    rollout.step()
    tick(rollout, clock, 0)
    rollout.source.error = OUTAGE
    assert tick(rollout, clock, 1).action == "hold"
    rollout.source.error = None
    record = tick(rollout, clock, 2)
    assert (record.tick, record.action, record.failures) == (2, "advance", 0)
    assert [k for k, *_ in judge.seen] == [0, 1, 2]
    assert rollout.source.calls[-1] == (
        rollout.origin + timedelta(minutes=2),
        rollout.origin + timedelta(minutes=3),
    )
    # one step advances one plan step, however many ticks it judged
    assert router.weights().canary == 60


def test_a_hold_from_the_judge_holds_and_says_why_without_counting_a_failure(router):
    """The judge owns data validity (here: no canary data in tick 0 is its hold)."""
    judge = Scripted(holds={0: "invalid data: no canary requests", 2: "sample-ratio mismatch"})
    rollout, clock = make(router, judge)
    rollout.step()
    rollout.source.no_canary = True
    record = tick(rollout, clock, 0)
    assert (record.action, record.applied, record.failures, record.new_weight) == (
        "hold",
        True,
        0,
        20,
    )
    assert record.notes == ("hold: invalid data: no canary requests",)
    assert "scripted says continue · hold: invalid data: no canary requests" in rollout.status
    rollout.source.no_canary = False
    assert tick(rollout, clock, 1).action == "advance"
    # after an outage, a hold in any tick judged in the step holds the weight
    rollout.source.error = OUTAGE
    assert tick(rollout, clock, 2).failures == 1
    rollout.source.error = None
    record = tick(rollout, clock, 3)
    assert (record.tick, record.action, record.failures, record.new_weight) == (3, "hold", 0, 40)
    assert record.notes == ("hold: sample-ratio mismatch",)
    assert tick(rollout, clock, 4).action == "advance"
    assert router.weights().canary == 60
    # each hold is said once, when it starts: people hear of a rollout that waits
    assert rollout.notifier.kinds == ["halt", "failure", "halt"]
    halts = [e.message for e in rollout.notifier.events if e.kind == "halt"]
    assert halts == [
        "holding at 20%: invalid data: no canary requests",
        "holding at 40%: sample-ratio mismatch",
    ]


def test_bad_data_from_the_source_is_a_failed_step(router):
    """A DataError (e.g. a recording that fails validation) holds and counts, as an outage."""
    rollout, clock = make(router, failure_limit=2)
    rollout.step()
    rollout.source.error = DataError("<query_range>, row 7: negative increase -3.0")
    records = [tick(rollout, clock, k) for k in (0, 1)]
    assert [(r.action, r.failures, r.new_weight) for r in records] == [
        ("hold", 1, 20),
        ("rollback", 2, 0),
    ]
    assert records[0].error == "Prometheus: <query_range>, row 7: negative increase -3.0"
    assert rollout.phase == "rolled_back" and router.weights().canary == 0


def test_a_judge_that_raises_is_a_failed_step_logged_with_its_traceback(router, caplog):
    judge = Scripted(broken={1})
    rollout, clock = make(router, judge)
    rollout.step()
    tick(rollout, clock, 0)
    with caplog.at_level(logging.ERROR, "rolloutlab.control.loop"):
        record = tick(rollout, clock, 1)
    assert (record.action, record.failures, record.new_weight) == ("hold", 1, 40)
    assert record.error == "judge scripted: unexpected RuntimeError: judge bug at tick 1"
    assert "judge bug at tick 1" in caplog.text and caplog.records[0].exc_info is not None
    judge.broken.clear()  # fixed: the next step judges tick 1 again, then tick 2
    record = tick(rollout, clock, 2)
    assert (record.tick, record.action, record.failures) == (2, "advance", 0)
    assert [k for k, *_ in judge.seen] == [0, 1, 2]
    assert rollout.recording.frame.filter(pl.col("metric") == "requests").height == 6


def test_a_failing_router_write_holds_and_is_reported(router, monkeypatch):
    rollout, clock = make(router)
    rollout.step()

    def refuse(*args, **kwargs):
        raise ActuationError("setting weights on VirtualService test/podinfo failed: HTTP 503")

    monkeypatch.setattr(router, "set_weight", refuse)
    record = tick(rollout, clock, 0)
    assert (record.action, record.applied, record.failures) == ("hold", True, 1)
    assert "advance failed" in record.error and "HTTP 503" in rollout.status


def test_manual_mode_only_advises(router):
    rollout, clock = make(router, Scripted({2: "rollback"}), mode="manual")
    assert rollout.step().action == "wait"  # weight 0: nothing to watch yet
    assert router.weights().canary == 0 and rollout.origin is None
    rollout.set_weight(20, reason="manual: first step")  # starts the grid
    rollout.step()
    record = tick(rollout, clock, 0)
    assert (record.action, record.new_weight, record.applied) == ("advance", 40, False)
    assert router.weights().canary == 20
    assert "advice: advance to 40%" in rollout.status
    rollout.next_step()
    assert router.weights().canary == 40
    tick(rollout, clock, 1)
    assert tick(rollout, clock, 2).action == "rollback"
    assert router.weights().canary == 40 and rollout.phase == "progressing"
    assert rollout.advice == "roll back"
    assert rollout.notifier.kinds == ["rollback"]
    assert "advice only (manual mode)" in rollout.notifier.events[0].message
    rollout.rollback(reason="agreed with the judge")
    assert router.weights().canary == 0 and rollout.phase == "rolled_back"


def test_pause_keeps_judging_but_writes_nothing(router):
    rollout, clock = make(router)
    rollout.step()
    rollout.pause()
    record = tick(rollout, clock, 0)
    assert (record.action, record.applied, record.tick) == ("advance", False, 0)
    assert router.weights().canary == 20 and "paused" in rollout.status
    rollout.resume()
    assert tick(rollout, clock, 1).applied and router.weights().canary == 40


def test_next_step_at_the_end_of_the_plan_says_what_to_do(router):
    rollout, _ = make(router)
    rollout.set_weight(60)
    with pytest.raises(ValueError, match="promote or roll back"):
        rollout.next_step()


def test_promoter_runs_before_the_route_goes_back(router):
    calls = []

    class Promoter:
        def promote(self, *, reason):
            calls.append(("promote", router.weights().canary, reason))

        def rollback(self, *, reason):
            calls.append(("rollback", router.weights().canary, reason))

    rollout, _ = make(router, promoter=Promoter())
    rollout.set_weight(40)
    rollout.promote(reason="looks good")
    assert calls == [("promote", 40, "looks good")]
    assert router.weights().canary == 0 and rollout.phase == "promoted"
    with pytest.raises(ActuationError, match="already promoted"):
        rollout.rollback()


# -- people can always take over: manual actions never wait for network I/O --------------


@pytest.fixture
def fake(router) -> Iterator[FakePrometheus]:
    with FakePrometheus(router) as fake:
        yield fake


def in_thread(rollout: Rollout) -> tuple[threading.Thread, list[TickRecord]]:
    """Start ``rollout.step()`` in a thread; the list gets its record."""
    records: list[TickRecord] = []
    thread = threading.Thread(target=lambda: records.append(rollout.step()))
    thread.start()
    return thread, records


def writes(rollout: Rollout) -> list[tuple[int, int]]:
    return [(a["from"]["canary"], a["to"]["canary"]) for a in rollout.recording.meta["audit"]]


def test_a_rollback_during_a_hanging_fetch_is_at_once_and_the_step_writes_nothing(router, fake):
    rollout, clock = make(router, source=Prometheus(fake.url, timeout=3))
    rollout.step()  # 20%
    fake.fault = "hang"
    clock.to(rollout.origin + timedelta(minutes=1, seconds=1.5))
    thread, records = in_thread(rollout)
    assert fake.hung.wait(5)
    began = time.monotonic()
    rollout.rollback(reason="the dashboards look wrong")
    assert time.monotonic() - began < 1 and router.weights().canary == 0
    fake.release()  # the fetch returns, with data that would advance the canary
    thread.join(5)
    assert records[0].action == "wait" and records[0].notes == ("rolled_back",)
    assert writes(rollout) == [(0, 20), (20, 0)] and len(router._audit.log.records()) == 2
    assert [r.action for r in rollout.history] == ["start"]


def test_a_pause_during_a_hanging_fetch_is_at_once_and_the_step_only_advises(router, fake):
    judge = Scripted()
    rollout, clock = make(router, judge, source=Prometheus(fake.url, timeout=3))
    rollout.step()
    fake.fault = "hang"
    clock.to(rollout.origin + timedelta(minutes=1, seconds=1.5))
    thread, records = in_thread(rollout)
    assert fake.hung.wait(5)
    began = time.monotonic()
    rollout.pause()
    assert time.monotonic() - began < 1
    fake.release()
    thread.join(5)
    assert (records[0].tick, records[0].action, records[0].applied) == (0, "advance", False)
    assert judge.seen == [(0, 20, 200)]  # over HTTP: 1000 requests a tick, 20% to the canary
    assert router.weights().canary == 20 and writes(rollout) == [(0, 20)]


@pytest.mark.parametrize("fault", ["nan-errors", "inf-requests", "negative", "no-canary"])
def test_broken_canary_data_never_advance_nor_promote_and_roll_back(router, fake, fault):
    # the real judge over real HTTP: from the first tick on, the canary's data are broken;
    # the judge fails each such tick and rolls back at its threshold, and a canary with no
    # series at all is a failed fetch (EmptyResult), rolled back at the loop's failure limit
    rollout, clock = make(router, "rolloutlab", source=Prometheus(fake.url, timeout=3))
    rollout.step()  # 20%
    fake.fault = fault
    limit = rollout.failure_limit if fault == "no-canary" else SPEC.threshold
    records = [tick(rollout, clock, k) for k in range(limit)]
    assert [r.action for r in records[:-1]] == ["hold"] * (limit - 1)
    why = "Prometheus:" if fault == "no-canary" else "hold: no valid data for request-success-rate"
    assert all(why in (r.error or "") + " ".join(r.notes) for r in records[:-1])
    assert (records[-1].action, records[-1].applied) == ("rollback", True)
    assert writes(rollout) == [(0, 20), (20, 0)]  # never above the first step, never promoted


def test_a_sample_ratio_mismatch_holds_the_weight_and_clear_harm_still_rolls_back(router):
    class Misrouted(FakeSource):
        """Sends the canary half the traffic its weight says (a routing bug), failing
        ``canary_errors`` of its requests."""

        canary_errors = 0.01

        def fetch(self, preset, *, start, end, step, target, namespace) -> Recording:
            rec = super().fetch(
                preset, start=start, end=end, step=step, target=target, namespace=namespace
            )
            half = pl.col("variant") == "canary"
            value = (
                pl.when(half & (pl.col("metric") == "requests"))
                .then(pl.col("value") * 50)
                .when(half & (pl.col("metric") == "errors"))
                .then(pl.col("value") * 50 * self.canary_errors / 0.01)
                .otherwise(pl.col("value") * 100)
            )
            return Recording(rec.frame.with_columns(value.alias("value")), rec.meta)

    source = Misrouted(router)
    errors_only = replace(SPEC, metrics=default_metrics()[:1])  # the fake has no latency
    judge = RolloutlabJudge(errors_only, control="primary", treatment="canary")
    rollout, clock = make(router, judge, source=source)
    rollout.step()  # 20%
    records = [tick(rollout, clock, k) for k in range(6)]
    held = [r for r in records if r.action == "hold"]
    assert held and all("sample-ratio mismatch" in r.notes[-1] for r in held)
    assert router.weights().canary <= 40  # held soon after the mismatch showed
    source.canary_errors = 0.05  # now the canary also fails 5x as often
    more = [tick(rollout, clock, k) for k in range(6, 30)]
    assert rollout.phase == "rolled_back"
    assert [r.action for r in more if r.action != "wait"][-1] == "rollback"
    assert "errors/requests" in rollout.verdict().reason


class Replayed:
    """Serves a simulated rollout (Flagger's plan of SPEC, 1,000 req/min) on the loop's
    clock: the rows of each fetched window, the simulation's minute 1 at the origin."""

    def __init__(self, recording: Recording, origin: datetime) -> None:
        shift = origin - recording.start + timedelta(minutes=1)
        self.frame = recording.frame.with_columns(pl.col("timestamp") + shift)

    def fetch(self, preset, *, start, end, step, target, namespace) -> Recording:
        t = pl.col("timestamp")
        return Recording(self.frame.filter((t >= start) & (t <= end)), {"source": "replayed"})


@pytest.mark.parametrize(
    ("slower", "phase", "why"),
    [(0.2, "rolled_back", "canary latency +"), (0.0, "promoted", "promote: every critical")],
)
def test_a_canary_on_other_bucket_edges_is_judged_on_the_shared_edges_live(
    router, slower, phase, why
):
    """As judge() does (frames.common_buckets): on the union of both layouts the canary,
    which reports fewer edges, counted 0 at the ones it lacks, so its fast requests moved
    up: a healthy canary on a client library's coarse buckets was rolled back ("latency
    overall +107%"). Now a 20% slower one is rolled back for that, a healthy one promoted."""
    coarse = (10.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, float("inf"))
    rec = simulate("healthy", seed=3, step_s=60, latency_shift=(0, slower), **PLAN_OF_SPEC)
    hist = (pl.col("metric") == "latency_ms") & (pl.col("variant") == "canary")
    rec = Recording(rec.frame.filter(~(hist & ~pl.col("le").is_in(coarse))), rec.meta)
    rollout, clock = make(router, "rolloutlab")
    rollout.step()
    rollout.source = Replayed(rec, rollout.origin)
    for k in range(90):
        tick(rollout, clock, k)
        if rollout.phase != "progressing":
            break
    assert rollout.phase == phase and why in rollout.verdict().reason, rollout.verdict().reason


class Stuck(Inbox):
    """Holds up the first event until ``go`` is set (at most 5 s); takes the rest at once."""

    def __init__(self) -> None:
        super().__init__()
        self.busy = threading.Event()
        self.go = threading.Event()

    def notify(self, event: Event) -> None:
        super().notify(event)
        if len(self.events) == 1:
            self.busy.set()
            self.go.wait(5)


def test_a_rollback_while_the_step_notifies_is_at_once(router):
    rollout, clock = make(router, notifier=Stuck())
    rollout.step()
    rollout.source.error = OUTAGE  # the step notifies its first failure
    clock.to(rollout.origin + timedelta(minutes=1, seconds=1.5))
    thread, records = in_thread(rollout)
    assert rollout.notifier.busy.wait(5)
    began = time.monotonic()
    rollout.rollback()
    assert time.monotonic() - began < 1 and router.weights().canary == 0
    rollout.notifier.go.set()
    thread.join(5)
    assert (records[0].action, records[0].failures) == ("hold", 1)
    assert writes(rollout) == [(0, 20), (20, 0)]
    assert rollout.notifier.kinds == ["failure", "rollback"]


def test_a_failing_notifier_does_not_stop_the_rollout(router, caplog):
    class Broken:
        def notify(self, event):
            raise RuntimeError("chat is down")

    rollout, clock = make(router, Scripted({0: "rollback"}), notifier=Broken())
    rollout.step()
    tick(rollout, clock, 0)
    assert rollout.phase == "rolled_back"
    assert "notifier" in caplog.text


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (Spec(interval_s=2.5), "whole-second interval"),
        (Spec(step_weight=12.5, max_weight=25), "whole-percent plan weights"),
        (Spec(step_weight=0, iterations=10), "needs stepWeight or stepWeights"),
    ],
)
def test_specs_the_live_loop_cannot_follow_are_refused(router, spec, match):
    with pytest.raises(SpecError, match=match):
        Rollout(FakeSource(router), router, spec, Scripted(), target="podinfo", namespace="test")


# -- run(): real time, short interval ----------------------------------------------------

FAST = Spec(interval_s=1, step_weight=50, max_weight=100)  # plan 50, 100


def fast(router: LocalRouter, judge: Judge, **options) -> Rollout:
    return Rollout(
        FakeSource(router),
        router,
        FAST,
        judge,
        target="podinfo",
        namespace="test",
        lag_s=0.05,
        notifier=Inbox(),
        **options,
    )


def test_run_steps_every_interval_until_the_decision(router):
    rollout = fast(router, Scripted({2: "promote"}))
    seen = []
    started = time.monotonic()
    assert rollout.run(on_tick=seen.append) == "promoted"
    assert time.monotonic() - started < 6
    assert [r.action for r in seen] == ["start", "advance", "hold", "promote"]
    assert [r.tick for r in seen] == [None, 0, 1, 2]


def test_run_is_bounded_and_says_so(router):
    rollout = fast(router, Scripted(), max_ticks=3)
    assert rollout.run() == "progressing"
    assert len(rollout.history) == 3
    assert rollout.notifier.kinds == ["halt"]
    assert router.weights().canary == 100


def test_run_stops_from_another_thread_and_leaves_the_routes(router):
    rollout = fast(router, Scripted())
    runner = threading.Thread(target=rollout.run)
    runner.start()
    time.sleep(1.5)
    rollout.stop()
    runner.join(5)
    assert not runner.is_alive()
    weight = router.weights().canary
    assert weight in (50, 100)
    assert rollout.history[-1].new_weight == weight


def test_a_stop_before_run_starts_is_not_lost(router):
    rollout = fast(router, Scripted())
    rollout.stop()  # e.g. a panel turned its loop off before the thread got going
    assert rollout.run() == "ready" and rollout.history == []
    assert rollout.run(max_ticks=1) == "progressing"  # the stop was used up


def test_ctrl_c_returns_and_leaves_the_last_write(router):
    rollout = fast(router, Scripted())

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    rollout.step()  # start: 50%
    rollout.source.fetch = interrupt
    assert rollout.run() == "progressing"
    assert router.weights().canary == 50


def test_manual_run_returns_with_the_advice(router):
    rollout = fast(router, Scripted({1: "rollback"}), mode="manual")
    rollout.set_weight(50)
    assert rollout.run() == "progressing"
    assert rollout.advice == "roll back" and router.weights().canary == 50


# -- end to end: the local live demo, a real Prometheus, the real judge ---------------------
# The demo's primary fails 2% of its requests at 200 requests/s; ticks are 5 s and the plan
# is 10, 20, ..., 50%, so the canary serves about 1,500 requests in a whole rollout.
# Reliability choices, measured on the demo: a 5x canary (10% errors) is rolled back, at
# tick 6 with seed 21 (one tick adds bounded evidence, so about 100 canary requests a tick
# take a few ticks), while a 2x canary may be neither caught nor cleared in the time. The healthy and outage
# tests judge at alpha = 0.001 instead of 0.05, so a false rollback (bounded by alpha
# under continuous monitoring) cannot plausibly flake them. The runs are bounded by the
# spec's analysis deadline, not by wall-clock asserts.

JUDGE = "rolloutlab"
STRICT = {"alpha": 0.001}


def live_rollout(demo: LiveDemo, spec: Spec | None = None, **options) -> tuple[Rollout, Inbox]:
    inbox = Inbox()
    return demo.rollout(JUDGE, spec=spec, notifier=inbox, **options), inbox


def test_live_bad_canary_is_rolled_back(prometheus_binary):
    with LiveDemo(canary_errors="5x", seed=21) as demo:
        rollout, inbox = live_rollout(demo)
        assert rollout.run() == "rolled_back"
    assert demo.router.weights().canary == 0
    last = rollout.history[-1]
    assert (last.action, last.decision, last.applied) == ("rollback", "rollback", True)
    assert rollout.history[0].action == "start"
    # up the plan while the evidence builds, held once it is complete (no promotion)
    assert {r.action for r in rollout.history[1:-1]} <= {"advance", "hold"}
    assert inbox.kinds[-1] == "rollback" and set(inbox.kinds[:-1]) <= {"halt"}  # the bake
    rec = rollout.recording
    assert rec.meta["audit"][-1]["to"] == {"primary": 100, "canary": 0}
    assert {"requests", "errors", "latency_ms", "weight"} <= set(rec.metrics)
    assert rollout.verdict().decision == "rollback"


def test_live_healthy_canary_is_promoted(prometheus_binary):
    with LiveDemo(seed=22) as demo:
        quick = tuple(
            replace(m, promotion_margin=1.0 if m.kind == "ratio" else 0.25)
            for m in demo.spec.metrics
        )
        rollout, inbox = live_rollout(demo, replace(demo.spec, metrics=quick, **STRICT))
        assert rollout.run() == "promoted"
    weights = [r.new_weight for r in rollout.history]
    assert weights[: len(demo.spec.weight_plan())] == [10, 20, 30, 40, 50]
    assert weights[-1] == 0 and rollout.history[-1].action == "promote"
    assert inbox.kinds[-1] == "promote" and set(inbox.kinds[:-1]) <= {"halt"}  # the bake
    assert [a["to"]["canary"] for a in rollout.recording.meta["audit"]] == [10, 20, 30, 40, 50, 0]


def test_live_prometheus_outage_holds_then_rolls_back(prometheus_binary):
    with LiveDemo(seed=23) as demo:
        rollout, inbox = live_rollout(demo, replace(demo.spec, **STRICT), failure_limit=3)

        def outage_after_first_advance(record):
            if record.action == "advance" and demo.prometheus.port is not None:
                demo.prometheus.stop()

        assert rollout.run(on_tick=outage_after_first_advance) == "rolled_back"
    actions = [(r.action, r.new_weight, r.failures) for r in rollout.history]
    assert actions == [
        ("start", 10, 0),
        ("advance", 20, 0),
        ("hold", 20, 1),
        ("hold", 20, 2),
        ("rollback", 0, 3),
    ]
    assert all("Prometheus: cannot reach" in r.error for r in rollout.history[2:])
    assert inbox.kinds == ["failure", "rollback"]


# -- template metrics: fetched as per-variant gauges beside the preset, over real HTTP ------

ERRORS_Q = 'sum(rate(app_errors_total{{pod=~"{}-[0-9a-z]+-[0-9a-z]+"}}[1m]))'
TEMPLATED = SPEC.replace(
    threshold=2,
    metrics=[
        MetricSpec(
            "error-rate",
            "gauge",
            "error-rate",
            threshold_max=1.0,
            template="MetricTemplate error-rate",
            queries=(
                ("primary", ERRORS_Q.format("podinfo-primary")),
                ("canary", ERRORS_Q.format("podinfo")),
            ),
        )
    ],
)


def templated(router, fake, canary: float | None) -> tuple[Rollout, Clock]:
    fake.gauges = {ERRORS_Q.format("podinfo-primary"): 0.2, ERRORS_Q.format("podinfo"): canary}
    return make(router, "flagger", source=Prometheus(fake.url, timeout=3), spec=TEMPLATED)


def test_template_metrics_are_fetched_per_variant_and_judged_live(router, fake):
    rollout, clock = templated(router, fake, canary=0.3)  # below thresholdRange.max
    rollout.step()
    record = tick(rollout, clock, 0)
    assert (record.action, record.new_weight) == ("advance", 40)
    asked = {q for q, *_ in fake.queries if q.startswith("sum(")}
    assert asked == set(fake.gauges)
    assert all(step == 60 for q, _, _, step in fake.queries if q in asked)
    gauge = rollout.recording.frame.filter(pl.col("metric") == "error-rate")
    assert dict(zip(gauge["variant"], gauge["value"], strict=True)) == {
        "primary": 0.2,
        "canary": 0.3,
    }


def test_a_template_metric_over_its_bound_rolls_back_live(router, fake):
    rollout, clock = templated(router, fake, canary=5.0)
    rollout.step()
    records = [tick(rollout, clock, k) for k in range(3)]  # Flagger: threshold 2 failed checks
    assert [r.action for r in records] == ["hold", "hold", "rollback"]
    assert "error-rate 5 > 1 (max)" in records[0].notes[0]
    failed = records[-1].state.metrics
    assert [(m.name, m.classification) for m in failed] == [("error-rate", "fail")]
    assert router.weights().canary == 0


def test_a_template_query_without_series_holds_and_says_so(router, fake):
    rollout, clock = templated(router, fake, canary=None)
    rollout.step()
    record = tick(rollout, clock, 0)
    assert (record.action, record.new_weight, record.failures) == ("hold", 20, 0)
    assert any("'error-rate' (canary): no series" in note for note in record.notes)


def test_a_template_metric_whose_template_was_not_given_is_refused(router):
    lone = MetricSpec("error-rate", "gauge", "error-rate", template="MetricTemplate error-rate")
    with pytest.raises(SpecError, match="no query for error-rate"):
        make(router, spec=SPEC.replace(metrics=[lone]))
