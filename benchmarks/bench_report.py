"""Report at scale: 10,000 keys and 100,000 audit records, every format.

Run from the repository root:  python3 benchmarks/bench_report.py [--keys N] [--records N]

Two measurements:

* ``--synthetic``: rendering only, from a synthetic ReportData (tests/report/synthetic.py);
* default: through ``KeyManager.security_report`` on a real home: a deployed home (tmp dir, or
  ``--home-dir``) is filled in-process (keys via Keystore.save with the unlocked root key,
  audit records via AuditLog.append_many in batches of 5,000); then, for each format, a fresh
  process collects the report data (keystore read, one audit run over all rule sets with its
  one chain verification, one streaming pass over the log) and renders it, as one
  ``ekm report --format F`` does. ``--save`` also stores each report as the baseline, so the
  next one reads and diffs it (the monthly cron case).

Prints, per format, collect and render wall time and the process's peak resident memory.
The target (issue 12): under 10 s and under 300 MiB for each format. Not part of the test
suite (no timed asserts). Run ``python3 -m compileall -q ekm`` first and the script with
``env -u PYTHONDONTWRITEBYTECODE`` so imports are not compiled on every run.
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


def one_format(home: Path, fmt: str, save: bool) -> None:
    """Collect and render ``fmt`` in this (fresh) process, as one `ekm report` run does."""
    from ekm.manager import KeyManager
    from ekm.report import render
    from ekm.timeutil import utcnow

    t0 = time.perf_counter()
    mgr = KeyManager(home, env={})
    data = mgr.security_report(since=utcnow() - timedelta(days=365), save=save)
    t1 = time.perf_counter()
    out = render(data, fmt)
    t2 = time.perf_counter()
    tot = data.totals()
    print(
        f"{fmt:8s} collect {t1 - t0:5.2f} s + render {t2 - t1:5.2f} s = {t2 - t0:5.2f} s, "
        f"{len(out) / 1e6:6.2f} MB, peak RSS {_peak():4.0f} MiB  ({tot.keys} keys, "
        f"{tot.findings} findings, {tot.alerts} alerts, log {data.audit_log.records} records)"
    )
    if save:  # the slim baseline the next report reads (issue 12: was the whole 31 MB report)
        size = mgr.report_baseline_path.stat().st_size
        print(f"{'':8s} baseline {size / 1e6:.2f} MB ({mgr.report_baseline_path.name})")


def through_manager(args: argparse.Namespace) -> None:
    """Fill (or reuse) a home, then one fresh process per format: wall time and peak RSS."""
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(args.home_dir or tmp) / "home"
        t = time.perf_counter()
        if not (home / "master.json").exists():
            fill(home, args.keys, args.records)
            print(
                f"fill: {args.keys} keys, {args.records} records: {time.perf_counter() - t:.2f} s"
            )
        for fmt in ("json", "markdown", "html", "pdf"):
            cmd = [sys.executable, __file__, "--one", fmt, "--home-dir", str(home.parent)]
            subprocess.run([*cmd, *(["--save"] if args.save else [])], check=True)


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
    ap.add_argument("--save", action="store_true", help="store each report as the baseline")
    ap.add_argument("--one", choices=("json", "markdown", "html", "pdf"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        one_format(Path(args.home_dir) / "home", args.one, args.save)
    elif args.synthetic:
        synthetic(args)
        print(f"peak RSS: {_peak():.0f} MiB")
    else:
        through_manager(args)


if __name__ == "__main__":
    main()
