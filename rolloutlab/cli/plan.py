"""``rolloutlab plan``: how many units and days an experiment needs, from a baseline."""

from __future__ import annotations

import argparse


def register(command) -> None:
    from rolloutlab.cli import _format_option

    p = command(
        "plan",
        _plan,
        "How long must an experiment run? Units per arm and days, read once or daily.",
    )
    p.add_argument("baseline", help="a recording of the current product (.parquet, .csv)")
    p.add_argument(
        "--mde", type=float, default=0.02, help="smallest relative change to detect (0.02 = 2%%)"
    )
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (0.05)")
    p.add_argument("--power", type=float, default=0.8, help="chance to detect the mde (0.8)")
    p.add_argument("--arms", type=int, default=2, help="arms, the control included (2)")
    p.add_argument(
        "--traffic-share",
        type=float,
        default=1.0,
        help="part of the traffic in the experiment (1.0)",
    )
    _format_option(p, json_is="the plan as JSON")


def _plan(args: argparse.Namespace) -> int:
    from rolloutlab.cli import _print_json
    from rolloutlab.experiments import plan

    result = plan(
        args.baseline,
        args.mde,
        alpha=args.alpha,
        power=args.power,
        arms=args.arms,
        traffic_share=args.traffic_share,
    )
    if args.format == "json":
        _print_json(result.to_dict())
        return 0
    import polars as pl

    from rolloutlab.views import terminal

    print(result.summary())
    rows = [
        ("read once at the end (fixed horizon)", result.n_per_arm_fixed, result.days_fixed),
        ("read every day (sequential)", result.n_per_arm_sequential, result.days_sequential),
    ]
    frame = pl.DataFrame(
        {
            "design": [r[0] for r in rows],
            "units per arm": [f"{r[1]:,.0f}" for r in rows],
            "days": [f"{r[2]:.1f}" for r in rows],
        }
    )
    terminal.print_table(frame, args.format)
    return 0
