"""One palette for every chart: variants, decisions and metric classifications.

The control/primary is always the same blue; canary/treatment arms take a fixed
sequence (orange first); decisions are promote green, continue amber, rollback red.
The colour values live in :mod:`rolloutlab._html` (the notebook cards of lower layers
need them too); this module turns them into altair scales.
"""

from __future__ import annotations

from collections.abc import Iterable

import altair as alt

from rolloutlab._html import (
    CLASSIFICATION_COLORS,
    CONTROL_COLOR,
    DECISION_COLORS,
    NEUTRAL_COLOR,
    TREATMENT_COLORS,
    treatment_colors,
    variant_colors,
)

__all__ = [
    "CLASSIFICATION_COLORS",
    "CONTROL_COLOR",
    "DECISION_COLORS",
    "NEUTRAL_COLOR",
    "TREATMENT_COLORS",
    "classification_scale",
    "decision_scale",
    "treatment_colors",
    "variant_colors",
    "variant_scale",
]


def _scale(colors: dict[str, str]) -> alt.Scale:
    return alt.Scale(domain=list(colors), range=list(colors.values()))


def variant_scale(variants: Iterable[str], control: str | None = None) -> alt.Scale:
    """An ordinal colour scale giving each variant its fixed colour."""
    return _scale(variant_colors(variants, control))


def decision_scale() -> alt.Scale:
    """promote green, continue amber, rollback red."""
    return _scale(DECISION_COLORS)


def classification_scale() -> alt.Scale:
    """pass green, fail red, inconclusive amber, nodata grey."""
    return _scale(CLASSIFICATION_COLORS)
