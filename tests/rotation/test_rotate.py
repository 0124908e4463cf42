"""One-step rotation: ``ekm rotate`` (due keys), named keys, ``--force``, ``--dry-run``.

Rotation appends a version and makes it primary; the old primary stays ``active`` (it still
decrypts) until retention retires it; a local backup is written first when the policy asks.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from ekm.crypto.keytypes import KeyState
from ekm.errors import NotFoundError, StateError
from ekm.manager import KeyManager
from tests.rotation.helpers import FAST_KEYS, at, audit, audit_since, doc, snapshot, states, t0


def backups(home: Path) -> list[Path]:
    return sorted((home / "backups").glob("*.ekmbak")) if (home / "backups").exists() else []


def test_rotate_rotates_only_what_is_due(frun, fhome: Path) -> None:
    others = {n: (fhome / "keys" / f"{n}.json").read_bytes() for n in FAST_KEYS if n != "session"}
    res = frun("rotate", "--as-of", at(fhome, 8)).expect_ok()
    assert res.stderr.splitlines() == ["rotated 1 key"]
    assert "session" in res.stdout and "due" in res.stdout
    assert states(fhome, "session") == {1: "active", 2: "primary"}
    assert {n: (fhome / "keys" / f"{n}.json").read_bytes() for n in others} == others
    # and a second run at the same instant finds nothing left to do
    again = frun("rotate", "--as-of", at(fhome, 8)).expect_ok()
    assert again.stdout == "" and "nothing to rotate" in again.stderr


def test_named_keys_rotate_now_and_force_rotates_all(frun, fhome: Path) -> None:
    res = frun("--json", "rotate", "hmac").expect_ok()
    (entry,) = json.loads(res.stdout)["rotated"]
    assert entry | {"backup": None} == {
        "name": "hmac", "from_version": 1, "to_version": 2, "type": "hmac-sha256",
        "reason": "requested", "backup": None,
    }  # fmt: skip
    assert states(fhome, "hmac") == {1: "active", 2: "primary"}
    res = frun("--json", "rotate", "--force", "--yes").expect_ok()
    rotated = {r["name"]: r for r in json.loads(res.stdout)["rotated"]}
    assert sorted(rotated) == FAST_KEYS  # even "offline", whose policy is never
    assert {r["reason"] for r in rotated.values()} == {"forced"}
    assert rotated["hmac"]["to_version"] == 3
    for name in FAST_KEYS:
        assert doc(fhome, name)["meta"]["versions"][-1]["state"] == "primary"


def test_dry_run_prints_the_plan_and_changes_nothing(frun, fhome: Path) -> None:
    before = snapshot(fhome)
    res = frun("rotate", "--force", "--yes", "--dry-run").expect_ok()
    assert "plan (nothing changed)" in res.stdout
    assert all(name in res.stdout for name in FAST_KEYS)
    plan = json.loads(frun("--json", "rotate", "--dry-run", "--as-of", "+90d").stdout)
    assert plan["dry_run"] is True and plan["rotated"] == []
    assert sorted(p["name"] for p in plan["plan"]) == sorted(set(FAST_KEYS) - {"offline"})
    assert all(p["to_version"] == 2 for p in plan["plan"])
    assert snapshot(fhome) == before


def test_rotation_keeps_old_material_readable(mgr: KeyManager, fhome: Path) -> None:
    old = mgr.get_key("database_encryption")
    (entry,) = mgr.rotate(["database_encryption"], now=t0(fhome) + timedelta(days=1))
    assert (entry["from_version"], entry["to_version"]) == (1, 2)
    new = mgr.get_key("database_encryption")
    assert new != old and len(new) == len(old) == 32
    assert mgr.get_key("database_encryption", version=1) == old
    key = mgr.key_info("database_encryption")
    assert key.primary_version == 2 and key.version(1).state is KeyState.ACTIVE
    assert key.rotated == t0(fhome) + timedelta(days=1)
    assert key.next_rotation == key.rotated + timedelta(days=90)


def test_api_due_force_and_dry_run(mgr: KeyManager, fhome: Path) -> None:
    start = t0(fhome)
    assert mgr.rotate(now=start) == []
    assert [p["name"] for p in mgr.rotate(now=start + timedelta(days=8))] == ["session"]
    before = snapshot(fhome)
    plan = mgr.rotate(force=True, dry_run=True, now=start + timedelta(days=9))
    assert sorted(p["name"] for p in plan) == FAST_KEYS
    assert snapshot(fhome) == before


def test_retention_by_default_keeps_every_version_readable(mgr: KeyManager, fhome) -> None:
    """No keep_versions policy (issue 22.3): rotation disables nothing, v1 stays readable.
    (This test asserted the old default of 2 retained versions; changed on purpose.)"""
    start = t0(fhome)
    for day in (1, 2, 3):
        mgr.rotate("session", now=start + timedelta(days=day))
    assert states(fhome, "session") == {1: "active", 2: "active", 3: "active", 4: "primary"}
    key = mgr.key_info("session")
    assert key.min_decryption_version == 1
    assert mgr.get_key("session", version=1)


def test_keep_versions_from_the_config(run, base_env, tmp_path: Path) -> None:
    from tests.rotation.helpers import make_home

    home = make_home(
        tmp_path / "k",
        '[rotation]\ndefault_keep_versions = 0\n[keys.a]\ntype = "aes-256-gcm"\n'
        'usage = "encryption"\n[keys.b]\ntype = "aes-256-gcm"\nusage = "encryption"\n'
        "keep_versions = 3\n",
    )
    env = {**base_env, "EKM_HOME": str(home)}
    run("deploy", env=env).expect_ok()
    for _ in range(2):
        run("rotate", "a", "b", env=env).expect_ok()
    assert states(home, "a") == {1: "disabled", 2: "disabled", 3: "primary"}
    assert states(home, "b") == {1: "active", 2: "active", 3: "primary"}
    assert doc(home, "a")["meta"]["min_decryption_version"] == 3


def test_a_backup_is_written_first_where_the_policy_says(mgr: KeyManager, frun, fhome) -> None:
    v1 = mgr.get_key("hmac")
    mark = len(audit(fhome))
    res = frun("rotate", "hmac").expect_ok()
    (path,) = backups(fhome)
    assert str(path) in res.stdout and path.stat().st_mode & 0o777 == 0o600
    assert (fhome / "backups").stat().st_mode & 0o777 == 0o700
    bundle = mgr._open_bundle(path.read_bytes(), None, None)
    (item,) = bundle.keys
    assert item.key.name == "hmac" and item.key.primary_version == 1  # the state before
    assert item.material == {1: v1}
    report = mgr.backup_verify(path.read_bytes())
    assert report["mode"] == "local" and report["keys"][0]["with_material"] == [1]
    recs = audit_since(fhome, mark)
    assert [(r["op"], r.get("key")) for r in recs] == [("backup.create", None), ("rotate", "hmac")]
    assert (recs[0]["names"], recs[0]["path"], recs[0]["mode"]) == (["hmac"], str(path), "local")
    # session's policy says no backup
    frun("rotate", "session").expect_ok()
    assert backups(fhome) == [path]


def test_rotation_audit_records(frun, fhome: Path) -> None:
    mark = len(audit(fhome))
    frun("rotate", "session", "jwt_signing").expect_ok()
    recs = [r for r in audit_since(fhome, mark) if r["op"] == "rotate"]
    assert {(r["key"], r["version"], r["from_version"], r["reason"]) for r in recs} == {
        ("session", 2, 1, "requested"),
        ("jwt_signing", 2, 1, "requested"),
    }
    assert all(r["actor"] and r["time"] for r in recs)
    text = (fhome / "audit.log").read_text()
    assert "material" not in text


def test_rotation_audit_records_state_their_result(frun, fhome: Path) -> None:
    mark = len(audit(fhome))
    frun("rotate", "session").expect_ok()
    (rec,) = [r for r in audit_since(fhome, mark) if r["op"] == "rotate"]
    assert rec["result"] == "ok"


def test_unknown_key(frun, mgr: KeyManager, fhome: Path) -> None:
    before = snapshot(fhome)
    frun("rotate", "nosuch").expect_error(3, "no key named 'nosuch'", "session")
    frun("rotate", "hmac", "nosuch").expect_error(3, "'nosuch'")
    assert snapshot(fhome) == before  # hmac was not rotated either
    with pytest.raises(NotFoundError, match="no key named 'nosuch'") as exc:
        mgr.rotate(["nosuch"])
    assert exc.value.exit_code == 3


def _strip_primary(mgr: KeyManager, name: str) -> None:
    """Make every version of ``name`` destroyed (what years of retirement can leave)."""
    mgr.unlock()
    key = mgr.keystore.load(name)
    for v in key.versions:
        v.state = KeyState.DESTROYED
    mgr.keystore.save(key, drop_material={v.version for v in key.versions})


def test_a_key_without_a_primary_cannot_rotate(frun, mgr: KeyManager, fhome: Path) -> None:
    _strip_primary(mgr, "hmac")
    frun("rotate", "hmac").expect_error(3, "'hmac' has no primary version", "cannot rotate")
    frun("rotate", "hmac", "--force").expect_error(3, "'hmac' has no primary version")
    with pytest.raises(StateError, match="no primary version"):
        KeyManager(fhome, env={}).rotate("hmac")
    # rotating everything skips it and rotates the rest
    res = json.loads(frun("--json", "rotate", "--force", "--yes").expect_ok().stdout)
    assert sorted(r["name"] for r in res["rotated"]) == sorted(set(FAST_KEYS) - {"hmac"})
    assert states(fhome, "hmac") == {1: "destroyed"}


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--force", "--to-type", "rsa-4096"], ["--to-type needs the key NAME"]),
        (["hmac", "--prepare", "--activate"], ["--prepare and --activate exclude each other"]),
        (["--prepare"], ["--prepare needs the key NAME"]),
        (["hmac", "--activate", "--force"], ["does not combine with --force"]),
        (["hmac", "--activate", "--to-type", "hmac-sha512"], ["--to-type goes with --prepare"]),
        (["--as-of", "someday"], ["--as-of"]),
    ],
)
def test_rotate_usage_errors(frun, fhome: Path, args: list[str], fragments: list[str]) -> None:
    before = snapshot(fhome)
    frun("rotate", *args).expect_error(2, *fragments)
    assert snapshot(fhome) == before
