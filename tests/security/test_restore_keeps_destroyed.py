"""Issue 17 item 4: restoring an older backup must not bring destroyed versions back.

The attacker (or a hurried operator) restores a bundle made before a version was
crypto-shredded; without ``--resurrect-destroyed`` the version stays destroyed and its data
stays unreadable, and the audit record says which versions were kept destroyed.
"""

from __future__ import annotations

from pathlib import Path

from tests.rotation.helpers import audit, states

PASS = "correct horse battery"


def _setup(run, ekm_env: dict[str, str], tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    env = {**ekm_env, "EKM_BACKUP_PASSPHRASE": PASS}
    plain = tmp_path / "p.txt"
    plain.write_bytes(b"secret under v1\n")
    ct = tmp_path / "v1.ekm"
    run("encrypt", "--key", "session", "-o", str(ct), str(plain), env=env).expect_ok()
    run("rotate", "session", "--force", env=env).expect_ok()
    bundle = tmp_path / "old.ekmbak"
    run("backup", "create", "session", "--out", str(bundle), env=env).expect_ok()
    run("keys", "destroy", "session", "--version", "1", "--yes", env=env).expect_ok()
    return env, bundle, ct


def test_restore_of_an_older_bundle_keeps_destroyed_versions_destroyed(
    run, ekm_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    env, bundle, ct = _setup(run, ekm_env, tmp_path)
    mark = len(audit(home))
    run("backup", "restore", str(bundle), env=env).expect_ok()
    assert states(home, "session")[1] == "destroyed"
    run("decrypt", "-o", "-", str(ct), env=env).expect_error(3, "destroyed")
    (rec,) = [r for r in audit(home)[mark:] if r.get("op") == "backup.restore"]
    assert rec.get("kept_destroyed") == [1]


def test_resurrect_destroyed_is_explicit_and_audited(
    run, ekm_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    env, bundle, ct = _setup(run, ekm_env, tmp_path)
    mark = len(audit(home))
    run("backup", "restore", "--resurrect-destroyed", str(bundle), env=env).expect_ok()
    assert states(home, "session")[1] == "active"
    assert run("decrypt", "-o", "-", str(ct), env=env).expect_ok().stdout == "secret under v1\n"
    (rec,) = [r for r in audit(home)[mark:] if r.get("op") == "backup.restore"]
    assert rec.get("resurrected") == [1]
