"""Shared helpers of the benchmarks: honest timing, child processes, homes, target lines.

Every script prints its targets as ``TARGET <name> | <measured> | <limit> | PASS|FAIL`` lines;
benchmarks/run_all.py collects them into one table (and README.md's). Rules kept here:

* best of N wall-clock runs, ekm and its baseline measured in the same run, alternated;
* child processes get the environment a user has: ``PYTHONDONTWRITEBYTECODE`` removed and the
  package byte-compiled first (an installed wheel ships .pyc files; an editable checkout run
  with that variable would recompile every module on every start);
* Python children, the ``python -c pass`` floor included, run as ``python -S`` with
  ``PYTHONPATH`` = this checkout + the interpreter's site-packages: no ``.pth`` processing, so
  the import hook of an editable install (``pip install -e``), which costs about as much as
  the interpreter start itself, is in neither the floor nor ekm, as with an installed wheel;
  ``ekm`` is run exactly as its console script does (``from ekm.cli.main import run``);
* peak RSS is the child's own (``os.wait4``), never the parent's.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
SITE = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
#: ``python`` for children: no site processing (see the module doc).
PY = [sys.executable, "-S"]
#: The ``ekm`` command, as the console script runs it, without site processing.
EKM_ARGV = [*PY, "-c", "from ekm.cli.main import run; run()"]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line naming the machine: CPU model, cores, load, Python."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, load {load[0]:.2f}, "
        f"Python {platform.python_version()}"
    )


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no EKM_/VAULT_ settings, bytecode allowed."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EKM_", "VAULT_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(NO_COLOR="1", COLUMNS="200", PYTHONPATH=os.pathsep.join([str(ROOT), *SITE]))
    env.update(extra)
    return env


def compile_bytecode() -> None:
    """Byte-compile ekm as ``pip install`` of the wheel does (quietly, once per run)."""
    import ekm

    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(ekm.__file__).parent)],
        env=user_env(),
        check=False,
        capture_output=True,
    )


class Run:
    """One finished child process: wall seconds, CPU seconds, peak RSS (MiB), exit code."""

    def __init__(self, seconds: float, cpu: float, rss_mib: float, code: int, err: bytes):
        self.seconds, self.cpu, self.rss_mib, self.code, self.err = seconds, cpu, rss_mib, code, err


def run(
    argv: Sequence[str],
    env: dict[str, str] | None = None,
    *,
    stdin: Any = subprocess.DEVNULL,
    stdout: Any = subprocess.DEVNULL,
    ok: tuple[int, ...] = (0,),
) -> Run:
    """Run a child, wait with ``wait4`` (its own rusage), fail loudly on an unexpected exit."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(argv), env=env, stdin=stdin, stdout=stdout,
                            stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stderr is not None
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(argv)}: exit {proc.returncode}: {err.decode()[-600:]}")
    return Run(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
               proc.returncode, err)  # fmt: skip


def best(jobs: dict[str, Callable[[], Run]], repeat: int) -> dict[str, Run]:
    """Best (fastest) of ``repeat`` rounds; each round runs every job once, alternating, so
    a burst of load elsewhere on the machine hits ekm and its baseline alike."""
    out: dict[str, Run] = {}
    peak: dict[str, float] = {}
    for _ in range(repeat):
        for name, job in jobs.items():
            r = job()
            peak[name] = max(peak.get(name, 0.0), r.rss_mib)
            if name not in out or r.seconds < out[name].seconds:
                out[name] = r
    for name, r in out.items():
        r.rss_mib = peak[name]  # the worst peak of all rounds, not the best round's
    return out


def target(name: str, measured: str, limit: str, ok: bool) -> bool:
    """Print one target line (run_all.py collects these); returns ``ok``."""
    print(f"TARGET {name} | {measured} | {limit} | {'PASS' if ok else 'FAIL'}", flush=True)
    return ok


def build_home(path: Path, n: int, *, spread: bool = True, now: datetime | None = None) -> Path:
    """A deployed home (file master key) holding ``n`` AES/HMAC keys, built in-process.

    Kept and reused when already built with the same size. Writing goes through
    ``Keystore.save`` (atomic rename); per-document fsyncs are skipped while building and one
    ``os.sync()`` makes the home durable: 100,000 fsyncs would take minutes of disk flushes.
    ``spread``: creation times over the last 400 days and intervals of 30/90/365 days, so a
    realistic share of keys is due or upcoming.
    """
    import random

    marker = path / ".bench"
    tag = f"{n} {spread}"
    if marker.exists() and marker.read_text() == tag:
        return path
    if path.exists():
        shutil.rmtree(path)
    from ekm.crypto import material
    from ekm.crypto.keytypes import KeyState, KeyType, KeyUsage
    from ekm.manager import KeyManager
    from ekm.model import Key, KeyVersion, RotationPolicy

    now = now or datetime.now(timezone.utc)
    path.mkdir(mode=0o700, parents=True)
    (path / "ekm.toml").write_text("[keys]\n")
    (path / "ekm.toml").chmod(0o600)
    mgr = KeyManager(path, env={})
    mgr.deploy(now=now)
    mgr.unlock()
    store = mgr.keystore
    rng = random.Random(n)
    types = (("aes-256-gcm", "encryption"), ("hmac-sha256", "mac"))
    real_fsync, os.fsync = os.fsync, lambda fd: None
    try:
        with store.store.lock():
            for i in range(n):
                type_name, usage = types[i % 2]
                created = now - timedelta(days=rng.uniform(0, 400) if spread else 1)
                key = Key(
                    name=f"k{i:06d}", type=KeyType(type_name), usage=KeyUsage(usage),
                    policy=RotationPolicy(
                        interval=timedelta(days=rng.choice((30, 90, 365)) if spread else 90),
                        notify_before=timedelta(days=7), backup=False,
                    ),
                    versions=[KeyVersion(1, KeyState.PRIMARY, created, activated=created)],
                    created=created,
                )  # fmt: skip
                store.save(key, add_material={1: material.generate(key.type)}, create=True)
                if i % 1000 == 999:
                    store.forget()  # keep memory flat on big homes
    finally:
        os.fsync = real_fsync
    os.sync()
    marker.write_text(tag)
    return path


def ratio_text(value: float, unit: str = "x") -> str:
    return f"{value:.2f}{unit}"
