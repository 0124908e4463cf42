#!/usr/bin/env python3
"""Throughput and memory of ekm's stream and record encryption, against age and raw AES-GCM.

Usage: python3 benchmarks/bench_crypto.py [--size-mib 1024] [--records 200000]

Streams: a file of --size-mib MiB in /tmp (deleted afterwards) is encrypted with
``age -r <recipient>`` (age-keygen), with raw AES-256-GCM over 1 MiB chunks (the same file
I/O, no format), and with ekm's stream format (encrypt and decrypt), each in a child process
so that peak RSS (resource.getrusage ru_maxrss) is the child's own. Records: 100-byte values
through envelope.encrypt with a warm data-key cache, against raw AESGCM with a random nonce.
Timings are wall-clock, best of --repeat runs; they belong here, never in test asserts.
The 1 MiB raw baseline is what the target names; a 64 KiB raw row is printed too, because
1 MiB buffers are allocated with mmap/munmap per call and pay page faults that 64 KiB ones
(and ekm's default segment) do not.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

MIB = 1024 * 1024


def _child(mode: str, src: str, dst: str, seg: int) -> None:
    """Run one streaming job in this (fresh) process and print its time and peak RSS."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from ekm.crypto import stream
    from ekm.crypto.wrapping import AeadWrapper

    wrapper = AeadWrapper("bench", 1, "aes-256-gcm", b"k" * 32)
    t0 = time.perf_counter()
    with open(src, "rb", buffering=0) as fin, open(dst, "wb", buffering=0) as fout:
        if mode in ("raw", "raw64k"):
            aead = AESGCM(os.urandom(32))
            size = MIB if mode == "raw" else 64 * 1024
            while chunk := fin.read(size):
                nonce = os.urandom(12)
                fout.write(nonce + aead.encrypt(nonce, chunk, None))
        elif mode == "encrypt":
            stream.encrypt_stream(fin, fout, wrapper, b"bench", segment_size=seg)
        else:
            stream.decrypt_stream(fin, fout, lambda n, v: wrapper, b"bench")
    elapsed = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": elapsed, "rss_mib": rss}))


def _run_child(mode: str, src: str, dst: str, seg: int) -> dict:
    if os.path.exists(dst):
        os.unlink(dst)  # every job writes a new file: no truncation cost in anyone's time
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, src, dst, str(seg)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def _age(src: str, dst: str, recipient: str) -> dict:
    if os.path.exists(dst):
        os.unlink(dst)
    t0 = time.perf_counter()
    subprocess.run(["age", "-r", recipient, "-o", dst, src], check=True)
    elapsed = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": elapsed, "rss_mib": rss}


def _best(fn, repeat: int) -> dict:
    runs = [fn() for _ in range(repeat)]
    return min(runs, key=lambda r: r["seconds"])


def _records(n: int) -> tuple[float, float]:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from ekm.crypto import envelope
    from ekm.crypto.dekcache import DataKeyCache
    from ekm.crypto.wrapping import AeadWrapper

    value = os.urandom(100)
    aead = AESGCM(os.urandom(32))
    urandom = os.urandom
    t0 = time.perf_counter()
    for _ in range(n):
        nonce = urandom(12)
        aead.encrypt(nonce, value, b"aad")
    raw = n / (time.perf_counter() - t0)
    wrapper = AeadWrapper("bench", 1, "aes-256-gcm", os.urandom(32))
    cache = DataKeyCache(max_size=16, ttl_seconds=3600, max_messages=2**20)
    envelope.encrypt(wrapper, value, b"aad", cache=cache)  # warm
    encrypt = envelope.encrypt
    t0 = time.perf_counter()
    for _ in range(n):
        encrypt(wrapper, value, b"aad", cache=cache)
    ours = n / (time.perf_counter() - t0)
    return raw, ours


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--segment", type=int, default=64 * 1024)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="ekm-bench-", dir="/tmp")
    try:
        src = os.path.join(work, "plain")
        block = os.urandom(MIB)
        with open(src, "wb") as fh:
            for _ in range(args.size_mib):
                fh.write(block)
        out = os.path.join(work, "out")
        rows = []
        if shutil.which("age") and shutil.which("age-keygen"):
            keyfile = os.path.join(work, "age.key")
            subprocess.run(["age-keygen", "-o", keyfile], check=True, capture_output=True)
            recipient = subprocess.run(
                ["age-keygen", "-y", keyfile], check=True, capture_output=True, text=True
            ).stdout.strip()
            rows.append(("age -r (encrypt)", _best(lambda: _age(src, out, recipient), args.repeat)))
        rows.append(("raw AES-GCM, 1 MiB chunks", _best(
            lambda: _run_child("raw", src, out, args.segment), args.repeat)))  # fmt: skip
        rows.append(("raw AES-GCM, 64 KiB chunks", _best(
            lambda: _run_child("raw64k", src, out, args.segment), args.repeat)))  # fmt: skip
        rows.append(("ekm stream encrypt", _best(
            lambda: _run_child("encrypt", src, out, args.segment), args.repeat)))  # fmt: skip
        enc = os.path.join(work, "enc")
        os.replace(out, enc)
        rows.append(("ekm stream decrypt", _best(
            lambda: _run_child("decrypt", enc, out, args.segment), args.repeat)))  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base = {name: r for name, r in rows}
    print(f"streams: {args.size_mib} MiB, segment {args.segment} B, best of {args.repeat}")
    print(f"{'job':<28}{'seconds':>9}{'MiB/s':>9}{'peak RSS MiB':>14}{'vs age':>8}{'vs raw':>8}")
    for name, r in rows:
        mibs = args.size_mib / r["seconds"]
        vs_age = base.get("age -r (encrypt)")
        vs_raw = base["raw AES-GCM, 1 MiB chunks"]
        a = f"{vs_age['seconds'] / r['seconds']:.2f}x" if vs_age else "-"
        w = f"{vs_raw['seconds'] / r['seconds']:.0%}"
        print(f"{name:<28}{r['seconds']:>9.2f}{mibs:>9.0f}{r['rss_mib']:>14.1f}{a:>8}{w:>8}")
    raw, ours = _records(args.records)
    print(f"\nrecords: {args.records} x 100-byte values, warm data-key cache")
    print(f"{'raw AESGCM (random nonce)':<28}{raw:>12,.0f} ops/s")
    print(f"{'ekm envelope.encrypt':<28}{ours:>12,.0f} ops/s  ({ours / raw:.0%} of raw)")


if __name__ == "__main__":
    main()
