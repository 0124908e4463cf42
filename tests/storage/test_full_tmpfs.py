"""A really full disk: the home on a small tmpfs, every free block taken by a filler file.

Not a simulated error: the kernel's own ENOSPC, wherever it comes (the key document, the
API key table, a backup bundle, the audit log, its head). Each command must fail with one line
and exit 4, leave the keys and the table as they were, and, once the filler is removed,
everything works again with no manual repair: the same commands succeed and the audit chain
verifies. Mounting needs root (or CAP_SYS_ADMIN); elsewhere the test is skipped with that
reason, and tests/storage/test_checked_writes.py covers the same paths by injection.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability import harness

PASSPHRASE = {"EKM_BACKUP_PASSPHRASE": harness.BACKUP_PASSPHRASE}
COMMANDS = [
    ("generate", "on_full_disk", "--type", "aes-256-gcm"),
    ("rotate", "session", "--force"),
    ("apikey", "create", "--name", "full"),
    ("backup", "create"),
    ("rotate", "database_encryption", "--force"),
]


@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root; the injected-ENOSPC tests cover this path")
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True, check=False,
    )  # fmt: skip
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()[:200]}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(directory: Path) -> Path:
    """Take every free block (the kernel says when: ENOSPC)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    chunk = b"\0" * 65536
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)
    return filler


def test_a_full_file_system_refuses_then_recovers_without_repair(prepared_template, tmp_path):
    with _tmpfs(tmp_path / "mnt", "8m") as mnt:
        home = harness.copy_home(prepared_template, mnt / "home")
        env = harness.clean_env(home, **PASSPHRASE)
        before = harness.snapshot(home)
        filler = _fill(mnt)
        for argv in COMMANDS:
            res = harness.run_ekm(list(argv), env)
            err = res.stderr.decode()
            assert res.returncode == 4, f"{argv}: exit {res.returncode}: {err}"
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
            assert "full" in err or "No space left" in err, err
        after_failures = harness.snapshot(home)
        assert after_failures.versions == before.versions
        assert after_failures.apikeys == before.apikeys
        # reading still works on a full disk (decrypt, verify, status)
        res = harness.run_ekm(["status"], env)
        assert res.returncode == 0, res.stderr.decode()
        filler.unlink()
        for argv in COMMANDS:
            res = harness.run_ekm(list(argv), env)
            assert res.returncode == 0, f"{argv} after space came back: {res.stderr.decode()}"
        res = harness.run_ekm(["audit", "--verify-log"], env)
        assert res.returncode == 0, res.stderr.decode() + res.stdout.decode()
        assert harness.stray_files(home) == []
        harness.check_home(home, before, harness.snapshot(home))  # no material lost or changed
