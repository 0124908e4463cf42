"""Backups proven by the audit log: read as a stream, and only from a chain that verifies."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.audit_cli.conftest import findings, items

RULE = "HIPAA-164.308(a)(7)-BACKUP"


def _passphrase_bundle(mgr: Any, home: Path) -> Path:
    """A passphrase bundle of every key: it cannot be opened here, only the log proves it."""
    path = home / "backups" / "all.ekmbak"
    path.parent.mkdir(mode=0o700, exist_ok=True)
    mgr.backup_create(mode="passphrase", passphrase="correct horse battery", path=path)
    os.chmod(path, 0o600)
    return path


def test_a_bundle_matching_a_logged_backup_create_counts(unlocked, home, audit_json) -> None:
    _passphrase_bundle(unlocked, home)
    _, rep = audit_json("--compliance", "hipaa", "--verbose")
    assert items(rep, "passed", RULE, "rsa")
    assert not findings(rep, RULE, "rsa")


def test_a_broken_chain_proves_no_bundle(unlocked, home, audit_json) -> None:
    _passphrase_bundle(unlocked, home)
    log = home / "audit.log"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:1] + lines[2:]))  # one record removed: the chain breaks
    res, rep = audit_json("--compliance", "hipaa")
    assert findings(rep, RULE, "rsa")
    assert "audit log chain broken" in res.stderr
    assert "match no backup.create record" in res.stderr


def test_collect_keeps_the_chain_verification_for_the_report(unlocked) -> None:
    from ekm.auditlog import VerifyResult

    result, got = unlocked.audit_collected("hipaa", record=False)
    assert isinstance(got.log_verify, VerifyResult) and got.log_verify.ok
    assert got.log_verify.records == sum(1 for _ in unlocked.audit_log.records())
    assert result.keys_evaluated == got.keys_read > 0
