"""The control panel, headless: set widget values, click buttons, assert on the router's
writes, the status line, the echoed Python calls and the chart.

The rollout underneath is real (LocalRouter, the loop) with the scripted judge, fake source
and fake clock of the loop tests, so every tick is deterministic.
"""

from __future__ import annotations

import time

import pytest
from test_control_loop import FAST, FakeSource, Inbox, Scripted, make, tick

from rolloutlab.control.audit import AuditLog
from rolloutlab.control.local import LocalRouter
from rolloutlab.control.loop import Rollout
from rolloutlab.errors import ActuationError
from rolloutlab.widgets import Panel


@pytest.fixture
def router(tmp_path) -> LocalRouter:
    return LocalRouter("podinfo", "test", audit=AuditLog(tmp_path / "audit.jsonl"))


@pytest.fixture
def panel(router):
    rollout, _ = make(router, Scripted({3: "rollback"}), mode="manual")
    panel = Panel(rollout)
    yield panel
    panel.close()


def writes(router: LocalRouter) -> list[tuple[int, int, bool]]:
    return [(r.before["canary"], r.after["canary"], r.dry_run) for r in router._audit.log.records()]


def test_shows_the_split_and_no_chart_before_the_first_tick(panel):
    assert "primary 100% · canary 0%" in panel.weights.value
    assert "CONTINUE" in panel.badge.value
    assert "after the first tick" in panel.chart.value
    assert panel.status.value.startswith("ready")
    assert panel.slider.value == 0
    assert panel.confirm_box.layout.display == "none"


def test_next_step_previews_the_plan_weight_and_writes_only_on_confirm(panel, router):
    panel.next_button.click()
    assert panel.slider.value == 20
    assert router.weights().canary == 0  # a preview only
    assert writes(router) == [(0, 20, True)]  # the dry run is audited as one
    assert "+podinfo-canary: 20" in panel.preview.value
    assert panel.confirm_box.layout.display == "flex"
    assert panel.code.value == (
        "<code>rollout.router.set_weight(20, reason=&quot;preview&quot;, dry_run=True)</code>"
    )
    panel.confirm_button.click()
    assert router.weights().canary == 20
    assert writes(router)[-1] == (0, 20, False)
    assert panel.calls[-1] == 'rollout.set_weight(20, reason="manual: panel")'
    assert "canary 20%" in panel.weights.value and "progressing" in panel.status.value
    assert panel.confirm_box.layout.display == "none" and panel.confirm_button.disabled


def test_apply_uses_the_slider_and_cancel_writes_nothing(panel, router):
    panel.slider.value = 35
    panel.apply_button.click()
    assert "50/50" not in panel.preview.value and "65/35" in panel.preview.value
    panel.cancel_button.click()
    assert router.weights().canary == 0 and panel.pending is None
    assert writes(router) == [(0, 35, True)]


def test_a_refused_preview_shows_in_the_status_line(panel, router, monkeypatch):
    def refuse(*args, **kwargs):
        raise ActuationError("VirtualService test/podinfo not found")

    monkeypatch.setattr(router, "set_weight", refuse)
    panel.apply_button.click()
    assert "error:</b> VirtualService test/podinfo not found" in panel.status.value
    assert panel.pending is None and not panel.apply_button.disabled


def test_buttons_are_disabled_while_a_router_call_is_in_flight(panel, router, monkeypatch):
    seen = []
    write = router.set_weight

    def watching(weight, *, reason, dry_run=False):
        buttons = [
            panel.next_button,
            panel.apply_button,
            panel.promote_button,
            panel.rollback_button,
            panel.check_button,
            panel.confirm_button,
        ]
        seen.append((dry_run, [b.disabled for b in buttons]))
        return write(weight, reason=reason, dry_run=dry_run)

    monkeypatch.setattr(router, "set_weight", watching)
    panel.slider.value = 10
    panel.apply_button.click()
    panel.confirm_button.click()
    assert seen == [(True, [True] * 6), (False, [True] * 6)]  # the preview, then the write
    assert not panel.apply_button.disabled and not panel.rollback_button.disabled


def test_promote_and_rollback_ask_first(panel, router):
    panel.rollout.set_weight(40)
    panel.refresh()
    panel.rollback_button.click()
    assert router.weights().canary == 40
    assert "Rollback test/podinfo: route 100% to the primary (canary 40% → 0%)?" in (
        panel.preview.value
    )
    panel.cancel_button.click()
    panel.promote_button.click()
    panel.confirm_button.click()
    assert router.weights().canary == 0 and panel.rollout.phase == "promoted"
    assert panel.calls[-1] == 'rollout.promote(reason="manual: panel")'
    assert "CONTINUE" in panel.badge.value  # the judge did not decide; people did
    assert panel.status.value.startswith("promoted")
    assert all(b.disabled for b in (panel.next_button, panel.apply_button, panel.promote_button))
    assert panel.rollback_button.disabled  # nothing left to roll back


def test_check_now_judges_and_the_chart_and_badge_follow(panel, router):
    rollout, clock = panel.rollout, panel.rollout.clock
    rollout.set_weight(20)
    rollout.step()
    clock.to(rollout.origin + (rollout._interval * 1) + rollout._interval / 60)
    panel.check_button.click()
    assert panel.calls[-1] == "rollout.step()"
    assert panel.chart.value.startswith("<svg")
    assert "error-rate: p-value" in panel.chart.value
    assert "advice: advance to 40%" in panel.badge.value
    assert "tick 0: scripted says continue" in panel.status.value
    first_chart = panel.chart.value
    panel.refresh()  # nothing new judged: the chart is not re-rendered
    assert panel.chart.value is first_chart
    for k in (1, 2, 3):
        tick(rollout, clock, k)
    panel.refresh()
    assert "ROLLBACK" in panel.badge.value and "advice: roll back" in panel.badge.value
    assert panel.chart.value != first_chart


def test_the_calls_replay_the_session_as_a_script(panel, router, tmp_path):
    panel.next_button.click()
    panel.confirm_button.click()
    panel.slider.value = 30
    panel.apply_button.click()
    panel.confirm_button.click()
    panel.rollback_button.click()
    panel.confirm_button.click()
    replay_router = LocalRouter("podinfo", "test", audit=AuditLog(tmp_path / "replay.jsonl"))
    rollout, _ = make(replay_router, mode="manual")
    for call in panel.calls:
        exec(call, {"rollout": rollout})
    assert writes(replay_router) == writes(router)
    assert rollout.phase == panel.rollout.phase == "rolled_back"


def test_auto_loop_runs_in_the_background_and_stops_with_a_decision(router):
    rollout = Rollout(
        FakeSource(router),
        router,
        FAST,
        Scripted({2: "promote"}),
        target="podinfo",
        namespace="test",
        lag_s=0.05,
        notifier=Inbox(),
        mode="manual",
    )
    panel = Panel(rollout)
    panel.loop.value = "auto"
    assert rollout.mode == "auto"
    assert panel.calls[-1] == 'rollout.mode = "auto"; rollout.run()'
    assert panel.apply_button.disabled and not panel.rollback_button.disabled
    deadline = time.monotonic() + 10
    while panel.loop.value != "off" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert panel.loop.value == "off" and panel._thread is None  # the loop ended itself
    assert rollout.phase == "promoted" and router.weights().canary == 0
    assert [h.action for h in rollout.history] == ["start", "advance", "hold", "promote"]
    assert panel.status.value.startswith("promoted")
    assert panel.chart.value.startswith("<svg")


def test_turning_the_loop_off_stops_and_joins_the_thread(router):
    rollout = Rollout(
        FakeSource(router), router, FAST, Scripted(), target="podinfo", namespace="test",
        lag_s=0.05,
    )  # fmt: skip
    panel = Panel(rollout, loop="watch")
    thread = panel._thread
    assert rollout.mode == "manual" and thread.is_alive()
    time.sleep(0.3)
    panel.close()
    assert not thread.is_alive() and panel.loop.value == "off"
    assert router.weights().canary == 0  # watching never writes


def test_an_error_in_the_loop_shows_and_the_loop_fails_safe(router):
    class Broken(Scripted):
        def observe(self, table, k):
            raise RuntimeError("judge exploded")

    rollout = Rollout(
        FakeSource(router), router, FAST, Broken(), target="podinfo", namespace="test",
        lag_s=0.05,
    )  # fmt: skip
    panel = Panel(rollout, loop="auto")
    deadline = time.monotonic() + 10
    while panel.loop.value != "off" and time.monotonic() < deadline:
        time.sleep(0.05)
    # each tick the judge raises is a failed step; at the failure limit the loop rolls back
    assert "RuntimeError: judge exploded" in panel.status.value
    assert rollout.phase == "rolled_back" and router.weights().canary == 0
    panel.close()


def test_missing_ipywidgets_says_how_to_install(monkeypatch, router):
    import builtins

    real_import = builtins.__import__

    def no_ipywidgets(name, *args, **kwargs):
        if name == "ipywidgets":
            raise ImportError("No module named 'ipywidgets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ipywidgets)
    rollout, _ = make(router)
    with pytest.raises(ImportError, match="pip install ipywidgets"):
        Panel(rollout)


def test_state_is_observable_traitlets(panel, router):
    seen = []
    panel.observe(lambda change: seen.append((change["name"], change["new"])), names=None)
    panel.slider.value = 25
    panel.apply_button.click()
    call = 'rollout.set_weight(25, reason="manual: panel")'
    assert panel.pending == call and panel.confirm_box.layout.display == "flex"
    panel.confirm_button.click()
    assert seen == [
        ("busy", True),  # the preview's dry run asks to confirm
        ("pending", call),
        ("busy", False),
        ("pending", None),  # confirmed: cleared before the write runs
        ("busy", True),
        ("busy", False),
    ]
    assert panel.error is None and router.weights().canary == 25


def test_an_error_is_a_trait_and_clears_on_the_next_action(panel, router, monkeypatch):
    errors = []
    panel.observe(lambda change: errors.append(change["new"]), names="error")
    monkeypatch.setattr(router, "weights", lambda: (_ for _ in ()).throw(OSError("gone")))
    panel.refresh()
    assert panel.error == "cannot read the weights: gone"
    assert "error:</b> cannot read the weights: gone" in panel.status.value
    monkeypatch.undo()
    panel.check_button.click()
    assert errors[0] == "cannot read the weights: gone" and panel.error is None
    assert "error" not in panel.status.value


def test_a_trait_set_from_another_thread_updates_the_widgets(panel):
    import threading

    thread = threading.Thread(target=lambda: setattr(panel, "busy", True))
    thread.start()
    thread.join()
    assert all(b.disabled for b in (panel.apply_button, panel.rollback_button))
    panel.busy = False
    assert not panel.apply_button.disabled
