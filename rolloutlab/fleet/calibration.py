"""From a fleet replay's rows to the calibration table: caught, held back, time to decide.

A rollout is bad when the team's label says there was an incident, else when it failed
as recorded (Flagger or the old process rolled it back); good when labelled without
incident, else when it succeeded; unknown otherwise (it counts in no share). For a bad
rollout a candidate *catches* it by rolling back and *lets it escape* by promoting; a
good one is *held back* (no decision by the end, or an error: fail safe, never a
promotion) or *rolled back*.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

SETTLED = ("succeeded", "failed")
DECIDED = ("promote", "rollback")


def truth(rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` with ``bad`` (label, else outcome), ``agrees_outcome`` and ``agrees_label``
    (the decision matches what happened / the label; null when either is unknown)."""
    outcome = pl.col("outcome")
    from_outcome = pl.when(outcome.is_in(SETTLED)).then(outcome == "failed")
    decided = pl.col("decision").is_in(DECIDED)
    rolled_back = pl.col("decision") == "rollback"
    return rows.with_columns(
        pl.coalesce(pl.col("incident"), from_outcome).alias("bad"),
        pl.when(decided & outcome.is_in(SETTLED))
        .then(rolled_back == (outcome == "failed"))
        .alias("agrees_outcome"),
        pl.when(decided & pl.col("incident").is_not_null())
        .then(rolled_back == pl.col("incident"))
        .alias("agrees_label"),
    )


def calibration(rows: pl.DataFrame, grid_keys: Sequence[str] = ()) -> pl.DataFrame:
    """One row per candidate: rollouts, promoted and rolled back (all of them), bad, good,
    caught, escaped, good promoted / held back / rolled back, the shares, errors, and
    median minutes to a decision (any) and to a promotion of a good rollout (how much
    slower releases would be)."""
    bad, good = pl.col("bad").eq(True), pl.col("bad").eq(False)
    decision = pl.col("decision")
    minutes = pl.col("minutes_to_decision")
    keys = ["candidate", "spec", "judge", *(k for k in grid_keys if k in rows.columns)]
    table = rows.group_by(keys, maintain_order=True).agg(
        pl.len().alias("rollouts"),
        (decision == "promote").sum().alias("promoted"),
        (decision == "rollback").sum().alias("rolled_back"),
        bad.sum().alias("bad"),
        good.sum().alias("good"),
        (bad & (decision == "rollback")).sum().alias("caught"),
        (bad & (decision == "promote")).sum().alias("escaped"),
        (good & (decision == "promote")).sum().alias("good_promoted"),
        (good & ~decision.is_in(DECIDED).fill_null(False)).sum().alias("good_held_back"),
        (good & (decision == "rollback")).sum().alias("good_rolled_back"),
        pl.col("error").is_not_null().sum().alias("errors"),
        minutes.filter(decision.is_in(DECIDED)).median().alias("median_minutes_to_decision"),
        minutes.filter(good & (decision == "promote")).median().alias("median_minutes_to_promote"),
    )
    stopped = pl.col("good_held_back") + pl.col("good_rolled_back")
    return table.with_columns(
        pl.when(pl.col("bad") > 0).then(pl.col("caught") / pl.col("bad")).alias("caught_share"),
        pl.when(pl.col("good") > 0).then(stopped / pl.col("good")).alias("good_stopped_share"),
    ).sort("judge", "candidate")
