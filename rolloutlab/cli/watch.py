"""``rolloutlab watch``: follow a canary from Prometheus alone (no kubeconfig), advisory.

A live view like ``kubectl argo rollouts get rollout --watch``: the weight and the step of
the plan, each metric's evidence with its history as a sparkline, the decision and why,
redrawn every tick. It judges with the same engine as ``rolloutlab serve`` and can expose
the same series on ``/metrics`` (``--metrics-port``).
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rolloutlab.cli import TIME_HELP, _spec_name_option, _time, connection, connection_options
from rolloutlab.errors import SpecError
from rolloutlab.specs.model import JUDGE_NAMES

if TYPE_CHECKING:
    from rolloutlab.judges.verdict import Decision
    from rolloutlab.views.metrics import CanaryState

#: Seconds after a tick's end before it is judged, so the last scrape is in.
LAG_S = 2.0
SPARKS = "▁▂▃▄▅▆▇█"
BAR_CHARS = 20
SPARK_TICKS = 30


def register(command) -> None:
    p = command("watch", run, "Watch a canary from Prometheus: weight, evidence, decision.")
    connection_options(p)
    p.add_argument(
        "--spec", type=Path, help="Canary or Rollout with its templates (file or folder)"
    )
    _spec_name_option(p)
    p.add_argument("--preset", help="default: the spec's provider, else istio")
    p.add_argument("--target", help="the canary workload (default: the spec's target)")
    p.add_argument("--namespace", help="default: the spec's")
    p.add_argument("--judge", choices=JUDGE_NAMES, help="default: the spec's, else rolloutlab")
    p.add_argument(
        "--since",
        default="now",
        help=f"when the canary's analysis started: {TIME_HELP} (default: now)",
    )
    p.add_argument("--once", action="store_true", help="print one snapshot and exit")
    p.add_argument("--at", help="with --once: judge as of this time instead of now")
    metrics_options(p)


def metrics_options(p: argparse.ArgumentParser) -> None:
    """``--metrics-port`` and ``--metrics-host`` (watch and run)."""
    p.add_argument(
        "--metrics-port", type=int, help="serve the decision series on /metrics on this port"
    )
    p.add_argument("--metrics-host", default="127.0.0.1", help="address for --metrics-port")


def run(args: argparse.Namespace) -> int:
    if args.at and not args.once:
        raise SpecError("--at judges as of a past time: use it with --once.")
    settings = connection(args)
    args.preset = args.preset or settings.preset
    since = _time(args.since, "--since")
    at = _time(args.at, "--at") if args.at else None
    engine, canary = build_engine(args, clock=(lambda: at) if at else None)
    with exported(args, lambda: [e.state() for e in engine.latest()]):
        watch(engine, canary, since, once=args.once, out=sys.stdout)
    return 0


def build_engine(args: argparse.Namespace, *, clock: Callable[[], datetime] | None = None):
    """The engine and the one canary the options describe."""
    from rolloutlab.serve import Catalog, Engine, RevisionStore, canary_of
    from rolloutlab.specs.model import Spec

    if args.spec is None and not (args.target and args.namespace):
        raise SpecError("watch needs --spec FOLDER, or --target and --namespace (and --preset).")
    spec = Spec.load(args.spec, name=args.spec_name) if args.spec else Spec()
    spec = spec.replace(
        **{k: v for k, v in (("target", args.target), ("namespace", args.namespace)) if v}
    )
    canary = canary_of(spec, where=str(args.spec or "the options"))
    if args.preset:
        canary = replace(canary, preset=args.preset)
    options: dict[str, Any] = {"clock": clock} if clock else {}
    engine = Engine(
        args.url,
        Catalog([canary]),
        RevisionStore(),
        judge=args.judge,
        headers=dict(item.split("=", 1) for item in args.header),
        bearer=getattr(args, "bearer", None),
        **options,
    )
    return engine, canary


def serve_metrics(states: Callable[[], Iterable[CanaryState]], host: str, port: int):
    """``/metrics`` with the verdict series of ``states()`` (those of ``rolloutlab serve``),
    in a thread; call ``.shutdown()`` on the result to stop it."""
    from prometheus_client import start_http_server

    from rolloutlab.views.metrics import registry

    server, _ = start_http_server(port, addr=host, registry=registry(states))
    return server


@contextmanager
def exported(args: argparse.Namespace, states: Callable[[], Iterable[CanaryState]]):
    """Serve ``states()`` on ``--metrics-port`` (if given) while the block runs."""
    if args.metrics_port is None:
        yield
        return
    server = serve_metrics(states, args.metrics_host, args.metrics_port)
    print(f"metrics on http://{args.metrics_host}:{args.metrics_port}/metrics", flush=True)
    try:
        yield
    finally:
        server.shutdown()


def rollout_state(rollout) -> CanaryState:
    """What ``/metrics`` says about a live :class:`~rolloutlab.control.loop.Rollout`: the
    judge's decision and metrics, the weight after its last step."""
    from rolloutlab.views.metrics import CanaryState

    verdict = rollout.verdict()
    last = rollout.history[-1] if rollout.history else None
    finished: dict[str, Decision] = {"promoted": "promote", "rolled_back": "rollback"}
    decision = finished.get(rollout.phase, "continue")
    return CanaryState(
        rollout.target,
        rollout.namespace,
        decision if rollout.done else verdict.decision,
        None if last is None else last.new_weight,
        verdict.metrics,
        judged=last is not None and last.error is None,
    )


def watch(
    engine,
    canary,
    since: datetime,
    *,
    once: bool = False,
    out: TextIO = sys.stdout,
    stop: threading.Event | None = None,
) -> None:
    """Print the canary's view now, then (unless ``once``) again after every tick until
    ``stop`` is set (Ctrl-C from the command line)."""
    stop = stop or threading.Event()
    tty = out.isatty()
    while True:
        evaluation = engine.evaluate(canary.namespace, canary.name, "watch", start=since)
        if tty and not once:
            out.write("\x1b[H\x1b[2J")  # redraw in place, as kubectl --watch does
        out.write(render(evaluation, canary.spec.interval_s) + "\n")
        out.flush()
        if once:
            return
        next_tick = evaluation.tick_end.timestamp() + canary.spec.interval_s + LAG_S
        wait_s = max(1.0, next_tick - engine.clock().timestamp())
        if stop.wait(wait_s):
            return


def render(evaluation, interval_s: float) -> str:
    """The text view of one evaluation."""
    e = evaluation
    verdict = e.verdict
    when = e.tick_end.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    since = e.window_start.astimezone(UTC).strftime("%H:%M")
    ticks = len(verdict.ticks) if verdict else 0
    judge = f"{verdict.judge} judge" if verdict else "no judgment yet"
    lines = [
        f"{e.namespace}/{e.name} (target {e.target}) · {judge} · {when}",
        f"  window since {since} UTC · {ticks} ticks of {interval_s:g} s · status {e.status}",
    ]
    if e.weight is None:
        lines.append(f"  weight   unknown (step {e.step} of {len(e.plan)})")
    else:
        filled = round(BAR_CHARS * e.weight / 100)
        bar = "█" * filled + "░" * (BAR_CHARS - filled)
        lines.append(f"  weight   {e.weight:g}% {bar} (step {e.step} of {len(e.plan)})")
    lines.append(f"  decision {e.decision.upper()}: {e.reason}")
    if e.hold and e.decision == "continue":
        lines.append(f"  hold     {e.hold}")
    if e.metrics:
        lines.append("  metrics")
        width = max(len(m.name) for m in e.metrics)
        for m in e.metrics:
            history = [_estimate(t, m.name) for t in verdict.ticks[-SPARK_TICKS:]]
            lines.append(
                f"    {m.name:<{width}}  {m.classification:<12} {_value(m):<28} "
                f"{sparkline(history)}"
            )
            lines.append(f"    {'':<{width}}  {m.reason}")
    for note in e.notes:
        lines.append(f"  note     {note}")
    return "\n".join(lines)


def sparkline(values: list[float | None]) -> str:
    """One character per value, low to high (a space where there is none)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    return "".join(
        " "
        if v is None or not math.isfinite(v)
        else SPARKS[round((v - low) / span * (len(SPARKS) - 1))]
        for v in values
    )


def _estimate(tick, name: str) -> float | None:
    for m in tick.metrics:
        if m.name == name:
            return m.estimate
    return None


def _value(m) -> str:
    if m.estimate is None or not math.isfinite(m.estimate):
        return "no estimate"
    unit = f" {m.unit}" if m.unit else ""
    text = f"{m.estimate:.3g}{unit}"
    if m.ci is not None:
        low, high = m.ci
        text += f" [{low:.3g}, {high:.3g}]"
    return text
