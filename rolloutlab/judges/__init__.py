"""Judges: from a recording and a spec to a verdict (promote / continue / rollback).

:func:`judge` is the driver: it cuts the recording into ticks of the spec's interval and
feeds them to a judge from :data:`JUDGES` until the first terminal decision.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from rolloutlab import frames
from rolloutlab.errors import SpecError
from rolloutlab.frames import tick_table
from rolloutlab.judges.base import Judge
from rolloutlab.judges.flagger import FlaggerJudge
from rolloutlab.judges.kayenta import KayentaJudge
from rolloutlab.judges.verdict import MetricResult, TickState, Verdict
from rolloutlab.sources.recording import Recording
from rolloutlab.specs import KayentaSettings, MetricSpec, Spec, format_duration

#: Judge name -> class, or "module:Class" for a judge imported on first use.
JUDGES: dict[str, type[Judge] | str] = {
    "flagger": FlaggerJudge,
    "kayenta": KayentaJudge,
    "rolloutlab": "rolloutlab.judges.rolloutlab:RolloutlabJudge",
}


def judge_class(name: str) -> type[Judge]:
    """The judge registered as ``name`` (SpecError listing the choices otherwise)."""
    entry = JUDGES.get(name)
    if entry is None:
        raise SpecError(f"judge: unknown judge {name!r}. Choose one of {sorted(JUDGES)}.")
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise SpecError(f"judge: {name!r} cannot be loaded ({exc}).") from None
    return entry


def judge(
    recording: Recording,
    spec: Spec | dict[str, Any] | str | Path | None = None,
    *,
    judge: str | None = None,
    at: datetime | str | None = None,
    **options: Any,
) -> Verdict:
    """Judge ``recording`` tick by tick up to ``at`` (default: its end).

    ``spec`` is a :class:`Spec`, a dict, YAML text, a YAML file or None (defaults);
    ``judge`` names the judge (default: the spec's, ``rolloutlab`` unless it says
    otherwise); ``options`` go to the judge (e.g. Flagger's ``follow_recorded_weights``).
    Control and treatment come from the spec, else the recording's roles (its control and
    first treatment). Only ticks complete at ``at`` are judged, so the verdict is what the
    judge knew then; a judge with a schedule of its own (Kayenta's lifetime) still sees the
    whole recording's length.
    """
    spec, notes = _fit_interval(Spec.load(spec), recording)
    name = judge or spec.judge
    cls = judge_class(name)
    control, treatment = roles(recording, spec)
    try:
        instance = cls(spec, control=control, treatment=treatment, **options)
    except TypeError as exc:
        raise SpecError(f"judge {name!r}: {exc}. Check the options passed to judge().") from None
    frame = recording.frame
    if cls.compares_buckets:
        frame, bucket_notes = frames.common_buckets(frame, (control, treatment))
        notes += bucket_notes
    table = tick_table(frame, spec.interval_s, variants=(control, treatment))
    until = _instant(at)
    for k, end in enumerate(table.ends):
        if until is not None and end > until:
            break
        if instance.observe(table, k).decision != "continue":
            break
    verdict = instance.verdict()
    if notes:
        reason = f"{verdict.reason} (note: {'; '.join(notes)})"
        verdict = replace(verdict, reason=reason, details={**verdict.details, "notes": notes})
    return verdict


def _fit_interval(spec: Spec, recording: Recording) -> tuple[Spec, list[str]]:
    """The spec with its interval raised to the recording's step when shorter (a tick
    cannot be shorter than the data's resolution), and a note saying so. The step is the
    recording's own (``meta["step_s"]``: a loaded response's per-series spacing), else
    the spacing of all its timestamps together."""
    step = recording.step_s or frames.step_seconds(recording.frame)
    if not step or spec.interval_s >= step - 1e-9:
        return spec, []
    note = (
        f"the spec's interval {format_duration(spec.interval_s)} is shorter than the "
        f"recording's {format_duration(step)} step, so each tick covers one step "
        f"(judged every {format_duration(step)})"
    )
    return replace(spec, interval_s=float(step)), [note]


def roles(recording: Recording, spec: Spec) -> tuple[str, str]:
    """(control, treatment): from the spec, else the recording's roles (its first treatment)."""
    variants = recording.variants
    control = spec.control or recording.control
    others = [v for v in (*recording.treatments, recording.control) if v != control]
    treatment = spec.treatment or (others[0] if others else None)
    for role, value in (("control", control), ("treatment", treatment)):
        if value not in variants:
            raise SpecError(
                f"{role}: {value!r} is not a variant of the recording ({variants}). "
                f"Set the spec's {role} to one of them."
            )
    if control == treatment:
        raise SpecError(f"control and treatment are both {control!r}. Name two variants.")
    assert treatment is not None  # None is no variant: refused above
    return control, treatment


def _instant(at: datetime | str | None) -> datetime | None:
    if at is None:
        return None
    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at)
        except ValueError:
            raise SpecError(
                f"at: cannot read {at!r} as a time. Use ISO 8601, e.g. 2026-01-12T11:00Z."
            ) from None
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise SpecError(
            f"at: {at!r} has no time zone. Give a UTC-aware time, e.g. 2026-01-12T11:00Z."
        )
    return at


__all__ = [
    "JUDGES",
    "FlaggerJudge",
    "Judge",
    "KayentaJudge",
    "KayentaSettings",
    "MetricResult",
    "MetricSpec",
    "Spec",
    "TickState",
    "Verdict",
    "judge",
    "judge_class",
    "roles",
]
