"""One duration parser for the whole project.

It reads what the tools rolloutlab meets write: Go durations (Flagger and Argo Rollouts:
``"1m30s"``, ``"500ms"``, ``"1.5h"``), Prometheus durations (``"1d"``, ``"2w"``, ``"1y"``),
a number of seconds (``60``, ``"60"``, as Argo allows) and a :class:`~datetime.timedelta`.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from fractions import Fraction
from typing import Any

from rolloutlab.errors import SpecError

#: The longest duration read (100 years): beyond it a datetime cannot hold the result.
MAX_SECONDS = 100 * 365 * 86400.0
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d|w|y)")
UNIT_S = {
    "ns": Fraction(1, 10**9),
    "us": Fraction(1, 10**6),
    "µs": Fraction(1, 10**6),
    "μs": Fraction(1, 10**6),
    "ms": Fraction(1, 1000),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3600),
    "d": Fraction(86400),
    "w": Fraction(7 * 86400),
    "y": Fraction(365 * 86400),
}


def parse_duration(value: Any, name: str = "duration", *, allow_zero: bool = False) -> float:
    """Seconds in ``value``; a :class:`SpecError` naming ``name`` when it is not a duration,
    or is negative, or zero unless ``allow_zero``."""
    seconds = _seconds(value)
    if seconds is None:
        raise SpecError(
            f"{name}: expected a duration like '1m' or '30s', got {value!r:.60}. Use a number of "
            "seconds or units h, m, s, ms (d, w, y as in Prometheus), e.g. '1m30s'."
        )
    if seconds > MAX_SECONDS:  # inf too
        raise SpecError(f"{name}: {value!r:.60} is longer than 100 years; check the unit.")
    if math.isnan(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        rule = "zero or positive" if allow_zero else "positive"
        raise SpecError(f"{name}: the duration must be {rule}, got {value!r:.60}.")
    return seconds


def _seconds(value: Any) -> float | None:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return math.inf if abs(value) >= 1e300 else float(value)  # 10**400: no OverflowError
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        return None
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if _PART.sub("", text):
        return None
    return float(sum(Fraction(n) * UNIT_S[u] for n, u in _PART.findall(text)))


def format_duration(seconds: float) -> str | float:
    """A Go duration for whole seconds ("90s", "5m", "2h"), else the number of seconds."""
    if not float(seconds).is_integer() or not 0 < seconds < 1e15:
        return seconds
    whole = int(seconds)
    for unit, size in (("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


__all__ = ["UNIT_S", "format_duration", "parse_duration"]
