"""Notebook cards: the _html primitives and the _repr_html_ of Recording, Verdict, MetricResult.

Cards must be static (no script), escape what they show, carry the decision colour
inline (so it survives renderers that drop stylesheets), and never raise.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

import polars as pl
import pytest

from rolloutlab import _html, frames
from rolloutlab.judges import judge
from rolloutlab.judges.verdict import MetricResult, TickState, Verdict
from rolloutlab.sources.recording import Recording
from rolloutlab.sources.simulate import simulate

T0 = datetime(2026, 1, 12, 10, 17, tzinfo=UTC)


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    __repr__ = __str__


def errors_result(**overrides) -> MetricResult:
    fields = {
        "name": "request-success-rate",
        "classification": "fail",
        "reason": "canary error rate 2.1× primary, 95% interval 1.6–2.8×",
        "estimate": 2.1,
        "ci": (1.6, 2.8),
        "p_value": 3e-6,
        "unit": "ratio",
    }
    return MetricResult(**(fields | overrides))


def rollback_verdict(**overrides) -> Verdict:
    ok = MetricResult(
        "request-duration", "pass", "p99 within margin", 1.01, (0.9, 1.1), 0.4, "ratio"
    )
    tick = TickState(T0, 10.0, "rollback", (errors_result(), ok))
    fields = {
        "judge": "rolloutlab",
        "decision": "rollback",
        "decided_at": T0,
        "metrics": (errors_result(), ok),
        "reason": "rollback: canary error rate 2.1× primary",
        "ticks": (tick,),
    }
    return Verdict(**(fields | overrides))


def assert_static(markup: str) -> None:
    assert "<script" not in markup.lower()
    assert not re.search(r"\son\w+=", markup), "no event handlers in a static card"


# -- primitives ----------------------------------------------------------------------


def test_esc_escapes_text_and_passes_html_through():
    assert _html.esc("<b>&") == "&lt;b&gt;&amp;"
    assert _html.esc(_html.Html("<b>x</b>")) == "<b>x</b>"
    assert _html.esc(None) == _html.DASH
    assert _html.esc(math.nan) == _html.DASH
    assert _html.esc(Unprintable()) == "&lt;Unprintable&gt;"


@pytest.mark.parametrize(
    ("value", "text"),
    [(2.1234, "2.12"), (180000.0, "180,000"), (None, "—"), (math.nan, "—"), ("x", "—")],
)
def test_num(value, text):
    assert _html.num(value) == text


def test_percent():
    assert _html.percent(0.041) == "4.1%"
    assert _html.percent(0.041, signed=True) == "+4.1%"
    assert _html.percent(-0.0123, 2, signed=True) == "-1.23%"
    assert _html.percent(math.inf) == _html.percent(None) == _html.percent("x") == "—"


def test_pvalue_interval_when():
    assert _html.pvalue(0.0312) == "0.031"
    assert _html.pvalue(1e-9) == "< 0.0001"
    assert _html.pvalue(None) == "—"
    assert _html.interval((1.6, 2.8), "ratio") == "[1.6, 2.8] ratio"
    assert _html.interval((1.0, 2.0, 3.0)) == "—"
    assert _html.interval(None) == "—"
    assert _html.when(T0) == "2026-01-12 10:17 UTC"
    assert _html.when(None) == "—"


@pytest.mark.parametrize(
    ("label", "color"),
    [
        ("promote", _html.DECISION_COLORS["promote"]),
        ("rollback", _html.DECISION_COLORS["rollback"]),
        ("continue", _html.DECISION_COLORS["continue"]),
        ("nodata", _html.CLASSIFICATION_COLORS["nodata"]),
        ("whatever", _html.NEUTRAL_COLOR),
    ],
)
def test_badge_colour_is_inline_and_word_is_spelled_out(label, color):
    markup = _html.badge(label)
    assert f"background:{color}" in markup
    assert label.upper() in markup


def test_decision_colours_are_green_amber_red():
    assert _html.DECISION_COLORS == {
        "promote": "#2e7d32",
        "continue": "#f9a825",
        "rollback": "#c62828",
    }


def test_variant_colours_control_first_then_fixed_sequence():
    colors = _html.variant_colors(["canary-b", "primary", "canary-a"], control="primary")
    assert colors == {
        "primary": _html.CONTROL_COLOR,
        "canary-b": _html.TREATMENT_COLORS[0],
        "canary-a": _html.TREATMENT_COLORS[1],
    }
    assert _html.variant_colors(["A", "B"]) == {
        "A": _html.CONTROL_COLOR,
        "B": _html.TREATMENT_COLORS[0],
    }
    assert not set(_html.TREATMENT_COLORS) & set(_html.DECISION_COLORS.values())


def test_table_escapes_cells_and_right_aligns_numbers():
    markup = _html.table(["name", "n"], [["<x>", "3"]], numeric=["n"])
    assert "<td>&lt;x&gt;</td>" in markup
    assert 'style="text-align:right;white-space:nowrap">3</td>' in markup


# -- cards ---------------------------------------------------------------------------


def test_recording_card():
    rec = simulate("healthy", duration_min=30)
    markup = rec._repr_html_()
    assert_static(markup)
    assert f"background:{_html.CONTROL_COLOR}" in markup  # primary's swatch
    assert f"background:{_html.TREATMENT_COLORS[0]}" in markup  # canary's swatch
    assert "2026-01-12 10:01 UTC → 2026-01-12 10:30 UTC" in markup
    assert "60 s" in markup
    for metric in ("requests", "errors", "latency_ms", "weight"):
        assert metric in markup
    requests = rec.frame.filter(
        (pl.col("metric") == "requests") & (pl.col("variant") == "primary")
    )["value"].sum()
    assert f"{int(requests):,}" in markup  # per-variant totals
    assert len(markup) < 6000, "a card stays compact"


def test_recording_card_empty():
    markup = Recording(frames.empty())._repr_html_()
    assert "empty" in markup and "0 rows" in markup


def test_verdict_card():
    markup = rollback_verdict()._repr_html_()
    assert_static(markup)
    assert "ROLLBACK" in markup
    assert f"background:{_html.DECISION_COLORS['rollback']}" in markup
    assert "2026-01-12 10:17 UTC" in markup
    assert "canary error rate 2.1× primary" in markup
    assert "[1.6, 2.8] ratio" in markup and "&lt; 0.0001" in markup
    assert markup.count("<tr>") == 3 + 1 + 2  # facts, header, one row per metric


@pytest.mark.parametrize("name", ["flagger", "kayenta", "rolloutlab"])
def test_real_verdict_cards(name):
    v = judge(simulate("error-regression", duration_min=60, seed=1), judge=name)
    markup = v._repr_html_()
    assert_static(markup)
    assert v.decision.upper() in markup and f"{name} judge" in markup
    assert markup.count("<tr>") == 3 + 1 + len(v.metrics)
    for m in v.metrics:
        assert m._repr_html_().count("rl-badge") >= 1


def test_continue_verdict_says_not_decided_and_last_tick():
    markup = rollback_verdict(decision="continue", decided_at=None)._repr_html_()
    assert "CONTINUE" in markup and "not decided yet, last tick 2026-01-12 10:17 UTC" in markup


def test_metric_result_card():
    markup = errors_result(critical=False, approximate=True)._repr_html_()
    assert_static(markup)
    assert "FAIL" in markup and "2.1 ratio" in markup and "[1.6, 2.8] ratio" in markup
    assert "does not decide" in markup and "approximate" in markup


def test_cards_escape_text():
    markup = rollback_verdict(reason="<script>alert(1)</script>", judge="<b>")._repr_html_()
    assert_static(markup)
    assert "&lt;script&gt;" in markup and "&lt;b&gt; judge" in markup


@pytest.mark.parametrize(
    "result",
    [
        errors_result(estimate=math.nan, ci=(math.nan, None), p_value=math.nan),
        errors_result(estimate=None, ci=None, p_value=None, unit=""),
        errors_result(ci=("a", "b", "c"), classification="weird", reason=None),  # type: ignore[arg-type]
        errors_result(name=Unprintable(), reason=Unprintable(), estimate=Unprintable()),  # type: ignore[arg-type]
    ],
)
def test_broken_metric_results_never_raise(result):
    markup = result._repr_html_()
    assert "rl-card" in markup
    assert_static(markup)


@pytest.mark.parametrize(
    "overrides",
    [
        {"decided_at": "yesterday"},
        {"decided_at": math.nan},
        {"metrics": None},  # not iterable: the fallback card
        {"metrics": (object(), errors_result(estimate=math.inf))},
        {"ticks": (object(),)},  # a tick without a timestamp
        {"judge": Unprintable(), "reason": None, "decision": None},
    ],
)
def test_broken_verdicts_never_raise(overrides):
    markup = rollback_verdict(**overrides)._repr_html_()
    assert "rl-card" in markup
    assert_static(markup)


def test_fallback_card_names_the_class_and_error():
    markup = rollback_verdict(metrics=None)._repr_html_()
    assert "could not render this Verdict: TypeError" in markup


def test_broken_recording_never_raises():
    rec = simulate("healthy", duration_min=5)
    rec.meta["step_s"] = "sixty"  # a hand-edited sidecar
    markup = rec._repr_html_()
    assert "rl-card" in markup
    object.__setattr__(rec, "frame", None)
    assert "could not render this Recording" in rec._repr_html_()


def test_text_reprs_stay_short():
    assert len(repr(rollback_verdict())) < 100
    assert len(repr(errors_result())) < 60


def test_experiment_report_card():
    import rolloutlab

    rec = rolloutlab.simulate("ab", seed=1)
    card = rolloutlab.experiment(rec)._repr_html_()
    assert "WINNER" in card and "#2e7d32" in card  # the winner badge, in the promote colour
    assert "raises conversion by" in card and "SRM p=" in card
    assert "always-valid interval" in card and "<script" not in card
    # traffic went 60/40 while the recorded plan says 50/50: the card says invalid, in red
    import polars as pl

    skewed = rolloutlab.simulate("ab", seed=1, weights=(60.0, 40.0))
    frame = skewed.frame.with_columns(
        pl.when(pl.col("metric") == "weight").then(50.0).otherwise(pl.col("value")).alias("value")
    )
    report = rolloutlab.experiment(rolloutlab.Recording(frame, skewed.meta))
    assert report.status == "invalid"
    assert "INVALID" in report._repr_html_() and "#c62828" in report._repr_html_()
