#!/usr/bin/env python3
"""Many small files in one call against one call per file.

Run from the repository root:  python3 benchmarks/bench_many.py [--files 1000] [--repeat 3]

Scripts used to call ``ekm encrypt`` once per file. This times, best of --repeat (fresh
processes, fresh output directory each round): one ``ekm encrypt`` of a single 100-byte file,
then one call each of ``encrypt --out-dir``, ``decrypt --out-dir``, ``sign --out-dir`` and
``verify`` over --files 100-byte files. Each file still gets its own audit record and its own
durable output. Target: the --files call of encrypt within 10 single calls ("about the time of
a few single calls"); the other commands are printed the same way.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import benchlib
from benchlib import EKM_ARGV, best, run, target


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    benchlib.compile_bytecode()
    print(f"machine: {benchlib.machine()}")
    with tempfile.TemporaryDirectory(prefix="ekm-many-", dir="/tmp") as tmp:
        work = Path(tmp)
        home = benchlib.build_home(work / "home", 1, spread=False)
        env = benchlib.user_env(EKM_HOME=str(home))
        run([*EKM_ARGV, "generate", "signer", "--type", "ed25519"], env)
        src = work / "in"
        src.mkdir()
        files = []
        for i in range(args.files):
            p = src / f"f{i:05d}.txt"
            p.write_bytes(os.urandom(100))
            files.append(str(p))
        sealed, opened, sigs = work / "sealed", work / "opened", work / "sigs"

        def fresh(d: Path) -> None:
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir()

        def enc_many() -> benchlib.Run:
            fresh(sealed)
            argv = [*EKM_ARGV, "encrypt", "-k", "k000000", "--out-dir", str(sealed), *files]
            return run(argv, env)

        enc_many()
        sealed_files = sorted(str(p) for p in sealed.iterdir())

        def dec_many() -> benchlib.Run:
            fresh(opened)
            return run([*EKM_ARGV, "decrypt", "--out-dir", str(opened), *sealed_files], env)

        def sign_many() -> benchlib.Run:
            fresh(sigs)
            return run([*EKM_ARGV, "sign", "-k", "signer", "--out-dir", str(sigs), *files], env)

        run([*EKM_ARGV, "sign", "-k", "signer", *files], env)  # FILE.sig beside each, for verify

        jobs = {
            "encrypt, 1 file": lambda: run([*EKM_ARGV, "encrypt", "-k", "k000000", "-o",
                                            str(work / "one.ekm"), "--force", files[0]], env),
            f"encrypt, {args.files} files": enc_many,
            f"decrypt, {args.files} files": dec_many,
            f"sign, {args.files} files": sign_many,
            f"verify, {args.files} files": lambda: run([*EKM_ARGV, "verify", *files], env),
        }  # fmt: skip
        rows = best(jobs, args.repeat)
    single = rows["encrypt, 1 file"].seconds
    print(f"{args.files} files of 100 bytes in one call, best of {args.repeat}")
    print(f"{'job':<24}{'seconds':>9}{'ms/file':>9}{'single calls':>14}")
    for name, r in rows.items():
        count = args.files if "files" in name else 1
        print(f"{name:<24}{r.seconds:>9.2f}{r.seconds / count * 1000:>9.2f}"
              f"{r.seconds / single:>14.1f}")  # fmt: skip
    many = rows[f"encrypt, {args.files} files"].seconds / single
    ok = target(f"many files: encrypt of {args.files} files in one call vs one single call",
                f"{many:.1f} single calls", "<= 10", many <= 10)  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
