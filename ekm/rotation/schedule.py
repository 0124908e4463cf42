"""Which keys are due: the question cron asks every night.

Pure functions over key metadata, so ``ekm rotate --check`` needs no master key and no
passphrase. A key is *due* when its next rotation time has come (overdue, or due now); it is
*upcoming* when that time falls inside its policy's notify window.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ekm.errors import IntegrityError
from ekm.model import Key
from ekm.timeutil import format_duration, from_iso, iso, parse_duration


@dataclass(frozen=True)
class DueKey:
    name: str
    due: datetime
    overdue: bool  # strictly past its time (not merely due this instant)
    interval: str | None
    type: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "due": iso(self.due),
            "overdue": self.overdue,
            "interval": self.interval,
            "type": self.type,
        }


@dataclass(frozen=True)
class CheckResult:
    due: list[DueKey]
    upcoming: list[DueKey]
    checked: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "due": [d.to_dict() for d in self.due],
            "upcoming": [d.to_dict() for d in self.upcoming],
            "checked": self.checked,
        }


def check(keys: Iterable[Key], now: datetime) -> CheckResult:
    """Split keys into due (time has come) and upcoming (inside the notify window)."""
    due: list[DueKey] = []
    upcoming: list[DueKey] = []
    checked = 0
    for key in keys:
        checked += 1
        nxt = key.next_rotation
        if nxt is None:
            continue
        interval = format_duration(key.policy.interval) if key.policy.interval else None
        if nxt <= now:
            due.append(DueKey(key.name, nxt, nxt < now, interval, key.type.value))
        elif nxt <= now + key.policy.notify_before:
            upcoming.append(DueKey(key.name, nxt, False, interval, key.type.value))
    due.sort(key=lambda d: (d.due, d.name))
    upcoming.sort(key=lambda d: (d.due, d.name))
    return CheckResult(due, upcoming, checked)


def next_rotation_meta(name: str, meta: dict[str, Any]) -> tuple[datetime | None, timedelta]:
    """(next rotation, notify window) from raw metadata, exactly as ``Key.next_rotation``.

    The primary's activation (or creation) plus the policy interval; None when the key never
    rotates or has no primary. Malformed metadata is an IntegrityError naming the key.
    """
    try:
        policy = meta["policy"]
        notify = parse_duration(policy.get("notify_before") or "0s")
        interval_text = policy.get("interval")
        if not interval_text:
            return None, notify
        primary = next((v for v in meta["versions"] if v["state"] == "primary"), None)
        if primary is None:
            return None, notify
        return from_iso(primary.get("activated") or primary["created"]) + parse_duration(
            interval_text
        ), notify
    except (KeyError, TypeError, ValueError, AttributeError):
        raise IntegrityError(f"key {name!r}: malformed metadata (tampered?)") from None


def check_meta(metas: Iterable[tuple[str, dict[str, Any]]], now: datetime) -> CheckResult:
    """:func:`check` over raw metadata dicts (the fast path for cron on large keystores)."""
    due: list[DueKey] = []
    upcoming: list[DueKey] = []
    checked = 0
    for name, meta in metas:
        checked += 1
        nxt, notify = next_rotation_meta(name, meta)
        if nxt is None:
            continue
        label = meta["policy"]["interval"]
        if nxt <= now:
            due.append(DueKey(name, nxt, nxt < now, label, str(meta.get("type"))))
        elif nxt <= now + notify:
            upcoming.append(DueKey(name, nxt, False, label, str(meta.get("type"))))
    due.sort(key=lambda d: (d.due, d.name))
    upcoming.sort(key=lambda d: (d.due, d.name))
    return CheckResult(due, upcoming, checked)


def describe_delta(target: datetime, now: datetime) -> str:
    """'3d 4h ago' / 'in 23h' for human lines."""
    seconds = int((target - now).total_seconds())
    past = seconds < 0
    seconds = abs(seconds)
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    minutes = rem // 60
    parts = [f"{days}d"] if days else []
    if hours and days < 10:
        parts.append(f"{hours}h")
    if not parts:
        parts.append(f"{minutes}m")
    text = " ".join(parts)
    return f"{text} ago" if past else f"in {text}"
