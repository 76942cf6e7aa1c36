"""Audit trail of every change rolloutlab makes to a cluster.

Each write (and each dry run) becomes one :class:`AuditRecord`, appended as a JSON
line to a local log so that "who moved the traffic, when and why" can be answered
after the fact, and handed to an optional ``on_change`` callback so that a running
recording can keep the records in its own metadata.
"""

from __future__ import annotations

import getpass
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rolloutlab.errors import DataError

DEFAULT_PATH = "~/.rolloutlab/audit.jsonl"
ENV_VAR = "ROLLOUTLAB_AUDIT_LOG"

JSON_ORDER = (
    "time",
    "kind",
    "namespace",
    "name",
    "action",
    "from",
    "to",
    "reason",
    "user",
    "dry_run",
)

OnChange = Callable[["AuditRecord"], object]


def current_user() -> str:
    """The local user name (getpass, then ``$USER``), or ``"unknown"``."""
    try:
        return getpass.getuser()
    except OSError:  # no login name and no passwd entry (bare containers)
        return os.environ.get("USER", "unknown")


@dataclass(frozen=True)
class AuditRecord:
    """One change: what was changed (``kind`` ``namespace/name``), from what to what, by whom, why.

    ``before`` and ``after`` are JSON values (for routers ``{"primary": 90, "canary": 10}``);
    in the JSON line they are stored as ``"from"`` and ``"to"``.
    """

    time: str
    kind: str
    namespace: str
    name: str
    action: str
    before: Any
    after: Any
    reason: str
    user: str
    dry_run: bool

    @classmethod
    def now(
        cls,
        *,
        kind: str,
        namespace: str,
        name: str,
        action: str,
        before: Any,
        after: Any,
        reason: str,
        dry_run: bool = False,
    ) -> AuditRecord:
        """A record stamped with the current UTC time and the local user."""
        return cls(
            time=datetime.now(UTC).isoformat(timespec="seconds"),
            kind=kind,
            namespace=namespace,
            name=name,
            action=action,
            before=before,
            after=after,
            reason=reason,
            user=current_user(),
            dry_run=dry_run,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with ``from``/``to`` keys."""
        data = asdict(self)
        data["from"], data["to"] = data.pop("before"), data.pop("after")
        return {key: data[key] for key in JSON_ORDER}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditRecord:
        """Inverse of :meth:`to_dict`."""
        fields = dict(data)
        fields["before"] = fields.pop("from")
        fields["after"] = fields.pop("to")
        return cls(**fields)

    def __str__(self) -> str:
        dry = " (dry run)" if self.dry_run else ""
        return (
            f"{self.time} {self.user} {self.action} {self.kind} {self.namespace}/{self.name}: "
            f"{self.before} -> {self.after}{dry}: {self.reason}"
        )


class AuditLog:
    """A JSON-lines file of :class:`AuditRecord`, one line per change.

    The path is ``path`` if given, else ``$ROLLOUTLAB_AUDIT_LOG``, else
    ``~/.rolloutlab/audit.jsonl``. Lines are only ever appended.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        chosen = path if path is not None else os.environ.get(ENV_VAR) or DEFAULT_PATH
        self.path = Path(chosen).expanduser()

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    def append(self, record: AuditRecord) -> None:
        """Add one record at the end of the file (creating folders as needed)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record.to_dict(), sort_keys=False, default=str) + "\n"
        with self.path.open("a", encoding="utf-8") as file:
            file.write(line)

    def records(self) -> list[AuditRecord]:
        """Every record in the file, oldest first (empty if there is no file yet)."""
        if not self.path.exists():
            return []
        result = []
        with self.path.open(encoding="utf-8") as file:
            for number, line in enumerate(file, start=1):
                if not line.strip():
                    continue
                try:
                    result.append(AuditRecord.from_dict(json.loads(line)))
                except (ValueError, KeyError, TypeError) as exc:
                    raise DataError(
                        f"{self.path}, line {number}: not an audit record ({exc}); "
                        "the file must hold one JSON object per line as written by AuditLog"
                    ) from exc
        return result


class Auditor:
    """Sends each record to an :class:`AuditLog` and then to an optional callback.

    A failing callback does not undo or hide the change: it is reported as a warning.
    """

    def __init__(self, log: AuditLog | None = None, on_change: OnChange | None = None) -> None:
        self.log = log if log is not None else AuditLog()
        self.on_change = on_change

    def __call__(self, record: AuditRecord) -> AuditRecord:
        self.log.append(record)
        if self.on_change is not None:
            try:
                self.on_change(record)
            except Exception as exc:  # the change is made and logged; do not pretend otherwise
                warnings.warn(
                    f"on_change callback failed ({exc!r}); the change was made and logged "
                    f"to {self.log.path}",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return record
