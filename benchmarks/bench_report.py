"""Report at scale: 10,000 keys and 100,000 audit records, every format.

Run from the repository root:  python3 benchmarks/bench_report.py [--keys N] [--records N]

Two measurements:

* ``--synthetic``: rendering only, from a synthetic ReportData (tests/report/synthetic.py);
* default: through ``KeyManager.security_report`` on a real home: a deployed home (tmp dir, or
  ``--home-dir``) is filled in-process (keys via Keystore.save with the unlocked root key,
  audit records via AuditLog.append_many in batches of 5,000), then the report data is
  collected (keystore read, one audit run over all rule sets, chain verification, one streaming
  pass over the log) and rendered in every format.

Prints the wall time of each step and the peak resident memory of the process. The target
(issue 12): under 10 s and under 300 MiB. Not part of the test suite (no timed asserts).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TYPES = ["aes-256-gcm", "hmac-sha256", "hmac-sha512", "ed25519", "aes-128-gcm"]


def _peak() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fill(home: Path, n_keys: int, n_records: int) -> None:
    """Deploy (no default key set), then add keys and audit records fast, in-process."""

    from ekm.crypto import material
    from ekm.crypto.keytypes import KeyState, KeyType, KeyUsage
    from ekm.manager import KeyManager
    from ekm.model import Key, KeyVersion, RotationPolicy
    from ekm.timeutil import utcnow

    now = utcnow()
    mgr = KeyManager(home, env={})
    mgr.deploy(generate_keys=False, now=now - timedelta(days=400))
    mgr.unlock()
    store = mgr.keystore
    usage = {"aes-256-gcm": KeyUsage.ENCRYPTION, "aes-128-gcm": KeyUsage.ENCRYPTION,
             "hmac-sha256": KeyUsage.MAC, "hmac-sha512": KeyUsage.MAC,
             "ed25519": KeyUsage.SIGNING}  # fmt: skip
    with store.store.lock():
        for i in range(n_keys):
            t = KeyType(TYPES[i % len(TYPES)])
            created = now - timedelta(days=(i * 7) % 380)
            versions = [KeyVersion(1, KeyState.PRIMARY, created, activated=created)]
            key = Key(
                name=f"k{i:05d}", type=t, usage=usage[t.value], backend="file",
                policy=RotationPolicy(interval=timedelta(days=(30, 90, 365)[i % 3]),
                                      notify_before=timedelta(days=7), backup=False,
                                      keep_versions=None),
                labels={}, versions=versions, created=created, rotated=None,
            )  # fmt: skip
            store.save(key, add_material={1: material.generate(t)}, create=True)
    ops = ("rotate", "key.read", "encrypt", "monitor.event", "decrypt")
    batch = 5000
    for start in range(0, n_records, batch):
        entries = []
        for j in range(start, min(n_records, start + batch)):
            op = ops[j % len(ops)]
            e = {"op": op, "key": f"k{j % max(n_keys, 1):05d}", "result": "ok",
                 "now": now - timedelta(seconds=(n_records - j) * 300)}  # fmt: skip
            if op == "monitor.event":
                e.update(result="firing", check="key.overdue", severity="MEDIUM",
                         subject=e["key"], fingerprint=f"fp{j % 500}")  # fmt: skip
            if j % 97 == 0:
                e["result"] = "error"
            entries.append(e)
        mgr.audit_log.append_many(entries)


def through_manager(args: argparse.Namespace) -> None:
    from ekm.manager import KeyManager
    from ekm.report import render
    from ekm.timeutil import utcnow

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(args.home_dir or tmp) / "home"
        t = time.perf_counter()
        if not (home / "master.json").exists():
            fill(home, args.keys, args.records)
        print(f"fill: {args.keys} keys, {args.records} records: {time.perf_counter() - t:.2f} s")
        mgr = KeyManager(home, env={})
        since = utcnow() - timedelta(days=365)
        t = time.perf_counter()
        data = mgr.security_report(since=since, save=False)
        took = time.perf_counter() - t
        tot = data.totals()
        print(
            f"security_report: {tot.keys} keys, {tot.findings} findings, "
            f"{tot.rotations + tot.failures + tot.other_operations} operations in "
            f"{len(data.activity)} days, {tot.alerts} alerts, log {data.audit_log.records} "
            f"records: {took:.2f} s (peak RSS so far {_peak():.0f} MiB)"
        )
        for fmt in ("json", "markdown", "html", "pdf"):
            t = time.perf_counter()
            out = render(data, fmt)
            print(f"{fmt:8s} {time.perf_counter() - t:6.2f} s  {len(out) / 1e6:7.2f} MB")


def synthetic(args: argparse.Namespace) -> None:
    from ekm.report import render
    from tests.report.synthetic import report

    t0 = time.perf_counter()
    data = report(extra_keys=args.keys, n_events=args.records)
    print(
        f"model: {len(data.keys)} keys, {len(data.activity)} days: {time.perf_counter() - t0:.2f} s"
    )
    for fmt in ("json", "markdown", "html", "pdf"):
        t = time.perf_counter()
        out = render(data, fmt)
        print(f"{fmt:8s} {time.perf_counter() - t:6.2f} s  {len(out) / 1e6:7.2f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--synthetic", action="store_true", help="render a synthetic model only")
    ap.add_argument("--home-dir", help="keep (or reuse) the filled home under this directory")
    args = ap.parse_args()
    synthetic(args) if args.synthetic else through_manager(args)
    print(f"peak RSS: {_peak():.0f} MiB")


if __name__ == "__main__":
    main()
