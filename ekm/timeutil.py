"""Durations, instants and the clock.

Time is a parameter everywhere in ekm (as in Fernet's ``encrypt_at_time``): functions take
``now`` instead of reading the clock, so tests and ``--as-of`` pass an instant and nothing
patches ``time.time()``. All instants are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

UTC = timezone.utc

_UNITS = {
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "y": 365 * 86400,
}
_DURATION_RE = re.compile(r"^\s*(\d{1,9})\s*([smhdwy])\s*$")
DURATION_FORM = "a number and a unit: 30s, 15m, 12h, 90d, 2w or 1y"


def utcnow() -> datetime:
    """The current instant in UTC (the only place ekm reads the wall clock)."""
    return datetime.now(UTC)


def parse_duration(text: str) -> timedelta:
    """Parse ``90d``-style durations; raise ValueError with the expected form."""
    if not isinstance(text, str):
        raise ValueError(f"expected {DURATION_FORM}")
    m = _DURATION_RE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration; expected {DURATION_FORM}")
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


def format_duration(delta: timedelta) -> str:
    """The shortest exact ``90d``-style spelling of a duration."""
    seconds = int(delta.total_seconds())
    for unit in ("y", "w", "d", "h", "m"):
        size = _UNITS[unit]
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """Parse an ``--as-of`` value: ``now``, ``+90d`` / ``-7d`` relative to now, or ISO 8601.

    A date without a time means midnight UTC; a time without an offset is taken as UTC.
    """
    now = now or utcnow()
    text = text.strip()
    if text == "now":
        return now
    if text[:1] in "+-" and len(text) > 1:
        delta = parse_duration(text[1:])
        return now + delta if text[0] == "+" else now - delta
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time; expected an ISO date/time (2030-01-01, "
            "2030-01-01T12:00:00Z) or an offset such as +90d"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def iso(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix and second precision, as every JSON shape uses."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(text: str) -> datetime:
    """Inverse of :func:`iso` (accepts any ISO 8601 form with or without offset)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
