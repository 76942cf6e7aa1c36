"""Settings shared by the fuzz suites (tests/test_fuzz_*.py): seeded, bounded in time."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, settings

FUZZ = settings(
    derandomize=True,  # seeded: the same examples every run
    database=None,
    deadline=timedelta(seconds=5),  # a hang fails the example
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def fuzz(examples: int) -> settings:
    """The fuzz settings with ``examples`` examples."""
    return settings(FUZZ, max_examples=examples)
