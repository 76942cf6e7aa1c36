"""The spec model moved to :mod:`rolloutlab.specs`; its names stay importable from here."""

from __future__ import annotations

from rolloutlab.durations import format_duration, parse_duration
from rolloutlab.specs.flagger import (
    FLAGGER_API,
    FLAGGER_METRIC_INTERVAL_S,
    FLAGGER_MIN_INTERVAL_S,
)
from rolloutlab.specs.model import (
    BUILTIN_METRICS,
    DEFAULT_BAKE_S,
    DEFAULT_PROMOTION_MARGIN,
    JUDGE_NAMES,
    ROUTER_KINDS,
    Direction,
    EffectSizeMeasure,
    KayentaSettings,
    MetricKind,
    MetricSpec,
    NanStrategy,
    OnInconclusive,
    Promotion,
    Spec,
    default_metrics,
)

__all__ = [
    "BUILTIN_METRICS",
    "DEFAULT_BAKE_S",
    "DEFAULT_PROMOTION_MARGIN",
    "FLAGGER_API",
    "FLAGGER_METRIC_INTERVAL_S",
    "FLAGGER_MIN_INTERVAL_S",
    "JUDGE_NAMES",
    "ROUTER_KINDS",
    "Direction",
    "EffectSizeMeasure",
    "KayentaSettings",
    "MetricKind",
    "MetricSpec",
    "NanStrategy",
    "OnInconclusive",
    "Promotion",
    "Spec",
    "default_metrics",
    "format_duration",
    "parse_duration",
]
