"""views.experiment: the A/B card (badge, title, glossary) and the charts over time."""

from __future__ import annotations

import math

import pytest

import rolloutlab
from rolloutlab.views import experiment as views
from rolloutlab.views.reports import render_experiment


@pytest.fixture(scope="module")
def ab():
    rec = rolloutlab.simulate("ab", seed=11)
    return rec, rolloutlab.experiment(rec, title="Checkout redesign")


def test_card_has_badge_title_words_and_glossary(ab):
    _, report = ab
    card = report._repr_html_()
    assert ">WINNER<" in card and "Checkout redesign" in card
    assert "chance to beat control" in card and "expected loss" in card
    assert "stays correct however often you look" in card  # plain words beside the term
    assert "not worse (by more than 10%)" in card  # guardrails as % with their margin
    assert "HOLM-adjusted over goals" in card


def test_badges_say_each_status():
    assert views.STATUS_BADGE == {
        "winner": "WINNER",
        "no-winner-yet": "NO WINNER YET",
        "no-detectable-difference": "NO WINNER",
        "invalid": "INVALID",
    }


def test_lift_over_time_band_is_the_running_intersection(ab):
    _, report = ab
    spec = views.lift_over_time(report).to_dict()
    rows = next(iter(spec["datasets"].values()))
    finite = [r for r in rows if r["low"] is not None and r["high"] is not None]
    widths = [r["high"] - r["low"] for r in finite]
    assert all(b <= a + 1e-9 for a, b in zip(widths, widths[1:], strict=False))  # only narrows
    last = finite[-1]
    low, high = report.comparisons.rel_cs[0, 0]
    assert (last["low"], last["high"]) == pytest.approx((100 * low, 100 * high))
    assert "confidence sequence" in spec["title"]


def test_rate_over_time_ends_at_each_arms_rate(ab):
    _, report = ab
    rows = next(iter(views.rate_over_time(report).to_dict()["datasets"].values()))
    last = {r["arm"]: r["rate"] for r in rows}
    assert last["A"] == pytest.approx(report.comparisons.mean[0, 0])
    assert last["B"] == pytest.approx(report.comparisons.mean[0, 1])
    with pytest.raises(ValueError, match="choose one of"):
        views.rate_over_time(report, "nope")


def test_report_page_has_the_badge_and_the_charts_over_time(ab):
    rec, report = ab
    page = render_experiment(rec, report)
    assert "<title>Checkout redesign</title>" in page and ">WINNER<" in page
    assert "Lift over time" in page and "Goal rate per arm over time" in page
    assert not math.isnan(report.comparisons.rel_cs[0, 0, 0])
