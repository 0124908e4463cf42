"""Review 2: state changes that wrote the keystore and *then* found the audit log unwritable.

``recover``, ``enable`` and ``purge`` saved the key document first and appended the record
afterwards, without ``ensure_writable`` up front: with ``audit.log`` replaced by a directory
(or a FIFO, or a full disk) the version came back to life, or its material was shredded, and
no record said so. Each test breaks the log, runs the operation, and checks both the error
(AuditLogError, exit 4) and that the key documents are byte-for-byte unchanged.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from ekm.errors import AuditLogError
from ekm.manager import KeyManager
from tests.rotation.helpers import snapshot, t0


def _keys(home: Path) -> dict[str, tuple[int, bytes | None]]:
    return snapshot(home / "keys")


def _break_log(home: Path, how: str) -> None:
    log = home / "audit.log"
    log.unlink()
    if how == "directory":
        log.mkdir(mode=0o700)
    else:
        os.mkfifo(log, 0o600)


@pytest.fixture
def soft_deleted(mgr: KeyManager, fhome: Path) -> KeyManager:
    """hmac at v2 with v1 soft-deleted (recoverable for 7 days from t0 + 1d)."""
    when = t0(fhome) + timedelta(days=1)
    mgr.rotate(["hmac"], now=when)
    mgr.destroy_version("hmac", 1, recovery_window="7d", now=when)
    return mgr


@pytest.mark.parametrize("how", ["directory", "fifo"])
def test_recover_is_refused_when_the_log_cannot_be_written(soft_deleted, fhome, how) -> None:
    _break_log(fhome, how)
    before = _keys(fhome)
    fresh = KeyManager(fhome, env={})
    with pytest.raises(AuditLogError, match=r"cannot write the audit log .* refused"):
        fresh.recover_version("hmac", 1, now=t0(fhome) + timedelta(days=2))
    assert _keys(fhome) == before


def test_enable_is_refused_when_the_log_cannot_be_written(soft_deleted, fhome) -> None:
    soft_deleted.recover_version("hmac", 1, now=t0(fhome) + timedelta(days=2))  # -> disabled
    _break_log(fhome, "directory")
    before = _keys(fhome)
    fresh = KeyManager(fhome, env={})
    with pytest.raises(AuditLogError, match="cannot write the audit log"):
        fresh.enable_version("hmac", 1, now=t0(fhome) + timedelta(days=3))
    assert _keys(fhome) == before


def test_purge_is_refused_when_the_log_cannot_be_written(soft_deleted, fhome) -> None:
    _break_log(fhome, "directory")
    before = _keys(fhome)
    fresh = KeyManager(fhome, env={})
    with pytest.raises(AuditLogError, match="cannot write the audit log"):
        fresh.purge_destroyed(now=t0(fhome) + timedelta(days=30))  # window long over
    assert _keys(fhome) == before  # the material of v1 is still there (not shredded unlogged)


@pytest.mark.parametrize("args", [("keys", "recover", "hmac", "--version", "1"), ("keys", "purge")])
def test_cli_refuses_with_exit_4_and_changes_nothing(soft_deleted, fhome, frun, args) -> None:
    """At the real clock, v1 (soft-deleted at t0 + 1d for 7d) is recoverable: only the log
    stands in the way, and it must."""
    _break_log(fhome, "directory")
    before = _keys(fhome)
    frun(*args).expect_error(4, "cannot write the audit log", "refused")
    assert _keys(fhome) == before
