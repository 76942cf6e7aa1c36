"""The command line: each command runs, prints, and fails with one clear line."""

from __future__ import annotations

import pytest

from rolloutlab.cli import main
from rolloutlab.sources.recording import load


def test_simulate_then_show(tmp_path, capsys):
    out = tmp_path / "rec.parquet"
    assert (
        main(
            [
                "simulate",
                "error-regression",
                "--seed",
                "3",
                "--set",
                "error_ratio=[1,5]",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert load(out).meta["scenario"]["error_ratio"] == [1, 5]
    capsys.readouterr()
    assert main(["show", str(out), "--ticks"]) == 0
    text = capsys.readouterr().out
    assert "<Recording primary, canary" in text
    assert "error %" in text and "scenario: error-regression (seed 3)" in text


def test_simulate_list(capsys):
    assert main(["simulate", "--list"]) == 0
    assert "tail-latency-regression" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "missing.parquet"], "no such file"),
        (["simulate", "nope"], "unknown scenario 'nope'"),
        (["simulate", "healthy", "--set", "oops"], "expected FIELD=VALUE"),
    ],
)
def test_errors_are_one_clear_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_demo_judges_bundled_data_and_writes_reports(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path / "report.html")]) == 0
    out = capsys.readouterr().out
    for name in ("healthy", "error-regression", "latency-regression", "ab"):
        assert f"== {name}:" in out
    assert "rolloutlab rolls back at" in out and "flagger" in out and "kayenta" in out
    assert (tmp_path / "report.html").stat().st_size > 100_000  # inlined JavaScript
    assert (tmp_path / "report-ab.html").exists()
