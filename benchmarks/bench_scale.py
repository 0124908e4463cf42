#!/usr/bin/env python3
"""Scale: cold commands on homes of 1,000 / 10,000 / 100,000 keys, audit-log verification.

Run from the repository root:
    python3 benchmarks/bench_scale.py [--sizes 1000,10000,100000] [--repeat 3] [--records ...]

Each timed command is a fresh ``ekm`` process as cron runs it (best of --repeat; a home of
100,000 keys gets one run): ``rotate --check``, ``status --json``, ``audit --compliance all``
and ``monitor --once``. Targets on 10,000 keys: < 0.5 s, < 1 s, < 2 s, < 2 s. Homes are built
in-process (benchmarks/benchlib.py) and kept under --workdir between runs. Then the audit
log's verification (``AuditLog.verify``: hash chain and MAC of every record) on logs of
growing length: records/s must stay >= 200,000 and about constant (linear cost).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import benchlib
from benchlib import EKM_ARGV, best, run, target

COMMANDS = {
    "rotate --check": (["rotate", "--check"], 0.5),
    "status --json": (["--json", "status"], 1.0),
    "audit --compliance all": (["audit", "--compliance", "all", "--soft-fail"], 2.0),
    "monitor --once": (["monitor", "--once"], 2.0),
}


def audit_log_rates(work: Path, lengths: list[int]) -> list[tuple[int, float]]:
    """(records, records/s) of AuditLog.verify on logs of each length (built by append_many)."""
    from ekm.auditlog import AuditLog

    rows = []
    for n in lengths:
        log = AuditLog(work / f"audit-{n}.log", actor="bench", max_bytes=0, mac_key=b"m" * 32)
        chunk = 10_000
        for start in range(0, n, chunk):
            log.append_many(
                [{"op": "encrypt", "key": f"k{i % 997:06d}", "version": 1, "result": "ok",
                  "bytes": i} for i in range(start, min(n, start + chunk))]
            )  # fmt: skip
        best_s = float("inf")
        for _ in range(3 if n <= 100_000 else 1):
            t0 = time.perf_counter()
            result = log.verify()
            best_s = min(best_s, time.perf_counter() - t0)
        assert result.ok and result.records == n, result
        rows.append((n, n / best_s))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--records", default="10000,100000,300000")
    ap.add_argument("--workdir", help="keep the built homes here (default: a temp dir)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    benchlib.compile_bytecode()
    print(f"machine: {benchlib.machine()}")
    ok = True
    with tempfile.TemporaryDirectory(prefix="ekm-scale-", dir="/tmp") as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        table: dict[int, dict[str, benchlib.Run]] = {}
        for n in sizes:
            t0 = time.perf_counter()
            home = benchlib.build_home(work / f"home-{n}", n)
            print(f"home of {n:,} keys ready in {time.perf_counter() - t0:.1f} s", flush=True)
            env = benchlib.user_env(EKM_HOME=str(home))
            jobs = {
                name: (lambda argv=argv, env=env: run([*EKM_ARGV, *argv], env, ok=(0, 1)))
                for name, (argv, _limit) in COMMANDS.items()
            }
            table[n] = best(jobs, args.repeat if n <= 10_000 else 1)
        print(f"\ncold commands (best of {args.repeat}; 100,000 keys: one run), seconds")
        print(f"{'command':<26}" + "".join(f"{n:>12,}" for n in sizes) + "   us/key at largest")
        for name in COMMANDS:
            cells = "".join(f"{table[n][name].seconds:>12.2f}" for n in sizes)
            largest = sizes[-1]
            print(f"{name:<26}{cells}{table[largest][name].seconds / largest * 1e6:>12.1f}")
        if 10_000 in table:
            for name, (_argv, limit) in COMMANDS.items():
                s = table[10_000][name].seconds
                ok &= target(f"scale: ekm {name} on 10,000 keys", f"{s:.2f} s", f"< {limit:g} s",
                             s < limit)  # fmt: skip
        lengths = [int(x) for x in args.records.split(",") if x]
        rates = audit_log_rates(work, lengths)
    print("\naudit log verification (hash chain + MAC of every record)")
    print(f"{'records':>12}{'records/s':>14}")
    for n, r in rates:
        print(f"{n:>12,}{r:>14,.0f}")
    slowest = min(r for _n, r in rates)
    ok &= target("scale: audit log verification", f"{slowest:,.0f} records/s (slowest length)",
                 ">= 200,000/s", slowest >= 200_000)  # fmt: skip
    spread = max(r for _n, r in rates) / slowest
    ok &= target("scale: audit log verification is linear", f"rate varies {spread:.2f}x over "
                 f"{lengths[0]:,}..{lengths[-1]:,} records", "<= 1.5x", spread <= 1.5)  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
