#!/usr/bin/env python3
"""Throughput through KeyManager and the ``ekm`` command (not the bare crypto: see bench_crypto).

Usage: python3 benchmarks/bench_api.py [--records 50000] [--size-mib 1024]

* records: 100-byte values through ``KeyManager.encrypt``/``decrypt`` with a warm data-key
  cache (ops/s), including the per-record key-state check and usage ledger; and
  ``encrypt_data_async`` with 8 concurrent tasks.
* files: ``ekm encrypt`` / ``ekm decrypt`` of a --size-mib file through the CLI, against
  ``age`` (X25519 recipient) and raw AES-256-GCM over 64 KiB chunks, each in its own process;
  peak RSS is that process's own (RUSAGE_CHILDREN of a one-child wrapper).

A throwaway home is deployed in a temp directory. Wall-clock, best of --repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time

MIB = 1024 * 1024
_WRAP = (
    "import resource,subprocess,sys,time;t=time.perf_counter();"
    "r=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL);"
    "u=resource.getrusage(resource.RUSAGE_CHILDREN);"
    "print(time.perf_counter()-t, u.ru_maxrss, r.returncode)"
)
_RAW = (
    "import os,sys;from cryptography.hazmat.primitives.ciphers.aead import AESGCM;"
    "a=AESGCM(os.urandom(32));i=open(sys.argv[1],'rb');o=open(sys.argv[2],'wb')\n"
    "while c:=i.read(65536): n=os.urandom(12); o.write(n+a.encrypt(n,c,None))"
)


def _measure(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    out = subprocess.run(
        [sys.executable, "-c", _WRAP, *cmd], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    if out[2] != "0":
        raise SystemExit(f"{cmd[0]} failed")
    return float(out[0]), int(out[1])


def bench_records(home: str, n: int) -> None:
    from ekm.manager import KeyManager

    mgr = KeyManager(home, env={})
    value = os.urandom(100)
    mgr.encrypt("database_encryption", value)  # warm: unlock, wrapper, cached data key
    t = time.perf_counter()
    blobs = [mgr.encrypt("database_encryption", value) for _ in range(n)]
    enc = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for b in blobs:
        mgr.decrypt(b)
    dec = n / (time.perf_counter() - t)

    async def many() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(mgr.encrypt_data_async("database_encryption", value)
                               for _ in range(n // 4)))  # fmt: skip
        return (n // 4) / (time.perf_counter() - t0)

    conc = asyncio.run(many())
    mgr.close()
    print(f"records (100 B, warm cache): encrypt {enc:,.0f}/s  decrypt {dec:,.0f}/s  "
          f"async encrypt {conc:,.0f}/s")  # fmt: skip


def bench_files(home: str, size_mib: int, repeat: int) -> None:
    tmp = tempfile.mkdtemp(prefix="ekm-bench-")
    try:
        src = os.path.join(tmp, "plain")
        with open(src, "wb") as fh:
            for _ in range(size_mib):
                fh.write(os.urandom(MIB))
        env = {**os.environ, "EKM_HOME": home}
        ident = os.path.join(tmp, "age.key")
        subprocess.run(["age-keygen", "-o", ident], capture_output=True, check=True)
        rcpt = subprocess.run(["age-keygen", "-y", ident], capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip
        out = os.path.join(tmp, "out")
        jobs = {
            "ekm encrypt (CLI)": ["ekm", "encrypt", "--key", "session", "--force", "-o", out, src],
            "ekm decrypt (CLI)": ["ekm", "decrypt", "--force", "-o", out + ".d", out],
            "age -r": ["age", "-r", rcpt, "-o", out + ".age", src],
            "raw AES-GCM 64 KiB": [sys.executable, "-c", _RAW, src, out + ".raw"],
        }
        print(f"files ({size_mib} MiB):")
        for label, cmd in jobs.items():
            runs = [_measure(cmd, env) for _ in range(repeat)]
            best = min(r[0] for r in runs)
            rss = max(r[1] for r in runs)
            print(f"  {label:22s} {size_mib / best:8.0f} MiB/s  peak RSS {rss / 1024:6.1f} MiB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    home = os.path.join(tempfile.mkdtemp(prefix="ekm-bench-home-"), "home")
    try:
        from ekm.manager import KeyManager

        KeyManager(home, env={}).deploy()
        bench_records(home, args.records)
        bench_files(home, args.size_mib, args.repeat)
    finally:
        shutil.rmtree(os.path.dirname(home), ignore_errors=True)


if __name__ == "__main__":
    main()
