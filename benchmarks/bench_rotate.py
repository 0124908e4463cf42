"""Benchmark: ``ekm rotate --check`` on big homes, and ``ekm rotate --force`` throughput.

Run: python3 benchmarks/bench_rotate.py [--check-sizes 10000,100000] [--rotate-keys 1000]
     [--repeat 3] [--workdir DIR] [--profile]

Targets (2 cores): ``ekm rotate --check`` as a cold process under 1 s on 10,000 keys and
under 3 s on 100,000 keys, with cost linear in the number of keys; ``ekm rotate --force``
over 1,000 AES/HMAC keys at 500 keys/s or more.

Homes are built in-process, not through 100,000 CLI calls: deploy an empty home once, unlock
its root key, and write each key document with ``Keystore.save(key, add_material=...,
create=True)``. Built homes are kept in ``--workdir`` and reused by later runs. Every timed
command is a fresh ``ekm`` process, as cron runs it. ``--profile`` adds ``-X importtime``
and a cProfile of the largest check, to show where the time goes.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

TYPES = (("aes-256-gcm", "encryption"), ("hmac-sha256", "mac"))


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EKM_", "VAULT_"))}
    env.update(EKM_HOME=str(home), NO_COLOR="1", COLUMNS="200")
    return env


def build_home(path: Path, n: int, *, now: datetime, spread: bool, backup: bool) -> Path:
    """A deployed home holding ``n`` AES/HMAC keys (kept if already built with these options).

    ``spread``: creation times over the last 400 days and intervals of 30/90/365 days, so a
    realistic share is due or upcoming; otherwise every key was made a day ago (none due).
    """
    marker = path / ".bench"
    tag = f"{n} {spread} {backup}"
    if marker.exists() and marker.read_text() == tag:
        return path
    if path.exists():
        shutil.rmtree(path)
    from ekm.manager import KeyManager

    path.mkdir(mode=0o700, parents=True)
    (path / "ekm.toml").write_text("[keys]\n")
    (path / "ekm.toml").chmod(0o600)
    mgr = KeyManager(path, env={})
    mgr.deploy(now=now)
    mgr.unlock()
    store = mgr.keystore
    rng = random.Random(n)
    started = time.perf_counter()
    # Building only: one fsync per document (twice, with the directory) would make a
    # 100,000-key home take many minutes of disk flushes; the documents are still written
    # by Keystore.save (atomic rename), and one os.sync() below makes them durable.
    real_fsync, os.fsync = os.fsync, lambda fd: None
    try:
        _fill(store, n, rng, now, spread=spread, backup=backup)
    finally:
        os.fsync = real_fsync
    os.sync()
    print(f"  built {path.name}: {n} keys in {time.perf_counter() - started:.1f} s", flush=True)
    marker.write_text(tag)
    return path


def _fill(store, n: int, rng: random.Random, now: datetime, *, spread: bool, backup: bool):
    from ekm.crypto import material
    from ekm.crypto.keytypes import KeyState, KeyType, KeyUsage
    from ekm.model import Key, KeyVersion, RotationPolicy

    with store.store.lock():
        for i in range(n):
            type_name, usage = TYPES[i % 2]
            created = now - timedelta(days=rng.uniform(0, 400) if spread else 1)
            key = Key(
                name=f"k{i:06d}",
                type=KeyType(type_name),
                usage=KeyUsage(usage),
                policy=RotationPolicy(
                    interval=timedelta(days=rng.choice((30, 90, 365)) if spread else 90),
                    notify_before=timedelta(days=7),
                    backup=backup,
                ),
                versions=[KeyVersion(1, KeyState.PRIMARY, created, activated=created)],
                created=created,
            )
            store.save(key, add_material={1: material.generate(key.type)}, create=True)
            store.forget()  # keep memory flat: the benchmark homes are large


#: CPU seconds (user + sys) of the last timed child: unlike wall time, it does not grow
#: when other work shares the machine, so it shows the command's own cost.
LAST_CPU = [0.0]


def timed(cmd: list[str], env: dict[str, str], ok: tuple[int, ...]) -> float:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_CPU[0] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if res.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)}: exit {res.returncode}: {res.stderr.decode()[-500:]}")
    return elapsed


def bench_check(workdir: Path, sizes: list[int], repeat: int, now: datetime) -> dict[int, float]:
    best: dict[int, float] = {}
    for n in [0, *sizes]:
        home = build_home(workdir / f"check-{n}", n, now=now, spread=True, backup=False)
        env = _env(home)
        runs, cpus = [], []
        for _ in range(repeat):
            runs.append(timed(["ekm", "rotate", "--check"], env, (0, 1)))
            cpus.append(LAST_CPU[0])
        best[n] = min(cpus)
        print(
            f"rotate --check  {n:>7} keys: wall best {min(runs):.3f} s, "
            f"median {statistics.median(runs):.3f} s; CPU best {best[n]:.3f} s "
            f"({repeat} cold processes)",
            flush=True,
        )
    base = best[0]
    for n in sizes:
        print(f"  CPU per key above the empty-home start-up ({base:.3f} s): "
              f"{(best[n] - base) / n * 1e6:.1f} us")  # fmt: skip
    return best


def bench_rotate(workdir: Path, n: int, repeat: int, now: datetime) -> None:
    for backup in (False, True):
        template = build_home(
            workdir / f"rotate-{n}-{'backup' if backup else 'nobackup'}",
            n,
            now=now,
            spread=False,
            backup=backup,
        )
        runs, cpus = [], []
        for _ in range(repeat):
            with tempfile.TemporaryDirectory(dir=workdir) as tmp:
                home = Path(tmp) / "home"
                shutil.copytree(template, home, symlinks=True)
                os.sync()  # the copy's dirty pages must not be flushed inside the timing
                runs.append(timed(["ekm", "rotate", "--force"], _env(home), (0,)))
                cpus.append(LAST_CPU[0])
        t = min(runs)
        print(
            f"rotate --force  {n:>7} keys, backup={'yes' if backup else 'no '}: "
            f"wall best {t:.3f} s = {n / t:,.0f} keys/s (median "
            f"{statistics.median(runs):.3f} s); CPU best {min(cpus):.3f} s",
            flush=True,
        )


def _entry(workdir: Path, *args: str) -> str:
    """A script file running ``ekm ARGS`` (cProfile profiles files, not -c strings)."""
    path = workdir / f"entry-{'-'.join(a.strip('-') for a in args)}.py"
    path.write_text(
        f"import sys\nfrom ekm.cli.main import main\nsys.argv = ['ekm', *{list(args)!r}]\nmain()\n"
    )
    return str(path)


def profile(workdir: Path, n: int, rotate_keys: int) -> None:
    home = workdir / f"check-{n}"
    env = _env(home)
    entry = _entry(workdir, "rotate", "--check")
    res = subprocess.run(
        [sys.executable, "-X", "importtime", entry], env=env, capture_output=True, text=True
    )
    rows = []
    for line in res.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            parts = [p.strip() for p in line[len("import time:") :].split("|")]
            if parts[1].isdigit():
                rows.append((int(parts[1]), parts[2]))
    print(f"\n-X importtime, top cumulative imports ({n} keys home):")
    for us, name in sorted(rows, reverse=True)[:12]:
        print(f"  {us / 1000:8.1f} ms  {name}")
    out = workdir / "check.prof"
    subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(out), entry],
        env=env,
        capture_output=True,
        check=False,
    )
    import pstats

    print(f"\ncProfile of `ekm rotate --check` on {n} keys (top 15 by cumulative time):")
    pstats.Stats(str(out)).sort_stats("cumulative").print_stats(15)
    template = workdir / f"rotate-{rotate_keys}-nobackup"
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        home = Path(tmp) / "home"
        shutil.copytree(template, home, symlinks=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "cProfile",
                "-o",
                str(out),
                _entry(workdir, "rotate", "--force"),
            ],
            env=_env(home),
            capture_output=True,
            check=False,
        )
    print(f"\ncProfile of `ekm rotate --force` on {rotate_keys} keys (top 20, internal time):")
    pstats.Stats(str(out)).sort_stats("tottime").print_stats(20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check-sizes", default="10000,100000")
    ap.add_argument("--rotate-keys", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ekm-bench-rotate"
    )
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    args.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # a fixed "now" on the hour keeps reused homes' due fractions stable between runs
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    sizes = [int(s) for s in args.check_sizes.split(",") if s]
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    bench_check(args.workdir, sizes, args.repeat, now)
    bench_rotate(args.workdir, args.rotate_keys, args.repeat, now)
    if args.profile and sizes:
        profile(args.workdir, max(sizes), args.rotate_keys)


if __name__ == "__main__":
    main()
