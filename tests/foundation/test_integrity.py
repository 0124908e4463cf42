"""A keystore edited, truncated, swapped or exposed: refused with exit 4, naming the file.

Every test starts from a private copy of a deployed home, damages it the way an attacker or a
careless operator would, and runs the real ``ekm`` command.
"""

from __future__ import annotations

import base64
import json
import os
import shutil

import pytest

from tests.foundation.helpers import key_path, read_doc, snapshot, write_doc

UNLOCKING = [("keys", "export", "rsa", "--reveal"), ("keys", "export", "rsa", "--public")]


def _flip_b64(text: str) -> str:
    """Change one byte inside a base64 string and re-encode it (still valid base64)."""
    raw = bytearray(base64.b64decode(text))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("args", UNLOCKING)
def test_metadata_edited_by_hand_is_exit_4(home, run, args):
    doc = read_doc(home, "rsa")
    doc["meta"]["policy"]["interval"] = "3650d"  # quietly stretch the rotation period
    write_doc(home, "rsa", doc)
    res = run(*args)
    res.expect_error(4, str(key_path(home, "rsa")), "integrity check")
    assert res.stdout == ""


def test_tampering_elsewhere_does_not_block_unrelated_work_but_is_caught_on_use(home, run):
    """Design (SECURITY.md): a document's MAC is checked whenever it is read, and `ekm audit`
    / the monitor check every document. An unrelated command does not scan the whole store
    (that would make every write O(keys)); the tampered key itself is refused."""
    doc = read_doc(home, "rsa")
    doc["meta"]["usage"] = "encryption"
    write_doc(home, "rsa", doc)
    run("generate", "newkey", "--type", "aes-256-gcm").expect_ok()
    run("keys", "export", "rsa", "--reveal").expect_error(4, str(key_path(home, "rsa")))


def test_edited_usage_cannot_repurpose_a_key(home, run):
    """Turning a signing HMAC into an api-auth key by editing its JSON must not work."""
    doc = read_doc(home, "jwt_signing")
    doc["meta"]["usage"] = "api-auth"
    write_doc(home, "jwt_signing", doc)
    run("keys", "export", "jwt_signing", "--reveal").expect_error(
        4, str(key_path(home, "jwt_signing"))
    )


@pytest.mark.parametrize("keep", [0, 1, 100, -2])
def test_truncated_key_file_is_exit_4(home, run, keep):
    path = key_path(home, "rsa")
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:keep] + b"\n")
    res = run("keys", "export", "rsa", "--public")
    res.expect_error(4, str(path), "tampered or truncated")


@pytest.mark.parametrize("garbage", [b"[]", b'{"format": 2}', b"null", b"\xff\xfe\x00"])
def test_valid_json_of_the_wrong_shape_is_exit_4(home, run, garbage):
    key_path(home, "hmac").write_bytes(garbage)
    run("keys", "show", "hmac").expect_error(4, str(key_path(home, "hmac")))


def test_swapped_key_files_are_exit_4(home, run):
    """Copying one key's document over another's name must not silently swap the keys."""
    shutil.copyfile(key_path(home, "hmac"), key_path(home, "jwt_signing"))
    res = run("keys", "export", "jwt_signing", "--reveal")
    res.expect_error(4, str(key_path(home, "jwt_signing")), "'hmac'", "swapped")
    assert res.stdout == ""
    run("keys", "show", "jwt_signing").expect_error(4, "swapped")


def test_swapped_material_with_forged_mac_fails_authentication(home, run):
    """Even with a valid MAC, material moved between keys fails: the AAD binds the name."""
    from ekm.manager import KeyManager

    mgr = KeyManager(home, env={})
    mgr.unlock()
    victim = read_doc(home, "session")
    victim["material"]["1"] = read_doc(home, "database_encryption")["material"]["1"]
    victim["mac"] = mgr.keystore._mac(victim)  # what only the master key holder could do
    write_doc(home, "session", victim)
    run("keys", "export", "session", "--reveal").expect_error(
        4, str(key_path(home, "session")), "material of version 1 failed authentication"
    )


def test_material_blob_altered_is_exit_4(home, run):
    doc = read_doc(home, "database_encryption")
    doc["material"]["1"] = _flip_b64(doc["material"]["1"])
    write_doc(home, "database_encryption", doc)
    res = run("keys", "export", "database_encryption", "--reveal")
    res.expect_error(4, str(key_path(home, "database_encryption")))
    assert res.stdout == ""


@pytest.mark.parametrize(
    ("field", "mutate"),
    [
        ("wrapped_root", _flip_b64),
        ("wrapped_root", lambda v: v[:20]),
        ("wrapped_root", lambda v: "!!not base64!!"),
        ("key_id", lambda v: "0" * 16),
        ("format", lambda v: 99),
        ("source", lambda v: "carrier-pigeon"),
    ],
)
def test_tampered_master_json_is_exit_4(home, run, field, mutate):
    path = home / "master.json"
    meta = json.loads(path.read_text())
    meta[field] = mutate(meta[field])
    path.write_text(json.dumps(meta))
    res = run("keys", "export", "hmac", "--reveal")
    res.expect_error(4)
    assert res.stdout == ""


def test_truncated_master_json_is_exit_4(home, run):
    path = home / "master.json"
    path.write_bytes(path.read_bytes()[:40])
    run("keys", "export", "hmac", "--reveal").expect_error(4, str(path), "tampered or truncated")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d[:-10],
        lambda d: d[:18],
        lambda d: d.replace(b"EKM-MASTER-KEY-V1", b"EKM-MASTER-KEY-V2"),
        lambda d: d[:18] + base64.b64encode(os.urandom(32)) + b"\n",  # another valid key file
    ],
)
def test_tampered_or_foreign_master_key_file_is_exit_4(home, run, mutate):
    path = home / "master.key"
    path.write_bytes(mutate(path.read_bytes()))
    res = run("generate", "newkey", "--type", "aes-256-gcm")
    res.expect_error(4)
    assert not key_path(home, "newkey").exists()


def test_missing_master_key_file_is_exit_3(home, run):
    (home / "master.key").unlink()
    run("keys", "export", "hmac", "--reveal").expect_error(3, "master.key is missing", "backup")


# --------------------------------------------------------------------------------------------
# Permissions, ownership and symlinks (ssh's rules)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("target", "mode", "want"),
    [
        ("keys/rsa.json", 0o644, "0600"),
        ("keys/rsa.json", 0o640, "0600"),
        ("keys/rsa.json", 0o604, "0600"),
        ("master.key", 0o644, "0600"),
        ("keys", 0o755, "0700"),
        (".", 0o755, "0700"),
        (".", 0o750, "0700"),
    ],
)
def test_group_or_world_access_is_exit_4_with_the_fix(home, run, target, mode, want):
    path = home / target if target != "." else home
    os.chmod(path, mode)
    res = run("keys", "export", "rsa", "--reveal")
    res.expect_error(4, str(path), f"mode {mode:04o}", f"chmod {want} {path}")
    assert res.stdout == ""


def test_world_readable_key_is_refused_even_for_metadata(home, run):
    os.chmod(key_path(home, "rsa"), 0o644)
    run("keys", "show", "rsa").expect_error(4, f"chmod 0600 {key_path(home, 'rsa')}")


def test_symlinked_key_file_is_exit_4(home, run, tmp_path):
    path = key_path(home, "rsa")
    elsewhere = tmp_path / "rsa-elsewhere.json"
    shutil.copy2(path, elsewhere)
    path.unlink()
    path.symlink_to(elsewhere)
    run("keys", "export", "rsa", "--public").expect_error(4, str(path), "symbolic link")


def test_symlinked_master_key_is_exit_4(home, run, tmp_path):
    path = home / "master.key"
    elsewhere = tmp_path / "master.key"
    shutil.copy2(path, elsewhere)
    path.unlink()
    path.symlink_to(elsewhere)
    run("keys", "export", "hmac", "--reveal").expect_error(4, str(path), "symbolic link")


def test_unsafe_master_key_refuses_generate_and_changes_nothing(home, run):
    os.chmod(home / "master.key", 0o644)
    before = snapshot(home)
    run("generate", "hmac2", "--type", "hmac-sha256").expect_error(4, "chmod 0600")
    after = snapshot(home)
    audit = {"audit.log", "audit.log.head"}
    assert {k: v for k, v in after.items() if k not in audit} == {
        k: v for k, v in before.items() if k not in audit
    }
    last = json.loads((home / "audit.log").read_bytes().splitlines()[-1])
    assert (last["op"], last["result"]) == ("unlock", "denied")


def test_world_listable_keys_dir_is_refused_by_listing(home, run):
    os.chmod(home / "keys", 0o755)  # noqa: S103 (the unsafe mode under test)
    for args in (("keys", "list"), ("status",)):
        run(*args).expect_error(4, str(home / "keys"), f"chmod 0700 {home / 'keys'}")
