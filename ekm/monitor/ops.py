"""Monitoring as KeyManager operations (a mixin).

``key_manager.get_security_monitor()`` returns a :class:`~ekm.monitor.api.KeyMonitor` wired
to this home's checks; ``get_audit_logger()`` the old system's async audit-logger API. The
monitor modules are imported inside the methods so that ``import ekm`` stays fast.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ekm.monitor.api import AuditLogger, KeyMonitor
    from ekm.monitor.runner import PassResult


class MonitorOps:
    """Monitoring operations; mixed into KeyManager."""

    def get_security_monitor(self, *, audit: bool = True) -> KeyMonitor:
        """A handler registry wired to this home's checks (``check_now()`` runs a pass)."""
        from ekm.monitor.api import KeyMonitor

        return KeyMonitor(self, audit=audit)

    def monitor_check(self, *, now: datetime | None = None, audit: bool = True) -> PassResult:
        """One monitoring pass (what ``ekm monitor --once`` runs)."""
        from ekm.monitor.runner import MonitorSession

        return MonitorSession(self, audit=audit).run(now)

    def get_audit_logger(self) -> AuditLogger:
        """The old system's audit logger API, writing to this home's audit log."""
        from ekm.monitor.api import AuditLogger

        return AuditLogger(self)
