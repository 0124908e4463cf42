"""A full disk in the middle of a write (ENOSPC injected into ``os.write`` in-process).

Mounting a tiny tmpfs needs privileges a CI runner may lack, so the fault is injected at the
system-call boundary instead: ``os.write`` fails with ENOSPC only for the files a test
targets (chosen by the path behind the descriptor), everything else writes normally.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ekm.crypto.keytypes import KeyUsage
from ekm.errors import AuditLogError, StorageError
from ekm.manager import KeyManager
from tests.foundation.helpers import key_path


def _disk_full_for(monkeypatch: pytest.MonkeyPatch, match: Callable[[str], bool]) -> list[str]:
    """Make os.write raise ENOSPC for descriptors whose path satisfies ``match``."""
    real_write = os.write
    hits: list[str] = []

    def write(fd: int, data: bytes) -> int:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if match(target):
            hits.append(target)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)  # every module sees it (ekm.storage too)
    return hits


def _keys_tmp(home: Path) -> Callable[[str], bool]:
    keys = str(home / "keys") + "/."
    return lambda target: target.startswith(keys) and target.endswith(".tmp")


def _audit_log(home: Path) -> Callable[[str], bool]:
    return lambda target: target == str(home / "audit.log")


def test_disk_full_while_creating_a_key(home, monkeypatch):
    before = sorted(os.listdir(home / "keys"))
    audit_before = (home / "audit.log").read_bytes().splitlines()
    hits = _disk_full_for(monkeypatch, _keys_tmp(home))
    mgr = KeyManager(home, env={})
    with pytest.raises(StorageError, match="the disk is full; the previous version was kept"):
        mgr.generate("billing", type="aes-256-gcm")
    assert hits, "the fault was never injected"
    assert sorted(os.listdir(home / "keys")) == before  # no key file, no temp file left
    # the record is written first (fail closed), then the failure is recorded beside it
    new = [json.loads(line) for line in (home / "audit.log").read_bytes().splitlines()]
    new = new[len(audit_before) :]
    assert [(r["op"], r["key"], r["result"]) for r in new] == [
        ("generate", "billing", "ok"),
        ("generate", "billing", "denied"),
    ]
    assert new[1]["error"] == "StorageError"
    monkeypatch.undo()
    fresh = KeyManager(home, env={})
    assert len(fresh.get_key("database_encryption", KeyUsage.ENCRYPTION)) == 32
    fresh.generate("billing", type="aes-256-gcm")  # space is back: the same call now works
    assert key_path(home, "billing").is_file()


def test_disk_full_while_rewriting_a_key_keeps_the_old_file(home, monkeypatch):
    path = key_path(home, "database_encryption")
    old = path.read_bytes()
    mgr = KeyManager(home, env={})
    secret = mgr.get_key("database_encryption", KeyUsage.ENCRYPTION)
    key = mgr.key_info("database_encryption")
    key.labels["owner"] = "payments"
    _disk_full_for(monkeypatch, _keys_tmp(home))
    with pytest.raises(StorageError, match=str(path)):
        mgr.keystore.save(key)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert not [n for n in os.listdir(home / "keys") if n.endswith(".tmp")]
    fresh = KeyManager(home, env={})
    assert fresh.get_key("database_encryption", KeyUsage.ENCRYPTION) == secret
    assert fresh.key_info("database_encryption").labels == {}


def test_disk_full_on_the_audit_log_refuses_get_key(home, monkeypatch):
    hits = _disk_full_for(monkeypatch, _audit_log(home))
    mgr = KeyManager(home, env={})
    with pytest.raises(AuditLogError, match="the operation was refused"):
        mgr.get_key("hmac", KeyUsage.MAC)
    assert hits


def test_disk_full_on_the_audit_log_refuses_generate(home, monkeypatch):
    _disk_full_for(monkeypatch, _audit_log(home))
    mgr = KeyManager(home, env={})
    with pytest.raises(AuditLogError, match="the operation was refused"):
        mgr.generate("billing", type="aes-256-gcm")
    assert not key_path(home, "billing").exists()
    assert not [n for n in os.listdir(home / "keys") if n.endswith(".tmp")]
