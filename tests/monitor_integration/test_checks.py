"""The checks through the Python API (``KeyManager.get_security_monitor()``) on a real home.

Time is a parameter (``now=``); every problem is made on disk the way it would happen.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta

import pytest

from ekm.auditlog import AuditLog
from ekm.crypto.keytypes import SecurityLevel
from ekm.errors import InvalidError, UsageError
from ekm.manager import KeyManager
from ekm.monitor.daemon import MonitorOptions
from ekm.timeutil import utcnow


def _checks(events) -> set[tuple[str, str]]:
    return {(e.check, e.subject) for e in events}


@pytest.fixture
def mgr(home):
    return KeyManager(home, env={})


def test_a_fresh_home_has_no_findings(mgr):
    result = mgr.monitor_check()
    assert result.events == []
    assert {k.name for k in result.snapshot.keys} >= {"database_encryption", "rsa"}


def test_permissions_owner_and_handlers(mgr, home):
    monitor = mgr.get_security_monitor()
    suspicious, high, everything = [], [], []
    monitor.on_suspicious_activity(suspicious.append)

    @monitor.on_event(severity=SecurityLevel.HIGH)
    async def page(event):
        high.append(event)

    monitor.add_handler(everything.append)
    (home / "keys" / "jwt_signing.json").chmod(0o640)
    home.chmod(0o750)
    events = monitor.check_now()
    monitor.flush(5)
    assert ("files.permissions", "keys/jwt_signing.json") in _checks(events)
    assert ("files.permissions", ".") in _checks(events)
    assert all(e.severity is SecurityLevel.HIGH for e in events if e.check == "files.permissions")
    assert {e.check for e in suspicious} == {"files.permissions"}
    assert {e.fingerprint for e in high} >= {e.fingerprint for e in suspicious}
    # Fixed: the next pass emits resolved notices and no open problem.
    (home / "keys" / "jwt_signing.json").chmod(0o600)
    home.chmod(0o700)
    everything.clear()
    assert monitor.check_now() == []
    resolved = {(e.check, e.resolved) for e in everything if e.severity > SecurityLevel.INFO}
    assert resolved == {("files.permissions", True)}
    monitor.close()


def test_only_changes_emits_an_open_problem_once(mgr, home):
    monitor = mgr.get_security_monitor()
    seen = []
    monitor.add_handler(seen.append)
    (home / "keys" / "hmac.json").chmod(0o644)
    for _ in range(3):
        monitor.check_now(only_changes=True)
    assert [e.check for e in seen] == ["files.permissions"]


def test_async_check_now_awaits_async_handlers(mgr, home):
    monitor = mgr.get_security_monitor()
    got = []

    async def handler(event):
        await asyncio.sleep(0)
        got.append(event.check)

    monitor.on_event(SecurityLevel.MEDIUM)(handler)
    (home / "keys" / "stray.bak").write_bytes(b"copy")
    (home / "keys" / "stray.bak").chmod(0o600)
    events = asyncio.run(monitor.check_now_async())
    assert ("files.unexpected", "keys/stray.bak") in _checks(events)
    assert got == ["files.unexpected"]


def test_unexpected_files_and_links(mgr, home):
    (home / "keys" / "notes.txt").write_text("x")
    (home / "keys" / "notes.txt").chmod(0o600)
    (home / "keys" / "evil.json").symlink_to("/etc/passwd")
    os.symlink("/tmp", home / "elsewhere")
    events = mgr.monitor_check().events
    by = {(e.check, e.subject): e for e in events}
    assert by[("files.unexpected", "keys/notes.txt")].severity is SecurityLevel.MEDIUM
    assert by[("files.unexpected", "keys/evil.json")].severity is SecurityLevel.HIGH
    assert by[("files.unexpected", "elsewhere")].severity is SecurityLevel.HIGH


def test_tampered_truncated_and_deleted_keys(mgr, home):
    monitor = mgr.get_security_monitor()
    assert monitor.check_now() == []
    path = home / "keys" / "api_master.json"
    doc = json.loads(path.read_bytes())
    doc["meta"]["policy"]["interval"] = "9999d"
    path.write_text(json.dumps(doc))  # mode kept: only the MAC can tell
    (home / "keys" / "session.json").write_bytes(b'{"format": 1, "me')
    (home / "keys" / "api_internal.json").unlink()
    by = {(e.check, e.subject): e for e in monitor.check_now()}
    assert by[("files.tampered", "api_master")].severity is SecurityLevel.CRITICAL
    assert "integrity check" in by[("files.tampered", "api_master")].message
    assert by[("files.tampered", "session")].severity is SecurityLevel.CRITICAL
    assert by[("files.deleted", "api_internal")].severity is SecurityLevel.CRITICAL
    # A deletion stays reported on later passes until the key is back.
    assert ("files.deleted", "api_internal") in _checks(monitor.check_now())


def test_missing_master_key_file(mgr, home):
    (home / "master.key").unlink()
    by = {(e.check, e.subject): e for e in KeyManager(home, env={}).monitor_check().events}
    assert by[("files.deleted", "master.key")].severity is SecurityLevel.CRITICAL


def test_rotation_overdue_and_notify_window_use_now(mgr):
    soon = utcnow() + timedelta(days=6, hours=12)  # session: 7d interval, 1d notice
    by = {(e.check, e.subject): e for e in mgr.monitor_check(now=soon).events}
    assert by[("rotation.due_soon", "session")].severity is SecurityLevel.LOW
    late = utcnow() + timedelta(days=400)
    by = {(e.check, e.subject): e for e in mgr.monitor_check(now=late).events}
    assert by[("rotation.overdue", "rsa")].severity is SecurityLevel.HIGH
    assert "ekm rotate rsa" in by[("rotation.overdue", "rsa")].message
    snap = mgr.monitor_check(now=late).snapshot
    assert all(k.overdue for k in snap.keys)


def _set_usage(mgr, name: str, count: int) -> None:
    mgr.unlock()
    key = mgr.keystore.load(name, refresh=True)
    key.versions[0].usage_count = count
    mgr.keystore.save(key)


def test_usage_near_and_past_the_gcm_limit(mgr):
    _set_usage(mgr, "database_encryption", 2**31 + 1)  # warn fraction 0.5 by default
    _set_usage(mgr, "session", 2**32)
    _set_usage(mgr, "hmac", 2**40)  # HMAC has no nonce limit: never reported
    by = {(e.check, e.subject): e for e in mgr.monitor_check().events}
    assert by[("key.usage_limit", "database_encryption")].severity is SecurityLevel.MEDIUM
    assert by[("key.usage_limit", "session")].severity is SecurityLevel.CRITICAL
    assert ("key.usage_limit", "hmac") not in by
    assert "50%" in by[("key.usage_limit", "database_encryption")].message


def test_audit_log_edit_truncation_deletion_and_regression(mgr, home):
    monitor = mgr.get_security_monitor(audit=False)
    assert monitor.check_now() == []
    log = home / "audit.log"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-1]))  # truncated: audit.log.head remembers more
    by = {e.check: e for e in monitor.check_now()}
    assert by["auditlog.chain"].severity is SecurityLevel.CRITICAL
    assert "truncated" in by["auditlog.chain"].message
    # Log and head both deleted, then a fresh chain: only the remembered seq can tell.
    log.unlink()
    (home / "audit.log.head").unlink()
    assert "missing" in {e.check: e for e in monitor.check_now()}["auditlog.chain"].message
    AuditLog(log).append("status")
    msg = {e.check: e for e in monitor.check_now()}["auditlog.chain"].message
    assert "went back from seq" in msg


def test_monitor_events_are_audited_on_open_and_resolve_only(mgr, home):
    monitor = mgr.get_security_monitor()
    (home / "keys" / "rsa.json").chmod(0o604)
    monitor.check_now()
    monitor.check_now()
    (home / "keys" / "rsa.json").chmod(0o600)
    monitor.check_now()
    records = [r for r in mgr.audit_log.records() if r["op"] == "monitor.event"]
    assert [(r["check"], r["result"], r["severity"]) for r in records] == [
        ("files.permissions", "firing", "HIGH"),
        ("files.permissions", "resolved", "HIGH"),
    ]
    assert mgr.audit_log.verify().ok


def test_failed_operation_burst(mgr, home):
    log = mgr.audit_log
    now = utcnow()
    for _ in range(6):
        log.append("unlock", result="denied", error="IntegrityError", now=now)
    log.append("apikey.verify", result="denied", now=now - timedelta(hours=1))  # outside
    by = {e.check: e for e in mgr.monitor_check(now=now).events}
    ev = by["activity.failed_burst"]
    assert ev.severity is SecurityLevel.HIGH and ev.suspicious
    assert ev.details["failures"] == 6 and ev.details["threshold"] == 5
    # Five or fewer in the window is not a burst.
    later = now + timedelta(minutes=6)
    assert "activity.failed_burst" not in {e.check for e in mgr.monitor_check(now=later).events}


def test_locked_passphrase_home_says_the_mac_check_was_skipped(phome):
    result = KeyManager(phome, env={}).monitor_check()
    (ev,) = [e for e in result.events if e.check == "integrity.skipped"]
    assert ev.severity is SecurityLevel.INFO and "EKM_PASSPHRASE" in ev.message
    unlocked = KeyManager(phome, env={"EKM_PASSPHRASE": "correct horse battery staple"})
    assert unlocked.monitor_check().events == []


def test_audit_logger_writes_records_and_refuses_secrets(mgr):
    audit = mgr.get_audit_logger()
    asyncio.run(audit.log_key_access("database_encryption", "decrypt", {"request_id": "r-1"}))
    asyncio.run(audit.log_key_rotation("jwt_signing", {"reason": "scheduled"}))
    asyncio.run(audit.log_security_event("login_failed", {"user": "bob"}, severity="high"))
    recs = [r for r in mgr.audit_log.records() if r["op"].startswith("app.")]
    assert [(r["op"], r.get("key")) for r in recs] == [
        ("app.key_access", "database_encryption"),
        ("app.key_rotation", "jwt_signing"),
        ("app.security_event", None),
    ]
    assert recs[0]["action"] == "decrypt" and recs[0]["context"] == {"request_id": "r-1"}
    assert recs[2]["severity"] == "HIGH" and recs[2]["kind"] == "login_failed"
    with pytest.raises(InvalidError, match=r"context\.api_token looks like a secret field"):
        asyncio.run(audit.log_key_access("hmac", "mac", {"api_token": "abc"}))
    with pytest.raises(InvalidError, match="raw bytes"):
        asyncio.run(audit.log_security_event("x", {"blob": b"\x00"}))
    with pytest.raises(InvalidError, match="one line"):
        asyncio.run(audit.log_key_rotation("bad\nname"))
    with pytest.raises(UsageError, match="'urgent' is not one of"):
        asyncio.run(audit.log_security_event("x", severity="urgent"))
    assert len([r for r in mgr.audit_log.records() if r["op"].startswith("app.")]) == 3


def test_options_flags_override_config_and_bad_values_are_usage_errors(mgr):
    opts = MonitorOptions.resolve(mgr.config, {"interval": "2m", "fail_on": "critical"})
    assert opts.interval == 120 and opts.fail_on is SecurityLevel.CRITICAL
    assert opts.alert_levels == {SecurityLevel.CRITICAL, SecurityLevel.HIGH, SecurityLevel.MEDIUM}
    assert MonitorOptions.resolve(mgr.config).interval == 60
    with pytest.raises(UsageError, match=r"--interval 'soon': give seconds"):
        MonitorOptions.resolve(mgr.config, {"interval": "soon"})
    with pytest.raises(UsageError, match=r"--interval must be from 0\.5s to 1 day"):
        MonitorOptions.resolve(mgr.config, {"interval": "0"})
    with pytest.raises(UsageError, match="--metrics-port 70000 is out of range"):
        MonitorOptions.resolve(mgr.config, {"metrics_port": 70000})
