"""Bin audit-log operations by UTC day for the report's timeline.

The audit log can hold hundreds of thousands of records; the report never keeps them. This
streams ``(time, op, result)`` triples once and keeps one counter triple per day, so memory is
bounded by the number of days in the period, not the number of records.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from ekm.report.model import DayActivity
from ekm.timeutil import UTC

ROTATION_OPS = ("rotate",)  # "rotate", "rotate.prepare", "rotate.complete", ...


def is_rotation(op: str) -> bool:
    """A rotation is any operation named ``rotate`` or ``rotate.<stage>``."""
    return op in ROTATION_OPS or op.startswith("rotate.")


def bin_activity(
    events: Iterable[tuple[datetime, str, str]], start: datetime, end: datetime
) -> list[DayActivity]:
    """Count rotations, failures (result other than ``ok``) and other operations per UTC day.

    Events outside ``[start, end]`` are skipped. Days with no events are omitted; the charts
    fill the gaps. A failed rotation counts as a failure, not as a rotation.
    """
    counts: dict[object, list[int]] = {}
    for when, op, result in events:
        if when < start or when > end:
            continue
        day = counts.setdefault(when.astimezone(UTC).date(), [0, 0, 0])
        if result != "ok":
            day[1] += 1
        elif is_rotation(op):
            day[0] += 1
        else:
            day[2] += 1
    return [DayActivity(d, *c) for d, c in sorted(counts.items())]  # type: ignore[arg-type]


def classify_due(next_rotation: datetime | None, notify_before: timedelta, as_of: datetime) -> str:
    """``overdue`` / ``soon`` (inside the notify window) / ``ok``, or ``none`` without a policy."""
    if next_rotation is None:
        return "none"
    if next_rotation <= as_of:
        return "overdue"
    if next_rotation - notify_before <= as_of:
        return "soon"
    return "ok"
