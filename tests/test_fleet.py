"""Fleet replay: the partitioned dataset, replay equal to post-mortems, resumption, engines,
and calibration numbers against the simulator's known truth."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

import rolloutlab
from rolloutlab.cli import main
from rolloutlab.errors import DataError, SpecError
from rolloutlab.fleet import Fleet, open_results, read_labels, replay, simulated_fleet
from rolloutlab.fleet.calibration import truth
from rolloutlab.judges import Spec
from rolloutlab.postmortem import replay as postmortem_replay
from rolloutlab.views.fleet import render_fleet, tradeoff

ROLLOUTS = 10
JUDGES = ("flagger", "kayenta", "rolloutlab")
GRID = {"threshold": [2, 5]}
SUBSET = ("cart", "search")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Fleet:
    return simulated_fleet(
        tmp_path_factory.mktemp("fleet"), ROLLOUTS, bad_share=0.4, seed=3, duration_min=20
    )


@pytest.fixture(scope="module")
def reference(fleet, tmp_path_factory):
    """The fleet judged in this process (one worker): what every engine must reproduce."""
    return replay(
        fleet, judges=JUDGES, grid=GRID, workers=1, out=tmp_path_factory.mktemp("ref") / "r"
    )


def _decisions(result) -> pl.DataFrame:
    return result.rows.select(
        "rollout", "candidate", "decision", "decided_at", "minutes_to_decision", "reason"
    ).sort("rollout", "candidate")


# -- the dataset ---------------------------------------------------------------------


def test_layout_is_partitioned_and_each_file_is_a_recording(fleet):
    index = fleet.index
    assert index.height == ROLLOUTS
    assert index.columns == [
        "rollout",
        "service",
        "namespace",
        "start",
        "end",
        "outcome",
        "source",
        "path",
    ]
    files = sorted(p.relative_to(fleet.root).as_posix() for p in fleet.root.rglob("*.parquet"))
    assert sorted(index["path"]) == [f for f in files if f.startswith("service=")]
    for row in index.iter_rows(named=True):
        assert row["path"] == (
            f"service={row['service']}/date={row['start']:%Y-%m-%d}/rollout={row['rollout']}.parquet"
        )
        rec = rolloutlab.load(fleet.root / row["path"])  # format v1, read alone
        assert rec.meta["format_version"] == 1
        assert rec.meta["outcome"] == row["outcome"]
        assert rec.meta["service"] == row["service"]
        assert "fleet_truth" in rec.meta and rec.meta["scenario"]["seed"] >= 0
        assert rec.start == row["start"] and rec.end == row["end"]
        assert row["rollout"] == f"{row['service']}-{rec.start:%Y%m%dT%H%M%SZ}"


def test_add_keeps_the_recording_and_refuses_a_duplicate(tmp_path):
    rec = rolloutlab.simulate("healthy", seed=1, duration_min=10)
    rec.meta["target"] = "podinfo"
    fleet = Fleet(tmp_path / "f")
    added = fleet.add([rec])
    assert added["rollout"].to_list() == ["podinfo-20260112T100100Z"]
    assert added["outcome"].to_list() == ["unknown"]
    back = fleet.load("podinfo-20260112T100100Z")
    assert back.frame.equals(rec.frame)
    alone = rolloutlab.load(rec.save(tmp_path / "alone.parquet"))
    assert back.meta == alone.meta  # the metadata kept as a recording saved alone keeps it
    with pytest.raises(DataError, match="already in"):
        fleet.add([rec])
    fleet.add([rec], replace=True)
    assert fleet.index.height == 1
    assert fleet.to_dict()["rollouts"][0]["start"] == "2026-01-12T10:01:00Z"
    assert "1 rollouts" in repr(fleet) and "Fleet dataset" in fleet._repr_html_()
    with pytest.raises(DataError, match="cannot name a partition"):
        fleet.add([rec], service="bad/name")


def test_outcome_comes_from_flaggers_status_series(tmp_path):
    rec = rolloutlab.simulate("healthy", seed=1, duration_min=5)
    status = rec.frame.filter(pl.col("metric") == "weight", pl.col("variant") == "canary")
    status = status.with_columns(
        pl.lit("flagger_status").alias("metric"),
        pl.Series("value", [0.0, 0.0, 0.0, 0.0, 2.0]),
    )
    failed = rolloutlab.Recording(pl.concat([rec.frame, status]), {"target": "podinfo"})
    added = Fleet(tmp_path).add([failed])
    assert added["outcome"].to_list() == ["failed"]


def test_scan_prunes_partitions_before_opening_files(fleet, tmp_path):
    # a copy of the dataset with an unreadable file in another service's partition
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(fleet.root, root, ignore=shutil.ignore_patterns("replays"))
    junk = root / "service=zzz" / "date=2026-09-01" / "rollout=zzz-1.parquet"
    junk.parent.mkdir(parents=True)
    junk.write_bytes(b"not parquet at all")
    copy = Fleet(root)
    cart = copy.scan(service="cart").collect()
    expected = fleet.select(service="cart")
    assert sorted(cart["rollout"].unique()) == sorted(expected["rollout"])
    assert cart["service"].unique().to_list() == ["cart"]
    rows = sum(fleet.load(r).frame.height for r in expected["rollout"])
    assert cart.height == rows
    with pytest.raises(pl.exceptions.PolarsError):
        copy.scan().collect()  # unfiltered, the junk file is read


def test_labels_are_read_and_checked(tmp_path):
    good = tmp_path / "labels.csv"
    good.write_text("rollout,incident,link\na,true,x\nb,no,\nc,,\n")
    labels = read_labels(good)
    assert labels["incident"].to_list() == [True, False, None]
    bad = tmp_path / "bad.csv"
    bad.write_text("rollout,incident\na,maybe\n")
    with pytest.raises(DataError, match="'maybe' for rollout 'a' is not true/false"):
        read_labels(bad)
    missing = tmp_path / "missing.csv"
    missing.write_text("id,incident\na,true\n")
    with pytest.raises(DataError, match="needs a 'rollout' column"):
        read_labels(missing)


# -- replay --------------------------------------------------------------------------


def test_replay_equals_a_post_mortem_of_each_recording(fleet, reference):
    rows = reference.rows
    assert rows.height == ROLLOUTS * len(JUDGES) * 2
    assert rows["error"].is_null().all()
    for rollout in fleet.index["rollout"]:
        rec = rolloutlab.load(fleet.path(rollout))
        for threshold in GRID["threshold"]:
            alone = postmortem_replay(rec, Spec().replace(threshold=threshold), judges=JUDGES)
            for name, d in alone.decisions.items():
                row = rows.filter(
                    pl.col("rollout") == rollout,
                    pl.col("judge") == name,
                    pl.col("threshold") == threshold,
                ).row(0, named=True)
                assert row["candidate"] == f"default · {name} · threshold={threshold}"
                assert (row["decision"], row["decided_at"], row["minutes_to_decision"]) == (
                    d.decision,
                    d.at,
                    d.minutes,
                )


def test_recorded_weights_as_a_post_mortem_follows_them(fleet, tmp_path):
    result = replay(
        fleet, judges=("flagger",), weights="recorded", service="cart", workers=1, out=tmp_path
    )
    for rollout, decision, minutes in result.rows.select(
        "rollout", "decision", "minutes_to_decision"
    ).iter_rows():
        alone = postmortem_replay(
            rolloutlab.load(fleet.path(rollout)), Spec(), judges=("flagger",), weights="recorded"
        )
        assert (decision, minutes) == (
            alone.decisions["flagger"].decision,
            alone.decisions["flagger"].minutes,
        )


def test_interrupted_run_resumes_where_it_stopped(fleet, reference, tmp_path):
    out = tmp_path / "run"
    script = (
        "import sys\n"
        "import rolloutlab.fleet.replays as r\n"
        "r.FLUSH_ROLLOUTS = 1\n"
        f"r.replay(sys.argv[1], judges={JUDGES!r}, grid={GRID!r}, workers=1, out=sys.argv[2])\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(fleet.root), str(out)])
    deadline = time.monotonic() + 60
    while len(list(out.glob("part-*.parquet"))) < 2 and child.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child.send_signal(signal.SIGINT)
    child.wait(timeout=30)
    judged = open_results(out).rows["rollout"].unique().to_list()
    assert 2 <= len(judged) < ROLLOUTS, "the run was not interrupted part-way"

    parts_before = set(out.glob("part-*.parquet"))
    resumed = replay(fleet, judges=JUDGES, grid=GRID, workers=1, out=out)
    new = pl.concat([pl.read_parquet(p) for p in set(out.glob("part-*.parquet")) - parts_before])
    assert set(new["rollout"]) == set(fleet.index["rollout"]) - set(judged)
    assert _decisions(resumed).equals(_decisions(reference))


def test_results_folder_refuses_other_candidates(fleet, reference):
    with pytest.raises(SpecError, match="results for other candidates"):
        replay(fleet, judges=("flagger",), out=reference.folder, workers=1)


def _subset(result) -> pl.DataFrame:
    """The rows of the services the engine tests replay (half the fleet: less time)."""
    return _decisions(result).filter(
        pl.col("rollout").str.starts_with("cart") | pl.col("rollout").str.starts_with("search")
    )


def test_local_processes_give_the_same_rows(fleet, reference, tmp_path):
    result = replay(
        fleet, judges=JUDGES, grid=GRID, workers=2, service=SUBSET, out=tmp_path / "two"
    )
    assert result.rows["service"].unique().sort().to_list() == list(SUBSET)
    assert _decisions(result).equals(_subset(reference))


def test_ray_gives_the_same_rows(fleet, reference, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    # a local Ray instance starts a GCS and a raylet; on a busy 2-core machine the
    # raylet can take longer than Ray's default 30 s wait to register
    monkeypatch.setenv("RAY_raylet_start_wait_time_s", "120")
    result = replay(
        fleet, judges=JUDGES, grid=GRID, engine="ray", workers=2, service=SUBSET, out=tmp_path / "r"
    )
    assert result.rows["service"].unique().sort().to_list() == list(SUBSET)
    assert _decisions(result).equals(_subset(reference))


def test_a_broken_recording_never_promotes(tmp_path):
    rec = rolloutlab.simulate("healthy", seed=2, duration_min=10)
    rec.meta["target"] = "podinfo"
    fleet = Fleet(tmp_path)
    fleet.add([rec])
    spec = Spec(treatment="nosuch")  # the judges refuse a variant the recording lacks
    result = replay(fleet, specs=[spec], judges=("flagger",), workers=1)
    row = result.rows.row(0, named=True)
    assert row["decision"] is None and "nosuch" in row["error"]
    table = result.calibration()
    assert table["errors"].to_list() == [1]


# -- calibration ---------------------------------------------------------------------


def test_truth_and_agreement_by_hand():
    rows = pl.DataFrame(
        {
            "decision": ["rollback", "promote", "promote", "continue", "rollback"],
            "outcome": ["failed", "succeeded", "failed", "succeeded", "unknown"],
            "incident": [None, True, None, False, None],
        },
        schema_overrides={"incident": pl.Boolean},
    )
    out = truth(rows)
    assert out["bad"].to_list() == [True, True, True, False, None]
    assert out["agrees_outcome"].to_list() == [True, True, False, None, None]
    assert out["agrees_label"].to_list() == [None, False, None, None, None]


def test_calibration_matches_the_simulators_truth(tmp_path):
    fleet = simulated_fleet(tmp_path / "f", 40, bad_share=0.3, seed=1, duration_min=30)
    result = replay(fleet, judges=("flagger", "rolloutlab"), workers=1)
    # the truth as the simulator drew it, read from each recording's own metadata
    kinds = {
        r: rolloutlab.load(fleet.root / p).meta["fleet_truth"]["kind"]
        for r, p in fleet.index.select("rollout", "path").iter_rows()
    }
    bad = {r for r, k in kinds.items() if k != "healthy" and k != "false-alarm"}
    assert 5 <= len(bad) <= 20
    table = {row["judge"]: row for row in result.calibration().iter_rows(named=True)}
    for name, row in table.items():
        decided = dict(
            result.rows.filter(pl.col("judge") == name).select("rollout", "decision").iter_rows()
        )
        assert row["bad"] == len(bad) and row["good"] == len(kinds) - len(bad)
        assert row["caught"] == sum(decided[r] == "rollback" for r in bad)
        assert row["escaped"] == sum(decided[r] == "promote" for r in bad)
        assert row["good_promoted"] == sum(decided[r] == "promote" for r in kinds if r not in bad)
    # what the judges are known to do: rolloutlab rolls back every 3x error regression and
    # promotes no bad rollout; Flagger's fixed 99% success-rate floor lets the subtle
    # regressions through (0.72% errors pass it)
    rl = result.rows.filter(pl.col("judge") == "rolloutlab")
    obvious = [r for r, k in kinds.items() if k == "error-regression"]
    assert obvious
    assert set(rl.filter(pl.col("rollout").is_in(obvious))["decision"]) == {"rollback"}
    assert table["rolloutlab"]["escaped"] == 0
    subtle = [r for r, k in kinds.items() if k == "subtle-errors"]
    flagger = result.rows.filter(pl.col("judge") == "flagger", pl.col("rollout").is_in(subtle))
    assert subtle and set(flagger["decision"]) == {"promote"}


def test_views_tradeoff_and_report(reference):
    table = reference.calibration()
    spec = tradeoff(table).to_dict()
    assert spec["encoding"]["x"]["field"] == "good_stopped_share"
    assert spec["encoding"]["y"]["field"] == "caught_share"
    values = next(iter(spec["datasets"].values()))
    assert len(values) == table.height == len(JUDGES) * 2
    page = render_fleet(reference)
    assert 'data-charts="2"' in page and "Calibration per candidate" in page
    assert "default · rolloutlab · threshold=5" in reference._repr_html_()


def test_cli_add_replay_and_report(tmp_path, capsys):
    paths = []
    for seed in (1, 2):
        rec = rolloutlab.simulate(
            "error-regression",
            seed=seed,
            duration_min=10,
            start=datetime(2026, 3, seed, tzinfo=UTC),
        )
        paths.append(str(rec.save(tmp_path / f"r{seed}.parquet")))
    dataset = tmp_path / "fleet"
    assert main(["fleet", "add", *paths, "-o", str(dataset), "--service", "podinfo"]) == 0
    assert "added podinfo-20260301T000100Z" in capsys.readouterr().out
    (dataset / "labels.csv").write_text("rollout,incident\npodinfo-20260301T000100Z,true\n")
    argv = ["fleet", "replay", str(dataset), "--judge", "flagger", "--grid", "threshold=1,5"]
    assert main([*argv, "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "default · flagger · threshold=1: catches 1 of 1 bad rollouts" in out
    folder = out.split("results in ")[1].split(" ")[0]
    html = tmp_path / "fleet.html"
    assert main(["report", "--fleet", folder, "-o", str(html)]) == 0
    assert 'data-charts="2"' in html.read_text()
    assert main(["report"]) == 2
    assert "a recording or --fleet" in capsys.readouterr().err
    assert os.path.exists(Path(folder) / "run.json")


def test_a_judge_name_given_as_a_spec_is_refused(fleet):
    with pytest.raises(SpecError, match="'flagger' is a judge, not a spec"):
        replay(fleet, ["flagger"], workers=1)


def test_adds_at_once_keep_every_row(tmp_path):
    """Each add reads, extends and rewrites the index: without its lock, adds running at
    once (two 'fleet add' runs, or threads as here, all released together) dropped rows."""
    rec = rolloutlab.simulate("healthy", seed=1, duration_min=5)
    paths = [rec.save(tmp_path / f"svc{i}.parquet") for i in range(12)]
    root = tmp_path / "f"
    start = threading.Barrier(4)

    def add(batch: list[Path]) -> None:
        start.wait()
        for path in batch:
            Fleet(root).add([path], service=path.stem)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(add, [paths[i::4] for i in range(4)]))
    assert sorted(Fleet(root).index["service"]) == sorted(f"svc{i}" for i in range(12))
