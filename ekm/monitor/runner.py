"""One monitoring pass, and what changed since the last one.

:class:`MonitorSession` is shared by ``ekm monitor --once``, the daemon and
``KeyManager.get_security_monitor().check_now()``: it runs every check of
:mod:`ekm.monitor.checks`, keeps the set of open problems (by fingerprint) so each problem is
recorded when it opens and when it resolves (never once per pass), writes those transitions to
the audit log (op ``monitor.event``) and builds the metrics snapshot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ekm.crypto.keytypes import SecurityLevel
from ekm.errors import EkmError
from ekm.monitor import checks as chk
from ekm.monitor.events import Event, redact_paths
from ekm.monitor.metrics import KeyMetrics, MetricsSnapshot
from ekm.timeutil import instant

log = logging.getLogger("ekm.monitor")

_SEVERITY_NAMES = {s.name.lower(): s for s in SecurityLevel}


def parse_severity(value: str | SecurityLevel, what: str = "severity") -> SecurityLevel:
    """``high`` / ``HIGH`` / SecurityLevel.HIGH -> SecurityLevel.HIGH (UsageError otherwise)."""
    if isinstance(value, SecurityLevel):
        return value
    level = _SEVERITY_NAMES.get(str(value).strip().lower())
    if level is None:
        from ekm.errors import UsageError

        raise UsageError(
            f"{what} {str(value)[:40]!r} is not one of: "
            + ", ".join(s.name.lower() for s in sorted(SecurityLevel, reverse=True))
        )
    return level


@dataclass
class PassResult:
    """What one pass saw: every current event, and the transitions since the last pass."""

    time: datetime
    events: list[Event]
    opened: list[Event]
    resolved: list[Event]
    snapshot: MetricsSnapshot
    duration: float

    def findings(self, at_least: SecurityLevel = SecurityLevel.INFO) -> list[Event]:
        return [e for e in self.events if e.severity >= at_least]

    def summary(self) -> dict[str, int]:
        counts = {s.name.lower(): 0 for s in sorted(SecurityLevel, reverse=True)}
        for e in self.events:
            counts[e.severity.name.lower()] += 1
        return counts


@dataclass
class MonitorSession:
    """Runs passes over one KeyManager; remembers open problems between passes."""

    manager: Any
    audit: bool = True  # write monitor.event records for opened and resolved problems
    state: chk.CheckState = field(default_factory=chk.CheckState)
    open: dict[str, Event] = field(default_factory=dict)
    event_counts: dict[tuple[str, SecurityLevel], int] = field(default_factory=dict)
    last_success: datetime | None = None

    def run(self, now: datetime | None = None) -> PassResult:
        """One pass over every check at ``now``; never raises for what a check finds."""
        now = instant(now)
        started = time.monotonic()
        ctx = chk.CheckContext(manager=self.manager, now=now, state=self.state)
        events: list[Event] = []
        for name, fn in chk.CHECKS:
            try:
                events.extend(fn(ctx))
            except EkmError as exc:
                events.append(self._check_failed(ctx, name, exc.message))
            except Exception as exc:  # hostile input must not stop the other checks
                log.debug("check %s crashed", name, exc_info=exc)
                events.append(self._check_failed(ctx, name, f"{type(exc).__name__} (a bug)"))
        events = _unique([_redacted(e, str(self.manager.home)) for e in events])
        opened, resolved = self._transitions(events, now)
        if self.audit:
            self._record(opened + resolved, events)
        duration = time.monotonic() - started
        self.last_success = now
        snapshot = self.snapshot(ctx, events, duration)
        return PassResult(now, events, opened, resolved, snapshot, duration)

    def count(self, events: Iterable[Event]) -> None:
        """Add events (e.g. ``notifier.failed``) to the ``ekm_events_total`` counters."""
        for e in events:
            k = (e.check, e.severity)
            self.event_counts[k] = self.event_counts.get(k, 0) + 1

    # -- internals ----------------------------------------------------------------------------

    @staticmethod
    def _check_failed(ctx: chk.CheckContext, name: str, reason: str) -> Event:
        return ctx.event(
            "monitor.check_failed",
            SecurityLevel.MEDIUM,
            name,
            f"the {name} check could not run: {reason}",
            check_name=name,
        )

    def _transitions(self, events: list[Event], now: datetime) -> tuple[list[Event], list[Event]]:
        current = {e.fingerprint: e for e in events}
        opened = [
            e
            for fp, e in current.items()
            if fp not in self.open or e.severity > self.open[fp].severity
        ]
        resolved = [self.open[fp].resolve(now) for fp in self.open if fp not in current]
        self.open = current
        self.count(opened)
        return opened, resolved

    def _record(self, transitions: list[Event], events: list[Event]) -> None:
        """Audit-log the transitions, unless the log itself is broken.

        Appending to a deleted or truncated log would start a fresh chain that verifies and
        so hide the damage; the monitor reports it instead and leaves the evidence alone.
        """
        if not transitions:
            return
        if any(e.check == "auditlog.chain" for e in events):
            log.warning("audit log is damaged: monitor events are not written to it")
            return
        entries = [
            {
                "op": "monitor.event",
                "key": None,
                "result": "resolved" if e.resolved else "firing",
                "check": e.check,
                "severity": e.severity.name,
                "subject": e.subject,
                "fingerprint": e.fingerprint,
                "now": e.time,
            }
            for e in transitions
            if e.severity > SecurityLevel.INFO
        ]
        if not entries:
            return
        try:
            self.manager.audit_log.append_many(entries)
        except EkmError as exc:
            log.error("could not write monitor events to the audit log: %s", exc.message)

    def snapshot(
        self, ctx: chk.CheckContext, events: list[Event], duration: float
    ) -> MetricsSnapshot:
        keys = []
        for name, key in sorted(ctx.keys.items()):
            primary = key.primary
            age = (ctx.now - primary.created).total_seconds() if primary else 0.0
            nxt = key.next_rotation
            keys.append(
                KeyMetrics(
                    name=name,
                    type=key.type.value,
                    backend=key.backend,
                    age_seconds=max(0.0, age),
                    next_rotation=nxt,
                    overdue=bool(nxt is not None and nxt <= ctx.now),
                    due=key.due(ctx.now) or key.in_notify_window(ctx.now),
                    versions=len(key.versions),
                    usage={v.version: int(v.usage_count or 0) for v in key.versions},
                )
            )
        findings: dict[SecurityLevel, int] = {}
        for e in events:
            findings[e.severity] = findings.get(e.severity, 0) + 1
        backends = {"storage": not any(e.check == "monitor.check_failed" for e in events)}
        backends.update(ctx.backends)
        return MetricsSnapshot(
            keys=tuple(keys),
            findings=findings,
            events=dict(self.event_counts),
            backends=backends,
            audit_log_ok=not any(
                e.check == "auditlog.chain"
                or (e.check == "monitor.check_failed" and e.subject == "auditlog")
                for e in events
            ),
            last_success=ctx.now,
            check_duration=duration,
        )


def _redacted(event: Event, home: str) -> Event:
    """``event`` with absolute paths outside the home cut to their last name.

    Done here, once for every check, rather than in each check: a check quoting an error
    message (the HSM's, Vault's) cannot know what the message holds. The fingerprint stays.
    """

    def text(value: Any) -> Any:
        return redact_paths(value, home) if isinstance(value, str) else value

    details = {k: text(v) for k, v in event.details.items()}
    return replace(event, subject=text(event.subject), message=text(event.message), details=details)


def _unique(events: list[Event]) -> list[Event]:
    """One event per fingerprint (the most severe), in a stable order."""
    best: dict[str, Event] = {}
    for e in events:
        if e.fingerprint not in best or e.severity > best[e.fingerprint].severity:
            best[e.fingerprint] = e
    return sorted(best.values(), key=lambda e: (-int(e.severity), e.check, e.subject))
