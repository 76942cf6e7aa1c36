"""The ``rolloutlab`` command: a thin front end over the library.

Every command prints what it did (tables through :mod:`rolloutlab.views.terminal`); errors
print one clear line and exit with 2, a bug in rolloutlab says so in one line and exits
with 70, and a decision (even a rollback) is not an error: judging exits 0, or with the
decision under ``judge --exit-code``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rolloutlab.config import redact
from rolloutlab.errors import EmptyResult, RolloutlabError, SpecError
from rolloutlab.specs.model import JUDGE_NAMES, ROUTER_KINDS, Spec

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
DEMO_RECORDINGS = ("healthy", "error-regression", "latency-regression", "ab")
DEMO_REPORT = "error-regression"
BUNDLED_SEED = 7

# Commands that live in their own module of this package: each defines
# ``register(command)``, called with the same ``command(name, run, help)`` factory as below.
COMMAND_MODULES: tuple[str, ...] = ("serve", "fleet", "watch", "audit", "plan")


#: exit status of a bug in rolloutlab (BSD's EX_SOFTWARE), and of output cut short by a
#: closed pipe (128 + SIGPIPE, as a shell reports a command killed by it)
EXIT_BUG = 70
EXIT_BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(_relative_times(sys.argv[1:] if argv is None else list(argv)))
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    name = f"rolloutlab {args.command}"
    debug = args.debug or os.environ.get("ROLLOUTLAB_DEBUG", "") not in ("", "0")
    try:
        with _one_line_warnings(name):
            status = args.run(args) or 0
            sys.stdout.flush()
            return status
    except BrokenPipeError:
        return _broken_pipe()
    except RolloutlabError as exc:
        _fail(name, f"error: {_for_cli(redact(str(exc)))}", debug)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        what = " ".join(redact(str(exc)).split())[:200]
        _fail(
            name,
            f"bug: {type(exc).__name__}{': ' + what if what else ''}. This is a bug in "
            "rolloutlab, not in your input: please report it with the output of the same "
            "command run as 'rolloutlab --debug ...' (or with ROLLOUTLAB_DEBUG=1).",
            debug,
        )
        return EXIT_BUG


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rolloutlab", description="Judge and steer canary rollouts and A/B experiments."
    )
    parser.add_argument("--version", action="version", version=f"rolloutlab {_version()}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="print the full traceback of an error (as does ROLLOUTLAB_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], int | None], help: str):
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(run=run)
        # also after the command: 'rolloutlab show x --debug'
        p.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
        return p

    p = command("show", _show, "Print a recording's summary.")
    _recording_argument(p)
    p.add_argument("--ticks", action="store_true", help="also print every step")
    _format_option(p)

    p = command("simulate", _simulate, "Simulate a rollout or experiment with known truth.")
    p.add_argument("scenario", nargs="?", default="healthy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a scenario field, e.g. --set requests_per_min=300",
    )
    p.add_argument("-o", "--output", type=Path, help="write the recording (.parquet or .csv)")
    p.add_argument(
        "--openmetrics",
        type=Path,
        help="also write OpenMetrics text for 'promtool tsdb create-blocks-from openmetrics'",
    )
    p.add_argument("--preset", default="istio", help="metric names for --openmetrics")
    p.add_argument("--target", default="podinfo")
    p.add_argument("--namespace", default="test")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")

    p = command("fetch", _fetch, "Fetch both variants from a Prometheus into a recording.")
    connection_options(p)
    p.add_argument(
        "--preset",
        help="query preset (istio, linkerd, nginx, ...); default: the spec's provider, else "
        "$ROLLOUTLAB_PRESET, else the config file's, else istio",
    )
    p.add_argument(
        "--target", help="Flagger target: <target> is the canary, <target>-primary the primary"
    )
    p.add_argument("--namespace")
    p.add_argument(
        "--spec",
        type=Path,
        help="Canary or Rollout with its templates (file or folder): target, namespace, "
        "preset and the template metrics come from it",
    )
    _spec_name_option(p)
    _kube_spec_options(p, namespace=False)
    _pod_template_hash_option(p)
    p.add_argument(
        "--name",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Flagger's template names for the preset: service, ingress, route (repeatable; "
        "with --spec, over the Canary's)",
    )
    p.add_argument(
        "--aggregate",
        choices=("sum",),
        help="sum series of one variant that differ in other labels (e.g. both Istio reporters)",
    )
    p.add_argument("--start", required=True, help=f"first step: {TIME_HELP}")
    p.add_argument("--end", required=True, help="last step, a time as for --start")
    p.add_argument("--step", default="1m", help="step and increase() window, e.g. 1m")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--variant-label", help="label that tells the variants apart")
    p.add_argument("--variants", help="'a,b' label values, or 'name=regex,...'")
    p.add_argument("--queries", type=Path, help="YAML/JSON file of custom queries")
    p.add_argument(
        "--segment-by",
        metavar="LABEL",
        help="fill the recording's segment column from this label (e.g. region), for "
        "per-segment A/B results; series without it go in the segment '(none)'",
    )
    p.add_argument(
        "--flagger",
        action="store_true",
        help="also fetch Flagger's own series (weight, status, metric analysis)",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request")

    p = command("judge", _judge, "Judge a recorded rollout: promote, continue or rollback.")
    _recording_argument(p)
    p.add_argument("--spec", type=Path, help="Flagger Canary manifest or rolloutlab spec (YAML)")
    _spec_name_option(p)
    _kube_spec_options(p)
    p.add_argument("--judge", choices=JUDGE_NAMES, help="default: the spec's, else rolloutlab")
    p.add_argument("--at", help=f"judge as of this time: {TIME_HELP}")
    _format_option(p, "Verdict.to_dict()")
    p.add_argument(
        "--exit-code",
        action="store_true",
        help="exit with the decision, for a CI gate: 0 promote, 1 rollback, 3 continue "
        "(errors stay 2)",
    )

    p = command("experiment", _experiment, "Analyse an A/B/n experiment recording.")
    _recording_argument(p)
    p.add_argument("--spec", type=Path)
    _spec_name_option(p)
    _kube_spec_options(p)
    p.add_argument("--json", action="store_true", help="print ExperimentReport.to_dict() as JSON")

    p = command("replay", _replay, "Replay a recorded rollout under the judges, tick by tick.")
    _recording_argument(p)
    p.add_argument(
        "--spec", type=Path, help="default: the recording's own weights, default metrics"
    )
    _spec_name_option(p)
    _kube_spec_options(p)
    p.add_argument(
        "--judge", action="append", choices=JUDGE_NAMES, help="repeatable; default: all three"
    )
    _format_option(p, "the weights and every judge's Verdict.to_dict()")

    p = command("report", _report, "Write a standalone HTML report of a recording.")
    _recording_argument(p, optional=True)
    p.add_argument(
        "--fleet",
        type=Path,
        metavar="RESULTS",
        help="instead of a recording: the calibration report of a 'fleet replay' results folder",
    )
    p.add_argument("--spec", type=Path)
    _spec_name_option(p)
    _kube_spec_options(p)
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("report.html"),
        help="report.html, report.pdf or report.png (PDF and PNG are printed by Chromium)",
    )
    p.add_argument("--title", help="the report's heading (default: the kind and the target)")

    p = command("run", _run, "Drive a live rollout: fetch, judge and step the weights.")
    connection_options(p)
    p.add_argument(
        "--preset",
        help="default: the spec's provider, else $ROLLOUTLAB_PRESET, else the config file's, "
        "else istio",
    )
    p.add_argument("--router", choices=ROUTER_KINDS, help="default: the spec's")
    p.add_argument("--target", help="the canary workload (default: the spec's target)")
    p.add_argument("--namespace", help="default: the spec's")
    p.add_argument("--route", help="name of the route object (default: the target)")
    p.add_argument(
        "--spec",
        type=Path,
        help="Canary or Rollout with its templates (file or folder), or a rolloutlab spec; "
        "or give --kube",
    )
    _spec_name_option(p)
    _kube_spec_options(p, namespace=False, kube=False)
    _pod_template_hash_option(p)
    p.add_argument("--judge", choices=JUDGE_NAMES, help="default: the spec's, else rolloutlab")
    p.add_argument(
        "--auto",
        action="store_true",
        help="act on the judge's decisions; without it the judge only advises",
    )
    p.add_argument(
        "--slack-webhook-file",
        metavar="FILE",
        help="file holding the Slack incoming-webhook URL for decisions and failures (or "
        "$ROLLOUTLAB_SLACK_WEBHOOK, $ROLLOUTLAB_SLACK_WEBHOOK_FILE, the config file's "
        "slack_webhook_file); the URL is a secret, so it is not taken on the command line",
    )
    _subset_options(p)
    _kube_options(p)
    importlib.import_module("rolloutlab.cli.watch").metrics_options(p)

    p = command("weight", _weight, "Read or set a traffic split by hand.")
    p.add_argument("--router", required=True, choices=ROUTER_KINDS)
    p.add_argument("--name", required=True, help="the route object (VirtualService, ...)")
    p.add_argument("--namespace", required=True)
    p.add_argument("--set", type=float, metavar="PERCENT", help="canary weight to set, 0-100")
    p.add_argument("--reason", default="manual: rolloutlab weight", help="for the audit log")
    p.add_argument("--dry-run", action="store_true", help="preview the change, write nothing")
    _subset_options(p)
    _kube_options(p)

    p = command("demo", _demo, "Run the main job on the bundled rollouts.")
    p.add_argument("--data", type=Path, default=DATA_DIR, help="folder of bundled recordings")
    p.add_argument("-o", "--output", type=Path, default=Path("report.html"))
    p.add_argument(
        "--live",
        action="store_true",
        help="run a canary live on 127.0.0.1: two services, load, a real Prometheus",
    )
    p.add_argument("--canary-errors", default="5x", help="canary error rate vs primary, e.g. 2x")
    p.add_argument("--canary-latency", default="+0%", help="canary latency vs primary, e.g. +30%%")
    p.add_argument("--interval", type=int, default=5, help="seconds per tick (live)")

    p = command("completion", _completion, "Print a shell completion script.")
    p.add_argument("shell", choices=COMPLETION_SHELLS)

    for module in COMMAND_MODULES:
        importlib.import_module(f"rolloutlab.cli.{module}").register(command)
    return parser


#: what --start, --end and --at accept (parsed by _time)
TIME_HELP = (
    "ISO 8601 (2026-01-12T10:00Z; UTC unless an offset is given), Unix seconds "
    "(1768212000), 'now', or relative to now: 'now-2h', '-2h', 'now+30m'"
)
#: --format values, as rolloutlab.views.terminal.FORMATS (not imported: it loads altair)
FORMATS = ("table", "json", "csv", "markdown")


def _format_option(p: argparse.ArgumentParser, json_is: str | None = None) -> None:
    """``--format table|json|csv|markdown``, and ``--json`` for ``--format json``."""
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (for people; plain text when piped), json, csv or markdown",
    )
    if json_is:
        p.add_argument(
            "--json",
            dest="format",
            action="store_const",
            const="json",
            help=f"same as --format json: {json_is}",
        )


def _recording_argument(p: argparse.ArgumentParser, *, optional: bool = False) -> None:
    p.add_argument(
        "recording",
        type=Path,
        nargs="?" if optional else None,
        help=".parquet, .csv or a query_range response (.json)",
    )
    p.add_argument(
        "--select",
        action="append",
        default=[],
        metavar="LABEL=VALUE",
        help="a .json response: keep the series with this label value (repeatable), "
        "e.g. reporter=destination",
    )
    p.add_argument(
        "--aggregate",
        choices=("sum",),
        help="a .json response: sum series of one variant that differ in other labels",
    )


def _spec_name_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--spec-name",
        metavar="NAME",
        help="the Canary or Rollout to use when the --spec folder or file holds several",
    )


def _kube_spec_options(
    p: argparse.ArgumentParser, *, namespace: bool = True, kube: bool = True
) -> None:
    """``--kube NAME`` (and what it needs that ``p`` lacks): the spec from the cluster."""
    p.add_argument(
        "--kube",
        metavar="NAME",
        help="read the Canary or Rollout NAME (or canary/NAME, rollout/NAME) and its "
        "templates from the cluster instead of --spec",
    )
    if namespace:
        p.add_argument("--namespace", help="with --kube: its namespace (default: default)")
    if kube:
        _kube_options(p)


def _subset_options(p: argparse.ArgumentParser) -> None:
    for role in ("primary", "canary"):
        p.add_argument(
            f"--{role}-subset",
            metavar="SUBSET",
            help=f"Istio: the DestinationRule subset of the {role} (a split within one host)",
        )


def _kube_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--context", help="kubeconfig context (default: the current one)")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")


# -- commands --------------------------------------------------------------------------


def _show(args: argparse.Namespace) -> int:
    _print_recording(_load(args), args.format, ticks=args.ticks)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from rolloutlab.sources.simulate import SCENARIOS, simulate

    if args.list:
        for name, sc in SCENARIOS.items():
            print(f"{name:26} {sc.description}")
        return 0
    rec = simulate(args.scenario, seed=args.seed, **_overrides(args.set))
    if args.output:
        print(f"wrote {rec.save(args.output)}")
    if args.openmetrics:
        from rolloutlab.sources.openmetrics import to_openmetrics

        text = to_openmetrics(rec, preset=args.preset, target=args.target, namespace=args.namespace)
        args.openmetrics.write_text(text)
        print(f"wrote {args.openmetrics}")
    if not (args.output or args.openmetrics):
        _print_recording(rec)
    return 0


#: fetch options that say what to query, which a --spec already says
SPEC_DEFINES = ("queries", "variants", "variant_label")


def _fetch(args: argparse.Namespace) -> int:
    from rolloutlab.sources.prometheus import fetch

    settings = connection(args)
    start, end = _time(args.start, "--start"), _time(args.end, "--end")
    if end < start:
        raise SpecError(
            f"--end {args.end} ({end:%Y-%m-%d %H:%M:%S} UTC) is before --start {args.start} "
            f"({start:%Y-%m-%d %H:%M:%S} UTC): give the earlier time as --start."
        )
    options = dict(
        start=start,
        end=end,
        step=args.step,
        headers=args.header,
        bearer=args.bearer,
        timeout=args.timeout,
        aggregate=args.aggregate,
    )
    names = _names(args.name)
    if args.spec is not None or args.kube is not None:
        from rolloutlab.specs.fetch import fetch_for_spec, preset_for

        if args.segment_by:
            raise SpecError("--segment-by works with --preset or --queries, not with --spec yet.")
        clashing = [f"--{k.replace('_', '-')}" for k in SPEC_DEFINES if getattr(args, k)]
        if clashing:
            raise SpecError(
                f"{' and '.join(clashing)} cannot be combined with --spec, whose metrics say "
                "what to query. Drop them, or drop --spec."
            )

        spec = _cluster_spec(args) if args.kube else Spec.load(args.spec, name=args.spec_name)
        preset = args.preset or preset_for(spec, settings.preset)
        try:
            rec = fetch_for_spec(
                args.url,
                spec,
                preset=preset,
                target=args.target,
                namespace=args.namespace,
                flagger=args.flagger,
                pod_template_hashes=_pairs(args.pod_template_hash, "--pod-template-hash"),
                names=names,
                **options,
            )
        except EmptyResult as exc:
            target, namespace = args.target or spec.target, args.namespace or spec.namespace
            asked = (target, namespace, {**dict(spec.names or ()), **names})
            raise _no_data(exc, args, preset, asked, start, end) from exc
    else:
        if args.pod_template_hash:
            raise SpecError("--pod-template-hash fills the templates of a --spec: give --spec.")
        if args.spec_name:
            raise SpecError("--spec-name picks a Canary or Rollout of a --spec: give --spec.")
        args.preset = args.preset or settings.preset
        try:
            rec = fetch(
                args.url,
                preset=args.preset or "istio",
                target=args.target,
                namespace=args.namespace,
                variant_label=args.variant_label,
                variants=args.variants,
                queries=args.queries,
                flagger=args.flagger,
                names=names,
                segment_by=args.segment_by,
                **options,
            )
        except EmptyResult as exc:
            if args.queries or args.variant_label or args.variants:
                raise
            preset = args.preset or "istio"
            asked = (args.target, args.namespace, names)
            raise _no_data(exc, args, preset, asked, start, end) from exc
    from rolloutlab.views import terminal

    facts = terminal.recording_facts(rec)
    print(f"wrote {rec.save(args.output)}: {facts['recording']}, {facts['span']}, {facts['step']}")
    return 0


#: how far before --end ``fetch`` looks for data when the range holds none
LOOK_BACK = "30d"


def _no_data(
    exc: EmptyResult, args: argparse.Namespace, preset_name: str, asked: tuple, start, end
) -> EmptyResult:
    """``exc`` unless a preset's own series found nothing (not Flagger's, not a
    template's); then a message naming what was ``asked`` (target, namespace, Flagger's
    names) and what the server does hold: the workloads in the range, else when its data
    are (within LOOK_BACK before --end)."""
    from rolloutlab.sources.presets import PRESETS

    if not str(exc).startswith("no data for variant") or preset_name not in PRESETS:
        return exc
    return EmptyResult(_what_exists(exc, args, PRESETS[preset_name], asked, start, end))


def _what_exists(exc, args, preset, asked: tuple, start, end) -> str:
    """The no-data message: what was asked, and what the server holds instead."""
    from rolloutlab.sources.prometheus import Prometheus

    fixed = {k: v for k, v in preset.labels.items() if "{" not in v}
    keys = [k for k, v in preset.labels.items() if "{" in v] + [preset.variant_label]
    selector = preset.requests + "{" + ",".join(f'{k}="{v}"' for k, v in fixed.items()) + "}"
    target, namespace, names = asked
    named = ", ".join(f'{k}="{v}"' for k, v in names.items())
    workload = f"{target or '(no --target)'} in namespace {namespace or '(no --namespace)'}"
    span = f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC"
    # (no URL here: it may hold credentials; the library's own message has it redacted)
    headline = f"no {preset.name} data for {workload}{f' ({named})' if named else ''} in {span}."
    at = end.replace(microsecond=0)
    range_s = max(int((end - start).total_seconds()), 1)
    try:
        headers = {k.strip(): v.strip() for k, _, v in (h.partition("=") for h in args.header)}
        with Prometheus(args.url, headers=headers, auth=args.bearer, timeout=args.timeout) as prom:
            found = prom.query_range(
                f"count by ({', '.join(keys)}) (last_over_time({selector}[{range_s}s]))", at, at, 1
            )
            if found:
                series = sorted(
                    " ".join(f"{k}={s['metric'].get(k, '')}" for k in keys) for s in found
                )
                listed = "; ".join(series[:10]) + (" …" if len(series) > 10 else "")
                return (
                    f"{headline} In that range {preset.requests} has: {listed}. "
                    "Check the target and namespace (--target, --namespace, or the spec's)."
                )
            when = [
                prom.query_range(
                    f"{agg}({agg}_over_time(timestamp({selector})[{LOOK_BACK}:10m]))", at, at, 1
                )
                for agg in ("min", "max")
            ]
    except RolloutlabError:
        return f"{headline} {_for_cli(str(exc))}"
    return headline + " " + _found_when(when[0] + when[1], preset.requests)


def _found_when(result: list[dict[str, Any]], metric: str) -> str:
    """Where the data are, from the oldest/newest sample times of ``metric`` (or none)."""
    from datetime import UTC, datetime

    times = sorted(float(v) for s in result for _, v in s["values"])
    if not times:
        return (
            f"The server has no {metric} series in the {LOOK_BACK} before --end: check "
            "--url, --preset, --start and --end."
        )
    first, last = (datetime.fromtimestamp(t, UTC) for t in (times[0], times[-1]))
    return (
        f"Its {metric} data (within {LOOK_BACK} before --end) run from about "
        f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC: check --start and --end."
    )


#: options that take a time; '--start -2h' is read as '--start=-2h'
TIME_OPTIONS = ("--start", "--end", "--at", "--since")


def _relative_times(argv: list[str]) -> list[str]:
    """``--start -2h`` joined as ``--start=-2h``, which argparse would read as an option."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in TIME_OPTIONS and re.match(r"-\d", arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def _time(text: str, option: str):
    """A UTC datetime from what TIME_HELP documents; a one-line error otherwise."""
    from datetime import UTC, datetime

    from rolloutlab.sources.prometheus import to_utc

    value = text.strip()
    if re.fullmatch(r"\d+(\.\d*)?", value):
        return to_utc(float(value), option)
    if value[:1] in "+-":
        value = "now" + value
    with contextlib.suppress(ValueError):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    try:
        return to_utc(value, option)
    except SpecError:
        raise SpecError(f"{option} {text!r} is not a time: use {TIME_HELP}.") from None


def _at(text: str, rec: Any):
    """``--at`` as a time within the recording: before its data is an error saying its span."""
    from rolloutlab.views import terminal

    at = _time(text, "--at")
    if rec.start is not None and at < rec.start:
        facts = terminal.recording_facts(rec)
        raise SpecError(
            f"--at {text} ({at:%Y-%m-%d %H:%M:%S} UTC) is before the recording's first step "
            f"(ending {rec.start:%Y-%m-%d %H:%M:%S} UTC); its data span {facts['span']}."
        )
    return at


#: ``judge --exit-code``: the status per decision, for a CI gate (errors stay 2)
EXIT_DECISION = {"promote": 0, "rollback": 1, "continue": 3}


def _judge(args: argparse.Namespace) -> int:
    from rolloutlab.judges import judge

    rec = _load(args)
    at = _at(args.at, rec) if args.at else None
    verdict = judge(rec, _spec(args), judge=args.judge, at=at)
    _print_verdict(verdict, args.format)
    return EXIT_DECISION[verdict.decision] if args.exit_code else 0


def _experiment(args: argparse.Namespace) -> int:
    from rolloutlab.experiments import experiment

    result = experiment(_load(args), _spec(args))
    if args.json:
        _print_json(result.to_dict())
    else:
        from rolloutlab.views import terminal

        print(result.summary())
        terminal.print_table(result.summary_frame(), wrap=["status"])
    return 0


def _replay(args: argparse.Namespace) -> int:
    from rolloutlab.postmortem import DEFAULT_JUDGES, replay
    from rolloutlab.views import terminal

    result = replay(_load(args), _spec(args), judges=tuple(args.judge or DEFAULT_JUDGES))
    ticks = terminal.replay_frame(result.timeline)
    if args.format == "json":
        _print_json(
            {
                "weights": result.weights,
                "decisions": {n: v.to_dict() for n, v in result.verdicts.items()},
                "ticks": terminal.records(ticks),
            }
        )
    elif args.format == "csv":
        terminal.print_table(ticks, "csv")
    else:
        terminal.print_table(ticks, args.format, title=f"replay: {result.weights} weights")
        terminal.echo()
        terminal.echo(result.summary())
    return 0


#: the report formats ``report -o`` writes, by the file name's extension
REPORT_SUFFIXES = (".html", ".pdf", ".png")


def _report(args: argparse.Namespace) -> int:
    from rolloutlab.views.reports import report

    _check_report_path(args.output)
    if (args.fleet is None) == (args.recording is None):
        raise SpecError("report needs a recording or --fleet RESULTS (one of them).")
    if args.fleet is not None:
        from rolloutlab.fleet import open_results
        from rolloutlab.views.fleet import fleet_report

        path = args.output if args.output != Path("report.html") else Path("fleet-report.html")
        if path.suffix.lower() != ".html":
            raise SpecError(f"-o {path}: the fleet report is written as .html only")
        print(f"wrote {fleet_report(open_results(args.fleet), path)}")
        return 0
    print(f"wrote {report(_load(args), _spec(args), path=args.output, title=args.title)}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from rolloutlab.control.kube import load_client
    from rolloutlab.control.loop import Rollout
    from rolloutlab.control.notify import SlackNotifier
    from rolloutlab.control.routers import router
    from rolloutlab.sources.prometheus import Prometheus
    from rolloutlab.specs.fetch import preset_for

    if args.kube:
        spec = _cluster_spec(args)
    elif args.spec is None:
        raise SpecError("run needs a spec: give --spec FILE_OR_FOLDER or --kube NAME.")
    else:
        spec = Spec.load(args.spec, name=args.spec_name)
    target, namespace, kind = _from_spec(args, spec)
    settings = connection(args)
    client = load_client(context=args.context, kubeconfig=args.kubeconfig)
    route = router(kind, args.route or target, namespace, client=client, **_subsets(args))
    webhook = settings.slack_webhook
    with Prometheus(args.url, headers=settings.headers, auth=settings.bearer) as source:
        rollout = Rollout(
            source,
            route,
            spec,
            args.judge or spec.judge,
            target=target,
            namespace=namespace,
            preset=args.preset or preset_for(spec, settings.preset),
            mode="auto" if args.auto else "manual",
            notifier=SlackNotifier(webhook) if webhook else None,
            pod_template_hashes=_pairs(args.pod_template_hash, "--pod-template-hash"),
        )
        from rolloutlab.cli.watch import exported, rollout_state

        with exported(args, lambda: [rollout_state(rollout)]):
            return _drive(rollout)


def _from_spec(args: argparse.Namespace, spec) -> tuple[str, str, str]:
    """Target, namespace and router kind: the options given, else the spec's."""
    chosen = {
        "target": args.target or spec.target,
        "namespace": args.namespace or spec.namespace,
        "router": args.router or spec.router,
    }
    missing = [name for name, value in chosen.items() if not value]
    if missing:
        flags = " ".join(f"--{name} ..." for name in missing)
        raise SpecError(
            f"{args.spec or args.kube} does not say the {', '.join(missing)}: pass {flags}"
        )
    return chosen["target"], chosen["namespace"], chosen["router"]


def connection_options(p: argparse.ArgumentParser) -> None:
    """The Prometheus connection options; each defaults to the environment, then the
    config file (see :mod:`rolloutlab.config`). Secrets come from files or the
    environment only: a command line is visible to every user in ``ps``."""
    p.add_argument(
        "--url",
        help="Prometheus-compatible server, e.g. http://prom:9090 (default: $ROLLOUTLAB_URL, "
        "else the config file's url)",
    )
    p.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra HTTP header, e.g. X-Scope-OrgID=tenant (repeatable; over "
        "$ROLLOUTLAB_HEADERS and the config file's headers); secret ones in --header-file",
    )
    p.add_argument("--header-file", metavar="FILE", help="headers, one 'Key: Value' per line")
    p.add_argument(
        "--bearer-file",
        metavar="FILE",
        help="file holding the bearer token (default: $ROLLOUTLAB_BEARER_TOKEN, "
        "$ROLLOUTLAB_BEARER_TOKEN_FILE, the config file's bearer_token_file)",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="config file (default: $ROLLOUTLAB_CONFIG, else "
        "$XDG_CONFIG_HOME/rolloutlab/config.yaml, else ~/.config/rolloutlab/config.yaml)",
    )


def connection(args: argparse.Namespace):
    """The :func:`connection_options` resolved (flags > environment > config file), put
    back on ``args`` (``url``, ``header`` as ``Key=Value`` items, ``bearer``); the
    :class:`~rolloutlab.config.Settings`, for the preset and the Slack webhook."""
    from rolloutlab.config import config_path, settings

    resolved = settings(
        url=args.url,
        preset=getattr(args, "preset", None),
        headers=args.header,
        headers_file=args.header_file,
        bearer_file=args.bearer_file,
        slack_webhook_file=getattr(args, "slack_webhook_file", None),
        config=args.config,
    )
    if not resolved.url:
        raise SpecError(
            "no Prometheus URL: pass --url http://prom:9090, set ROLLOUTLAB_URL, or put "
            f"'url: http://prom:9090' in {config_path(args.config)}"
        )
    args.url = resolved.url
    args.header = [f"{key}={value}" for key, value in resolved.headers.items()]
    args.bearer = resolved.bearer
    return resolved


def _drive(rollout) -> int:
    """Run ``rollout`` to a decision, printing one status line per tick."""
    print(f"{rollout!r}: {'acting' if rollout.acting else 'advising only (use --auto to act)'}")
    phase = rollout.run(on_tick=lambda record: print(f"  {_for_cli(rollout.status)}", flush=True))
    print(f"{phase}: {rollout.verdict().reason}")
    return 0


def _weight(args: argparse.Namespace) -> int:
    from rolloutlab.control.kube import load_client
    from rolloutlab.control.routers import router

    client = load_client(context=args.context, kubeconfig=args.kubeconfig)
    route = router(args.router, args.name, args.namespace, client=client, **_subsets(args))
    if args.set is None:
        print(f"{route.describe()}: {route.weights()}")
        return 0
    print(route.set_weight(args.set, reason=args.reason, dry_run=args.dry_run))
    return 0


def _demo(args: argparse.Namespace) -> int:
    """Judge each bundled rollout with every judge, analyse the experiment, write reports."""
    if args.live:
        return _demo_live(args)
    from rolloutlab.experiments import experiment
    from rolloutlab.postmortem import replay
    from rolloutlab.views.reports import report

    written = []
    for name in DEMO_RECORDINGS:
        rec = _bundled(args.data, name)
        description = (rec.meta.get("scenario") or {}).get("description", "")
        print(f"\n== {name}: {description}")
        if rec.meta.get("kind") == "experiment":
            print(experiment(rec).summary())
            written.append(report(rec, path=args.output.with_name(f"{args.output.stem}-ab.html")))
        else:
            print(replay(rec).summary())
            if name == DEMO_REPORT:
                written.append(report(rec, path=args.output))
    print()
    for path in written:
        print(f"wrote {path.resolve()}")
    return 0


def _check_report_path(path: Path) -> None:
    """Refuse a report file name whose extension says a format that is not written."""
    if path.suffix.lower() not in REPORT_SUFFIXES:
        raise SpecError(
            f"-o {path}: cannot write a report as '{path.suffix or 'no extension'}'; "
            f"use a file name ending in {' or '.join(REPORT_SUFFIXES)}, e.g. -o report.html"
        )


def _demo_live(args: argparse.Namespace) -> int:
    """A canary rollout on 127.0.0.1 with a real Prometheus, driven by the rolloutlab judge;
    its report (of what was fetched and judged) goes to ``-o``."""
    from rolloutlab.control.local import LiveDemo
    from rolloutlab.views.reports import report

    _check_report_path(args.output)
    print(
        f"starting the live demo (canary errors {args.canary_errors}, "
        f"latency {args.canary_latency}, {args.interval} s ticks)..."
    )
    with LiveDemo(
        canary_errors=args.canary_errors,
        canary_latency=args.canary_latency,
        interval_s=args.interval,
    ) as demo:
        print(f"Prometheus at {demo.prometheus_url}")
        rollout = demo.rollout(mode="auto")
        try:
            return _drive(rollout)
        finally:  # also after Ctrl-C: the report of what was seen
            recording = rollout.recording
            if recording.frame.is_empty():
                print(f"no report: nothing was fetched yet, {args.output} not written")
            else:
                print(f"wrote {report(recording, rollout.spec, path=args.output).resolve()}")


# -- helpers ---------------------------------------------------------------------------


def _bundled(folder: Path, name: str):
    """A bundled recording from ``folder``, or the same seeded simulation if it is absent."""
    from rolloutlab.sources.recording import load
    from rolloutlab.sources.simulate import simulate

    path = folder / f"{name}.parquet"
    if path.exists():
        return load(path)
    return simulate(name, seed=BUNDLED_SEED)


def _pod_template_hash_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pod-template-hash",
        metavar="stable=HASH,canary=HASH",
        help="the ReplicaSets' hashes, for Argo templates that select pods by them",
    )


def _pairs(
    text: str | None, option: str, example: str = "stable=6c8b,canary=5f7c"
) -> dict[str, str]:
    """``"a=1,b=2"`` as a dict; a malformed item is a one-line error naming ``option``."""
    if not text:
        return {}
    out = {}
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        if not (sep and key and value):
            raise SpecError(f"{option} {text!r}: expected KEY=VALUE,..., e.g. {example}")
        out[key] = value
    return out


def _names(items: list[str]) -> dict[str, str]:
    """The repeated ``--name KEY=VALUE`` options as a dict."""
    return {k: v for item in items for k, v in _pairs(item, "--name", "service=podinfo").items()}


def _load(args: argparse.Namespace) -> Any:
    """The recording argument, with ``--select``/``--aggregate`` for a .json response."""
    from rolloutlab.sources.recording import load

    options: dict[str, Any] = {}
    if args.select:
        options["select"] = {
            k: v
            for item in args.select
            for k, v in _pairs(item, "--select", "reporter=destination").items()
        }
    if args.aggregate:
        options["aggregate"] = args.aggregate
    return load(args.recording, **options)


def _spec(args: argparse.Namespace) -> Any:
    """``--spec``, loaded when ``--spec-name`` picks one of the Canaries or Rollouts in it;
    or the ``--kube`` one."""
    if args.kube:
        return _cluster_spec(args)
    if args.spec_name is None:
        return args.spec
    if args.spec is None:
        raise SpecError("--spec-name picks a Canary or Rollout of a --spec: give --spec.")
    return Spec.load(args.spec, name=args.spec_name)


def _cluster_spec(args: argparse.Namespace) -> Spec:
    """The ``--kube`` Canary or Rollout and its templates, read from the cluster."""
    from rolloutlab.specs.kube import load_from_cluster

    if args.spec is not None or args.spec_name is not None:
        given = "--spec" if args.spec is not None else "--spec-name"
        raise SpecError(f"{given} and --kube both say where the spec is: give one of them.")
    return load_from_cluster(
        args.kube,
        args.namespace or "default",
        context=args.context,
        kubeconfig=args.kubeconfig,
    )


def _subsets(args: argparse.Namespace) -> dict[str, Any]:
    """``--primary-subset``/``--canary-subset`` as the router's options."""
    return {"primary_subset": args.primary_subset, "canary_subset": args.canary_subset}


def _overrides(pairs: list[str]) -> dict[str, object]:
    """``--set FIELD=VALUE`` as scenario overrides, each checked against the field's type."""
    import dataclasses
    import typing

    from rolloutlab.sources.simulate import Scenario

    hints = typing.get_type_hints(Scenario)
    defaults = {f.name: f.default for f in dataclasses.fields(Scenario)}
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SpecError(
                f"--set {pair!r}: expected FIELD=VALUE, e.g. --set requests_per_min=300"
            )
        if key not in hints:
            raise SpecError(
                f"--set {key}: no such scenario field; the fields are {', '.join(sorted(hints))}"
            )
        value = _field_value(raw.strip(), hints[key])
        if value is _INVALID:
            example = defaults[key]
            shown = (
                f", e.g. --set {key}={json.dumps(list(example) if isinstance(example, tuple) else example)}"
                if example not in (None, dataclasses.MISSING)
                else ""
            )
            raise SpecError(f"--set {key}={raw}: expected {_type_words(hints[key])}{shown}")
        out[key] = value
    return out


_INVALID = object()


def _field_value(raw: str, hint: Any) -> Any:
    """``raw`` as a value of type ``hint`` (a Scenario field's), or _INVALID."""
    import typing
    from datetime import datetime

    args = typing.get_args(hint)
    if type(None) in args:
        if raw.lower() in ("none", "null", ""):
            return None
        hint = next(a for a in args if a is not type(None))
        args = typing.get_args(hint)
    if hint is str:
        return raw
    if hint is datetime:
        try:
            return _time(raw, "--set")
        except SpecError:
            return _INVALID
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw.split(",") if typing.get_origin(hint) is tuple else _INVALID
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list):
            return _INVALID
        items = [_field_value(v if isinstance(v, str) else json.dumps(v), args[0]) for v in value]
        fixed = Ellipsis not in args
        if any(i is _INVALID for i in items) or (fixed and len(items) != len(args)):
            return _INVALID
        return tuple(items)
    if origin is dict:
        return value if isinstance(value, dict) else _INVALID
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _INVALID
    if hint is int:
        return int(value) if float(value).is_integer() else _INVALID
    return float(value)


def _type_words(hint: Any) -> str:
    """A Scenario field's type in words."""
    import typing
    from datetime import datetime

    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if type(None) in typing.get_args(hint):
        return f"{_type_words(args[0])} or none"
    if typing.get_origin(hint) is tuple:
        count = "" if Ellipsis in args else f"{len(args)} "
        return f"a list of {count}{_type_words(args[0]).removeprefix('a ')}s"
    if typing.get_origin(hint) is dict:
        return 'a JSON object like {"key": 1}'
    words = {int: "a whole number", float: "a number", str: "a text", datetime: "a time"}
    return words.get(hint, str(hint))


def _print_json(data: object) -> None:
    import json

    print(json.dumps(data, indent=2))


def _print_verdict(verdict, fmt: str = "table") -> None:
    """The decision, why, and the per-metric evidence (``fmt``: see FORMATS)."""
    from rolloutlab.views import terminal

    if fmt == "json":
        _print_json(verdict.to_dict())
        return
    if fmt == "csv":
        terminal.print_table(terminal.evidence_frame(verdict.metrics), "csv")
        return
    when = f" at {verdict.decided_at:%Y-%m-%d %H:%M} UTC" if verdict.decided_at else ""
    seen = (
        f", {len(verdict.ticks)} ticks judged up to {verdict.ticks[-1].timestamp:%Y-%m-%d %H:%M} UTC"
        if verdict.ticks
        else ", no complete tick yet"
    )
    if fmt == "markdown":
        terminal.echo(f"**{verdict.decision.upper()}** ({verdict.judge} judge{when}{seen})\n")
        terminal.echo(f"{verdict.reason}\n")
        terminal.print_table(terminal.evidence_table(verdict.metrics), "markdown")
        return
    terminal.decision_line(verdict.decision, suffix=f"  {verdict.judge} judge{when}{seen}")
    terminal.echo(f"why: {verdict.reason}")
    if verdict.metrics:
        terminal.echo()
        terminal.print_table(terminal.evidence_table(verdict.metrics), wrap=["why"])


def _print_recording(rec, fmt: str = "table", *, ticks: bool = False) -> None:
    """What a recording holds: span, step, source, and per variant its traffic, errors and
    latency; with ``ticks`` every step too."""
    from rolloutlab.views import terminal

    facts = terminal.recording_facts(rec)
    variants = terminal.recording_frame(rec)
    steps = terminal.ticks_frame(rec) if ticks else None
    if fmt == "json":
        extra = {"steps": terminal.records(steps)} if steps is not None else {}
        _print_json({**facts, "variants": terminal.records(variants), **extra})
    elif fmt == "csv":
        terminal.print_table(steps if steps is not None else variants, "csv")
    else:
        for key, value in facts.items():
            if key in terminal.FACT_LINES:
                terminal.echo(
                    f"- **{key}**: {value}" if fmt == "markdown" else f"{key + ':':11}{value}"
                )
        terminal.echo()
        terminal.print_table(variants, fmt)
        if steps is not None:
            terminal.echo()
            terminal.print_table(steps, fmt)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rolloutlab")
    except PackageNotFoundError:
        return "unknown (not installed)"


COMPLETION_SHELLS = ("bash", "zsh", "tcsh")


def _completion(args: argparse.Namespace) -> int:
    """The script that completes commands and options (written by shtab from the parser)."""
    import shtab

    print(shtab.complete(_parser(), shell=args.shell), end="")
    return 0


@contextlib.contextmanager
def _one_line_warnings(name: str):
    """Library warnings as ``rolloutlab CMD: warning: ...``, one line, no source path."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = _compact_missing(" ".join(str(message).split()))
        print(f"{name}: warning: {_for_cli(text)}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        yield


_MISSING = re.compile(r"variant '([^']*)' metric '([^']*)': steps missing at ([^;]*)")


def _compact_missing(text: str) -> str:
    """The fetch's partial-data warning with the series that miss the same steps grouped,
    and the common case said plainly: no data at the first step, where the data start."""
    head = re.match(r"partial data from \S+ between (\S+) and \S+ \(step \S+\): ", text)
    items = _MISSING.findall(text)
    if not head or not items:
        return text
    groups: dict[str, list[str]] = {}
    for variant, metric, spans in items:
        groups.setdefault(spans.strip(), []).append(f"{variant} {metric}")
    if len(groups) == 1:
        spans = next(iter(groups))
        if spans == head.group(1):
            return (
                f"no data at the first step, {spans}, for any series (the data start after "
                "it): that step is left out; a later --start avoids this warning."
            )
        return f"partial data: no data at {spans} for all {len(items)} series; left out."
    parts = [f"{', '.join(who)} at {spans}" for spans, who in groups.items()]
    return "partial data, these steps are left out: " + "; ".join(parts)


def _fail(name: str, message: str, debug: bool) -> None:
    """One line on stderr (a message's line breaks become spaces); the traceback before it
    with ``--debug``."""
    if debug:
        traceback.print_exc()
    print(f"{name}: {' '.join(message.split())}", file=sys.stderr)


def _broken_pipe() -> int:
    """The reader went away (``| head``): stop quietly, as ``cat`` does."""
    with contextlib.suppress(OSError, ValueError):
        # whatever is still buffered would fail again when Python flushes at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


#: the library's advice in Python terms, and the same advice in this command's options
CLI_WORDS = (
    (
        re.compile(r"pass context=\.\.\., or pass client=kubernetes\.client\.ApiClient\(\.\.\.\)"),
        "or pass --kubeconfig FILE and --context NAME",
    ),
    (re.compile(r"\(context=None\)"), ""),
    (re.compile(r" Queries: \{.*\}"), ""),
    (re.compile(r"\(context='([^']*)'\)"), r"(--context \1)"),
)


def _for_cli(message: str) -> str:
    """``message`` with advice about Python arguments said in command-line options."""
    for pattern, replacement in CLI_WORDS:
        message = pattern.sub(replacement, message)
    return message


if __name__ == "__main__":
    raise SystemExit(main())
