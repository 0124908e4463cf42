"""No path leaves the home: links planted in it are refused, nothing outside is touched.

The attack: someone who can write the home (but lacks the master key) replaces ``backups/``,
``keys/`` or ``apikeys.json`` with a symbolic link to a directory of theirs or to a system
directory. ekm used to follow ``backups/``, chmod its target to 0700 and write bundles there.
Each test plants the link, runs the real command, and checks the one-line refusal (exit 4),
that the target's mode and contents are unchanged, and that the home still works once the
link is removed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ekm.errors import UnsafePermissionsError
from ekm.storage.atomic import atomic_write, read_private
from ekm.storage.paths import ensure_private_dir, unsafe_ancestors

BACKUP_ENV = {"EKM_BACKUP_PASSPHRASE": "confinement-test-passphrase"}


def _outside(tmp_path: Path) -> Path:
    """A directory outside the home, as an attacker (or /etc) would have it: 0755."""
    target = tmp_path / "elsewhere"
    target.mkdir()
    target.chmod(0o755)
    (target / "present.txt").write_text("not ekm's\n")
    return target


def _snapshot(directory: Path) -> tuple[int, list[str]]:
    return stat.S_IMODE(directory.stat().st_mode), sorted(os.listdir(directory))


def test_backups_link_out_of_the_home_is_refused(home, run, ekm_env, tmp_path):
    target = _outside(tmp_path)
    before = _snapshot(target)
    if (home / "backups").exists():
        (home / "backups").rename(tmp_path / "old-backups")
    (home / "backups").symlink_to(target)
    res = run("backup", "create", env={**ekm_env, **BACKUP_ENV})
    res.expect_error(4, "backups", "symbolic link")
    assert _snapshot(target) == before, "ekm wrote into or chmod'ed the link's target"


def test_rotation_backup_into_a_linked_backups_dir_is_refused(home, run, tmp_path):
    """A rotation of a key with ``backup = yes`` writes a local bundle first: not through a link."""
    target = _outside(tmp_path)
    before = _snapshot(target)
    if (home / "backups").exists():
        (home / "backups").rename(tmp_path / "old-backups")
    (home / "backups").symlink_to(target)
    versions = _versions(run)
    res = run("rotate", "database_encryption", "--force")
    res.expect_error(4, "backups", "symbolic link")
    assert _snapshot(target) == before
    assert _versions(run) == versions, "the key changed anyway"
    (home / "backups").unlink()
    run("rotate", "database_encryption", "--force").expect_ok()  # the link gone: works again


def _versions(run) -> dict[str, list[tuple[int, str]]]:
    import json

    doc = json.loads(run("--json", "status").expect_ok().stdout)
    return {k["name"]: [(v["version"], v["state"]) for v in k["versions"]] for k in doc["keys"]}


def test_keys_link_out_of_the_home_is_refused(home, run, tmp_path):
    outside = tmp_path / "keys-elsewhere"
    (home / "keys").rename(outside)
    outside.chmod(0o700)
    (home / "keys").symlink_to(outside)
    before = {p.name: p.read_bytes() for p in outside.iterdir()}
    run("rotate", "session", "--force").expect_error(4, "keys", "symbolic link")
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == before


def test_apikeys_table_link_is_refused(home, run, tmp_path):
    target = tmp_path / "planted.json"
    target.write_text("{}")
    target.chmod(0o600)
    (home / "apikeys.json").symlink_to(target)
    run("apikey", "create", "--name", "billing").expect_error(4, "apikeys.json", "symbolic link")
    assert target.read_text() == "{}"


def test_a_link_inside_the_home_is_refused_by_the_storage_layer(home, tmp_path):
    target = _outside(tmp_path)
    (home / "state").symlink_to(target)
    with pytest.raises(UnsafePermissionsError, match="state is a symbolic link"):
        atomic_write(home / "state" / "x.json", b"{}", home=home)
    with pytest.raises(UnsafePermissionsError, match="symbolic link"):
        ensure_private_dir(home / "state" / "deeper", home=home)
    with pytest.raises(UnsafePermissionsError, match="symbolic link"):
        read_private(home / "state" / "present.txt", home=home)
    assert _snapshot(target) == (0o755, ["present.txt"])


def test_outside_the_home_links_are_the_operators_choice(home, tmp_path):
    """``-o`` paths outside the home (an operator's link to a share) are written as given."""
    share = tmp_path / "share"
    share.mkdir()
    link = tmp_path / "to-share"
    link.symlink_to(share)
    atomic_write(link / "report.txt", b"ok\n", home=home)
    assert (share / "report.txt").read_bytes() == b"ok\n"


def test_a_subdirectory_another_user_can_write_is_refused(home, run):
    (home / "keys").chmod(0o733)
    line = run("rotate", "session", "--force").expect_error(4, "keys")
    assert "group or others can access it" in line


# -- the directories above the home ----------------------------------------------------------


def _home_below(tmp_path: Path, template_home: Path, mode: int) -> Path:
    import shutil

    parent = tmp_path / f"parent-{mode:o}"
    parent.mkdir()
    home = parent / "home"
    shutil.copytree(template_home, home, symlinks=True)
    parent.chmod(mode)
    return home


def test_world_writable_parent_without_sticky_bit_is_refused(
    tmp_path, template_home, run, base_env
):
    home = _home_below(tmp_path, template_home, 0o777)
    env = {**base_env, "EKM_HOME": str(home)}
    line = run("rotate", "session", "--force", env=env).expect_error(4, "world-writable")
    assert str(home.parent) in line and "sticky" in line
    run("status", env=env).expect_error(4, "world-writable")
    home.parent.chmod(0o755)
    run("rotate", "session", "--force", env=env).expect_ok()


def test_world_writable_parent_with_sticky_bit_is_fine(tmp_path, template_home, run, base_env):
    """Like /tmp: others may create entries, but not rename or remove ours."""
    home = _home_below(tmp_path, template_home, 0o1777)
    env = {**base_env, "EKM_HOME": str(home)}
    run("rotate", "session", "--force", env=env).expect_ok()
    assert unsafe_ancestors(home) == []


def test_group_writable_parent_is_a_finding_in_audit_and_monitor(
    tmp_path, template_home, run, base_env
):
    home = _home_below(tmp_path, template_home, 0o775)
    env = {**base_env, "EKM_HOME": str(home)}
    assert [why for _, why in unsafe_ancestors(home)] == [
        "group-writable (0775) without the sticky bit"
    ]
    run("rotate", "session", "--force", env=env).expect_ok()  # a finding, not a refusal
    import json

    res = run("audit", "--format", "json", "--fail-on", "critical", env=env)
    assert res.code in (0, 1), res.stderr
    messages = [f["message"] for f in json.loads(res.stdout)["findings"]]
    assert any("a parent of the home, group-writable" in m for m in messages), messages
    mon = run("--json", "monitor", "--once", env=env)
    assert mon.code == 1, mon.stderr
    assert "files.parent" in mon.stdout
    home.parent.chmod(0o755)
    res = run("audit", "--format", "json", "--fail-on", "critical", env=env)
    messages = [f["message"] for f in json.loads(res.stdout)["findings"]]
    assert not any("a parent of the home" in m for m in messages), messages
