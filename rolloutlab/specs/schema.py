"""The one validation path of every spec format: documented fields (camelCase or
snake_case), value parsers, and errors that name the field path and the fix."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rolloutlab.durations import format_duration
from rolloutlab.errors import SpecError

Parser = Callable[[Any, str], Any]

#: Sane ranges, checked as a spec is read and before anything is sized by them: a step of
#: 1e-300 % would make a plan of 1e302 steps, an interval of 1 ms billions of ticks.
MIN_STEP_WEIGHT = 0.1
MIN_INTERVAL_S = 1.0
MAX_DURATION_S = 366 * 86400.0
MAX_WHOLE = 1_000_000


@dataclass(frozen=True)
class _Field:
    """One documented key: its YAML name, the dataclass attribute, and how to read it."""

    key: str
    attr: str | None
    parse: Parser | None = None
    aliases: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        return (self.key, _snake(self.key), *self.aliases)


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def _fail(path: str, what: str, fix: str) -> SpecError:
    return SpecError(f"{path or 'spec'}: {what}." + (f" {fix}" if fix else ""))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _closest(word: str, options: Sequence[str]) -> str | None:
    """The option a typo most likely meant, if one is close to ``word``."""
    close = difflib.get_close_matches(word, list(options), n=1)
    return close[0] if close else None


def _field_for(key: str, fields: Sequence[_Field], path: str) -> _Field:
    for f in fields:
        if key in f.names():
            return f
    known = [f.key for f in fields]
    close = _closest(key, [n for f in fields for n in f.names()])
    hint = ""
    if close:
        hint = f"Did you mean '{next(f.key for f in fields if close in f.names())}'? "
    raise _fail(
        _join(path, str(key)), "unknown field", f"{hint}Known fields here: {', '.join(known)}."
    )


def _canonical(data: Mapping[str, Any], fields: Sequence[_Field], path: str) -> dict[str, Any]:
    """The same mapping keyed by the documented names (snake_case accepted)."""
    return {_field_for(str(k), fields, path).key: v for k, v in data.items()}


def _read(data: Any, path: str, fields: Sequence[_Field]) -> dict[str, Any]:
    """Parse a mapping against ``fields``: attribute -> value for the keys present."""
    if not isinstance(data, Mapping):
        raise _fail(path, f"expected a mapping, got {_show(data)}", "Write key: value pairs here.")
    out: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for key, value in data.items():
        f = _field_for(str(key), fields, path)
        if f.key in seen:
            raise _fail(
                _join(path, str(key)),
                f"given twice (also as '{seen[f.key]}')",
                "Keep one of the two spellings.",
            )
        seen[f.key] = str(key)
        if f.attr is not None and f.parse is not None:
            out[f.attr] = f.parse(value, _join(path, f.key))
    return out


def _show(value: Any) -> str:
    return f"{value!r}" if isinstance(value, str | int | float | bool) else type(value).__name__


# -- value parsers -----------------------------------------------------------------


def _number(
    example: float,
    *,
    lo: float | None = None,
    hi: float | None = None,
    open_lo: bool = False,
    open_hi: bool = False,
) -> Parser:
    def parse(value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(path, f"expected a number like {example:g}, got {_show(value)}", "")
        number = float(value) if abs(value) < 1e300 else math.inf
        if not math.isfinite(number):
            raise _fail(path, f"expected a finite number like {example:g}, got {value!r:.40}", "")
        low_bad = lo is not None and (number <= lo if open_lo else number < lo)
        high_bad = hi is not None and (number >= hi if open_hi else number > hi)
        if low_bad or high_bad:
            lo_txt = "" if lo is None else f"{'>' if open_lo else '>='} {lo:g}"
            hi_txt = "" if hi is None else f"{'<' if open_hi else '<='} {hi:g}"
            rule = " and ".join(t for t in (lo_txt, hi_txt) if t)
            raise _fail(path, f"{number:g} is out of range", f"It must be {rule}.")
        return number

    return parse


def _whole(example: int, *, lo: int = 0, hi: int | None = None) -> Parser:
    def parse(value: Any, path: str) -> int:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not (abs(value) < 1e300 and float(value).is_integer()):
            raise _fail(path, f"expected a whole number like {example}, got {_show(value)}", "")
        if value < lo or value > (MAX_WHOLE if hi is None else hi):
            rule = f"between {lo} and {hi}" if hi is not None else f">= {lo} and <= {MAX_WHOLE}"
            raise _fail(path, f"{value:.6g} is out of range", f"It must be {rule}.")
        return int(value)

    return parse


def _optional(parse: Parser) -> Parser:
    return lambda value, path: None if value is None else parse(value, path)


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(path, f"expected a non-empty text, got {_show(value)}", "")
    return value


def _flag(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, f"expected true or false, got {_show(value)}", "")
    return value


def _choice(options: Sequence[str]) -> Parser:
    def parse(value: Any, path: str) -> str:
        if value not in options:
            close = _closest(str(value), options)
            hint = f"Did you mean '{close}'? " if close else ""
            raise _fail(path, f"unknown value {_show(value)}", f"{hint}Choose one of {options}.")
        return value

    return parse


def _weights(value: Any, path: str) -> tuple[float, ...]:
    if not isinstance(value, list | tuple):
        raise _fail(path, f"expected a list of weights like [5, 10, 25], got {_show(value)}", "")
    if len(value) > 100 / MIN_STEP_WEIGHT:
        raise _fail(path, f"{len(value)} weights", f"Give at most {100 / MIN_STEP_WEIGHT:.0f}.")
    parse = _number(10, lo=0, hi=100, open_lo=True)
    steps = tuple(parse(v, f"{path}[{i}]") for i, v in enumerate(value))
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        shown = ", ".join(f"{w:g}" for w in steps[:10]) + (", …" if len(steps) > 10 else "")
        raise _fail(path, f"weights [{shown}] do not increase", "List them in rising order.")
    return steps


def _groups(value: Any, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise _fail(path, f"expected a list of group names, got {_show(value)}", "")
    return tuple(_text(v, f"{path}[{i}]") for i, v in enumerate(value))


def _group_weights(value: Any, path: str) -> tuple[tuple[str, float], ...]:
    if not isinstance(value, Mapping):
        raise _fail(path, f"expected a mapping group: percent, got {_show(value)}", "")
    parse = _number(50, lo=0, hi=100)
    pairs = tuple((str(k), parse(v, _join(path, str(k)))) for k, v in value.items())
    if sum(w for _, w in pairs) > 100 + 1e-9:
        raise _fail(path, "group weights add up to more than 100", "Make them sum to 100 at most.")
    return pairs


def _threshold_range(value: Any, path: str) -> tuple[float | None, float | None]:
    parse = _optional(_number(99))
    got = _read(value, path, (_Field("min", "min", parse), _Field("max", "max", parse)))
    low, high = got.get("min"), got.get("max")
    if low is not None and high is not None and low > high:
        raise _fail(path, f"min {low:g} is above max {high:g}", "Swap them.")
    return low, high


def _pairs(shape: str, keys: Sequence[str] | None = None) -> Parser:
    """A mapping of texts (``shape`` says what it maps), kept as ordered pairs; ``keys``
    limits the keys."""

    def parse(value: Any, path: str) -> tuple[tuple[str, str], ...]:
        if not isinstance(value, Mapping):
            raise _fail(path, f"expected a mapping {shape}, got {_show(value)}", "")
        for key in value:
            if keys is not None:
                _choice(tuple(keys))(key, _join(path, str(key)))
        return tuple((_text(k, path), _text(v, _join(path, str(k)))) for k, v in value.items())

    return parse


_queries = _pairs("variant: PromQL")


_PROBABILITY = _number(0.05, lo=0, hi=1, open_lo=True, open_hi=True)
_PERCENT = _number(10, lo=0, hi=100)


def _WEIGHT(value: Any, path: str) -> float:  # noqa: N802 (a parser, named as a constant)
    """A weight step in percent: 0 (no steps) or from MIN_STEP_WEIGHT to 100."""
    weight = _PERCENT(value, path)
    if 0 < weight < MIN_STEP_WEIGHT:
        raise _fail(
            path,
            f"{weight:g} is too small a step",
            f"Use 0 (no steps) or at least {MIN_STEP_WEIGHT:g} (at most "
            f"{100 / MIN_STEP_WEIGHT:.0f} steps to 100%).",
        )
    return weight


def check_duration(seconds: float | None, path: str, *, low: float = MIN_INTERVAL_S) -> None:
    """Refuse a duration outside ``low`` .. MAX_DURATION_S (None passes)."""
    if seconds is not None and not low <= seconds <= MAX_DURATION_S:
        raise _fail(
            path,
            f"{format_duration(seconds)} is out of range",
            f"Use between {format_duration(low)} and {format_duration(MAX_DURATION_S)}.",
        )


_NOT_DUMPED = ("metrics", "kayenta", "threshold_range")


def _dump(obj: Any, fields: Sequence[_Field]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields:
        if f.attr is None or f.attr in _NOT_DUMPED:
            continue
        value = getattr(obj, f.attr)
        if value is None or value == ():
            continue
        if f.attr.endswith("_s"):
            value = format_duration(value)
        elif f.attr in ("group_weights", "queries", "names"):
            value = dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.key] = value
    return out
