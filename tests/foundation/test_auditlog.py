"""The audit log: every key operation leaves a record, the chain catches edits, deletions,
reordering and truncation, no material ever lands in it, and when it cannot be written the
operation is refused (fail closed)."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from ekm.crypto.keytypes import KeyUsage
from ekm.manager import KeyManager
from tests.foundation.helpers import DEFAULT_KEYS, key_path, snapshot


def _manager(home: Path) -> KeyManager:
    return KeyManager(home, env={})


def _records(home: Path) -> list[dict]:
    return [json.loads(line) for line in (home / "audit.log").read_bytes().splitlines()]


def _verify(home: Path):
    mgr = _manager(home)
    mgr.unlock()  # keyed verification: MACs are checked too
    return mgr.audit_log.verify()


def _lines(home: Path) -> list[bytes]:
    return (home / "audit.log").read_bytes().splitlines(keepends=True)


def _write_lines(home: Path, lines: list[bytes]) -> None:
    (home / "audit.log").write_bytes(b"".join(lines))


def test_deploy_left_a_verified_chain(home):
    recs = _records(home)
    assert recs[0]["op"] == "deploy"
    assert sorted(r["key"] for r in recs if r["op"] == "generate") == sorted(DEFAULT_KEYS)
    res = _verify(home)
    assert res.ok, res.first_bad
    assert res.records == len(recs)
    assert res.keyed and res.unkeyed_tail == 0


def test_every_key_operation_appends_a_record(home):
    mgr = _manager(home)
    start = len(_records(home))
    mgr.generate("billing", type="ed25519")
    mgr.get_key("database_encryption", KeyUsage.ENCRYPTION)
    mgr.export_key("billing", public=True, fmt="pem")
    new = _records(home)[start:]
    got = [(r["op"], r.get("key"), r.get("version"), r["result"]) for r in new]
    assert got == [
        ("generate", "billing", 1, "ok"),
        ("key.read", "database_encryption", 1, "ok"),
        ("key.export", "billing", 1, "ok"),
    ]
    assert all(r["actor"] and r["time"].endswith("Z") and r["mac"] for r in new)
    assert _verify(home).ok


def test_cli_operations_are_audited_too(home, run):
    start = len(_records(home))
    run("keys", "export", "rsa", "--public").expect_ok()
    run("generate", "cli_key", "--type", "hmac-sha256").expect_ok()
    ops = [(r["op"], r.get("key")) for r in _records(home)[start:]]
    assert ops == [("key.export", "rsa"), ("generate", "cli_key")]


def test_wrong_usage_is_refused_before_material_is_read(home):
    from ekm.errors import UsageError

    start = len(_records(home))
    with pytest.raises(UsageError, match="is for encryption, not signing"):
        _manager(home).get_key("database_encryption", KeyUsage.SIGNING)
    assert not [r for r in _records(home)[start:] if r["op"] == "key.read"]


def test_no_material_appears_in_the_audit_log(home):
    mgr = _manager(home)
    secrets = {name: mgr.get_key(name) for name in DEFAULT_KEYS}
    mgr.export_key("rsa", public=False, fmt="pem")
    mgr.export_key("hmac", public=False, fmt="jwk")
    log = b"".join(p.read_bytes() for p in home.glob("audit.log*"))
    for name, secret in secrets.items():
        assert len(secret) >= 32, name
        probes = {
            secret.hex().encode(),
            secret.hex().upper().encode(),
            base64.b64encode(secret).rstrip(b"="),
            base64.urlsafe_b64encode(secret).rstrip(b"="),
        }
        # a 24-byte window of the secret is enough to prove a leak of any longer encoding
        probes |= {p[:32] for p in probes}
        for probe in probes:
            assert probe not in log, f"material of {name} found in the audit log"


def test_edited_record_is_detected_and_named(home):
    lines = _lines(home)
    rec = json.loads(lines[2])
    rec["key"] = "somebody_else"
    lines[2] = json.dumps(rec, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    _write_lines(home, lines)
    res = _verify(home)
    assert not res.ok
    assert res.first_bad.startswith("audit.log line 3")
    assert "MAC mismatch" in res.first_bad


def test_edit_with_recomputed_chain_still_fails_without_the_mac_key(home):
    """An attacker who fixes up every later ``prev`` still cannot forge the MACs."""
    import hashlib

    lines = _lines(home)
    for i in range(2, len(lines)):
        rec = json.loads(lines[i])
        if i == 2:
            rec["result"] = "error"
        else:
            rec["prev"] = hashlib.sha256(lines[i - 1].rstrip(b"\n")).hexdigest()
        lines[i] = json.dumps(rec, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    _write_lines(home, lines)
    res = _verify(home)
    assert not res.ok and "line 3" in res.first_bad and "MAC mismatch" in res.first_bad


def test_deleted_record_is_detected(home):
    lines = _lines(home)
    del lines[3]
    _write_lines(home, lines)
    res = _verify(home)
    assert not res.ok
    assert res.first_bad.startswith("audit.log line 4")
    assert "deleted or reordered" in res.first_bad


def test_reordered_records_are_detected(home):
    lines = _lines(home)
    lines[2], lines[3] = lines[3], lines[2]
    _write_lines(home, lines)
    res = _verify(home)
    assert not res.ok and res.first_bad.startswith("audit.log line 3")


def test_truncated_tail_is_detected_through_the_head_file(home):
    lines = _lines(home)
    _write_lines(home, lines[:-2])
    res = _verify(home)
    assert not res.ok
    assert "truncated" in res.first_bad and "audit.log.head" in res.first_bad


def test_torn_last_line_is_detected(home):
    data = (home / "audit.log").read_bytes()
    (home / "audit.log").write_bytes(data[:-20])
    res = _verify(home)
    assert not res.ok and "truncated record" in res.first_bad


def test_deleted_log_is_detected(home):
    (home / "audit.log").unlink()
    res = _verify(home)
    assert not res.ok and "missing" in res.first_bad


# --------------------------------------------------------------------------------------------
# Fail closed: no audit record, no operation
# --------------------------------------------------------------------------------------------
def _replace_log_with_directory(home: Path) -> None:
    log = home / "audit.log"
    log.unlink()
    log.mkdir(mode=0o700)


def _replace_log_with_symlink(home: Path) -> None:
    log = home / "audit.log"
    target = home.parent / "elsewhere.log"
    shutil.move(log, target)
    log.symlink_to(target)


@pytest.mark.parametrize(
    ("breaker", "why"),
    [(_replace_log_with_directory, "refused"), (_replace_log_with_symlink, "symbolic link")],
)
@pytest.mark.parametrize(
    "args",
    [
        ("generate", "newkey", "--type", "aes-256-gcm"),
        ("keys", "export", "hmac", "--reveal", "--format", "jwk"),
        ("keys", "export", "rsa", "--public"),
    ],
)
def test_unwritable_audit_log_refuses_the_operation(home, run, breaker, why, args):
    breaker(home)
    keys_before = {p.name: p.read_bytes() for p in (home / "keys").iterdir()}
    res = run(*args)
    res.expect_error(4, str(home / "audit.log"), why)
    assert res.stdout == ""  # no material released without its audit record
    assert {p.name: p.read_bytes() for p in (home / "keys").iterdir()} == keys_before


def test_unwritable_audit_log_refuses_get_key(home):
    from ekm.errors import AuditLogError

    _replace_log_with_directory(home)
    with pytest.raises(AuditLogError, match="refused"):
        _manager(home).get_key("database_encryption", "encryption")


def test_world_readable_audit_log_refuses_the_operation(home, run):
    (home / "audit.log").chmod(0o644)
    before = snapshot(home)
    run("generate", "newkey", "--type", "aes-256-gcm").expect_error(4, "chmod 0600")
    assert not key_path(home, "newkey").exists()
    assert snapshot(home) == before
