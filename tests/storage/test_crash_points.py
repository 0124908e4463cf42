"""Crash consistency at the system-call level: SIGKILL, ENOSPC and EIO at chosen mutating calls.

For each operation (rotate, generate, keys destroy, keys recover, backup restore, apikey
create and revoke, and an operation whose only change is its audit record), the clean run's
mutating system calls are listed with strace (tests/storage/syscalls.py); then, on fresh
copies of the prepared home, the operation is killed at some of them, and an ENOSPC or EIO is
injected into some writes and fsyncs. After each, tests/storage/crashcheck.py checks the home
(loads, ``--verify-log``, no version lost, no phantom or missing audit record, old
ciphertexts decrypt, no temporary file left after the next command).

This is the short setting: ``EKM_CRASH_POINTS`` kill points and ``EKM_FAULT_POINTS`` fault
points per operation, spread evenly over the calls (deterministic). The long setting tries
every point: ``python3 benchmarks/crash_soak.py`` (counts in SECURITY.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.reliability import harness
from tests.storage import crashcheck, syscalls

pytestmark = pytest.mark.skipif(
    not syscalls.available(), reason="strace cannot inject faults here (missing, or no ptrace)"
)

#: The operations of issue 22's crash list, by their name in the harness table.
CRASH_OPS = (
    "rotate", "generate", "destroy", "recover", "backup-restore", "apikey-create",
    "apikey-revoke", "audit-append",
)  # fmt: skip
KILL_POINTS = int(os.environ.get("EKM_CRASH_POINTS", "3"))
FAULT_POINTS = int(os.environ.get("EKM_FAULT_POINTS", "2"))


@pytest.mark.parametrize("name", CRASH_OPS)
def test_killed_or_failed_at_a_system_call_the_home_stays_whole(
    name: str, prepared_template: Path, tmp_path: Path
) -> None:
    op = harness.operation(name)
    p = crashcheck.plan(prepared_template, tmp_path, op)
    assert p.points, f"{name}: no mutating system call traced"
    trials = []
    for i, point in enumerate(syscalls.sample(p.points, KILL_POINTS)):
        trials.append(
            crashcheck.trial(p, prepared_template, tmp_path / f"kill-{i}", point, "signal=SIGKILL")
        )
    failable = [pt for pt in p.points if pt.syscall in syscalls.FAILABLE and not pt.to_terminal()]
    for i, point in enumerate(syscalls.sample(failable, FAULT_POINTS)):
        action = "error=ENOSPC" if point.syscall.startswith(("write", "pwrite")) else "error=EIO"
        trials.append(
            crashcheck.trial(p, prepared_template, tmp_path / f"fault-{i}", point, action)
        )
    bad = [t.line() for t in trials if t.problems]
    assert not bad, "\n".join(bad)
    assert any(t.killed for t in trials), "no trial was killed: the points missed the process"
