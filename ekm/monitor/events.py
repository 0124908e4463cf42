"""Monitor events and the in-process event stream (``SecurityMonitor``).

An :class:`Event` is what a monitor check reports: which check, how bad (a
:class:`~ekm.crypto.keytypes.SecurityLevel`, an IntEnum, so ``event.severity >= SecurityLevel.HIGH``
works as callers of the old shell monitor wrote), about what (a key name, a file), and a stable
``fingerprint`` so that the same open problem is recognised pass after pass (de-duplication and
"resolved" notices in :mod:`ekm.monitor.notifiers` depend on it).

Events leave the process (webhooks, Slack, logs), so they must never carry a secret: details are
restricted to JSON scalars and refused under names that suggest key material or credentials
(:func:`check_payload_safe`, applied when an event is built and again on every outgoing payload).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ekm.crypto.keytypes import SecurityLevel
from ekm.errors import InvalidError
from ekm.timeutil import UTC, iso

if TYPE_CHECKING:  # asyncio costs ~15 ms to import; only async handlers need it
    import asyncio

log = logging.getLogger("ekm.monitor")

# Check ids whose events mean "someone or something touched what it should not" rather than
# "a policy is not met". ``@monitor.on_suspicious_activity`` handlers receive these.
SUSPICIOUS_CHECKS: frozenset[str] = frozenset(
    {
        "files.permissions",  # a key file or the home became group/world accessible
        "files.owner",  # a file in the home is owned by another user
        "files.tampered",  # metadata MAC or file content no longer verifies
        "files.unexpected",  # an unknown file or symlink appeared in the home
        "files.deleted",  # key material or metadata disappeared
        "auditlog.chain",  # the audit log hash chain is broken or truncated
        "auditlog.unwritable",  # the audit log cannot be appended to
        "backend.auth",  # an HSM or Vault refused our credentials
        "key.usage_spike",  # a key version is used far more than its baseline
        "key.unknown_version",  # a ciphertext or token names a version that does not exist
        "apikey.bruteforce",  # repeated failed API-key verifications
        "activity.failed_burst",  # many failed operations (wrong passphrase, bad API key) at once
    }
)

# Detail names that suggest a secret; an event carrying one is refused (fail closed).
_SECRET_NAME = re.compile(
    r"(secret|passphrase|password|passwd|(^|_)pin($|_)|token|material|private|seed|credential"
    r"|api_?key$)",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----|-----BEGIN ENCRYPTED")
_SCALARS = (str, int, float, bool, type(None))
MAX_TEXT = 2000  # an event field longer than this is cut: events are alerts, not data dumps


def check_payload_safe(value: Any, where: str = "payload") -> None:
    """Refuse anything in an outgoing payload that could be a secret.

    Bytes are refused outright (material is bytes), as are mapping keys that look like secret
    names and strings that look like PEM private keys. The error names the field, never the value.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise InvalidError(f"{where} holds raw bytes; events may carry only text and numbers")
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidError(f"{where} has a non-text field name; use text field names")
            if _SECRET_NAME.search(k):
                raise InvalidError(
                    f"{where}.{k} looks like a secret field; events must never carry secrets"
                )
            check_payload_safe(v, f"{where}.{k}")
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_payload_safe(v, f"{where}[{i}]")
        return
    if isinstance(value, str):
        if _SECRET_VALUE.search(value):
            raise InvalidError(f"{where} contains a PEM private key; events must never carry one")
        return
    if not isinstance(value, _SCALARS):
        raise InvalidError(
            f"{where} is a {type(value).__name__}; events may carry only text, numbers, lists "
            "and mappings"
        )


# An absolute path: a "/" that does not continue a word, a URL ("http://h/p") or a relative path.
_ABS_PATH = re.compile(r"(?<![\w:/.~-])/[^\s'\"()\[\],;<>`]*")
_PATH_HEAD = re.compile(r"/[^\s'\"()\[\],;<>`]*")


def _shorten(match: re.Match[str]) -> str:
    base = match.group(0).rstrip("/").rsplit("/", 1)[-1]
    return f"…/{base}" if base else "…"


def redact_paths(text: str, home: str | None) -> str:
    """Cut every absolute path outside ``home`` to ``…/name`` (paths in the home stay whole).

    Events leave the host (webhooks, Slack): the layout of the rest of the filesystem (where
    the HSM vendor's module or an external master key file lives) is not theirs to learn. The
    home's own paths stay: the operator needs them, and every payload names the home anyway.
    """
    if not home:
        return _ABS_PATH.sub(_shorten, text)
    root = home.rstrip("/") or "/"
    parts = re.split(re.escape(root) + r"(?![\w.~-])", text)
    out = [_ABS_PATH.sub(_shorten, parts[0])]
    for part in parts[1:]:
        head = _PATH_HEAD.match(part)
        keep = head.group(0) if head else ""
        whole = root + keep
        if ".." in keep.split("/"):  # climbs out of the home: not a home path
            whole = "…/" + whole.rstrip("/").rsplit("/", 1)[-1]
        out.append(whole + _ABS_PATH.sub(_shorten, part[len(keep) :]))
    return "".join(out)


def make_fingerprint(check: str, subject: str) -> str:
    """A stable id for "this problem": the same check on the same subject, pass after pass."""
    digest = hashlib.sha256(f"{check}\x00{subject}".encode()).hexdigest()
    return digest[:32]


def _clip(text: str) -> str:
    text = " ".join(str(text).split())  # one line: no injected newlines in logs or chat
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


@dataclass(frozen=True)
class Event:
    """One observation of a monitor check.

    ``fingerprint`` defaults to :func:`make_fingerprint` (check id + subject); a check that
    reports several distinct problems on one subject passes its own. ``resolved`` marks the
    notice that a previously open problem has cleared.
    """

    check: str
    severity: SecurityLevel
    subject: str
    message: str
    time: datetime
    details: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    resolved: bool = False

    def __post_init__(self) -> None:
        if not self.check or not isinstance(self.check, str):
            raise InvalidError("an event needs a check id such as 'files.permissions'")
        try:
            severity = SecurityLevel(self.severity)
        except ValueError:
            raise InvalidError(
                f"event severity {self.severity!r} is not one of "
                f"{', '.join(s.name for s in SecurityLevel)}"
            ) from None
        if not isinstance(self.time, datetime) or self.time.tzinfo is None:
            raise InvalidError("an event time must be a timezone-aware datetime (use utcnow())")
        details = dict(self.details or {})
        check_payload_safe(details, "details")
        set_ = object.__setattr__
        set_(self, "severity", severity)
        set_(self, "check", _clip(self.check))
        set_(self, "subject", _clip(self.subject))
        set_(self, "message", _clip(self.message))
        set_(self, "time", self.time.astimezone(UTC))
        set_(self, "details", details)
        if not self.fingerprint:
            set_(self, "fingerprint", make_fingerprint(self.check, self.subject))

    @property
    def suspicious(self) -> bool:
        """True when the check is one of :data:`SUSPICIOUS_CHECKS`."""
        return self.check in SUSPICIOUS_CHECKS

    def resolve(self, now: datetime, message: str | None = None) -> Event:
        """The "resolved" notice for this problem, at ``now``."""
        return replace(
            self,
            time=now,
            resolved=True,
            message=message or f"resolved: {self.message}",
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of an event (documented in docs/monitoring.md)."""
        return {
            "check": self.check,
            "severity": self.severity.name,
            "severity_level": int(self.severity),
            "subject": self.subject,
            "message": self.message,
            "time": iso(self.time),
            "fingerprint": self.fingerprint,
            "resolved": self.resolved,
            "suspicious": self.suspicious,
            "details": dict(self.details),
        }


SyncHandler = Callable[[Event], Any]
AsyncHandler = Callable[[Event], Awaitable[Any]]
Handler = Callable[[Event], Any]  # sync, or async returning an awaitable


@dataclass(frozen=True)
class _Registration:
    fn: Handler
    min_severity: SecurityLevel
    checks: frozenset[str] | None  # None: every check
    is_async: bool

    def wants(self, event: Event) -> bool:
        if event.severity < self.min_severity:
            return False
        return self.checks is None or event.check in self.checks


class SecurityMonitor:
    """Fan events out to registered handlers; a failing handler is logged, never fatal.

    Sync handlers run in the emitting thread. Async handlers run on the caller's running event
    loop when ``emit`` is called from inside one (tasks are kept until done), otherwise on an
    event loop in the monitor's own daemon thread, started on first use, so a synchronous
    daemon can still use ``async def`` handlers.
    """

    def __init__(self) -> None:
        self._handlers: list[_Registration] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pending: set[Future[Any] | asyncio.Task[Any]] = set()
        self.handler_failures = 0

    # -- registration -------------------------------------------------------------------------

    def add_handler(
        self,
        fn: Handler,
        *,
        severity: SecurityLevel | int = SecurityLevel.INFO,
        checks: Iterable[str] | None = None,
    ) -> Handler:
        """Register ``fn`` for events at or above ``severity`` (optionally only ``checks``)."""
        if not callable(fn):
            raise InvalidError("an event handler must be a function or coroutine function")
        reg = _Registration(
            fn=fn,
            min_severity=SecurityLevel(severity),
            checks=frozenset(checks) if checks is not None else None,
            is_async=inspect.iscoroutinefunction(fn),
        )
        with self._lock:
            self._handlers.append(reg)
        return fn

    def remove_handler(self, fn: Handler) -> None:
        """Unregister every registration of ``fn``."""
        with self._lock:
            self._handlers = [r for r in self._handlers if r.fn is not fn]

    def on_event(
        self,
        severity: SecurityLevel | int = SecurityLevel.INFO,
        *,
        checks: Iterable[str] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Decorator: ``@monitor.on_event(severity=SecurityLevel.HIGH)`` (at-or-above)."""
        return lambda fn: self.add_handler(fn, severity=severity, checks=checks)

    def on_suspicious_activity(
        self, fn: Handler | None = None, *, severity: SecurityLevel | int = SecurityLevel.INFO
    ) -> Any:
        """Decorator for events of :data:`SUSPICIOUS_CHECKS`; usable with or without ``()``."""

        def register(f: Handler) -> Handler:
            return self.add_handler(f, severity=severity, checks=SUSPICIOUS_CHECKS)

        return register(fn) if fn is not None else register

    # -- dispatch -----------------------------------------------------------------------------

    def _matching(self, event: Event) -> list[_Registration]:
        if not isinstance(event, Event):
            raise InvalidError(f"emit() takes an Event, not a {type(event).__name__}")
        with self._lock:
            return [r for r in self._handlers if r.wants(event)]

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to every matching handler; never raises because of a handler."""
        for reg in self._matching(event):
            if reg.is_async:
                self._schedule(reg, event)
            else:
                self._call_sync(reg, event)

    async def emit_async(self, event: Event) -> None:
        """Deliver ``event`` and await every matching async handler on the current loop."""
        import asyncio

        coros = []
        for reg in self._matching(event):
            if reg.is_async:
                coros.append(self._run_async(reg, event))
            else:
                self._call_sync(reg, event)
        if coros:
            await asyncio.gather(*coros)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait for async handlers scheduled on the monitor's own loop; True if all finished."""
        import concurrent.futures

        with self._lock:
            futures = [f for f in self._pending if isinstance(f, Future)]
        if not futures:
            return True
        _, not_done = concurrent.futures.wait(futures, timeout=timeout)
        return not not_done

    def close(self, timeout: float | None = 5.0) -> None:
        """Finish pending async handlers (up to ``timeout``) and stop the monitor's loop thread."""
        self.flush(timeout)
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            if not thread.is_alive():
                loop.close()
        self._loop = self._thread = None

    # -- internals ----------------------------------------------------------------------------

    def _failed(self, reg: _Registration, event: Event, exc: BaseException) -> None:
        # The exception text may come from user code and could echo anything: log its type
        # only; the traceback is available at debug level for whoever runs with --debug.
        self.handler_failures += 1
        name = getattr(reg.fn, "__qualname__", repr(reg.fn))
        log.error(
            "event handler %s failed on %s (%s): %s; the monitor continues",
            name,
            event.check,
            event.subject,
            type(exc).__name__,
        )
        log.debug("event handler %s traceback", name, exc_info=exc)

    def _call_sync(self, reg: _Registration, event: Event) -> None:
        try:
            reg.fn(event)
        except Exception as exc:
            self._failed(reg, event, exc)

    async def _run_async(self, reg: _Registration, event: Event) -> None:
        try:
            await reg.fn(event)  # type: ignore[misc]
        except Exception as exc:
            self._failed(reg, event, exc)

    def _schedule(self, reg: _Registration, event: Event) -> None:
        import asyncio

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None:
            task = running.create_task(self._run_async(reg, event))
            self._track(task)
            return
        future = asyncio.run_coroutine_threadsafe(self._run_async(reg, event), self._own_loop())
        self._track(future)

    def _track(self, item: Future[Any] | asyncio.Task[Any]) -> None:
        with self._lock:
            self._pending.add(item)

        def done(_: object) -> None:
            with self._lock:
                self._pending.discard(item)

        item.add_done_callback(done)

    def _own_loop(self) -> asyncio.AbstractEventLoop:
        import asyncio

        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="ekm-monitor-handlers", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop
