"""Algorithm migration to post-quantum types, end to end, through the command.

The window: after ``ekm rotate NAME --to-type T`` the new version (of type T) signs/encrypts,
and the old version (old type) still verifies/decrypts what it made, until an operator
destroys it.
"""

from __future__ import annotations

import json

import pytest

from ekm.crypto import signatures, stream
from ekm.manager import KeyManager
from tests.pq_integration.conftest import audit_records


@pytest.mark.parametrize(
    ("name", "old", "new"),
    [
        ("s_ed25519", "ed25519", "ml-dsa-65"),
        ("s_p256", "ec-p256", "ed25519-ml-dsa-65"),
    ],
)
def test_signing_key_migration(prun, pq_home, tmp_path, name, old, new):
    f = tmp_path / "f"
    f.write_bytes(b"signed with the classic key")
    old_sig = tmp_path / "old.sig"
    prun("sign", "-k", name, "-o", str(old_sig), str(f)).expect_ok()
    prun("rotate", name, "--to-type", new).expect_ok()
    # the old signature still verifies with v1 (old type)
    info = json.loads(prun("--json", "verify", str(f), "--sig", str(old_sig)).expect_ok().stdout)
    assert (info["version"], info["type"]) == (1, old)
    # new signatures are made by v2, of the new type
    prun("sign", "-k", name, str(f)).expect_ok()
    info = json.loads(prun("--json", "verify", str(f)).expect_ok().stdout)
    assert (info["version"], info["type"]) == (2, new)
    assert info["algorithm"] == signatures.algorithm_of(new)
    # the rotation is on the log with the new type
    rot = audit_records(pq_home, "rotate")[-1]
    assert (rot["key"], rot["version"], rot["type"]) == (name, 2, new)
    # the public key export follows the primary (AKP JWK for the new type)
    jwk = json.loads(prun("keys", "export", name, "--public", "--format", "jwk").stdout)
    assert jwk["kty"] == "AKP" and jwk["kid"] == f"{name}:v2"


def test_recipient_migration_x25519_to_xwing(prun, pq_home, tmp_path):
    plain = tmp_path / "p"
    plain.write_bytes(b"sealed to x25519 before the migration" * 100)
    old_enc = tmp_path / "old.ekm"
    prun("encrypt", "-r", "r_x25519", "-o", str(old_enc), str(plain)).expect_ok()
    prun("rotate", "r_x25519", "--to-type", "x25519-ml-kem-768").expect_ok()
    prun("decrypt", "-o", str(tmp_path / "old.out"), str(old_enc)).expect_ok()
    assert (tmp_path / "old.out").read_bytes() == plain.read_bytes()
    new_enc = tmp_path / "new.ekm"
    prun("encrypt", "-r", "r_x25519", "-o", str(new_enc), str(plain)).expect_ok()
    with open(new_enc, "rb") as fh:
        ids = stream.read_header(fh).slot.recipient_ids
    assert ids == ["r_x25519:v2"]
    km = KeyManager(pq_home, env={})
    key = km.key_info("r_x25519")
    assert [key.type_of(v).value for v in key.versions] == ["x25519", "x25519-ml-kem-768"]
    prun("decrypt", "-o", str(tmp_path / "new.out"), str(new_enc)).expect_ok()
    assert (tmp_path / "new.out").read_bytes() == plain.read_bytes()
    # end of the window: destroying v1 makes the old file unreadable (exit 3, as documented)
    prun("keys", "destroy", "--yes", "r_x25519", "--version", "1").expect_ok()
    prun("decrypt", "-o", str(tmp_path / "x"), str(old_enc)).expect_error(
        3, "version 1 of key 'r_x25519' is destroyed"
    )
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("src", "dst", "key"),
    [
        ("RSA-2048", "ML-DSA-65", "s_rsa"),
        ("ECDSA-P384", "CRYSTALS-Dilithium", "s_p384"),
        ("Ed25519", "ed25519+ml-dsa-65", "s_ed25519"),
        ("X25519", "x25519+ml-kem-768", "r_x25519"),
        ("X25519", "ML-KEM-1024", "r_x25519"),
    ],
)
def test_plan_algorithm_migration_accepts_pq_targets(pq_home, src, dst, key):
    km = KeyManager(pq_home, env={})
    plan = km.plan_algorithm_migration(
        {"from_algorithm": src, "to_algorithm": dst, "migration_period_days": 30}
    )
    assert plan["ok"] is True, plan
    assert [k["name"] for k in plan["keys"]] == [key]
    assert plan["keys"][0]["command"].startswith(f"ekm rotate {key} --to-type ")


def test_plan_refuses_mixing_purposes(pq_home):
    km = KeyManager(pq_home, env={})
    plan = km.plan_algorithm_migration({"from_algorithm": "X25519", "to_algorithm": "ML-DSA-65"})
    assert plan["ok"] is False
    assert "cannot be used for encryption" in plan["keys"][0]["problem"]
    plan = km.plan_algorithm_migration(
        {"from_algorithm": "ML-DSA-65", "to_algorithm": "ML-KEM-768"}
    )
    assert "cannot be used for signing" in plan["keys"][0]["problem"]


def test_rotate_to_a_type_of_the_wrong_purpose_is_refused(prun):
    prun("rotate", "s_mldsa65", "--to-type", "ml-kem-768").expect_error(
        2, "cannot migrate 's_mldsa65' to ml-kem-768"
    )
    prun("rotate", "r_xwing", "--to-type", "aes-256-gcm").expect_error(
        2, "cannot migrate 'r_xwing'"
    )
