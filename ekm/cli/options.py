"""Parsing shared by several commands' options."""

from __future__ import annotations

from datetime import datetime

from ekm.errors import UsageError


def parse_as_of(value: str | None, flag: str = "--as-of") -> datetime:
    """``--as-of WHEN`` (ISO date/time or ``+90d``) as a UTC instant; now when absent."""
    from ekm.timeutil import parse_when, utcnow

    if not value:
        return utcnow()
    try:
        return parse_when(value)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None
