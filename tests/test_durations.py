"""The one duration parser: Go durations (Flagger, Argo), Prometheus units, seconds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rolloutlab import specs
from rolloutlab.durations import format_duration, parse_duration
from rolloutlab.errors import SpecError


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1m30s", 90),
        ("500ms", 0.5),
        ("1.5h", 5400),
        ("1d", 86400),  # Prometheus units, refused by the spec's own parser before
        ("2w", 14 * 86400),
        ("300", 300),  # Argo writes pause durations as a number of seconds, also as text
        (45, 45),
        (timedelta(minutes=2), 120),
    ],
)
def test_durations(value, seconds):
    assert parse_duration(value) == seconds
    assert specs.parse_duration is parse_duration  # the spec reads durations the same way


def test_zero_only_when_allowed():
    with pytest.raises(SpecError, match="interval: the duration must be positive"):
        parse_duration("0s", "interval")
    assert parse_duration("0s", allow_zero=True) == 0


@pytest.mark.parametrize("bad", ["fast", "1x", "-1m", "", "m", None, True, "1m 30s"])
def test_not_a_duration_names_the_field_and_the_fix(bad):
    with pytest.raises(SpecError, match=r"^step: .*(e\.g\. '1m30s'|must be positive)"):
        parse_duration(bad, "step")


def test_format_round_trips():
    for seconds in (60, 90, 7200, 86400):
        assert parse_duration(format_duration(seconds)) == seconds


@given(
    parts=st.lists(
        st.tuples(st.integers(0, 500), st.sampled_from(["ms", "s", "m", "h", "d"])),
        min_size=1,
        max_size=4,
    )
)
def test_any_sum_of_parts_is_read_exactly(parts):
    text = "".join(f"{n}{unit}" for n, unit in parts)
    seconds = sum(n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[u] for n, u in parts)
    assert parse_duration(text, allow_zero=True) == pytest.approx(seconds, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1e300, "longer than 100 years"),
        ("1e300", "longer than 100 years"),
        ("876001h", "longer than 100 years"),
        (10**400, "longer than 100 years"),
        (float("inf"), "longer than 100 years"),
        (float("nan"), "must be positive"),
        ("1s" * 60, "expected a duration"),  # over 100 characters: not read at all
    ],
)
def test_absurd_durations_are_spec_errors(value, expected):
    with pytest.raises(SpecError, match=expected):
        parse_duration(value, "interval")
