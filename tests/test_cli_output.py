"""What the command line prints: tables people read, formats programs read, exit codes a
CI gate reads, and one clear line for every mistake (no traceback, no Python dict)."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rolloutlab import cli
from rolloutlab.cli import main
from rolloutlab.sources.openmetrics import to_openmetrics
from rolloutlab.sources.promserver import PrometheusServer
from rolloutlab.sources.recording import load
from rolloutlab.sources.simulate import simulate
from rolloutlab.views import terminal

DATA = Path(__file__).parents[1] / "data"
HEALTHY = DATA / "healthy.parquet"  # the rolloutlab judge promotes it at 10:55
REGRESSION = DATA / "error-regression.parquet"  # ... rolls it back at 10:10
ANSI = re.compile(r"\x1b\[[0-9;]*m")
SCRIPT = Path(sys.executable).with_name("rolloutlab")


def run(*argv: str, **options) -> subprocess.CompletedProcess:
    """The installed ``rolloutlab`` script in a real process."""
    return subprocess.run([str(SCRIPT), *argv], capture_output=True, text=True, **options)


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err and "{'" not in err, err
    return err


# -- the basics: version, completion, pipes, warnings, bugs ----------------------------


def test_version_is_the_installed_distributions(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"rolloutlab {version('rolloutlab')}\n"


def test_completion_scripts_know_the_commands_and_options(capsys):
    for shell in ("bash", "zsh"):
        assert main(["completion", shell]) == 0
        script = capsys.readouterr().out
        assert "judge" in script and "--exit-code" in script and "--format" in script
        if shell == "bash":  # the script is valid bash
            subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_format_choices_are_the_renderers():
    assert cli.FORMATS == terminal.FORMATS


def test_show_piped_into_head_stops_quietly():
    # a real pipe whose reader goes away after three lines, as `show --ticks | head -3`
    proc = subprocess.Popen(
        [str(SCRIPT), "show", str(HEALTHY), "--ticks"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = [proc.stdout.readline() for _ in range(3)]
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == cli.EXIT_BROKEN_PIPE
    assert lines[0].startswith("recording:") and err == ""


def test_a_bug_is_one_line_with_exit_70_and_the_traceback_on_request(monkeypatch, capsys):
    # a bug cannot be produced for real on purpose: a command that raises stands in for one
    def broken(args):
        return 1 / 0

    monkeypatch.setattr(cli, "_show", broken)
    assert main(["show", str(HEALTHY)]) == cli.EXIT_BUG == 70
    err = one_line(capsys.readouterr().err)
    assert "bug: ZeroDivisionError: division by zero" in err and "--debug" in err
    for argv in (["--debug", "show", str(HEALTHY)], ["show", str(HEALTHY), "--debug"]):
        assert main(argv) == 70
        assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("ROLLOUTLAB_DEBUG", "1")
    assert main(["show", str(HEALTHY)]) == 70
    assert "Traceback" in capsys.readouterr().err


# -- show ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_weeks(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rec") / "two-weeks.parquet"
    rec = simulate("error-regression", seed=2, duration_min=14 * 24 * 60, step_s=3600)
    return rec.save(path)


def p99(edges: np.ndarray, cumulative: np.ndarray) -> float:
    """Prometheus' bucketQuantile at 0.99, written out: the bucket holding the rank,
    linear inside it, 0 as the first bucket's lower edge."""
    rank = 0.99 * cumulative[-1]
    b = int(np.searchsorted(cumulative, rank))
    low, below = (0.0, 0.0) if b == 0 else (edges[b - 1], cumulative[b - 1])
    return low + (edges[b] - low) * (rank - below) / (cumulative[b] - below)


def test_show_says_what_a_two_week_recording_holds(two_weeks, capsys):
    assert main(["show", str(two_weeks)]) == 0
    out = capsys.readouterr().out
    assert "span:      2026-01-12 10:00 → 2026-01-26 10:00 UTC (14 days)" in out
    assert "step:      1 h, 336 steps" in out
    assert "scenario:  error-regression (seed 2)" in out
    header = next(line for line in out.splitlines() if line.startswith("variant"))
    assert header.split() == [
        "variant",
        "requests",
        "error",
        "%",
        "p50",
        "ms",
        "p99",
        "ms",
        "last",
        "weight",
        "%",
        "cpu",
        "(mean)",
    ]
    assert "dtype" not in out and "<Recording" not in out and "shape:" not in out

    assert main(["show", str(two_weeks), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    frame = load(two_weeks).frame
    for row in shown["variants"]:
        mine = frame.filter(pl.col("variant") == row["variant"])
        total = {m: mine.filter(metric=m)["value"].sum() for m in ("requests", "errors")}
        assert row["requests"] == total["requests"]
        assert row["error %"] == pytest.approx(100 * total["errors"] / total["requests"])
        buckets = (
            mine.filter(metric="latency_ms").group_by("le").agg(pl.col("value").sum()).sort("le")
        )
        edges, cumulative = buckets["le"].to_numpy(), buckets["value"].to_numpy()
        assert row["p99 ms"] == pytest.approx(p99(edges, cumulative))
    assert shown["start"] == "2026-01-12T10:00:00+00:00" and shown["steps"] == 336


def test_show_ticks_prints_every_step_in_every_format(two_weeks, capsys):
    assert main(["show", str(two_weeks), "--ticks"]) == 0
    out = capsys.readouterr().out
    assert sum(line.startswith("2026-") for line in out.splitlines()) == 336
    assert main(["show", str(two_weeks), "--ticks", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 336 and rows[0]["time"] == "2026-01-12T11:00:00Z"
    weights = load(two_weeks).frame.filter(metric="weight", variant="canary").sort("timestamp")
    assert [float(r["canary weight %"]) for r in rows] == weights["value"].to_list()
    assert main(["show", str(two_weeks), "--format", "markdown"]) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert table[0].startswith("| variant | requests | error %") and len(table) == 4


def test_on_a_terminal_tables_are_coloured_and_fit_its_width(monkeypatch, capsys):
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["judge", str(REGRESSION)]) == 0
    out = capsys.readouterr().out
    plain = ANSI.sub("", out)
    assert ANSI.search(out) and plain.startswith("✖ ROLLBACK")
    assert max(len(line) for line in plain.splitlines()) <= 80
    assert "request-success-rate" in plain and "beyond the tolerated" in plain
    monkeypatch.delenv("FORCE_COLOR")
    assert main(["judge", str(REGRESSION)]) == 0  # piped: plain words, lines unwrapped
    out = capsys.readouterr().out
    assert not ANSI.search(out) and "✖" not in out and out.startswith("ROLLBACK")
    assert any(len(line) > 80 for line in out.splitlines())


# -- judge and replay -------------------------------------------------------------------


def test_judge_prints_decision_why_and_evidence(capsys):
    assert main(["judge", str(REGRESSION)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ROLLBACK  rolloutlab judge at 2026-01-12 10:10 UTC")
    assert lines[1].startswith("why: rollback: canary errors/requests")
    header = next(line for line in lines if line.startswith("metric"))
    assert header.split()[:4] == ["metric", "result", "estimate", "[interval]"]
    assert any(line.startswith("request-success-rate") and " fail " in line for line in lines)
    for fmt in ("json", "csv", "markdown"):
        assert main(["judge", str(REGRESSION), "--format", fmt]) == 0
        out = capsys.readouterr().out
        if fmt == "json":
            assert json.loads(out)["decision"] == "rollback"
        elif fmt == "csv":
            rows = {r["metric"]: r for r in csv.DictReader(io.StringIO(out))}
            assert rows["request-success-rate"]["result"] == "fail"
        else:
            assert out.startswith("**ROLLBACK**") and "| request-success-rate | fail |" in out
    assert main(["judge", str(REGRESSION), "--json"]) == 0  # the old flag still works
    assert json.loads(capsys.readouterr().out)["judge"] == "rolloutlab"


def test_judge_exit_code_gates_ci_in_a_real_process():
    gate = run("judge", str(REGRESSION), "--exit-code", "--format", "markdown")
    assert gate.returncode == 1 and gate.stdout.startswith("**ROLLBACK**")


@pytest.mark.parametrize(
    ("argv", "status"),
    [
        ([str(HEALTHY)], 0),  # promote
        ([str(REGRESSION)], 1),  # rollback
        ([str(HEALTHY), "--at", "2026-01-12T10:20Z"], 3),  # still continue
        (["missing.parquet"], 2),  # an error stays an error
    ],
)
def test_judge_exit_code_per_decision(argv, status, capsys):
    assert main(["judge", *argv, "--exit-code"]) == status
    if status != 2:  # without the flag, a decision is not an error
        assert main(["judge", *argv]) == 0


def test_replay_prints_a_tick_table_and_the_sentences(capsys):
    assert main(["replay", str(REGRESSION)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("time"))
    assert header.split()[:5] == ["time", "weight", "%", "flagger", "flagger"]
    ticks = [line for line in lines if line.startswith("2026-01-12 ")]
    decided = [line for line in ticks if "rollback" in line]
    assert len(ticks) >= 10 and decided  # every tick up to the last judge's decision
    assert "rolloutlab rolls back at 10:10 UTC" in out
    assert main(["replay", str(REGRESSION), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == len(ticks) and "rolloutlab min p" in rows[0]
    assert main(["replay", str(REGRESSION), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["decisions"]["rolloutlab"]["decision"] == "rollback"


# -- times ------------------------------------------------------------------------------


def test_times_accept_iso_unix_seconds_and_relative():
    ten = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)
    assert ten.timestamp() == 1768212000
    for text in ("1768212000", "2026-01-12T10:00Z", "2026-01-12T10:00", "2026-01-12T11:00+01:00"):
        assert cli._time(text, "--start") == ten
    for text in ("-2h", "now-2h", "now-120m"):
        ago = datetime.now(UTC) - cli._time(text, "--start")
        assert abs(ago - timedelta(hours=2)) < timedelta(minutes=1)
    assert cli._relative_times(["fetch", "--start", "-2h", "--end", "now"]) == [
        "fetch",
        "--start=-2h",
        "--end",
        "now",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--start", "yesterday"], "--start 'yesterday' is not a time: use ISO 8601"),
        (["--start", "2026-01-12T13:00Z", "--end", "2026-01-12T10:00Z"], "is before --start"),
    ],
)
def test_time_mistakes_say_what_is_accepted(argv, message, capsys):
    base = ["fetch", "--url", "http://127.0.0.1:9", "--start", "now", "--end", "now", "-o", "x"]
    assert main([*base, *argv]) == 2
    assert message in one_line(capsys.readouterr().err)


def test_at_before_the_data_is_an_error_with_the_span(capsys):
    assert main(["judge", str(HEALTHY), "--at", "2026-01-11T10:00Z"]) == 2
    err = one_line(capsys.readouterr().err)
    assert "before the recording's first step" in err
    assert "2026-01-12 10:00 → 2026-01-12 13:00 UTC (3 h)" in err
    assert main(["judge", str(HEALTHY), "--at", "1768213800", "--json"]) == 0  # 10:30, in it
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["decision"] == "continue"  # it promotes at 10:55
    assert verdict["ticks"][-1]["timestamp"] <= "2026-01-12T10:30:00+00:00"


# -- fetch from a real Prometheus -----------------------------------------------------


@pytest.fixture(scope="module")
def prometheus(prometheus_binary) -> str:
    rec = simulate("healthy", seed=11, duration_min=200)  # 10:01 to 13:20
    text = to_openmetrics(rec, preset="istio", target="podinfo", namespace="test")
    with PrometheusServer(openmetrics=[text]) as server:
        yield server.url


def test_fetch_takes_unix_seconds_and_warns_in_one_line(prometheus, tmp_path, capsys):
    out = tmp_path / "rec.parquet"
    argv = ["fetch", "--url", prometheus, "--target", "podinfo", "--namespace", "test"]
    assert main([*argv, "--start", "1768212000", "--end", "1768215600", "-o", str(out)]) == 0
    assert load(out).frame["timestamp"].max() == datetime(2026, 1, 12, 11, 0, tzinfo=UTC)
    captured = capsys.readouterr()
    assert captured.out.startswith(f"wrote {out}: rollout of primary (control) vs canary")
    # the data start at 10:01, so the first step (10:00) has none: said once, plainly
    err = one_line(captured.err)
    assert err.startswith("rolloutlab fetch: warning: no data at the first step")
    assert ".py" not in err and "Warning:" not in err


def test_fetch_with_no_data_says_what_the_server_holds(prometheus, tmp_path, capsys):
    argv = ["fetch", "--url", prometheus, "--namespace", "test", "-o", str(tmp_path / "x.parquet")]
    day = ["--start", "2026-01-12T10:00Z", "--end", "2026-01-12T13:00Z"]
    assert main([*argv, "--target", "podinfox", *day]) == 2
    err = one_line(capsys.readouterr().err)
    assert "no istio data for podinfox in namespace test" in err
    assert "destination_workload=podinfo;" in err and "destination_workload=podinfo-primary" in err
    assert len(err) < 500 and "sum by" not in err
    canary = tmp_path / "canary.yaml"  # a Flagger Canary of the same missing workload
    canary.write_text(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\n"
        "metadata: {name: podinfox, namespace: test}\nspec:\n  provider: istio\n"
        "  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfox}\n"
        "  analysis: {interval: 1m, threshold: 2, stepWeight: 10, maxWeight: 50}\n"
    )
    assert main([*argv, "--spec", str(canary), *day]) == 2
    assert "has: destination_workload_namespace=test" in one_line(capsys.readouterr().err)
    next_day = ["--start", "2026-01-13T10:00Z", "--end", "2026-01-13T13:00Z"]
    assert main([*argv, "--target", "podinfo", *next_day]) == 2
    err = one_line(capsys.readouterr().err)
    assert "run from about 2026-01-12 10:00 to 2026-01-12 13:20 UTC" in err


# -- other mistakes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["simulate", "--set", "foo=1"], "--set foo: no such scenario field; the fields are"),
        (
            ["simulate", "--set", "requests_per_min=abc"],
            "--set requests_per_min=abc: expected a number, e.g. --set requests_per_min=1000.0",
        ),
        (["simulate", "--set", "error_ratio=2"], "expected a list of numbers"),
        (["report", str(HEALTHY), "-o", "r.docx"], "cannot write a report as '.docx'"),
        (["demo", "--live", "-o", "live.txt"], "cannot write a report as '.txt'"),
    ],
)
def test_mistakes_are_one_line_with_the_fix(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in one_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing started


def test_kubernetes_advice_is_in_options_not_python(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    argv = ["weight", "--router", "istio", "--name", "podinfo", "--namespace", "test"]
    assert main(argv) == 2
    err = one_line(capsys.readouterr().err)
    assert "--kubeconfig FILE and --context NAME" in err
    assert "client=" not in err and "ApiClient" not in err and "context=" not in err
