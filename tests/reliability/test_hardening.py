"""Process hardening, checked from outside a real, long-running ekm process.

The process: ``ekm rotate session --force`` while this test holds the keystore lock, so it
waits (lock_timeout 3s). While it waits, /proc and ``prlimit --pid`` show its umask (077) and
core-dump limit (0). It then gives up with the CLI's lock error (exit 4, naming our pid).
PR_SET_DUMPABLE cannot be seen from outside when everything runs as root (the /proc owner
trick needs a non-root ekm process, and this interpreter lives under a 0700 /root), so it is
read with prctl(PR_GET_DUMPABLE) in a child that runs ekm's own ``_harden``.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ekm.fsutil import FileLock
from tests.reliability import harness


def _status_field(pid: int, name: str) -> str | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    except FileNotFoundError:
        return None
    return None


def _core_limit(pid: int) -> str:
    try:
        limits = Path(f"/proc/{pid}/limits").read_text()
    except FileNotFoundError:
        return ""
    line = next((x for x in limits.splitlines() if x.startswith("Max core")), "")
    return " ".join(line.split()[4:6])


def test_waiting_ekm_process_has_umask_077_and_no_core_dumps(prepared: Path) -> None:
    cfg = prepared / "ekm.toml"
    cfg.write_text(cfg.read_text().replace("[storage]\n", '[storage]\nlock_timeout = "3s"\n', 1))
    with FileLock(prepared / ".lock", timeout=1):
        proc = subprocess.Popen(
            [*harness.ekm_argv(), "rotate", "session", "--force"],
            env=harness.clean_env(prepared),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            for _ in range(400):  # until _harden has run (bounded: 400 polls)
                # umask first, then the core limit: on a loaded machine the test can look in
                # between, so wait for the last step of _harden (the process waits 3 s for
                # the lock, long after both)
                if proc.poll() is not None or (
                    _status_field(proc.pid, "Umask") == "0077" and _core_limit(proc.pid) == "0 0"
                ):
                    break
                time.sleep(0.02)
            assert _status_field(proc.pid, "Umask") == "0077"
            limits = Path(f"/proc/{proc.pid}/limits").read_text()
            core = next(line for line in limits.splitlines() if line.startswith("Max core"))
            assert core.split()[4:6] == ["0", "0"], core
            if shutil.which("prlimit"):
                out = subprocess.run(
                    ["prlimit", f"--pid={proc.pid}", "--core", "--raw", "--noheadings",
                     "--output=SOFT,HARD"],
                    capture_output=True, text=True, check=True,
                ).stdout.split()  # fmt: skip
                assert out == ["0", "0"], out
        finally:
            code = proc.wait(timeout=60)
    err = proc.stderr.read().decode()
    assert code == 4, err
    assert err.startswith("ekm: error: another ekm process") and f"pid {os.getpid()}" in err


def test_harden_makes_the_process_non_dumpable() -> None:
    code = (
        "import ctypes; from ekm.cli.main import _harden; libc = ctypes.CDLL(None);"
        "print(libc.prctl(3, 0, 0, 0, 0)); _harden(); print(libc.prctl(3, 0, 0, 0, 0))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["1", "0"], "PR_GET_DUMPABLE before/after _harden"


def test_everything_ekm_writes_is_private(prepared: Path, tmp_path: Path) -> None:
    """After a scenario of operations, no file in the home is group/other accessible."""
    env = harness.clean_env(prepared, EKM_BACKUP_PASSPHRASE=harness.BACKUP_PASSPHRASE)
    for args in (
        ["rotate", "session", "--force"],
        ["backup", "create"],
        ["generate", "private_check", "--type", "aes-256-gcm"],
    ):
        res = harness.run_ekm(args, env)
        assert res.returncode == 0, res.stderr
    for path in [prepared, *prepared.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.name == ".lock":
            continue
        assert mode & 0o077 == 0, f"{path} has mode {mode:04o}"


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_group_readable_key_file_is_refused(prepared: Path, mode: int) -> None:
    path = prepared / "keys" / "hmac.json"
    path.chmod(mode)
    res = harness.run_ekm(["keys", "export", "hmac", "--reveal", "--format", "raw"],
                          harness.clean_env(prepared))  # fmt: skip
    assert res.returncode == 4
    assert "hmac.json has mode" in res.stderr.decode() and res.stdout == b""
