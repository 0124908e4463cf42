"""The Python monitoring API: KeyMonitor (checks + handlers) and the old AuditLogger.

``key_manager.get_security_monitor()`` returns a :class:`KeyMonitor`: the
:class:`~ekm.monitor.events.SecurityMonitor` handler registry (``@monitor.on_event``,
``@monitor.on_suspicious_activity``, sync and async) wired to the real checks, so
``monitor.check_now()`` runs one pass and delivers its events to the handlers.

``key_manager.get_audit_logger()`` keeps the old ``await audit.log_key_access(...)`` calls
working; they write ordinary audit-log records (hash-chained, never a secret).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ekm.crypto.keytypes import SecurityLevel
from ekm.errors import InvalidError
from ekm.monitor.events import Event, SecurityMonitor, check_payload_safe
from ekm.monitor.runner import MonitorSession, PassResult


class KeyMonitor(SecurityMonitor):
    """A SecurityMonitor that can run the checks of its KeyManager's home.

    Each pass emits the events it sees to the registered handlers, plus a ``resolved`` notice
    for each problem of the previous pass that has cleared. With ``only_changes=True`` an
    ongoing problem is emitted once, when it opens, instead of on every pass.
    """

    def __init__(self, manager: Any, *, audit: bool = True) -> None:
        super().__init__()
        self.session = MonitorSession(manager, audit=audit)

    def run_pass(self, now: datetime | None = None) -> PassResult:
        """One pass of every check; no handler is called (see :meth:`check_now`)."""
        return self.session.run(now)

    def check_now(self, *, now: datetime | None = None, only_changes: bool = False) -> list[Event]:
        """Run one pass, deliver its events to the handlers, and return them."""
        result = self.session.run(now)
        events = result.opened if only_changes else result.events
        for event in [*events, *result.resolved]:
            self.emit(event)
        return list(result.events)

    async def check_now_async(
        self, *, now: datetime | None = None, only_changes: bool = False
    ) -> list[Event]:
        """:meth:`check_now` for async code: async handlers are awaited before returning.

        The pass itself (file and crypto work) runs in a worker thread so the loop stays free.
        """
        import asyncio

        result = await asyncio.to_thread(self.session.run, now)
        events = result.opened if only_changes else result.events
        for event in [*events, *result.resolved]:
            await self.emit_async(event)
        return list(result.events)


def _context(context: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if context is None:
        return None
    if not isinstance(context, Mapping):
        raise InvalidError("the audit context must be a mapping of names to text or numbers")
    ctx = dict(context)
    check_payload_safe(ctx, "context")
    return ctx


def _name(value: Any, what: str) -> str:
    text = str(getattr(value, "value", value))
    if not text or len(text) > 200 or any(ord(c) < 32 for c in text):
        raise InvalidError(f"the {what} must be one line of at most 200 characters")
    return text


class AuditLogger:
    """The old ``get_audit_logger()`` object: async methods writing audit-log records.

    Context mappings pass the same secret guard as monitor events: a field named like a secret
    (``token``, ``passphrase``, ``material``, ...) or raw bytes is refused with InvalidError
    before anything is written.
    """

    def __init__(self, manager: Any) -> None:
        self._manager = manager

    def _append(self, op: str, **fields: Any) -> dict[str, Any]:
        return self._manager.audit_log.append(op, **{k: v for k, v in fields.items() if v})

    async def log_key_access(
        self, name: str, action: str, context: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Record that the application used key ``name`` for ``action`` (e.g. ``decrypt``)."""
        return self._append(
            "app.key_access",
            key=_name(name, "key name"),
            action=_name(action, "action"),
            context=_context(context),
        )

    async def log_key_rotation(
        self, name: str, context: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Record an application-side rotation event for key ``name``."""
        return self._append(
            "app.key_rotation", key=_name(name, "key name"), context=_context(context)
        )

    async def log_security_event(
        self,
        kind: str,
        context: Mapping[str, Any] | None = None,
        *,
        severity: SecurityLevel | str = SecurityLevel.MEDIUM,
    ) -> dict[str, Any]:
        """Record a security event the application observed (``kind`` e.g. ``login_failed``)."""
        from ekm.monitor.runner import parse_severity

        return self._append(
            "app.security_event",
            kind=_name(kind, "event kind"),
            severity=parse_severity(severity).name,
            context=_context(context),
        )
