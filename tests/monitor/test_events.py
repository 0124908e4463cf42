"""Event validation, the secret guard and SecurityMonitor handler dispatch."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import datetime

import pytest

from ekm.crypto.keytypes import SecurityLevel
from ekm.errors import InvalidError
from ekm.monitor.events import (
    SUSPICIOUS_CHECKS,
    Event,
    SecurityMonitor,
    check_payload_safe,
    make_fingerprint,
)

from .conftest import NOW, make_event


def test_severity_is_an_ordered_security_level() -> None:
    event = make_event(severity=SecurityLevel.CRITICAL)
    assert event.severity >= SecurityLevel.HIGH
    assert make_event(severity=SecurityLevel.LOW).severity < SecurityLevel.MEDIUM
    assert Event("c", 3, "s", "m", NOW).severity is SecurityLevel.HIGH  # ints are coerced


def test_fingerprint_is_stable_per_check_and_subject() -> None:
    a, b = make_event(), make_event()
    assert a.fingerprint == b.fingerprint == make_fingerprint("files.permissions", a.subject)
    assert make_event(subject="rsa").fingerprint != a.fingerprint
    assert make_event(check="files.owner").fingerprint != a.fingerprint
    # no ambiguity between ("a.b", "c") and ("a", "b.c")-style splits
    assert make_fingerprint("ab", "c") != make_fingerprint("a", "bc")


def test_to_dict_shape_and_resolve() -> None:
    event = make_event(mode="0644")
    d = event.to_dict()
    assert d == {
        "check": "files.permissions",
        "severity": "HIGH",
        "severity_level": 3,
        "subject": "database_encryption",
        "message": event.message,
        "time": "2030-01-02T03:04:05Z",
        "fingerprint": event.fingerprint,
        "resolved": False,
        "suspicious": True,
        "details": {"mode": "0644"},
    }
    done = event.resolve(NOW)
    assert done.resolved and done.fingerprint == event.fingerprint
    assert done.message.startswith("resolved: ")


def test_fields_are_single_line_and_bounded() -> None:
    event = Event("c", SecurityLevel.LOW, "key\nINJECTED", "line1\r\nline2" + "x" * 5000, NOW)
    assert "\n" not in event.subject and "\n" not in event.message
    assert len(event.message) <= 2000


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"check": ""}, "needs a check id"),
        ({"severity": 9}, "is not one of INFO, LOW, MEDIUM, HIGH, CRITICAL"),
        ({"time": datetime(2030, 1, 1)}, "timezone-aware"),
    ],
)
def test_invalid_events_are_refused(kwargs: dict, fragment: str) -> None:
    base = dict(check="c", severity=SecurityLevel.LOW, subject="s", message="m", time=NOW)
    base.update(kwargs)
    with pytest.raises(InvalidError, match=fragment) as info:
        Event(**base)
    assert info.value.exit_code == 3


@pytest.mark.parametrize(
    ("details", "fragment"),
    [
        ({"material": "00"}, r"details\.material looks like a secret field"),
        ({"passphrase": "x"}, "looks like a secret field"),
        ({"pin": "1234"}, "looks like a secret field"),
        ({"nested": {"api_key": "x"}}, r"details\.nested\.api_key looks like a secret"),
        ({"raw": b"\x00\x01"}, r"details\.raw holds raw bytes"),
        ({"pem": "-----BEGIN PRIVATE KEY-----\nMIIE"}, "contains a PEM private key"),
        ({"obj": object()}, "is a object; events may carry only text"),
    ],
)
def test_secret_guard_refuses_and_never_echoes_the_value(details: dict, fragment: str) -> None:
    with pytest.raises(InvalidError, match=fragment) as info:
        make_event(**details)
    assert "1234" not in str(info.value) and "MIIE" not in str(info.value)


def test_secret_guard_accepts_ordinary_details() -> None:
    check_payload_safe({"mode": "0644", "mapping": [1, 2.5, True, None], "spinning": "ok"})


def test_handlers_by_severity_at_or_above_and_suspicious() -> None:
    monitor = SecurityMonitor()
    seen: dict[str, list[str]] = {"high": [], "all": [], "sus": []}

    @monitor.on_event(severity=SecurityLevel.HIGH)
    def high(event: Event) -> None:
        seen["high"].append(event.check)

    @monitor.on_event()
    def every(event: Event) -> None:
        seen["all"].append(event.check)

    @monitor.on_suspicious_activity
    def sus(event: Event) -> None:
        seen["sus"].append(event.check)

    monitor.emit(make_event("rotation.overdue", severity=SecurityLevel.MEDIUM))
    monitor.emit(make_event("files.tampered", severity=SecurityLevel.CRITICAL))
    monitor.emit(make_event("backend.down", severity=SecurityLevel.HIGH))
    assert seen == {
        "high": ["files.tampered", "backend.down"],
        "all": ["rotation.overdue", "files.tampered", "backend.down"],
        "sus": ["files.tampered"],
    }
    assert "files.tampered" in SUSPICIOUS_CHECKS
    monitor.remove_handler(every)
    monitor.emit(make_event("x"))
    assert seen["all"][-1] == "backend.down"


def test_a_failing_handler_is_logged_and_the_others_still_run(caplog) -> None:
    monitor = SecurityMonitor()
    after: list[str] = []

    @monitor.on_event()
    def broken(event: Event) -> None:
        raise RuntimeError("handler bug with s3cr3t inside")

    @monitor.on_event()
    def fine(event: Event) -> None:
        after.append(event.subject)

    with caplog.at_level(logging.ERROR, logger="ekm.monitor"):
        monitor.emit(make_event())
    assert after == ["database_encryption"]
    assert monitor.handler_failures == 1
    assert "broken failed on files.permissions (database_encryption): RuntimeError" in caplog.text
    assert "s3cr3t" not in caplog.text  # user exception text may hold anything: not logged


def test_async_handler_runs_on_the_monitors_own_loop_without_a_caller_loop() -> None:
    monitor = SecurityMonitor()
    ran: list[tuple[str, str]] = []

    @monitor.on_event(severity=SecurityLevel.HIGH)
    async def notify(event: Event) -> None:
        await asyncio.sleep(0)
        ran.append((event.check, threading.current_thread().name))

    @monitor.on_event()
    async def broken(event: Event) -> None:
        raise ValueError("boom")

    monitor.emit(make_event())
    assert monitor.flush(timeout=10)
    monitor.close()
    assert ran == [("files.permissions", "ekm-monitor-handlers")]
    assert monitor.handler_failures == 1


def test_async_handlers_use_the_callers_running_loop() -> None:
    monitor = SecurityMonitor()
    loops: list[object] = []

    @monitor.on_event()
    async def handler(event: Event) -> None:
        loops.append(asyncio.get_running_loop())

    async def main() -> object:
        monitor.emit(make_event())  # scheduled as a task on this loop
        await monitor.emit_async(make_event(subject="rsa"))  # awaited
        await asyncio.sleep(0)
        return asyncio.get_running_loop()

    loop = asyncio.run(main())
    assert loops == [loop, loop]


def test_emit_refuses_non_events_and_non_callables() -> None:
    monitor = SecurityMonitor()
    with pytest.raises(InvalidError, match="emit\\(\\) takes an Event, not a dict"):
        monitor.emit({"check": "x"})  # type: ignore[arg-type]
    with pytest.raises(InvalidError, match="must be a function"):
        monitor.add_handler("not callable")  # type: ignore[arg-type]
