"""The ``rolloutlab`` command: a thin front end over the library.

Every command prints what it did; errors print one clear line and exit with 2, and a
decision (even a rollback) is not an error: judging exits 0.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from rolloutlab.errors import RolloutlabError, SpecError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEMO_RECORDINGS = ("healthy", "error-regression", "latency-regression", "ab")
BUNDLED_SEED = 7


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.run(args) or 0
    except RolloutlabError as exc:
        print(f"rolloutlab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rolloutlab {args.command}: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rolloutlab", description="Judge and steer canary rollouts and A/B experiments."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], int | None], help: str):
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(run=run)
        return p

    p = command("show", _show, "Print a recording's summary.")
    p.add_argument("recording", type=Path)
    p.add_argument("--ticks", action="store_true", help="also print every tick")

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

    p = command("demo", _demo, "Run the main job on the bundled rollouts.")
    p.add_argument("--data", type=Path, default=DATA_DIR, help="folder of bundled recordings")
    return parser


# -- commands --------------------------------------------------------------------------


def _show(args: argparse.Namespace) -> int:
    from rolloutlab.sources.recording import load

    rec = load(args.recording)
    _print_recording(rec, ticks=args.ticks)
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


def _demo(args: argparse.Namespace) -> int:
    for name in DEMO_RECORDINGS:
        rec = _bundled(args.data, name)
        print(f"\n== {name} ==")
        _print_recording(rec, ticks=rec.meta.get("kind") != "experiment")
    return 0


# -- helpers ---------------------------------------------------------------------------


def _bundled(folder: Path, name: str):
    """A bundled recording from ``folder``, or the same seeded simulation if it is absent."""
    from rolloutlab.sources.recording import load
    from rolloutlab.sources.simulate import simulate

    path = folder / f"{name}.parquet"
    if path.exists():
        return load(path)
    return simulate(name, seed=BUNDLED_SEED)


def _overrides(pairs: list[str]) -> dict[str, object]:
    import json

    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SpecError(
                f"--set {pair!r}: expected FIELD=VALUE, e.g. --set requests_per_min=300"
            )
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        out[key] = tuple(value) if isinstance(value, list) else value
    return out


def _print_recording(rec, *, ticks: bool = False) -> None:
    print(repr(rec))
    meta = rec.meta
    for key in ("source", "preset", "target", "namespace", "created_at"):
        if meta.get(key):
            print(f"  {key}: {meta[key]}")
    if meta.get("scenario"):
        print(f"  scenario: {meta['scenario'].get('name')} (seed {meta['scenario'].get('seed')})")
    with pl.Config(tbl_rows=50, tbl_hide_dataframe_shape=True, float_precision=3):
        print(rec.summary())
        if ticks:
            print(_tick_table(rec))


def _tick_table(rec) -> pl.DataFrame:
    """Requests, error % and weight per variant and tick, for the terminal."""
    rows = rec.frame.filter(pl.col("metric").is_in(["requests", "errors", "weight"]))
    wide = rows.pivot(on="metric", index=["timestamp", "variant"], values="value")
    cols = [pl.col("timestamp"), pl.col("variant")]
    if "weight" in wide.columns:
        cols.append(pl.col("weight").alias("weight %"))
    if "requests" in wide.columns:
        cols.append(pl.col("requests"))
        if "errors" in wide.columns:
            cols.append((100 * pl.col("errors") / pl.col("requests")).alias("error %"))
    return wide.select(cols).sort("timestamp", "variant")


if __name__ == "__main__":
    raise SystemExit(main())
