"""Audit trail of every change rolloutlab makes to a cluster, written ahead of the change.

Each write is recorded twice in a local JSON-lines log: an *intent* before anything is
sent (no write happens when the intent cannot be stored), then its *outcome* under the
same ``id``: ``applied``; ``skipped`` (a retry found the target already there, set by
someone else); ``failed``; ``partial``; or ``unknown`` when it cannot be told. So "who
moved the traffic, when and why" is answerable after the fact, and a write whose outcome
never made it to disk shows up as ``unknown`` rather than vanishing. Lines are
appended with one ``write`` and fsynced; a torn last line (a crash mid-append) is
closed before the next record and skipped, with a warning, by the reader.

:class:`AuditRecord` is the one record type: routers, Argo, Deployments, Flagger gates
and the rollout loop's recording metadata all use it, and ``rolloutlab audit`` reads it.
"""

from __future__ import annotations

import getpass
import json
import os
import uuid
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from rolloutlab.config import redact
from rolloutlab.errors import ActuationError

DEFAULT_PATH = "~/.rolloutlab/audit.jsonl"
ENV_VAR = "ROLLOUTLAB_AUDIT_LOG"

Outcome = Literal["intent", "applied", "skipped", "failed", "partial", "unknown"]
OUTCOMES: tuple[str, ...] = ("intent", "applied", "skipped", "failed", "partial", "unknown")

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
    "id",
    "outcome",
    "note",
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
    in the JSON line they are stored as ``"from"`` and ``"to"``. ``outcome`` is
    ``intent`` for the record written before the change, then what happened; ``id``
    ties the two together; ``note`` says anything unusual (a response lost on the way
    back, a step that was put back).
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
    id: str = ""
    outcome: Outcome = "applied"
    note: str = ""

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
        outcome: Outcome = "applied",
        note: str = "",
    ) -> AuditRecord:
        """A record stamped with the current UTC time, the local user and a new id."""
        return cls(
            time=datetime.now(UTC).isoformat(timespec="seconds"),
            kind=kind,
            namespace=namespace,
            name=name,
            action=action,
            before=before,
            after=after,
            reason=redact(reason),
            user=current_user(),
            dry_run=dry_run,
            id=uuid.uuid4().hex[:12],
            outcome=outcome,
            note=redact(note),
        )

    def resolved(
        self, outcome: Outcome, *, after: Any, before: Any = None, note: str = ""
    ) -> AuditRecord:
        """The outcome record of this intent: same id, now, ``after`` as found."""
        return replace(
            self,
            time=datetime.now(UTC).isoformat(timespec="seconds"),
            before=self.before if before is None else before,
            after=after,
            outcome=outcome,
            note=redact(note),
        )

    @property
    def object(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with ``from``/``to`` keys."""
        data = asdict(self)
        data["from"], data["to"] = data.pop("before"), data.pop("after")
        return {key: data[key] for key in JSON_ORDER}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditRecord:
        """Inverse of :meth:`to_dict`. Lines written before outcomes existed read as applied;
        keys this version does not know (a newer writer's) are left out."""
        fields = {key: value for key, value in data.items() if key in JSON_ORDER}
        fields["before"] = fields.pop("from")
        fields["after"] = fields.pop("to")
        record = cls(**fields)
        if record.outcome not in OUTCOMES or not isinstance(record.dry_run, bool):
            raise ValueError(f"outcome {record.outcome!r}, dry_run {record.dry_run!r}")
        return record

    def __str__(self) -> str:
        dry = " (dry run)" if self.dry_run else ""
        outcome = "" if self.outcome == "applied" else f" [{self.outcome}]"
        note = f" ({self.note})" if self.note else ""
        return (
            f"{self.time} {self.user} {self.action} {self.kind} {self.namespace}/{self.name}: "
            f"{self.before} -> {self.after}{dry}{outcome}: {self.reason}{note}"
        )


@dataclass(frozen=True)
class TornLine:
    """A line of the log that is not a record (a crash mid-append, a hand edit)."""

    number: int
    text: str
    problem: str

    def __str__(self) -> str:
        return f"line {self.number}: {self.problem}: {self.text[:80]!r}"


@dataclass(frozen=True)
class AuditReading:
    """Everything in a log: raw ``entries`` (intents and outcomes, oldest first) and the
    ``torn`` lines that were skipped."""

    path: Path
    entries: tuple[AuditRecord, ...] = ()
    torn: tuple[TornLine, ...] = ()

    def changes(self) -> list[AuditRecord]:
        """One record per change, oldest first: its last outcome, or, for an intent with no
        outcome recorded (a crash, or a log that failed after the write), the intent marked
        ``unknown``: the change may or may not have been made."""
        last: dict[str, AuditRecord] = {}
        order: list[str] = []
        for number, record in enumerate(self.entries):
            key = record.id or f"#{number}"
            if key not in last:
                order.append(key)
            last[key] = record
        result = []
        for key in order:
            record = last[key]
            if record.outcome == "intent":
                record = replace(
                    record, outcome="unknown", note="intent recorded, no outcome: check the object"
                )
            result.append(record)
        return result


class AuditLog:
    """A JSON-lines file of :class:`AuditRecord`, one line per intent or outcome.

    The path is ``path`` if given, else ``$ROLLOUTLAB_AUDIT_LOG``, else
    ``~/.rolloutlab/audit.jsonl``. Lines are only ever appended, each with one
    ``write`` call on a file opened for appending (so concurrent writers do not
    interleave within a line), then fsynced.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        chosen = path if path is not None else os.environ.get(ENV_VAR) or DEFAULT_PATH
        self.path = Path(chosen).expanduser()

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    def append(self, record: AuditRecord) -> None:
        """Add one record at the end of the file and fsync it (and its folder, when the file
        is new; folders are created as needed).

        A torn last line is closed with a newline first, so the new record stands on a
        line of its own. OSError (disk full, permissions) propagates.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record.to_dict(), sort_keys=False, default=str) + "\n").encode()
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:  # the new file's name, too, must survive a crash
            folder = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)

    def read(self) -> AuditReading:
        """Every line of the file: records, and torn lines skipped (see :class:`AuditReading`)."""
        if not self.path.exists():
            return AuditReading(self.path)
        entries: list[AuditRecord] = []
        torn: list[TornLine] = []
        with self.path.open("rb") as file:
            for number, raw in enumerate(file, start=1):
                text = raw.decode("utf-8", errors="replace").strip()
                if not text:
                    continue
                try:
                    data = json.loads(text)
                    if not isinstance(data, dict):
                        raise TypeError("not a JSON object")
                    entries.append(AuditRecord.from_dict(data))
                except (ValueError, KeyError, TypeError) as exc:
                    torn.append(TornLine(number, text, f"not an audit record ({exc})"))
        return AuditReading(self.path, tuple(entries), tuple(torn))

    def records(self) -> list[AuditRecord]:
        """One record per change, oldest first (see :meth:`AuditReading.changes`); torn
        lines are skipped with a warning that names them."""
        reading = self.read()
        if reading.torn:
            warnings.warn(
                f"{self.path}: skipped {len(reading.torn)} line(s) that are not audit records: "
                + "; ".join(str(t) for t in reading.torn[:3]),
                RuntimeWarning,
                stacklevel=2,
            )
        return reading.changes()


class AuditFailed(ActuationError):
    """A change was made (or not) on the cluster, but its outcome could not be recorded.

    ``record`` is the outcome that should have been logged: its ``after`` is the state
    the cluster was left in.
    """

    def __init__(self, message: str, record: AuditRecord) -> None:
        super().__init__(message)
        self.record = record


class Auditor:
    """Writes intents and outcomes to an :class:`AuditLog`, outcomes also to a callback.

    A failing callback does not undo or hide the change: it is reported as a warning.
    """

    def __init__(self, log: AuditLog | None = None, on_change: OnChange | None = None) -> None:
        self.log = log if log is not None else AuditLog()
        self.on_change = on_change

    def intent(self, record: AuditRecord) -> AuditRecord:
        """Record that ``record``'s change is about to be made; ActuationError (and so no
        write) if the log cannot store it."""
        intent = replace(record, outcome="intent", id=record.id or uuid.uuid4().hex[:12])
        try:
            self.log.append(intent)
        except OSError as exc:
            raise ActuationError(
                f"{intent.action} {intent.kind} {intent.object} not done: the audit log "
                f"{self.log.path} cannot record the intent ({exc}). Nothing was written to the "
                "cluster; free the disk or point $ROLLOUTLAB_AUDIT_LOG elsewhere"
            ) from exc
        return intent

    def outcome(self, record: AuditRecord) -> AuditRecord:
        """Record what happened; :class:`AuditFailed` saying the cluster state if the log
        cannot store it."""
        try:
            self.log.append(record)
        except OSError as exc:
            raise AuditFailed(
                f"{record.action} {record.kind} {record.object}: the cluster change is "
                f"{record.outcome} (now {record.after}), but the audit log {self.log.path} "
                f"could not record it ({exc}); its intent line stays without an outcome",
                record,
            ) from exc
        self._tell(record)
        return record

    def __call__(self, record: AuditRecord) -> AuditRecord:
        """Record a change made outside the write-ahead path (e.g. an HTTP call to a gate)."""
        return self.outcome(record)

    def _tell(self, record: AuditRecord) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(record)
        except Exception as exc:  # the change is made and logged; do not pretend otherwise
            warnings.warn(
                f"on_change callback failed ({exc!r}); the change was made and logged "
                f"to {self.log.path}",
                RuntimeWarning,
                stacklevel=4,
            )
