"""The notebook control panel of a live rollout (ipywidgets).

``Panel(rollout)`` shows the current split, the judge's verdict badge and evidence
chart, a status line, and the controls: a weight slider with a *Next step* button that
follows the plan, *Apply* (a dry-run preview of the change, then a confirmation),
*Promote* and *Rollback* (each confirmed), *Check now* (one tick), and the loop:
*Off*, *Watch* (a background thread judges every interval and advises) or *Auto* (it
also acts). Under the controls, each action's equivalent Python call is shown and kept
in :attr:`Panel.calls`, so a session can be replayed as a script.

Rules that keep it safe and alive: every write goes through a confirmation and runs
with all buttons disabled until it returns; an error shows in the status line instead
of escaping; while *Auto* runs, only *Rollback* stays enabled (it always works).

The panel's own state is three traitlets, as an anywidget model keeps its state:
``busy`` (a router call is in flight), ``error`` (the last action's error, or None) and
``pending`` (the Python call that *Confirm* would run, or None). Observe them like any
widget trait (``panel.observe(print, names="error")``); the buttons, the confirmation
box and the status line follow them through observers, from whichever thread set them.

Refreshing without flicker: the background thread never writes to an ``Output``
(never ``with out:`` from a thread); it only sets widget values. The evidence chart is
rendered to SVG (altair's ``save(format="svg")``, vl-convert, offline) and put in an
``HTML`` widget's value, which the front end swaps in one DOM update; it is re-rendered
only when the judge has judged a new tick. SVG keeps the chart visible without
JavaScript or a CDN (air-gapped clusters, exported notebooks); tooltips are the cost.
"""

from __future__ import annotations

import html
import io
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rolloutlab import _html

try:
    import traitlets
except ImportError as exc:  # traitlets comes with ipywidgets
    raise ImportError(
        "rolloutlab.Panel needs ipywidgets (and a Jupyter front end): pip install ipywidgets"
    ) from exc

if TYPE_CHECKING:
    from rolloutlab.control.loop import Mode, Rollout

REASON = "manual: panel"
LOOP_MODES: dict[str, Mode] = {"watch": "manual", "auto": "auto"}


def _ipywidgets() -> Any:
    try:
        import ipywidgets
    except ImportError as exc:
        raise ImportError(
            "rolloutlab.Panel needs ipywidgets (and a Jupyter front end): pip install ipywidgets"
        ) from exc
    return ipywidgets


def _code(text: str) -> str:
    return f"<code>{html.escape(text)}</code>"


class Panel(traitlets.HasTraits):
    """A control panel for ``rollout``; display it in a notebook (or ``panel.widget``).

    ``loop`` starts the background loop at once (``"watch"`` or ``"auto"``); call
    :meth:`close` (or set ``panel.loop.value = "off"``) to stop it.
    """

    busy = traitlets.Bool(False, help="a router call is in flight: every button is disabled")
    error = traitlets.Unicode(None, allow_none=True, help="the last action's error, if any")
    pending = traitlets.Unicode(None, allow_none=True, help="the call Confirm would run")

    def __init__(self, rollout: Rollout, *, loop: str = "off") -> None:
        w = _ipywidgets()
        super().__init__()
        self.rollout = rollout
        self.calls: list[str] = []
        self._action: Callable[[], object] | None = None  # what Confirm runs
        self._thread: threading.Thread | None = None
        self._chart_ticks = -1
        # one lock for every widget update: the loop's thread and the kernel's both refresh
        self._refreshing = threading.RLock()

        self.weights = w.HTML()
        self.badge = w.HTML()
        self.chart = w.HTML()
        self.status = w.HTML()
        self.slider = w.IntSlider(
            min=0, max=100, step=1, description="canary %", continuous_update=False
        )
        self.next_button = w.Button(description="Next step", tooltip="the plan's next weight")
        self.apply_button = w.Button(description="Apply…", tooltip="preview, then confirm")
        self.promote_button = w.Button(description="Promote…", button_style="success")
        self.rollback_button = w.Button(description="Rollback…", button_style="danger")
        self.check_button = w.Button(description="Check now", tooltip="judge the ticks so far")
        self.preview = w.HTML()
        self.confirm_button = w.Button(description="Confirm", button_style="warning")
        self.cancel_button = w.Button(description="Cancel")
        self.loop = w.ToggleButtons(
            options=[("Off", "off"), ("Watch", "watch"), ("Auto", "auto")],
            value="off",
            description="loop",
            tooltips=["no background loop", "judge every interval, advise", "judge and act"],
        )
        self.code = w.HTML()
        self.confirm_box = w.HBox([self.preview, self.confirm_button, self.cancel_button])
        self.widget = w.VBox(
            [
                w.HBox([self.weights, self.badge]),
                self.chart,
                w.HBox([self.slider, self.next_button, self.apply_button]),
                w.HBox([self.promote_button, self.rollback_button, self.check_button]),
                self.confirm_box,
                self.loop,
                self.code,
                self.status,
            ]
        )

        self.next_button.on_click(lambda _: self._safely(self._next_step))
        self.apply_button.on_click(lambda _: self._preview(self.slider.value))
        self.promote_button.on_click(lambda _: self._safely(lambda: self._ask("promote")))
        self.rollback_button.on_click(lambda _: self._safely(lambda: self._ask("rollback")))
        self.check_button.on_click(lambda _: self._run("rollout.step()", rollout.step))
        self.confirm_button.on_click(lambda _: self._confirm())
        self.cancel_button.on_click(lambda _: self._clear_pending())
        self.loop.observe(self._loop_changed, names="value")
        self.observe(lambda _: self._update_buttons(), names="busy")
        self.observe(lambda _: self._show_status(), names="error")
        self.observe(self._show_pending, names="pending")

        self.confirm_box.layout.display = "none"
        self.refresh()
        self.slider.value = self._canary() or 0
        self.loop.value = loop

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def close(self) -> None:
        """Stop the background loop (joining its thread) and close the widgets."""
        self.loop.value = "off"
        boxes = [self.widget]
        while boxes:
            box = boxes.pop()
            boxes.extend(getattr(box, "children", ()))
            box.close()

    # -- showing -------------------------------------------------------------------

    def refresh(self) -> None:
        """Update weights, badge, chart, status and buttons from the rollout (any thread)."""
        with self._refreshing:
            rollout = self.rollout
            canary = self._canary()
            if canary is not None:
                self.weights.value = (
                    f"<b>{html.escape(rollout.name)}</b> · primary {100 - canary}% · "
                    f"canary {canary}%"
                )
                if self.loop.value == "auto":
                    self.slider.value = canary  # the loop moves it; follow
            verdict = rollout.verdict()
            advice = f" · advice: {rollout.advice}" if rollout.advice else ""
            self.badge.value = (
                f"{_html.badge(verdict.decision)} {html.escape(verdict.reason)}"
                f"{html.escape(advice)}"
            )
            if len(verdict.ticks) != self._chart_ticks:
                self._render_chart(verdict)
            self._show_status()
            self._update_buttons()

    def _show_status(self) -> None:
        with self._refreshing:
            error = f" · <b>error:</b> {html.escape(self.error)}" if self.error else ""
            self.status.value = html.escape(self.rollout.status) + error

    def _canary(self) -> int | None:
        try:
            return self.rollout.router.weights().canary
        except Exception as exc:
            self.error = f"cannot read the weights: {exc}"
            return None

    def _render_chart(self, verdict: Any) -> None:
        from rolloutlab.views import charts

        if not verdict.ticks:
            self.chart.value = _html.muted("the evidence chart appears after the first tick")
            self._chart_ticks = 0
            return
        try:
            svg = io.StringIO()
            charts.evidence(verdict).save(svg, format="svg")
        except Exception as exc:  # keep the last chart; say why it did not update
            self.error = f"chart: {exc}"
            return
        self.chart.value = svg.getvalue()
        self._chart_ticks = len(verdict.ticks)

    def _update_buttons(self) -> None:
        with self._refreshing:
            busy, done, auto = self.busy, self.rollout.done, self.loop.value == "auto"
            for button in (self.next_button, self.apply_button, self.promote_button):
                button.disabled = busy or done or auto
            self.rollback_button.disabled = busy or done
            self.check_button.disabled = busy or done or self.loop.value != "off"
            self.confirm_button.disabled = busy or self.pending is None
            self.cancel_button.disabled = busy or self.pending is None

    # -- acting --------------------------------------------------------------------

    def _safely(self, action: Callable[[], object]) -> None:
        """Run a button's action; an error goes to the status line."""
        try:
            self.error = None
            action()
        except Exception as exc:
            self.error = str(exc)
        self.refresh()

    def _echo(self, call: str) -> None:
        self.calls.append(call)
        self.code.value = _code(call)

    def _run(self, call: str, action: Callable[[], object]) -> None:
        """Echo ``call`` and run it with every button disabled until it returns."""
        self.busy = True
        try:
            self._echo(call)
            self._safely(action)
        finally:
            self.busy = False
            self.refresh()

    def _next_step(self) -> None:
        weight = self.rollout.next_weight()
        if weight is None:
            raise ValueError(f"the plan ends at {self.rollout.plan[-1]}%: promote or roll back")
        self.slider.value = weight
        self._preview(weight)

    def _preview(self, weight: int) -> None:
        """Dry-run ``weight`` on the router and ask to confirm the diff it shows."""

        def dry_run() -> None:
            change = self.rollout.router.set_weight(weight, reason="preview", dry_run=True)
            diff = f"<pre>{html.escape(change.diff)}</pre>" if change.diff else "no change"
            self._set_pending(
                f"Set {html.escape(change.router)} to {change.after} (primary/canary)? {diff}",
                f'rollout.set_weight({weight}, reason="{REASON}")',
                lambda: self.rollout.set_weight(weight, reason=REASON),
            )

        self._run(f'rollout.router.set_weight({weight}, reason="preview", dry_run=True)', dry_run)

    def _ask(self, action: str) -> None:
        rollout = self.rollout
        steps = "" if rollout.promoter is None else f"{action} the workloads, then "
        self._set_pending(
            f"{action.capitalize()} {html.escape(rollout.name)}: {steps}route 100% to the "
            f"primary (canary {self._canary()}% → 0%)?",
            f'rollout.{action}(reason="{REASON}")',
            lambda: getattr(rollout, action)(reason=REASON),
        )

    def _set_pending(self, question: str, call: str, action: Callable[[], object]) -> None:
        self._action = action
        self.preview.value = f"{question}<br>{_code(call)}"
        self.pending = call

    def _clear_pending(self) -> None:
        self._action = None
        self.preview.value = ""
        self.pending = None

    def _show_pending(self, change: dict[str, Any]) -> None:
        with self._refreshing:
            self.confirm_box.layout.display = "none" if change["new"] is None else "flex"
            self._update_buttons()

    def _confirm(self) -> None:
        call, action = self.pending, self._action
        if call is None or action is None:
            return
        self._clear_pending()
        self._run(call, action)
        if self.loop.value != "auto":
            self.slider.value = self._canary() or 0

    # -- the background loop -------------------------------------------------------

    def _loop_changed(self, change: dict[str, Any]) -> None:
        value = change["new"]
        if value == "off":
            self._stop_loop()
        else:
            self.rollout.mode = LOOP_MODES[value]
            self._echo(f'rollout.mode = "{self.rollout.mode}"; rollout.run()')
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="rolloutlab-panel", daemon=True
                )
                self._thread.start()
        self.refresh()

    def _stop_loop(self) -> None:
        thread = self._thread
        self.rollout.stop()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _loop(self) -> None:
        """The background thread: run the rollout, refreshing the panel after every tick."""
        try:
            self.rollout.run(on_tick=lambda _: self.refresh())
        except Exception as exc:
            self.error = f"the loop stopped: {exc}"
        finally:
            self._thread = None
            self.loop.value = "off"
            self.refresh()
