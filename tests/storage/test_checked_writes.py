"""Every write is checked: a full disk, a short write or a failed fsync leaves the old state whole.

The real ``ekm`` command runs with ``EKM_FAULT_INJECT`` (:mod:`ekm.storage.faults`) failing
one step of the atomic write of each kind of file a home has: key documents (generate,
rotate), the API key table, backup bundles (``backup create`` and the local bundle a rotation
writes first), and ``ekm.toml``/``master.json``/``master.key`` of a first deployment. Each
time: exit 4 with one line that says the disk is full (or the error) and that the previous
version was kept; the files are byte-for-byte what they were; no temporary file is left; the
audit chain verifies; and the same command, once the disk has space again, just works.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.reliability import harness

FAULTS = {
    "enospc": ("file.write=ENOSPC", "the disk is full"),
    "short-write": ("file.write=short", "the disk is full"),
    "fsync-eio": ("file.fsync=EIO", "Input/output error"),
    "rename-eio": ("file.rename=EIO", "Input/output error"),
    "quota": ("file.write=EDQUOT", "the disk is full"),
}

PASSPHRASE = {"EKM_BACKUP_PASSPHRASE": "checked-writes-passphrase"}

#: One command per kind of file in the home, each with two of the faults (every fault is used
#: on at least two kinds of file; the whole cross product is the same code path ten times).
COMMANDS = [
    (
        ("generate", "billing", "--type", "aes-256-gcm"),
        {},
        "key-document",
        ("enospc", "short-write"),
    ),
    (("rotate", "session", "--force"), {}, "rotate", ("fsync-eio", "rename-eio")),
    (("apikey", "create", "--name", "ci"), {}, "apikey-table", ("short-write", "fsync-eio")),
    (("backup", "create"), PASSPHRASE, "backup-bundle", ("enospc", "quota")),
    (
        ("rotate", "database_encryption", "--force"),
        {},
        "rotate-with-backup",
        ("quota", "rename-eio"),
    ),
]
CASES = [
    pytest.param(argv, extra, *FAULTS[f], id=f"{name}-{f}")
    for argv, extra, name, faults in COMMANDS
    for f in faults
]  # fmt: skip


def _files(home: Path) -> dict[str, bytes]:
    """Each file of the home and its bytes (not the audit log, which records tries, or .lock)."""
    out = {}
    for path in sorted(home.rglob("*")):
        rel = str(path.relative_to(home))
        if path.is_file() and not rel.startswith(("audit.log", ".lock")):
            out[rel] = path.read_bytes()
    return out


@pytest.mark.parametrize(("argv", "extra", "fault", "said"), CASES)
def test_a_failed_write_keeps_the_previous_state(home, run, ekm_env, argv, extra, fault, said):
    env = {**ekm_env, **extra}
    before = _files(home)
    line = run(*argv, env={**env, "EKM_FAULT_INJECT": fault}).expect_error(4, said)
    assert "previous version" in line or "previous versions were kept" in line, line
    assert _files(home) == before, "a failed write changed the home"
    assert harness.stray_files(home) == []
    run("audit", "--verify-log", env=env).expect_ok()
    run(*argv, env=env).expect_ok()  # space is back: the same command works, no repair


def test_a_full_disk_during_first_deployment_leaves_a_home_that_deploys(tmp_path, run, base_env):
    home = tmp_path / "fresh"
    env = {**base_env, "EKM_HOME": str(home)}
    for nth in range(1, 4):  # ekm.toml, master.key, master.json
        res = run("deploy", env={**env, "EKM_FAULT_INJECT": f"file.write=ENOSPC@{nth}"})
        res.expect_error(4, "the disk is full")
        assert harness.stray_files(home) == []
    run("deploy", env=env).expect_ok()
    run("audit", "--verify-log", env=env).expect_ok()
    run("deploy", env=env).expect_ok()


def test_a_lost_directory_flush_says_the_new_file_is_in_place(home, run, ekm_env):
    """fsync of the directory fails after the rename: not "nothing changed", and says so."""
    res = run("generate", "billing", "--type", "aes-256-gcm",
              env={**ekm_env, "EKM_FAULT_INJECT": "dir.fsync=EIO@1"})  # fmt: skip
    res.expect_error(4, "is in place but may not survive a power loss")
    assert (home / "keys" / "billing.json").exists()


def test_faults_are_off_unless_asked(home, run, ekm_env):
    """An unrelated site or a later hit leaves a command alone (the seam is not always on)."""
    env = {**ekm_env, "EKM_FAULT_INJECT": "file.write=ENOSPC@1000,nosuch.site=EIO"}
    run("rotate", "session", "--force", env=env).expect_ok()
    assert "EKM_FAULT_INJECT" not in os.environ


def test_the_next_writer_sweeps_dead_writers_temp_files_everywhere_in_the_home(home, run):
    """Both spellings (``.name.pid.ns.tmp`` and the audit head's ``.name.pid.tmp``), in the
    home itself and in its directories; a live writer's file is left alone."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    stale = [
        home / f".audit.log.head.{dead}.tmp",
        home / f".apikeys.json.{dead}.123.tmp",
        home / "keys" / f".hmac.json.{dead}.456.tmp",
    ]
    live = home / f".master.json.{os.getpid()}.789.tmp"
    for path in [*stale, live]:
        path.write_bytes(b"half")
        path.chmod(0o600)
    run("apikey", "create", "--name", "sweeper").expect_ok()  # writes neither keys/ nor these
    assert [p for p in stale if p.exists()] == []
    assert live.exists()
