"""SIGKILL an ``ekm`` command at a random instant and check the home afterwards.

Shared by the short test (tests/reliability/test_crash_sigkill.py) and the long soak
(benchmarks/crash_soak.py), so both prove the same thing. ``reference`` runs each operation
once to completion (its "after" state and its wall time T); ``kill_trial`` starts the command
on a fresh copy of the prepared home, sleeps a random delay in [0, 1.2 T] (so kills land
during start-up, inside the storage steps, and sometimes after the end), sends SIGKILL, and
checks ``harness.check_home``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.reliability import harness


@dataclass
class Reference:
    """One operation's clean run: the state it leaves and how long it took."""

    op: harness.Operation
    after: harness.HomeState
    seconds: float


@dataclass
class Outcome:
    """What one kill did: killed (True) or finished first, and what the home held after."""

    op: str
    delay: float
    killed: bool
    state: str  # "before", "after" or "mixed" (some keys changed, others not yet)
    torn_audit: bool
    stray: int


def reference(template: Path, work: Path, op: harness.Operation) -> Reference:
    home = harness.copy_home(template, work / f"ref-{op.name}")
    out = work / f"ref-{op.name}-out"
    out.mkdir(mode=0o700)
    (out / "plain.txt").write_bytes(b"plaintext for the encrypt operation\n" * 100)
    start = time.perf_counter()
    res = subprocess.run(
        op.command(home, out),
        env=harness.clean_env(home, **op.env),
        capture_output=True,
        timeout=120,
        check=False,
    )
    seconds = time.perf_counter() - start
    if res.returncode != 0:
        raise AssertionError(f"{op.name}: clean run failed: {res.stderr.decode()[-400:]}")
    return Reference(op, harness.snapshot(home), seconds)


def kill_trial(
    template: Path,
    where: Path,
    ref: Reference,
    before: harness.HomeState,
    ciphertexts: list[tuple[str, int, bytes, bytes]],
    delay: float,
) -> Outcome:
    """Run ``ref.op`` on a copy of ``template`` at ``where``, SIGKILL it after ``delay``."""
    home = harness.copy_home(template, where)
    out = where.with_name(where.name + "-out")
    out.mkdir(mode=0o700)
    (out / "plain.txt").write_bytes(b"plaintext for the encrypt operation\n" * 100)
    proc = subprocess.Popen(
        ref.op.command(home, out),
        env=harness.clean_env(home, **ref.op.env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    mgr = harness.manager(home)
    mgr.unlock()
    verify = mgr.audit_log.verify()
    torn = not verify.ok and "truncated record" in (verify.first_bad or "")
    now = harness.check_home(home, before, ref.after, ciphertexts, allow_torn_audit_tail=True)
    changed = {n for n in now.versions if now.versions[n] != before.versions.get(n)}
    expected = {n for n in ref.after.versions if ref.after.versions[n] != before.versions.get(n)}
    expected |= set(before.versions) - set(ref.after.versions)
    state = "before" if not changed else "after" if changed == expected else "mixed"
    if ref.op.name == "encrypt" and (out / "data.ekm").exists():
        _check_encrypted(home, out)
    return Outcome(ref.op.name, delay, killed, state, torn, len(harness.stray_files(home)))


def _check_encrypted(home: Path, out: Path) -> None:
    """An encrypt output that exists must be whole: it decrypts to the plaintext."""
    res = harness.run_ekm(
        ["decrypt", "-o", str(out / "back.txt"), str(out / "data.ekm")], harness.clean_env(home)
    )
    assert res.returncode == 0, f"a killed encrypt left a partial {out / 'data.ekm'}"
    assert (out / "back.txt").read_bytes() == (out / "plain.txt").read_bytes()
