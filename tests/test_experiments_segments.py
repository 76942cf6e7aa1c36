"""Segments: the optional recording column, per-segment rows, the heterogeneity test
(checked against statsmodels' meta-analysis Q), the words and the forest plot."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.stats import chi2
from statsmodels.stats.meta_analysis import combine_effects

import rolloutlab
from rolloutlab.errors import DataError
from rolloutlab.experiments import ExperimentSpec, experiment
from rolloutlab.sources.recording import Recording, load
from rolloutlab.views.experiment import segment_forest
from tests.test_experiments import arrays_recording, binomial_arms


def segmented(rng, rates_by_segment: dict[str, list[float]], visitors=1500, buckets=24 * 14):
    parts, meta = [], None
    for segment, rates in rates_by_segment.items():
        rec = arrays_recording(binomial_arms(rng, rates, visitors, buckets))
        parts.append(rec.frame.with_columns(pl.lit(segment).alias("segment")))
        meta = rec.meta
    return Recording(pl.concat(parts), meta)


def test_segment_column_is_optional_and_survives_save_and_load(tmp_path):
    rec = segmented(np.random.default_rng(0), {"eu": [0.1, 0.1], "us": [0.1, 0.1]}, buckets=4)
    for suffix in ("parquet", "csv"):
        back = load(rec.save(tmp_path / f"seg.{suffix}"))
        assert back.frame["segment"].to_list() == rec.frame["segment"].to_list()
    plain = rolloutlab.simulate("ab", seed=1, duration_min=120)
    assert "segment" not in plain.frame.columns and experiment(plain).segments.is_empty()
    twice = pl.concat([rec.frame.head(1), rec.frame.head(1)])
    with pytest.raises(DataError, match="given twice"):
        Recording(twice, rec.meta)


def test_opposite_effects_are_found_and_said_in_words():
    rec = segmented(
        np.random.default_rng(1),
        {"eu": [0.10, 0.11], "us": [0.10, 0.094], "apac": [0.10, 0.10]},
    )
    report = experiment(rec)
    table = report.segments
    assert table.height == 3 and table["differs"].all()
    shows = dict(table.select("segment", "shows").iter_rows())
    assert shows["eu"] == "wins" and shows["us"] == "loses"
    text = report.summary()
    assert "B wins in eu" in text and "loses in us" in text and "the segments differ" in text
    # Cochran's Q as statsmodels' fixed-effect meta-analysis computes it
    lift = np.array(table["rel_lift"])
    se = np.array([report_se(rec, s) for s in table["segment"]])
    q = combine_effects(lift, se**2).q
    assert table["heterogeneity_p"][0] == pytest.approx(chi2.sf(q, 2), rel=1e-6)


def report_se(rec: Recording, segment: str) -> float:
    part = Recording(rec.frame.filter(pl.col("segment") == segment), rec.meta)
    return float(experiment(part).comparisons.rel_se[0, 0])


def test_same_effect_everywhere_rarely_differs():
    rng = np.random.default_rng(4)
    runs, differs = 120, 0
    for _ in range(runs):
        rates = [0.10, 0.105]
        rec = segmented(rng, {s: rates for s in ("eu", "us", "apac")}, visitors=200, buckets=24)
        table = experiment(rec, ExperimentSpec(sequential=False)).segments
        differs += bool(table["differs"][0])
    assert differs / runs <= 0.09  # 5% nominal, 120 runs


def test_forest_plot_shows_each_segment_and_arm():
    rec = segmented(np.random.default_rng(2), {"eu": [0.1, 0.11], "us": [0.1, 0.1]}, buckets=48)
    report = experiment(rec)
    spec = segment_forest(report).to_dict()
    rows = [r for data in spec["datasets"].values() for r in data if "segment" in r]
    assert {r["segment"] for r in rows} == {"eu", "us"} and {r["arm"] for r in rows} == {"B"}
    assert spec["title"] == "conversion by segment"
    plain = experiment(rolloutlab.simulate("ab", seed=1, duration_min=120))
    assert "no segment column" in str(segment_forest(plain).to_dict())
