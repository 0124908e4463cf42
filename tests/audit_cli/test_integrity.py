"""Damage the audit must report as findings, never a crash or a silent pass."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.audit_cli.conftest import findings, items


def test_tampered_key_document_is_a_critical_finding_naming_the_file(home, audit_json):
    doc_path = home / "keys" / "rsa.json"
    doc = json.loads(doc_path.read_text())
    doc["meta"]["policy"]["interval"] = "3650d"  # a quiet edit: valid JSON, MAC now wrong
    doc_path.write_text(json.dumps(doc))
    res, rep = audit_json("--compliance", "hipaa")
    (f,) = findings(rep, "EKM-STORE-INTEGRITY")
    assert f["severity"] == "critical" and f["key"] == "rsa"
    assert str(doc_path) in f["found"] and "integrity check" in f["found"]
    (mac,) = findings(rep, "HIPAA-164.312(c)(1)-INTEGRITY")
    assert "does not verify" in mac["found"]
    assert rep["evaluated"]["keys"] == 6  # the unreadable key is not judged as if it were fine
    assert rep["summary"]["critical"] == 1 and res.code == 1


def test_garbage_key_document_is_a_finding_even_without_the_master_key(home, audit_json):
    (home / "keys" / "session.json").write_bytes(b"\x00not json")
    os.chmod(home / "master.key", 0o600)
    (home / "master.key").unlink()  # cannot unlock: the audit continues on metadata
    res, rep = audit_json("--compliance", "nist-800-57")
    (f,) = findings(rep, "EKM-STORE-INTEGRITY", "session")
    assert "not a valid key document" in f["found"]
    assert findings(rep, "SP800-57-INTEGRITY")[0]["found"].startswith("keystore MAC does not")
    assert "master key not unlocked" in res.stderr
    assert res.code == 1


def test_unsafe_permissions_are_findings_naming_the_path(home, audit_json):
    os.chmod(home / "keys" / "hmac.json", 0o644)
    res, rep = audit_json("--compliance", "pci-dss")
    (perm,) = findings(rep, "PCI-7.2-PERMISSIONS")
    assert "keys/hmac.json (0644)" in perm["found"]
    (store,) = findings(rep, "EKM-STORE-INTEGRITY", "hmac")
    assert "mode 0644" in store["found"]
    assert res.code == 1


def test_locked_passphrase_home_reports_not_evaluated_never_pass(tmp_path, base_env, run):
    home = tmp_path / "pp"
    env = {**base_env, "EKM_HOME": str(home)}
    run(
        "deploy",
        "--master-key",
        "passphrase",
        env={**env, "EKM_PASSPHRASE": "correct horse battery"},
    ).expect_ok()
    res = run("audit", "--compliance", "hipaa,nist-800-57,fips-140-3", "--format", "json",
              "--verbose", env=env)  # fmt: skip
    rep = json.loads(res.stdout)
    assert "master key not unlocked" in res.stderr and "EKM_PASSPHRASE" in res.stderr
    for rule in ("HIPAA-164.312(c)(1)-INTEGRITY", "SP800-57-INTEGRITY", "EKM-STORE-INTEGRITY"):
        assert items(rep, "unknown", rule), rule
        assert not items(rep, "passed", rule), rule
    (chain,) = items(rep, "unknown", "HIPAA-164.312(b)-AUDIT")
    assert "chain not checked" in chain["found"]
    assert items(rep, "unknown", "SP800-57-UNIQUE")  # no fingerprints without the root key
    (kdf,) = items(rep, "findings", "FIPS140-3-KDF")  # metadata still judged: Argon2id
    assert kdf["found"] == "master key derived with argon2id"
    assert rep["warnings"] and "correct horse" not in res.stderr + res.stdout
    unlocked = run("audit", "--compliance", "hipaa", "--format", "json", "--verbose",
                   env={**env, "EKM_PASSPHRASE": "correct horse battery"})  # fmt: skip
    assert items(json.loads(unlocked.stdout), "passed", "HIPAA-164.312(c)(1)-INTEGRITY")


def test_same_material_under_two_names_is_found_by_keyed_fingerprint(unlocked, audit_json):
    import hashlib

    unlocked.generate("copy", type="hmac-sha256", usage="mac")
    secret = unlocked.material("hmac", 1)
    key = unlocked.keystore.load("copy")
    unlocked.keystore.save(key, add_material={1: secret})
    res, rep = audit_json("--compliance", "nist-800-57")
    got = {f["key"]: f["found"] for f in findings(rep, "SP800-57-UNIQUE")}
    assert got == {
        "copy": "version 1 has the same material as hmac",
        "hmac": "version 1 has the same material as copy",
    }
    inv = unlocked.inventory()
    fps = {k.name: k.versions[0].fingerprint for k in inv.keys}
    assert fps["copy"] == fps["hmac"] and fps["rsa"] != fps["hmac"]
    assert fps["hmac"] != hashlib.sha256(secret).hexdigest()  # keyed, not a plain hash
    assert secret.hex() not in res.stdout and fps["hmac"] not in res.stdout


def test_destroyed_version_with_material_left_is_a_finding(unlocked, run, audit_json):
    run("rotate", "hmac", "--force").expect_ok()
    run("keys", "destroy", "--yes", "hmac", "--version", "1", "--recovery-window", "0s").expect_ok()
    _, ok = audit_json("--compliance", "nist-800-57", "--verbose")
    assert [p["found"] for p in items(ok, "passed", "SP800-57-DESTROY", "hmac")] == ["erased"]
    unlocked.keystore.forget()
    key = unlocked.keystore.load("hmac")
    unlocked.keystore.save(key, add_material={1: os.urandom(32)})  # a botched shred
    _, bad = audit_json("--compliance", "nist-800-57")
    (f,) = findings(bad, "SP800-57-DESTROY", "hmac")
    assert f["version"] == 1 and f["found"] == "destroyed but material still present"


def test_backups_count_only_when_proven(home, run, audit_json):
    run("rotate", "hmac", "--force").expect_ok()  # writes a local pre-rotate backup
    _, rep = audit_json("--compliance", "hipaa", "--verbose")
    assert items(rep, "passed", "HIPAA-164.308(a)(7)-BACKUP", "hmac")
    assert findings(rep, "HIPAA-164.308(a)(7)-BACKUP", "rsa")
    # a forged bundle naming every key, with no matching audit record, proves nothing
    backups = home / "backups"
    real = next(backups.glob("*.ekmbak")).read_bytes()
    header = json.loads(real.split(b"\n")[1])
    header.update(mode="passphrase", keys=["rsa"], created="2099-01-01T00:00:00Z")
    forged = b"EKMBAK1\n" + json.dumps(header).encode() + b"\n" + b"x" * 40
    (backups / "forged.ekmbak").write_bytes(forged)
    os.chmod(backups / "forged.ekmbak", 0o600)
    (backups / "junk.ekmbak").write_bytes(b"hello")
    os.chmod(backups / "junk.ekmbak", 0o600)
    res, rep = audit_json("--compliance", "hipaa")
    assert findings(rep, "HIPAA-164.308(a)(7)-BACKUP", "rsa")
    assert "match no backup.create record" in res.stderr
    (junk,) = findings(rep, "EKM-BACKUP-READABLE")
    assert junk["severity"] == "low" and "backups/junk.ekmbak" in junk["found"]


def test_empty_inventory_says_so(home, run, audit_json):
    for p in (home / "keys").glob("*.json"):
        p.unlink()
    res, rep = audit_json("--compliance", "hipaa")
    assert "the inventory is empty" in res.stderr
    # 7 hipaa rules (2 more since issue 18: keys kept apart) + 2 ekm-integrity rules
    assert rep["evaluated"]["keys"] == 0 and rep["evaluated"]["rules"] == 9
    assert "0 keys against 9 rules" in res.stderr


def test_not_deployed_home_is_exit_3(tmp_path, base_env, run):
    env = {**base_env, "EKM_HOME": str(tmp_path / "none")}
    run("audit", env=env).expect_error(3, "no ekm home at", "ekm deploy")
    Path(tmp_path / "bare").mkdir(mode=0o700)
    env = {**base_env, "EKM_HOME": str(tmp_path / "bare")}
    run("audit", "--verify-log", env=env).expect_error(3, "master.json is missing")
