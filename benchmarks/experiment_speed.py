"""Speed of ``experiment()`` with segments: 1,000 metrics × 3 arms × 10 segments.

The recording is ``judge_speed.wide_experiment`` drawn for 10 segments (14 daily buckets,
arms A/B/C, 1,000 conversion-type counters over visitors). The baseline is a per-metric
loop computing the same numbers with scipy/statsmodels, one metric, arm and segment at a
time: the relative lift's Welch test and interval in the segment and overall
(``scipy.stats.t``), the always-valid p-value at the last look, and per metric and arm
the heterogeneity Q over the segments (``statsmodels.stats.meta_analysis.combine_effects``)
with Benjamini-Hochberg (``multipletests``). The script checks the two agree before timing.

    .venv/bin/python benchmarks/experiment_speed.py
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import polars as pl
from judge_speed import best_of, wide_experiment
from scipy import stats as sps
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.multitest import multipletests

from rolloutlab.experiments import ExperimentSpec, experiment
from rolloutlab.sources.recording import Recording
from rolloutlab.specs import MetricSpec
from rolloutlab.stats.sequential import asymptotic_rho2

SEGMENTS = 10
NAMES = [f"m{i}" for i in range(1000)]


def segmented() -> Recording:
    parts = [
        wide_experiment(seed=s).frame.with_columns(pl.lit(f"s{s}").alias("segment"))
        for s in range(SEGMENTS)
    ]
    return Recording(pl.concat(parts), {"roles": {"control": "A", "treatment": ["B", "C"]}})


def relative(nc, pc, nt, pt, alpha):
    """The relative lift's Welch test on proportions, one cell."""
    vc, vt = pc * (1 - pc) / nc, pt * (1 - pt) / nt
    se = math.sqrt(vt / pc**2 + pt**2 * vc / pc**4)
    df = (vc + vt) ** 2 / (vc**2 / (nc - 1) + vt**2 / (nt - 1))
    lift = pt / pc - 1
    half = sps.t.ppf(1 - alpha / 2, df) * se
    return lift, se, 2 * sps.t.sf(abs(lift / se), df), (lift - half, lift + half)


def loop(totals: dict, spec: ExperimentSpec):
    """The same numbers, one metric, arm and segment at a time."""
    rho2 = asymptotic_rho2(spec.alpha, spec.n_star)
    q_p, overall = [], []
    for name in NAMES:
        for arm in ("B", "C"):
            lifts, variances = [], []
            for seg in [*(f"s{s}" for s in range(SEGMENTS)), None]:
                nc, nt = totals[("visitors", "A", seg)], totals[("visitors", arm, seg)]
                pc, pt = totals[(name, "A", seg)] / nc, totals[(name, arm, seg)] / nt
                lift, se, p, ci = relative(nc, pc, nt, pt, spec.alpha)
                t, z = nc + nt, lift / se
                p_av = min(
                    1.0,
                    math.sqrt(t * rho2 + 1) * math.exp(-z * z * t * rho2 / (2 * (t * rho2 + 1))),
                )
                if seg is None:
                    overall.append((p, p_av))
                else:
                    lifts.append(lift)
                    variances.append(se * se)
            q = combine_effects(np.array(lifts), np.array(variances)).q
            q_p.append(sps.chi2.sf(q, SEGMENTS - 1))
    return np.array(overall), multipletests(q_p, method="fdr_bh")[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rec = segmented()
    spec = ExperimentSpec(
        goals=(MetricSpec("m0", "ratio", "m0", "visitors", direction="decrease"),),
        guardrails=tuple(MetricSpec(n, "ratio", n, "visitors") for n in NAMES[1:]),
        sequential=False,
        variance="poisson",
    )
    totals = {
        (m, v, s): x
        for m, v, s, x in rec.frame.group_by("metric", "variant", "segment")
        .agg(pl.col("value").sum())
        .iter_rows()
    }
    for (m, v), x in (
        rec.frame.group_by("metric", "variant")
        .agg(pl.col("value").sum())
        .rows_by_key(["metric", "variant"])
        .items()
    ):
        totals[(m, v, None)] = x[0][0]
    report = experiment(rec, spec)
    overall, q_adjusted = loop(totals, spec)
    table, segments = report.table(), report.segments
    assert np.allclose(table["p_value"].to_numpy(), overall[:, 0], rtol=1e-6, atol=1e-300)
    assert np.allclose(table["p_always_valid_now"].to_numpy(), overall[:, 1], rtol=1e-6)
    firsts = segments.filter(pl.col("segment") == "s0")["heterogeneity_p_adjusted"].to_numpy()
    assert np.allclose(firsts, q_adjusted, rtol=1e-6, atol=1e-300)
    ours = best_of(lambda: experiment(rec, spec), args.repeat)
    theirs = best_of(lambda: loop(totals, spec), 1)
    print("| measurement | result | target |")
    print("|---|---|---|")
    print(f"| experiment(): 1,000 metrics × 3 arms × 10 segments, end to end | {ours:.3f} s | |")
    print(f"| per-metric scipy/statsmodels loop, same numbers | {theirs:.3f} s | |")
    print(f"| speed-up | {theirs / ours:.1f}× | ≥ 20× |")


if __name__ == "__main__":
    main()
