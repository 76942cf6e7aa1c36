"""The audit log: write-ahead records, torn lines, concurrent writers, a full disk, and the
``rolloutlab audit`` reader.

A full disk is real here: ``/dev/full`` answers every write with ENOSPC.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from rolloutlab.cli import main
from rolloutlab.control.audit import AuditFailed, AuditLog, Auditor, AuditRecord
from rolloutlab.errors import ActuationError

pytestmark = pytest.mark.timeout(60)

FULL = Path("/dev/full")


def record(name: str = "podinfo", canary: int = 10, **fields) -> AuditRecord:
    return AuditRecord.now(
        kind="istio",
        namespace="test",
        name=name,
        action="set_weight",
        before={"primary": 100, "canary": 0},
        after={"primary": 100 - canary, "canary": canary},
        reason=fields.pop("reason", "tick 1 passed"),
        **fields,
    )


def test_intent_then_outcome_read_as_one_change(tmp_path: Path) -> None:
    auditor = Auditor(AuditLog(tmp_path / "audit.jsonl"))
    intent = auditor.intent(record())
    outcome = auditor.outcome(intent.resolved("applied", after={"primary": 90, "canary": 10}))

    entries = auditor.log.read().entries
    assert [e.outcome for e in entries] == ["intent", "applied"]
    assert entries[0].id == entries[1].id != ""
    assert auditor.log.records() == [outcome]


def test_an_intent_without_outcome_reads_as_unknown(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    Auditor(log).intent(record())
    (change,) = log.records()
    assert change.outcome == "unknown" and "no outcome" in change.note


def test_a_torn_line_is_closed_skipped_and_reported(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    first = record(canary=10)
    log.append(first)
    with log.path.open("a") as file:  # a crash in the middle of an append
        file.write('{"time": "2026-01-12T10:00:00+00:00", "kind": "ist')
    second = record(canary=20)
    log.append(second)

    lines = log.path.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["to"]["canary"] == 20  # its own line
    reading = log.read()
    assert [t.number for t in reading.torn] == [2]
    with pytest.warns(RuntimeWarning, match="line 2"):
        assert log.records() == [first, second]


def test_lines_written_before_outcomes_existed_read_as_applied(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    old = {k: v for k, v in record().to_dict().items() if k not in ("id", "outcome", "note")}
    path.write_text(json.dumps(old) + "\n" + json.dumps(old) + "\n")
    changes = AuditLog(path).records()
    assert [c.outcome for c in changes] == ["applied", "applied"]  # two changes, not one


def test_keys_from_a_newer_writer_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text(json.dumps({**record().to_dict(), "cluster": "prod-eu"}) + "\n")
    reading = AuditLog(path).read()
    assert reading.torn == () and reading.entries[0].after == {"primary": 90, "canary": 10}


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    long_reason = "x" * 2000  # lines longer than a small buffer

    def write(thread: int) -> None:
        for i in range(50):
            AuditLog(log.path).append(record(name=f"t{thread}", canary=i, reason=long_reason))

    threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reading = log.read()
    assert reading.torn == () and len(reading.entries) == 400
    for t in range(8):  # each writer's records whole and in its order
        mine = [e.after["canary"] for e in reading.entries if e.name == f"t{t}"]
        assert mine == list(range(50))


def test_every_append_is_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append(record())
    log.append(record())
    assert len(synced) == 3  # each line, and the folder once, when the file was created


@pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full")
def test_no_intent_on_a_full_disk_is_an_actuation_error() -> None:
    with pytest.raises(ActuationError, match=r"cannot record the intent.*Nothing was written"):
        Auditor(AuditLog(FULL)).intent(record())


@pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full")
def test_an_outcome_on_a_full_disk_says_the_state() -> None:
    intent = record()
    with pytest.raises(AuditFailed, match=r"is applied \(now \{'primary': 90, 'canary': 10\}\)"):
        Auditor(AuditLog(FULL)).outcome(intent.resolved("applied", after=intent.after))


def write_log(path: Path) -> None:
    auditor = Auditor(AuditLog(path))
    for name, canary, when in (
        ("podinfo", 10, "2026-01-12T10:00:00+00:00"),
        ("shop", 20, "2026-01-12T11:00:00+00:00"),
        ("podinfo", 30, "2026-01-12T12:00:00+00:00"),
    ):
        intent = auditor.intent(record(name=name, canary=canary, reason=f"to {canary}"))
        done = intent.resolved("applied", after={"primary": 100 - canary, "canary": canary})
        auditor.outcome(AuditRecord(**{**done.__dict__, "time": when}))
    with path.open("a") as file:
        file.write("not json")


def test_cli_audit_filters_and_reports_torn_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path)

    assert main(["audit", "--log", str(path), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert [r["to"]["canary"] for r in json.loads(out)] == [10, 20, 30]
    assert "line 7: not an audit record" in err

    args = ["audit", "--log", str(path), "--object", "test/podinfo", "--format", "json"]
    assert main([*args, "--since", "2026-01-12T10:30Z"]) == 0
    (only,) = json.loads(capsys.readouterr().out)
    assert (only["name"], only["reason"], only["outcome"]) == ("podinfo", "to 30", "applied")

    assert main(["audit", "--log", str(path), "--object", "shop", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split(",")[:3] == ["time", "user", "object"]
    assert len(lines) == 2 and "80/20" in lines[1] and "to 20" in lines[1]


def test_cli_audit_on_no_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--log", str(tmp_path / "none.jsonl")]) == 0
    assert "no changes in" in capsys.readouterr().out


def test_the_default_log_is_not_the_users(tmp_path: Path) -> None:
    # the autouse fixture in conftest.py points the default at a temporary file
    assert AuditLog().path != Path("~/.rolloutlab/audit.jsonl").expanduser()
