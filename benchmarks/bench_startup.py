#!/usr/bin/env python3
"""Cold start of the ekm command against ``python -c pass`` of the same interpreter.

Run from the repository root:  python3 benchmarks/bench_startup.py [--runs 15]

Best of N fresh processes each, alternated round by round with the floor, in the environment a
user has (bytecode compiled as the installed wheel ships it, no PYTHONDONTWRITEBYTECODE):
``python -c pass``; ``python -c 'import ekm'``; ``ekm --version``; ``ekm --help``; on a home of
10 keys ``ekm status`` and ``ekm rotate --check`` (metadata only, as from cron); ``ekm encrypt``
of a 100-byte file to a file (unlock, encrypt, audit record with its fsync, output fsync and
rename: everything a script calling ekm once per file pays). Targets: --version <= 3x,
status and rotate --check <= 5x, encrypt <= 6x the floor. Timings belong here, never in tests.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import benchlib
from benchlib import EKM_ARGV, best, run, target


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    benchlib.compile_bytecode()
    print(f"machine: {benchlib.machine()}")
    with tempfile.TemporaryDirectory(prefix="ekm-startup-") as tmp:
        home = benchlib.build_home(Path(tmp) / "home10", 10)
        env = benchlib.user_env(EKM_HOME=str(home))
        plain = Path(tmp) / "value.txt"
        plain.write_bytes(os.urandom(100))
        sealed = Path(tmp) / "value.txt.ekm"
        py = benchlib.PY
        jobs = {
            "python -c pass": lambda: run([*py, "-c", "pass"], env),
            "python -c 'import ekm'": lambda: run([*py, "-c", "import ekm"], env),
            "ekm --version": lambda: run([*EKM_ARGV, "--version"], env),
            "ekm --help": lambda: run([*EKM_ARGV, "--help"], env),
            "ekm status (10 keys)": lambda: run([*EKM_ARGV, "status"], env),
            "ekm rotate --check (10 keys)": lambda: run(
                [*EKM_ARGV, "rotate", "--check"], env, ok=(0, 1)
            ),
            "ekm encrypt (100-byte file)": lambda: run(
                [*EKM_ARGV, "encrypt", "-k", "k000000", "-o", str(sealed), "--force", str(plain)],
                env,
            ),
        }
        rows = best(jobs, args.runs)
    floor = rows["python -c pass"].seconds
    print(
        f"best of {args.runs} fresh processes each; every one runs as `python -S` with this "
        "checkout on PYTHONPATH, so no editable-install hook inflates the floor (benchlib.py)"
    )
    print(f"{'command':34}{'best ms':>9}{'cpu ms':>8}{'x python':>10}")
    for name, r in rows.items():
        print(f"{name:34}{r.seconds * 1000:>9.1f}{r.cpu * 1000:>8.1f}{r.seconds / floor:>10.2f}")
    ok = True
    for name, limit in (
        ("ekm --version", 3.0),
        ("ekm status (10 keys)", 5.0),
        ("ekm rotate --check (10 keys)", 5.0),
        ("ekm encrypt (100-byte file)", 6.0),
    ):
        r = rows[name].seconds / floor
        ok &= target(
            f"start-up: {name} vs python -c pass",
            f"{r:.2f}x ({rows[name].seconds * 1000:.0f} ms vs {floor * 1000:.0f} ms)",
            f"<= {limit:g}x",
            r <= limit,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
