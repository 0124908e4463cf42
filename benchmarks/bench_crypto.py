#!/usr/bin/env python3
"""Streams: ``ekm encrypt``/``decrypt`` of a big file against age and raw AES-256-GCM.

Run from the repository root:  python3 benchmarks/bench_crypto.py [--size-mib 1024] [--repeat 3]

Three tools, each a fresh process timed from start to exit (best of --repeat, alternated):

* ``age`` (X25519 recipient, its own 64 KiB chunks);
* **raw AES-256-GCM**, the floor: a Python child that does exactly ekm's reads and writes and
  nothing else: ``readinto`` a reused 64 KiB buffer (ekm's segment size), ``encrypt_into`` /
  ``decrypt_into`` a reused output buffer, counter nonces, buffered writes to the same sink;
  to a file it writes a temporary file beside the target, fsyncs and renames it, as ekm does;
* ``ekm`` itself, the command a user runs (start-up, unlock and audit record included).

Three sinks each way: file -> file, file -> stdout redirected to /dev/null, and ``-o
/dev/null``. Targets per sink and direction: ekm >= 1.5x age's speed and >= 80% of raw's;
peak RSS (the child's own, wait4) < 64 MiB. ekm and raw fsync a file output; age does not.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import benchlib
from benchlib import EKM_ARGV, MIB, best, run, target

SEGMENT = 64 * 1024

RAW = r"""
import os, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
mode, src, dst = sys.argv[1:4]
seg, tag = 65536, 16
aead = AESGCM(b"k" * 32)
block = seg if mode == "encrypt" else seg + tag
buf = memoryview(bytearray(block))
out = memoryview(bytearray(seg + tag))
op = aead.encrypt_into if mode == "encrypt" else aead.decrypt_into
to_file = dst not in ("-", "/dev/null")
if dst == "-":
    sink = sys.stdout.buffer
else:
    target = dst + ".tmp" if to_file else dst
    sink = open(target, "wb")
with open(src, "rb") as fin:
    i = 0
    while n := fin.readinto(buf):
        m = n + tag if mode == "encrypt" else n - tag
        k = op(i.to_bytes(12, "big"), buf[:n], None, out[:m])
        sink.write(out[:k])
        i += 1
sink.flush()
if to_file:
    os.fsync(sink.fileno())
    sink.close()
    os.replace(target, dst)
    fd = os.open(os.path.dirname(dst) or ".", os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
"""


def _jobs(direction: str, work: Path, inputs: dict[str, Path], env: dict, age_id: str,
          recipient: str) -> dict[str, dict[str, object]]:  # fmt: skip
    """sink -> tool -> job for one direction (encrypt or decrypt)."""
    out = work / "out"
    devnull = "/dev/null"

    def fresh() -> None:
        if out.exists():
            out.unlink()  # every job writes a new file: nobody pays a truncation

    def age(sink: str):  # type: ignore[no-untyped-def]
        base = ["age", "-r", recipient] if direction == "encrypt" else ["age", "-d", "-i", age_id]
        src = str(inputs["age"])

        def job():  # type: ignore[no-untyped-def]
            fresh()
            if sink == "stdout":
                with open(devnull, "wb") as null:
                    return run([*base, src], env, stdout=null)
            return run([*base, "-o", str(out) if sink == "file" else devnull, src], env)

        return job

    def raw(sink: str):  # type: ignore[no-untyped-def]
        src = str(inputs["raw"])
        dst = {"file": str(out), "stdout": "-", "devnull": devnull}[sink]

        def job():  # type: ignore[no-untyped-def]
            fresh()
            argv = [*benchlib.PY, "-c", RAW, direction, src, dst]
            if sink == "stdout":
                with open(devnull, "wb") as null:
                    return run(argv, env, stdout=null)
            return run(argv, env)

        return job

    def ekm(sink: str):  # type: ignore[no-untyped-def]
        src = str(inputs["ekm"])
        if direction == "encrypt":
            base = [*EKM_ARGV, "encrypt", "-k", "k000000"]
        else:
            base = [*EKM_ARGV, "decrypt"]

        def job():  # type: ignore[no-untyped-def]
            fresh()
            if sink == "stdout":
                with open(devnull, "wb") as null:
                    return run([*base, src], env, stdout=null)
            target_ = str(out) if sink == "file" else devnull
            return run([*base, "-o", target_, src], env)

        return job

    return {s: {"age": age(s), "raw": raw(s), "ekm": ekm(s)} for s in ("file", "stdout", "devnull")}


def _ekm_accepts_devnull(env: dict, src: Path) -> bool:
    argv = [*EKM_ARGV, "encrypt", "-k", "k000000", "-o", "/dev/null", str(src)]
    res = subprocess.run(argv, env=env, capture_output=True, check=False)
    return res.returncode == 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    benchlib.compile_bytecode()
    print(f"machine: {benchlib.machine()}")
    ok = True
    with tempfile.TemporaryDirectory(prefix="ekm-streams-", dir="/tmp") as tmp:
        work = Path(tmp)
        home = benchlib.build_home(work / "home", 1, spread=False)
        env = benchlib.user_env(EKM_HOME=str(home))
        plain = work / "plain"
        block = os.urandom(MIB)
        with open(plain, "wb") as fh:
            for _ in range(args.size_mib):
                fh.write(block)
        age_id = str(work / "age.key")
        subprocess.run(["age-keygen", "-o", age_id], check=True, capture_output=True)
        recipient = subprocess.run(["age-keygen", "-y", age_id], check=True, capture_output=True,
                                   text=True).stdout.strip()  # fmt: skip
        sealed = {"age": work / "p.age", "raw": work / "p.raw", "ekm": work / "p.ekm"}
        run(["age", "-r", recipient, "-o", str(sealed["age"]), str(plain)], env)
        run([*benchlib.PY, "-c", RAW, "encrypt", str(plain), str(sealed["raw"])], env)
        run([*EKM_ARGV, "encrypt", "-k", "k000000", "-o", str(sealed["ekm"]), str(plain)], env)
        devnull_ok = _ekm_accepts_devnull(env, plain)
        print(f"streams: {args.size_mib} MiB, 64 KiB chunks, best of {args.repeat}, "
              "each a fresh process timed start to exit")  # fmt: skip
        print(f"{'direction':9}{'sink':9}{'tool':6}{'seconds':>9}{'MiB/s':>8}{'RSS MiB':>9}"
              f"{'vs age':>8}{'vs raw':>8}")  # fmt: skip
        for direction in ("encrypt", "decrypt"):
            inputs = {t: plain for t in ("age", "raw", "ekm")} if direction == "encrypt" else sealed
            for sink, tools in _jobs(direction, work, inputs, env, age_id, recipient).items():
                if sink == "devnull" and not devnull_ok:
                    tools = {k: v for k, v in tools.items() if k != "ekm"}
                rows = best(tools, args.repeat)  # type: ignore[arg-type]
                for tool, r in rows.items():
                    vs_age = rows["age"].seconds / r.seconds
                    vs_raw = rows["raw"].seconds / r.seconds
                    print(f"{direction:9}{sink:9}{tool:6}{r.seconds:>9.2f}"
                          f"{args.size_mib / r.seconds:>8.0f}{r.rss_mib:>9.1f}"
                          f"{vs_age:>7.2f}x{vs_raw:>7.0%}")  # fmt: skip
                if "ekm" not in rows:
                    ok &= target(f"stream {direction} -o /dev/null", "refused by ekm",
                                 "accepted, >= 1.5x age", False)  # fmt: skip
                    continue
                e = rows["ekm"]
                label = {"file": "file->file", "stdout": "file->stdout", "devnull": "-o /dev/null"}
                vs_age = rows["age"].seconds / e.seconds
                vs_raw = rows["raw"].seconds / e.seconds
                ok &= target(f"stream {direction} {label[sink]} vs age", f"{vs_age:.2f}x",
                             ">= 1.5x", vs_age >= 1.5)  # fmt: skip
                ok &= target(f"stream {direction} {label[sink]} vs raw AES-GCM", f"{vs_raw:.0%}",
                             ">= 80%", vs_raw >= 0.8)  # fmt: skip
                ok &= target(f"stream {direction} {label[sink]} peak RSS",
                             f"{e.rss_mib:.0f} MiB", "< 64 MiB", e.rss_mib < 64)  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
