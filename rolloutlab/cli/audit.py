"""``rolloutlab audit``: who changed which split, when and why, from the audit log."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from rolloutlab.config import redact


def register(command) -> None:
    from rolloutlab.cli import _format_option

    p = command(
        "audit",
        _audit,
        "Who changed which split, when and why: the audit log, one line per change.",
    )
    p.add_argument(
        "--log",
        type=Path,
        help="the audit log (default: $ROLLOUTLAB_AUDIT_LOG, else ~/.rolloutlab/audit.jsonl)",
    )
    p.add_argument("--since", help="only changes at or after this time (e.g. -24h, 2026-01-12)")
    p.add_argument(
        "--object",
        metavar="NAME",
        help="only changes to this object: its name or namespace/name",
    )
    _format_option(p)


def _audit(args: argparse.Namespace) -> int:
    import polars as pl

    from rolloutlab.cli import _time
    from rolloutlab.control.audit import AuditLog
    from rolloutlab.views import terminal

    log = AuditLog(args.log)
    reading = log.read()
    for torn in reading.torn:  # reported, never fatal: the other lines still tell the story
        print(f"rolloutlab audit: warning: {log.path} {torn}", file=sys.stderr)
    since = _time(args.since, "--since") if args.since else None
    changes = [
        record
        for record in reading.changes()
        if (since is None or datetime.fromisoformat(record.time) >= since)
        and (args.object is None or args.object in (record.name, record.object))
    ]
    if args.format == "json":
        print(json.dumps([record.to_dict() for record in changes], indent=2, default=str))
        return 0
    if not changes:
        where = f" for {args.object}" if args.object else ""
        when = f" since {since:%Y-%m-%d %H:%M} UTC" if since else ""
        print(f"no changes{where}{when} in {log.path}")
        return 0
    rows = {
        "time": [r.time for r in changes],
        "user": [r.user for r in changes],
        "object": [f"{r.kind} {r.object}" for r in changes],
        "action": [r.action + (" (dry run)" if r.dry_run else "") for r in changes],
        "from → to": [f"{_value(r.before)} → {_value(r.after)}" for r in changes],
        "outcome": [r.outcome for r in changes],
        "why": [redact(r.reason + (f" [{r.note}]" if r.note else "")) for r in changes],
    }
    terminal.print_table(
        pl.DataFrame(rows), args.format, title=f"{log.path}", wrap=["why", "from → to"]
    )
    return 0


def _value(value: object) -> str:
    """A record's before/after, short: ``90/10`` for router weights, else compact JSON."""
    if isinstance(value, dict) and set(value) == {"primary", "canary"}:
        return f"{value['primary']}/{value['canary']}"
    return json.dumps(value, default=str, separators=(",", ":"))
