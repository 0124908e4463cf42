"""What each chart shows, computed once for both the SVG (HTML) and reportlab (PDF) drawings.

Charts must stay readable and cheap at 10,000 keys and a year of audit log, so everything here
aggregates: the key-age chart takes the N most urgent keys plus a histogram over all keys, the
timeline has one bar per day (per week past :data:`MAX_BARS` days), the calendar one cell per day.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from ekm.report.model import DUENESS, DayActivity, KeyRow
from ekm.timeutil import UTC

URGENT_KEYS = 25
MAX_BARS = 120
# Age as a fraction of the rotation interval; the last bucket is "past the interval".
AGE_BUCKETS: tuple[tuple[float, float, str], ...] = (
    (0.0, 0.25, "0-25%"),
    (0.25, 0.5, "25-50%"),
    (0.5, 0.75, "50-75%"),
    (0.75, 1.0, "75-100%"),
    (1.0, 2.0, "100-200%"),
    (2.0, math.inf, ">200%"),
)
NO_POLICY = "no policy"

DUE_COLOURS = {"ok": "#2e7d32", "soon": "#f9a825", "overdue": "#c62828", "none": "#9e9e9e"}
DUE_LABELS = {"ok": "ok", "soon": "notify window", "overdue": "overdue", "none": "no policy"}
SEVERITY_COLOURS = {
    "critical": "#7b1fa2",
    "high": "#c62828",
    "medium": "#ef6c00",
    "low": "#f9a825",
    "info": "#1565c0",
}


def age_ratio(k: KeyRow) -> float | None:
    """Age of the primary version as a fraction of the rotation interval (None: no policy)."""
    if not k.rotate_every_days:
        return None
    return k.age_days / k.rotate_every_days


def _urgency(k: KeyRow) -> tuple[int, float, str]:
    rank = {"overdue": 0, "soon": 1, "ok": 2, "none": 3}.get(k.dueness, 3)
    ratio = age_ratio(k)
    return (rank, -(ratio if ratio is not None else -1.0), k.name)


def most_urgent(keys: Sequence[KeyRow], limit: int = URGENT_KEYS) -> list[KeyRow]:
    """The ``limit`` keys closest to (or furthest past) rotation: O(n log limit)."""
    return heapq.nsmallest(limit, keys, key=_urgency)


@dataclass(frozen=True)
class Bucket:
    label: str
    counts: dict[str, int]  # by dueness

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def age_histogram(keys: Sequence[KeyRow]) -> list[Bucket]:
    """All keys by age/interval bucket, each bucket split by due-ness."""
    labels = [b[2] for b in AGE_BUCKETS] + [NO_POLICY]
    counts = {label: dict.fromkeys(DUENESS, 0) for label in labels}
    for k in keys:
        ratio = age_ratio(k)
        label = NO_POLICY
        if ratio is not None:
            label = next(lb for lo, hi, lb in AGE_BUCKETS if lo <= ratio < hi)
        counts[label][k.dueness if k.dueness in DUENESS else "none"] += 1
    return [Bucket(label, counts[label]) for label in labels]


@dataclass(frozen=True)
class Bar:
    start: date
    days: int  # 1 for a daily bar, 7 for a weekly one
    rotations: int
    failures: int
    other: int


def timeline(activity: Sequence[DayActivity], start: date, end: date) -> list[Bar]:
    """One bar per day of ``[start, end]`` with gaps filled; weekly bars past MAX_BARS days."""
    span = (end - start).days + 1
    width = 1 if span <= MAX_BARS else 7
    n = max(1, math.ceil(span / width))
    sums = [[0, 0, 0] for _ in range(n)]
    for d in activity:
        i = (d.date - start).days // width
        if 0 <= i < n:
            s = sums[i]
            s[0] += d.rotations
            s[1] += d.failures
            s[2] += d.other
    return [Bar(start + timedelta(days=i * width), width, *s) for i, s in enumerate(sums)]


@dataclass(frozen=True)
class Calendar:
    start: date
    overdue: int  # keys whose next rotation is before start (shown as one cell on the left)
    per_day: list[int]  # rotations due on start + i
    names: list[list[str]]  # up to 3 key names per day, for tooltips / labels


def calendar(keys: Sequence[KeyRow], start: datetime, days: int = 90) -> Calendar:
    """Rotations due per day over the next ``days`` days from ``start`` (the as-of instant)."""
    first = start.astimezone(UTC).date()
    per_day = [0] * days
    names: list[list[str]] = [[] for _ in range(days)]
    overdue = 0
    for k in keys:
        if k.next_rotation is None:
            continue
        if k.next_rotation < start:
            overdue += 1
            continue
        i = (k.next_rotation.astimezone(UTC).date() - first).days
        if 0 <= i < days:
            per_day[i] += 1
            if len(names[i]) < 3:
                names[i].append(k.name)
    return Calendar(first, overdue, per_day, names)


def heat_colour(n: int) -> str:
    """Calendar cell colour for ``n`` rotations due that day.

    Fixed thresholds (not relative to the peak) so the legend means the same in every report.
    """
    if n == 0:
        return "#eeeeee"
    return ("#ffe082", "#ffb300", "#f57c00", "#f57c00", "#d84315")[min(n, 5) - 1]
