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

#: The instants ekm accepts from ``--as-of``, ``now=`` and stored metadata. Python's datetime
#: stops at year 9999, so ``now + interval`` near it raised OverflowError (a traceback from
#: ``ekm report --as-of 9999-12-31``); bounding instants and durations together keeps every
#: sum of an instant and a few durations representable.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
#: The longest duration (a rotation interval, a window): 1000 years.
MAX_DURATION = timedelta(days=1000 * 365)
RANGE_FORM = "between 1970-01-01 and 2999-12-31 UTC"


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
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{text.strip()!r} is too long a duration; expected at most 1000y")
    return timedelta(seconds=seconds)


def check_instant(value: datetime, what: str = "time") -> datetime:
    """``value`` as UTC if it is timezone-aware and within :data:`EARLIEST`..:data:`LATEST`.

    Why: a naive datetime compared with ekm's aware ones raises TypeError deep inside a
    command, and one near year 9999 overflows in ``now + interval``; both become one clear
    ValueError here, where the value enters.
    """
    if not isinstance(value, datetime):
        raise ValueError(f"{what} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (for example tzinfo=timezone.utc)")
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{what} is out of range; expected a time {RANGE_FORM}") from None
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"{what} is out of range; expected a time {RANGE_FORM}")
    return value


def instant(now: datetime | None) -> datetime:
    """The clock for a public ``now=`` parameter: :func:`utcnow` when None, else checked.

    A bad ``now`` is the caller's mistake, so it is a UsageError (an EkmError with one line)
    rather than a TypeError or OverflowError from deep inside the computation.
    """
    if now is None:
        return utcnow()
    try:
        return check_instant(now, "now")
    except ValueError as exc:
        from ekm.errors import UsageError

        raise UsageError(str(exc)) from None


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
    now = utcnow() if now is None else check_instant(now, "now")
    text = text.strip()
    if text == "now":
        return now
    if text[:1] in "+-" and len(text) > 1:
        delta = parse_duration(text[1:])
        return check_instant(now + delta if text[0] == "+" else now - delta, repr(text))
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time; expected an ISO date/time (2030-01-01, "
            "2030-01-01T12:00:00Z) or an offset such as +90d"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return check_instant(value, repr(text))


def iso(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix and second precision, as every JSON shape uses."""
    value = value.astimezone(UTC)
    # %Y is not zero-padded for years before 1000 on glibc ("1-01-01"): spell it out.
    return f"{value.year:04d}-{value:%m-%dT%H:%M:%S}Z"


def from_iso(text: str) -> datetime:
    """Inverse of :func:`iso` (accepts any ISO 8601 form with or without offset).

    Stored times are hostile input: one outside :data:`EARLIEST`..:data:`LATEST` is a
    ValueError (callers turn it into InvalidError), not an OverflowError later.
    """
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return check_instant(value)
