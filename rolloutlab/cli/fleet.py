"""``rolloutlab fleet``: build a fleet dataset (collect, add) and replay it under candidates."""

from __future__ import annotations

import argparse
from pathlib import Path

from rolloutlab.cli import connection, connection_options
from rolloutlab.errors import SpecError
from rolloutlab.specs.model import JUDGE_NAMES


def register(command) -> None:
    p = command("fleet", _fleet, "Fleet replay: many past rollouts, judged under candidate specs.")
    sub = p.add_subparsers(dest="fleet_command", metavar="SUBCOMMAND")

    c = sub.add_parser(
        "collect",
        help="find every rollout in Flagger's or Argo's series and record each one",
        description="Find every rollout of the Canaries and Rollouts in --spec in Flagger's "
        "flagger_canary_status (else weight) or Argo's rollout_phase series, and record each "
        "one into the dataset; rerun to resume.",
    )
    c.set_defaults(fleet_run=_collect)
    connection_options(c)
    c.add_argument(
        "--spec",
        type=Path,
        required=True,
        help="Canaries/Rollouts with their templates (file or GitOps folder)",
    )
    c.add_argument("--spec-name", metavar="NAME", help="only this Canary or Rollout of --spec")
    c.add_argument("--since", default="90d", help="how far back: a duration (90d) or UTC time")
    c.add_argument("--until", default="now", help="UTC time (default: now)")
    c.add_argument("--step", default="1m", help="step of each recording")
    c.add_argument("--concurrency", type=int, default=4, help="rollouts fetched at once")
    c.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    c.add_argument("-o", "--output", type=Path, required=True, help="the dataset's folder")

    a = sub.add_parser("add", help="add recordings to a dataset", description="Add recordings.")
    a.set_defaults(fleet_run=_add)
    a.add_argument("recordings", type=Path, nargs="+", help=".parquet or .csv recordings")
    a.add_argument("-o", "--output", type=Path, required=True, help="the dataset's folder")
    a.add_argument("--service", help="default: each recording's target")
    a.add_argument("--namespace")
    a.add_argument("--replace", action="store_true", help="overwrite rollouts already there")

    r = sub.add_parser(
        "replay",
        help="judge every rollout under every candidate",
        description="Judge every rollout under each spec × grid point × judge; results are "
        "written as they come, and a rerun resumes.",
    )
    r.set_defaults(fleet_run=_replay)
    r.add_argument("dataset", type=Path)
    r.add_argument(
        "--spec", type=Path, action="append", default=[], help="repeatable; default: defaults"
    )
    r.add_argument("--judge", action="append", choices=JUDGE_NAMES, help="repeatable; default: all")
    r.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="FIELD=V1,V2",
        help="what-if values of a spec field, e.g. --grid threshold=2,5 --grid margin=0,0.1",
    )
    r.add_argument(
        "--weights",
        choices=("plan", "recorded"),
        help="Flagger steps each candidate's plan (default), or follows each recording's weights",
    )
    r.add_argument("--service", action="append", help="only these services (repeatable)")
    r.add_argument("--since", help="only rollouts started from this UTC time")
    r.add_argument("--until", help="only rollouts started before this UTC time")
    r.add_argument("--labels", type=Path, help="labels CSV (default: <dataset>/labels.csv)")
    r.add_argument("--out", type=Path, help="results folder (default: <dataset>/replays/<hash>)")
    r.add_argument("--engine", choices=("local", "ray"), default="local")
    r.add_argument("--workers", type=int, help="default: every core (or the cluster's CPUs)")
    r.add_argument("--address", help="with --engine ray: a running cluster, e.g. ray://head:10001")


def _fleet(args: argparse.Namespace) -> int:
    run = getattr(args, "fleet_run", None)
    if run is None:
        raise SpecError("fleet needs a subcommand: collect, add or replay (see fleet --help).")
    return run(args)


def _collect(args: argparse.Namespace) -> int:
    from rolloutlab.fleet.collect import collect

    settings = connection(args)  # each canary's provider comes from the spec
    added = collect(
        args.url,
        args.spec,
        args.output,
        since=args.since,
        until=args.until,
        step=args.step,
        name=args.spec_name,
        concurrency=args.concurrency,
        timeout=args.timeout,
        headers=settings.headers,
        bearer=settings.bearer,
        progress=True,
    )
    print(f"recorded {added.height} rollouts into {args.output}")
    return 0


def _add(args: argparse.Namespace) -> int:
    from rolloutlab.fleet import Fleet

    fleet = Fleet(args.output)
    added = fleet.add(
        args.recordings, service=args.service, namespace=args.namespace, replace=args.replace
    )
    for rollout, path in added.select("rollout", "path").iter_rows():
        print(f"added {rollout} ({path})")
    print(repr(fleet))
    return 0


def _replay(args: argparse.Namespace) -> int:
    from rolloutlab.fleet import replay
    from rolloutlab.postmortem import DEFAULT_JUDGES
    from rolloutlab.views.fleet import summary

    result = replay(
        args.dataset,
        specs=args.spec or [None],
        judges=tuple(args.judge or DEFAULT_JUDGES),
        grid=_grid(args.grid),
        weights=args.weights,
        out=args.out,
        engine=args.engine,
        workers=args.workers,
        address=args.address,
        service=args.service,
        since=args.since,
        until=args.until,
        labels=args.labels,
        progress=True,
    )
    print(summary(result.calibration()))
    print(f"results in {result.folder} (rolloutlab report --fleet {result.folder})")
    return 0


def _grid(items: list[str]) -> dict[str, list[object]]:
    """``--grid threshold=2,5`` as ``{"threshold": [2, 5]}`` (numbers read as numbers)."""
    import json

    grid: dict[str, list[object]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not (sep and key and values):
            raise SpecError(f"--grid {item!r}: expected FIELD=V1,V2, e.g. --grid threshold=2,5")
        parsed = []
        for value in values.split(","):
            try:
                parsed.append(json.loads(value))
            except ValueError:
                parsed.append(value)
        grid[key] = parsed
    return grid
