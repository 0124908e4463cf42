#!/usr/bin/env python3
"""Records: ``KeyManager.encrypt``/``decrypt`` of 100-byte values against raw ``AESGCM``.

Run from the repository root:  python3 benchmarks/bench_records.py [--records 200000] [--repeat 5]

One process, warm data-key cache, best of --repeat rounds alternating raw and ekm. The raw
floor is ``AESGCM.encrypt(os.urandom(12), value, aad)`` and ``AESGCM.decrypt(nonce, ct, aad)``
on prepared inputs: nothing else. Target: ekm >= 25% of raw each way.

Then what each check ekm keeps costs, measured alone (ekm/ops/hot_records.py explains them):
the key-state check (is the key document the one last checked), the data key's age (TTL),
its use limit (``max_messages``, under the cache's lock), locating the record's data key
(prefix), the full path taken on any doubt (key resolution and state check through the
keystore, parse, cache lookup), and, once per data key (not per record), the usage-ledger
charge and the audit record with its fsync. Timings belong here, never in tests.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import benchlib
from benchlib import target


def rate(fn: Callable[[int], None], n: int) -> float:
    t0 = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - t0)


def per_call_ns(fn: Callable[[], object], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from ekm.crypto import envelope
    from ekm.manager import KeyManager
    from ekm.ops import hot_records

    print(f"machine: {benchlib.machine()}")
    n = args.records
    with tempfile.TemporaryDirectory(prefix="ekm-records-") as tmp:
        home = benchlib.build_home(Path(tmp) / "home", 1, spread=False)
        mgr = KeyManager(home, env={})
        value, aad, name = os.urandom(100), b"users:42:card", "k000000"
        raw = AESGCM(os.urandom(32))
        nonce = os.urandom(12)
        raw_ct = raw.encrypt(nonce, value, aad)
        blob = mgr.encrypt(name, value, aad)
        for _ in range(3):
            mgr.decrypt(blob, aad)  # warm: the full path verified and audited it

        def raw_enc(k: int) -> None:
            enc, urandom = raw.encrypt, os.urandom
            for _ in range(k):
                enc(urandom(12), value, aad)

        def raw_dec(k: int) -> None:
            dec = raw.decrypt
            for _ in range(k):
                dec(nonce, raw_ct, aad)

        def ekm_enc(k: int) -> None:
            enc = mgr.encrypt
            for _ in range(k):
                enc(name, value, aad)

        def ekm_dec(k: int) -> None:
            dec = mgr.decrypt
            for _ in range(k):
                dec(blob, aad)

        best = {"raw encrypt": 0.0, "ekm encrypt": 0.0, "raw decrypt": 0.0, "ekm decrypt": 0.0}
        jobs = {"raw encrypt": raw_enc, "ekm encrypt": ekm_enc, "raw decrypt": raw_dec,
                "ekm decrypt": ekm_dec}  # fmt: skip
        for _ in range(args.repeat):
            for label, fn in jobs.items():
                best[label] = max(best[label], rate(fn, n))
        assert mgr.decrypt(mgr.encrypt(name, value, aad), aad) == value

        # -- what each kept check costs, alone ------------------------------------------
        cache = mgr.dek_cache
        hot = mgr.__dict__["_hot_records"]
        docs = mgr.keystore.cached_documents()
        doc = docs[name]
        prefix = hot_records.record_prefix(blob)
        assert prefix is not None
        expires = hot.dec[prefix][3]
        clock = hot_records._clock
        parsed = envelope.parse(blob)
        resolve = mgr._record_resolver()
        m = max(20_000, n // 10)
        costs = [
            ("key state: document unchanged since checked", "per record",
             per_call_ns(lambda: docs.get(name) is doc, m)),
            ("data key age (TTL)", "per record", per_call_ns(lambda: clock() >= expires, m)),
            ("data key use limit (cache lock)", "per encrypt",
             per_call_ns(lambda: cache.take_encryption_key(name, 1), m)),
            ("locate the record's data key (prefix)", "per decrypt",
             per_call_ns(lambda: hot.dec.get(blob[: len(prefix)]), m)),
            ("full path: resolve + state check via keystore", "per record on any doubt",
             per_call_ns(lambda: resolve(name, 1), m)),
            ("full path: whole decrypt (parse, resolve, cache)", "per record on any doubt",
             per_call_ns(lambda: envelope.decrypt_parsed(parsed, aad, resolve=resolve,
                                                         cache=cache), m)),
        ]  # fmt: skip
        ledger = mgr._ops().ledger
        costs.append(("usage ledger charge (persisted in blocks)", "per data key",
                      per_call_ns(lambda: ledger.charge(name, 1), 2000)))  # fmt: skip
        log = mgr.audit_log
        append_ns = per_call_ns(lambda: log.append("bench", key=name, version=1), 50)
        costs.append(("audit record (append + fsync)", "per data key", append_ns))
        mgr.close()
        cold = KeyManager(home, env={}, cache_config={"enabled": False})
        t0 = time.perf_counter()
        for _ in range(200):
            cold.encrypt(name, value, aad)
        no_cache = 200 / (time.perf_counter() - t0)
        cold.close()

    print(f"records: {n:,} x 100-byte values, warm cache, best of {args.repeat}, one process")
    print(f"{'operation':<16}{'ops/s':>12}{'of raw':>9}")
    for op in ("encrypt", "decrypt"):
        r, e = best[f"raw {op}"], best[f"ekm {op}"]
        print(f"{'raw AESGCM ' + op:<16}{r:>12,.0f}{'100%':>9}")
        print(f"{'ekm ' + op:<16}{e:>12,.0f}{e / r:>9.0%}")
    print(f"{'ekm encrypt, [cache] enabled = false':<40}{no_cache:>10,.0f} ops/s "
          "(each record: a new data key, a ledger charge and an fsynced audit record)")  # fmt: skip
    print("\nwhat each kept check costs (measured alone):")
    for what, when, ns in costs:
        print(f"  {what:<50}{ns:>10,.0f} ns  {when}")
    ok = True
    for op in ("encrypt", "decrypt"):
        share = best[f"ekm {op}"] / best[f"raw {op}"]
        ok &= target(f"records: KeyManager.{op} vs raw AESGCM ({best[f'ekm {op}']:,.0f}/s)",
                     f"{share:.0%}", ">= 25%", share >= 0.25)  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
