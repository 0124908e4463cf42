"""``ekm backup create | verify | restore``: passphrase and recipient bundles, restore into
another home with identical material, refusals (newer versions, wrong secret, damage).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ekm.errors import IntegrityError, InvalidError, StateError
from ekm.manager import KeyManager
from tests.rotation.helpers import FAST_KEYS, audit, audit_since, make_home, states

SECRET = "backup passphrase for tests"


@pytest.fixture
def benv(fenv: dict[str, str]) -> dict[str, str]:
    return {**fenv, "EKM_BACKUP_PASSPHRASE": SECRET}


@pytest.fixture
def target(tmp_path: Path, base_env: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """Another, freshly deployed home (one key of its own) to restore into."""
    home = make_home(
        tmp_path / "target", '[keys.own]\ntype = "aes-256-gcm"\nusage = "encryption"\n'
    )
    KeyManager(home, env={}).deploy()
    return home, {**base_env, "EKM_HOME": str(home), "EKM_BACKUP_PASSPHRASE": SECRET}


def materials(home: Path, names: list[str]) -> dict[tuple[str, int], bytes]:
    mgr = KeyManager(home, env={})
    out = {}
    for name in names:
        for v in mgr.key_info(name).versions:
            if v.state.value in ("primary", "active"):
                out[(name, v.version)] = mgr.get_key(name, version=v.version)
    return out


def test_create_verify_restore_round_trip(frun, benv, fhome: Path, mgr, target) -> None:
    mgr.rotate(["hmac"])  # two versions, both must travel
    primary = mgr.get_key("hmac")
    out = fhome.parent / "all.ekmbak"
    mark = len(audit(fhome))
    res = frun("backup", "create", "--out", str(out), env=benv).expect_ok()
    assert res.stderr.startswith(f"ekm: wrote {out}") or f"wrote {out}" in res.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    data = out.read_bytes()
    assert SECRET.encode() not in data and primary not in data
    (rec,) = audit_since(fhome, mark)
    assert (rec["op"], rec["mode"], rec["keys"]) == ("backup.create", "passphrase", len(FAST_KEYS))
    assert sorted(rec["names"]) == FAST_KEYS
    assert SECRET not in (fhome / "audit.log").read_text()
    report = json.loads(frun("--json", "backup", "verify", str(out), env=benv).expect_ok().stdout)
    assert sorted(k["name"] for k in report["keys"]) == FAST_KEYS
    assert {k["name"]: k["with_material"] for k in report["keys"]}["hmac"] == [1, 2]
    thome, tenv = target
    mark = len(audit(thome))
    res = frun("--json", "backup", "restore", str(out), env=tenv).expect_ok()
    assert {r["name"]: r["result"] for r in json.loads(res.stdout)["keys"]} == dict.fromkeys(
        FAST_KEYS, "restored"
    )
    assert materials(thome, FAST_KEYS) == materials(fhome, FAST_KEYS)
    restored = KeyManager(thome, env={})
    assert all(restored.key_info(n).to_dict() == mgr.key_info(n).to_dict() for n in FAST_KEYS)
    recs = [r for r in audit_since(thome, mark) if r["op"] == "backup.restore"]
    assert sorted(r["key"] for r in recs) == FAST_KEYS
    # restoring the same bundle again changes nothing
    res = frun("--json", "backup", "restore", str(out), env=tenv).expect_ok()
    assert {r["result"] for r in json.loads(res.stdout)["keys"]} == {"unchanged"}


def test_default_path_and_named_keys(frun, benv, fhome: Path) -> None:
    res = frun("--json", "backup", "create", "hmac", "session", env=benv).expect_ok()
    path = Path(json.loads(res.stdout)["path"])
    assert path.parent == fhome / "backups" and path.name.startswith("ekm-")
    report = json.loads(frun("--json", "backup", "verify", str(path), env=benv).stdout)
    assert sorted(k["name"] for k in report["keys"]) == ["hmac", "session"]
    frun("backup", "create", "--out", str(path), env=benv).expect_error(3, "exists", "--force")
    other = fhome.parent / "other.ekmbak"
    frun("backup", "create", "--out", str(other), "nosuch", env=benv).expect_error(
        3, "no key named 'nosuch'"
    )
    assert not other.exists()


def test_restore_refuses_newer_versions_without_force(frun, benv, fhome, target) -> None:
    out = fhome.parent / "b.ekmbak"
    frun("backup", "create", "--out", str(out), "hmac", env=benv).expect_ok()
    thome, tenv = target
    frun("backup", "restore", str(out), env=tenv).expect_ok()
    frun("rotate", "hmac", env=tenv).expect_ok()
    frun("backup", "restore", str(out), env=tenv).expect_error(
        3, "'hmac' here has version 2, newer than the backup's 1", "--force"
    )
    assert states(thome, "hmac") == {1: "active", 2: "primary"}
    res = frun("--json", "backup", "restore", str(out), "--force", env=tenv).expect_ok()
    assert json.loads(res.stdout)["keys"] == [{"name": "hmac", "result": "replaced"}]
    assert states(thome, "hmac") == {1: "primary"}
    with pytest.raises(StateError, match="newer than the backup"):
        mgr = KeyManager(thome, env={})
        mgr.rotate("hmac")
        mgr.backup_restore(out.read_bytes(), passphrase=SECRET)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


@pytest.mark.parametrize("damage", ["ciphertext", "header", "truncated", "passphrase"])
def test_damaged_bundle_or_wrong_passphrase_exit_4(frun, benv, fhome, target, damage) -> None:
    out = fhome.parent / "b.ekmbak"
    frun("backup", "create", "--out", str(out), "hmac", env=benv).expect_ok()
    data = out.read_bytes()
    env = dict(benv)
    if damage == "ciphertext":
        out.write_bytes(_flip(data, len(data) - 20))
    elif damage == "header":
        out.write_bytes(data.replace(b'"keys":["hmac"]', b'"keys":["hmad"]'))
    elif damage == "truncated":
        out.write_bytes(data[:-7])
    else:
        env["EKM_BACKUP_PASSPHRASE"] = "not the passphrase"
    line = frun("backup", "verify", str(out), env=env).expect_error(4, "not authentic")
    assert SECRET not in line
    thome, tenv = target
    before = sorted((thome / "keys").iterdir())
    frun("backup", "restore", str(out), env={**tenv, **env, "EKM_HOME": str(thome)}).expect_error(
        4, "not authentic"
    )
    assert sorted((thome / "keys").iterdir()) == before
    with pytest.raises(IntegrityError) as exc:
        KeyManager(thome, env={}).backup_verify(
            out.read_bytes(), passphrase=env["EKM_BACKUP_PASSPHRASE"]
        )
    assert exc.value.exit_code == 4


def test_not_a_backup_and_missing_inputs(frun, benv, fhome: Path, mgr: KeyManager) -> None:
    junk = fhome.parent / "junk.ekmbak"
    junk.write_bytes(b"hello, I am not a bundle\n")
    frun("backup", "verify", str(junk), env=benv).expect_error(3, "not an ekm backup bundle")
    frun("backup", "restore", str(junk), env=benv).expect_error(3, "not an ekm backup bundle")
    with pytest.raises(InvalidError):
        mgr.backup_verify(junk.read_bytes())
    missing = fhome.parent / "absent.ekmbak"
    frun("backup", "verify", str(missing), env=benv).expect_error(3, "no such backup file")
    # no passphrase in the environment and no terminal to ask on
    frun("backup", "create", "--out", str(missing)).expect_error(3, "EKM_BACKUP_PASSPHRASE")
    assert not missing.exists()


def test_local_pre_rotation_backup_opens_only_at_home(frun, fhome: Path, target) -> None:
    frun("rotate", "hmac").expect_ok()
    (local,) = (fhome / "backups").glob("pre-rotate-*.ekmbak")
    assert frun("backup", "verify", str(local)).expect_ok()
    _, tenv = target
    frun("backup", "verify", str(local), env=tenv).expect_error(4, "not authentic")


@pytest.fixture
def airgap(tmp_path: Path, base_env) -> tuple[Path, dict[str, str], str]:
    """An offline home holding an x25519 key; returns (home, env, its recipient string)."""
    home = make_home(tmp_path / "airgap", '[keys.escrow]\ntype = "x25519"\nusage = "encryption"\n')
    mgr = KeyManager(home, env={})
    mgr.deploy()
    return home, {**base_env, "EKM_HOME": str(home)}, mgr.recipient_string("escrow")


def test_recipient_backup_restores_in_another_home(frun, benv, fhome, target) -> None:
    """The escrow flow: the recipient's private key lives elsewhere (moved there once by a
    passphrase backup); later bundles are sealed to it and open only there."""
    thome, tenv = target
    escrow = fhome.parent / "escrow.ekmbak"
    frun("backup", "create", "--out", str(escrow), "offline", env=benv).expect_ok()
    frun("backup", "restore", str(escrow), env=tenv).expect_ok()
    out = fhome.parent / "sealed.ekmbak"
    mark = len(audit(fhome))
    frun("backup", "create", "--recipient", "offline", "--out", str(out)).expect_ok()
    (rec,) = audit_since(fhome, mark)
    assert (rec["op"], rec["mode"]) == ("backup.create", "recipient")
    frun("backup", "verify", str(out)).expect_error(3, "sealed to a recipient key", "--identity")
    frun("backup", "verify", str(out), "--identity", "own", env=tenv).expect_error(
        3, "aes-256-gcm keys cannot be recipients"
    )
    frun("--json", "backup", "restore", str(out), "--identity", "offline", env=tenv).expect_ok()
    assert materials(thome, FAST_KEYS) == materials(fhome, FAST_KEYS)


def test_a_bundle_for_another_recipient_is_not_authentic(frun, fhome, airgap) -> None:
    """Sealed to the air-gapped home's key: this home's own x25519 key cannot open it."""
    ahome, _, _ = airgap
    out = fhome.parent / "sealed.ekmbak"
    other = KeyManager(ahome, env={})
    out.write_bytes(other.backup_create(["escrow"], mode="recipient", recipient="escrow"))
    frun("backup", "verify", str(out), "--identity", "offline").expect_error(
        4, "cannot open the recipient slot", "not for this key"
    )


def test_recipient_string_round_trips(frun, fhome, airgap) -> None:
    ahome, aenv, recipient = airgap
    out = fhome.parent / "sealed.ekmbak"
    frun("backup", "create", "--recipient", recipient, "--out", str(out)).expect_ok()
    frun("backup", "restore", str(out), "--identity", "escrow", env=aenv).expect_ok()
    assert materials(ahome, FAST_KEYS) == materials(fhome, FAST_KEYS)


def test_recipient_by_key_name(frun, fhome: Path) -> None:
    out = fhome.parent / "own.ekmbak"
    frun("backup", "create", "--recipient", "offline", "--out", str(out), "hmac").expect_ok()
    report = json.loads(
        frun("--json", "backup", "verify", str(out), "--identity", "offline").expect_ok().stdout
    )
    assert report["mode"] == "recipient" and [k["name"] for k in report["keys"]] == ["hmac"]


@pytest.mark.parametrize(
    ("recipient", "fragments"),
    [
        ("hmac", ["'hmac' (hmac-sha256) cannot be a recipient"]),
        ("ekm-recipient:garbage", ["malformed recipient string"]),
        ("ekm-recipient:hmac-sha256:x:AAAA", ["a hmac-sha256 key cannot be a recipient"]),
        ("nosuch", ["no key named 'nosuch'"]),
    ],
)
def test_bad_recipients(frun, fhome: Path, recipient: str, fragments: list[str]) -> None:
    out = fhome.parent / "x.ekmbak"
    res = frun("backup", "create", "--recipient", recipient, "--out", str(out))
    res.expect_error(2 if "no key" not in fragments[0] else 3, *fragments)
    assert not out.exists()


def test_keys_recipient_prints_the_string(frun) -> None:
    res = frun("keys", "recipient", "offline").expect_ok()
    assert res.stdout.startswith("ekm-recipient:x25519:offline:v1:")
