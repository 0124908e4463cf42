"""Two ``ekm rotate`` processes on one home: the keystore lock serialises them; no version
is ever lost, and a process that cannot get the lock in time fails with exit 4.

Races are made deterministic instead of hoping for an overlap: the test holds the home's
lock itself, starts the processes, waits until each has opened the lock file (seen in
/proc/PID/fd, i.e. each has planned its work and is queued on the lock), then releases it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from ekm.fsutil import FileLock
from ekm.manager import KeyManager
from tests.rotation.helpers import FAST_KEYS, audit, doc, snapshot, states


def _spawn(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["ekm", "--json", "rotate", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_queued(procs: list[subprocess.Popen[str]], lock: Path, limit: float = 60.0) -> None:
    """Until every process has the lock file open (or exited); a generous safety limit
    only, never an assertion about speed."""
    deadline = time.monotonic() + limit
    pending = list(procs)
    while pending and time.monotonic() < deadline:
        for p in list(pending):
            if p.poll() is not None:
                pending.remove(p)
                continue
            try:
                fds = os.listdir(f"/proc/{p.pid}/fd")
                targets = {os.readlink(f"/proc/{p.pid}/fd/{fd}") for fd in fds}
            except FileNotFoundError:
                continue
            if str(lock) in targets:
                pending.remove(p)
        time.sleep(0.01)
    assert not pending, "processes never reached the keystore lock"


def _finish(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str, str]]:
    return [(p.wait(timeout=120), *p.communicate()) for p in procs]


def _check_store(home: Path, versions: int) -> None:
    """Every key has exactly ``versions`` versions, one primary, material for each."""
    for name in FAST_KEYS:
        d = doc(home, name)
        assert [v["version"] for v in d["meta"]["versions"]] == list(range(1, versions + 1))
        assert sorted(d["material"], key=int) == [str(v) for v in range(1, versions + 1)]
        assert list(states(home, name).values()).count("primary") == 1
    mgr = KeyManager(home, env={})
    mgr.unlock()
    assert mgr.keystore.verify_all() == []  # every MAC and every version's material checks


def test_two_forced_rotations_queue_on_the_lock(fhome: Path, fenv: dict[str, str]) -> None:
    lock = fhome / ".lock"
    with FileLock(lock, timeout=5):
        procs = [_spawn(fenv, "--force", "--yes"), _spawn(fenv, "--force", "--yes")]
        _wait_queued(procs, lock)
    results = _finish(procs)
    assert [code for code, _, _ in results] == [0, 0], results
    _check_store(fhome, versions=3)  # both rotations landed, one after the other
    rotates = [r for r in audit(fhome) if r["op"] == "rotate"]
    assert sorted((r["key"], r["version"]) for r in rotates) == sorted(
        (n, v) for n in FAST_KEYS for v in (2, 3)
    )
    res = subprocess.run(
        ["ekm", "audit", "--verify-log"], env=fenv, capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr


def test_free_running_rotations_never_lose_a_version(fhome: Path, fenv) -> None:
    procs = [_spawn(fenv, "--force", "--yes") for _ in range(3)]
    results = _finish(procs)
    ok = [code for code, _, _ in results if code == 0]
    for code, _, err in results:
        assert code in (0, 4), err
        if code == 4:
            assert len(err.splitlines()) == 1 and "another ekm process" in err
    _check_store(fhome, versions=1 + len(ok))


def test_a_lock_held_too_long_fails_clearly_with_exit_4(fhome: Path, fenv, run) -> None:
    cfg = fhome / "ekm.toml"
    cfg.write_text('[storage]\nlock_timeout = "1s"\n' + cfg.read_text())
    before = snapshot(fhome)
    with FileLock(fhome / ".lock", timeout=5):
        line = run("rotate", "--force", "--yes", env=fenv).expect_error(
            4, "another ekm process", f"(pid {os.getpid()})", "gave up after 1s"
        )
    assert "try again" in line
    assert snapshot(fhome) == before
    run("rotate", "--force", "--yes", env=fenv).expect_ok()
    _check_store(fhome, versions=2)


def test_overlapping_cron_runs_rotate_a_due_key_once(fhome: Path, fenv) -> None:
    lock = fhome / ".lock"
    with FileLock(lock, timeout=5):
        procs = [_spawn(fenv, "--as-of", "+8d"), _spawn(fenv, "--as-of", "+8d")]
        _wait_queued(procs, lock)
    results = _finish(procs)
    assert [code for code, _, _ in results] == [0, 0], results
    rotated = [json.loads(out)["rotated"] for _, out, _ in results]
    assert sorted(len(r) for r in rotated) == [0, 1]  # the second finds nothing due
    assert states(fhome, "session") == {1: "active", 2: "primary"}


def test_a_queued_rotation_records_the_true_from_version(fhome: Path, fenv) -> None:
    lock = fhome / ".lock"
    with FileLock(lock, timeout=5):
        procs = [_spawn(fenv, "session"), _spawn(fenv, "session")]
        _wait_queued(procs, lock)
    results = _finish(procs)
    assert [code for code, _, _ in results] == [0, 0], results
    steps = sorted(
        (r["from_version"], r["to_version"])
        for _, out, _ in results
        for r in json.loads(out)["rotated"]
    )
    assert steps == [(1, 2), (2, 3)]
    recs = [(r["from_version"], r["version"]) for r in audit(fhome) if r["op"] == "rotate"]
    assert sorted(recs) == [(1, 2), (2, 3)]
