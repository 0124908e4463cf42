"""Syscall-level fault injection with strace: kill or fail ``ekm`` at its N-th mutating call.

``trace_points`` runs a command once under ``strace -f`` tracing only the system calls that
change a file system (:data:`MUTATING`) and returns them in order: these are the kill points.
``run_at`` runs the command again with ``-e inject=SYSCALL:signal=SIGKILL:when=N`` (or
``error=ENOSPC``/``EIO``), where N is how many times that same system call had been made by
then: the process dies (or gets the error) at exactly that call, never earlier or later,
because the sequence of mutating calls of an ekm command on a copy of the same home is the
same each run. strace counts each system call of each process separately, which is why a
point is (syscall, N) and not a global index.

``--seccomp-bpf`` keeps untraced calls at full speed while counting (strace 6.1 does not
inject into calls it filters that way, so the injecting run goes without it). Python writes
no bytecode (``PYTHONDONTWRITEBYTECODE``), so every mutating call in the trace is ekm's own.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

#: System calls that change what is on disk (or durably order it).
MUTATING = (
    "write", "pwrite64", "writev", "fsync", "fdatasync", "syncfs", "rename", "renameat",
    "renameat2", "unlink", "unlinkat", "ftruncate", "truncate", "mkdir", "mkdirat", "fchmod",
    "fchmodat", "chmod", "link", "linkat",
)  # fmt: skip
#: Calls an ENOSPC/EIO fault is injected into (the ones that can fail that way on a full disk).
FAILABLE = ("write", "pwrite64", "writev", "fsync", "fdatasync", "syncfs")

_LINE = re.compile(r"^(?P<pid>\d+)\s+(?P<call>\w+)\((?P<args>.*)$")


def available() -> bool:
    """Whether strace can inject faults here (installed, and ptrace permitted)."""
    if shutil.which("strace") is None:
        return False
    res = subprocess.run(
        ["strace", "-f", "-qq", "-o", os.devnull, "-e", "inject=write:error=ENOSPC:when=1000",
         "true"],
        capture_output=True, check=False, timeout=30,
    )  # fmt: skip
    return res.returncode == 0


@dataclass(frozen=True)
class Point:
    """The N-th call of ``syscall`` by the command's process; ``detail`` shows what it did."""

    index: int
    syscall: str
    nth: int
    detail: str

    def to_terminal(self) -> bool:
        """A write to stdout or stderr (the command's report, not the home)."""
        return self.syscall.startswith(("write", "pwrite")) and self.detail.startswith(("1,", "2,"))

    def label(self) -> str:
        return f"#{self.index} {self.syscall}#{self.nth} {self.detail}"


def _env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "PYTHONDONTWRITEBYTECODE": "1"}


def trace_points(argv: list[str], env: dict[str, str], workdir: Path) -> list[Point]:
    """Run ``argv`` once under strace; the mutating calls of its first process, in order."""
    log = workdir / "strace.log"
    res = subprocess.run(
        ["strace", "-f", "-qq", "--seccomp-bpf", "-s", "48", "-e", "signal=none",
         "-e", "trace=" + ",".join(MUTATING), "-o", str(log), *argv],
        env=_env(env), capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    if res.returncode != 0:
        raise AssertionError(f"{argv[1:]}: clean run failed: {res.stderr.decode()[-400:]}")
    points: list[Point] = []
    counts: dict[str, int] = {}
    main_pid = None
    for line in log.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        main_pid = main_pid or m["pid"]
        if m["pid"] != main_pid:
            continue
        call = m["call"]
        counts[call] = counts.get(call, 0) + 1
        detail = m["args"].split(") ", 1)[0][:60]
        points.append(Point(len(points) + 1, call, counts[call], detail))
    return points


def run_at(
    argv: list[str],
    env: dict[str, str],
    point: Point,
    *,
    action: str = "signal=SIGKILL",
    timeout: float = 120,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` with ``action`` injected into the call ``point`` (and no other)."""
    return subprocess.run(
        ["strace", "-f", "-qq", "-o", os.devnull,
         "-e", f"trace={point.syscall}",
         "-e", f"inject={point.syscall}:{action}:when={point.nth}", *argv],
        env=_env(env), stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
        check=False,
    )  # fmt: skip


def was_killed(res: subprocess.CompletedProcess[bytes]) -> bool:
    """strace re-raises the tracee's fatal signal on itself (or exits 128 + signal)."""
    return res.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL)


def sample(points: list[Point], k: int | None) -> list[Point]:
    """``k`` points spread evenly inside ``points`` (at 1/(k+1), 2/(k+1), ...); all if None.

    The ends are left out on purpose: the first mutating call is the lock file's pid, before
    any change, and the last ones write the report to the terminal, after every change; the
    interesting points lie between. Deterministic, so a failure found in CI is found again on
    a developer's machine; the long setting (benchmarks/crash_soak.py) passes None and tries
    every point.
    """
    if k is None or len(points) <= k:
        return list(points)
    return [points[(i + 1) * len(points) // (k + 1)] for i in range(k)]
