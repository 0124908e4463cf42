#!/usr/bin/env python3
"""Crash soak, the long setting: kill or fail real ``ekm`` operations at EVERY mutating call.

Run from the repository root (needs strace; root only for nothing):

    python3 benchmarks/crash_soak.py                      # every kill point of every operation
    python3 benchmarks/crash_soak.py --faults             # + ENOSPC/EIO at every write/fsync
    python3 benchmarks/crash_soak.py --concurrency 300    # + 8 CLI and 2 API processes, 300 s
    python3 benchmarks/crash_soak.py --ops rotate,destroy --json out.json

The short setting of the same checks runs in the test suite (tests/storage/test_crash_points.py
samples a few points per operation; tests/storage/test_concurrency_load.py runs 20 s). For
each operation the clean run's mutating system calls are listed with strace; then, for each
one, a fresh copy of the prepared home runs the operation with that call turned into SIGKILL
(and, with --faults, into ENOSPC for writes and EIO for fsyncs), and tests/storage/
crashcheck.py checks the home. Prints per operation: points, trials, how many were killed,
the state found (before / after / mixed) and every failure. Exit 1 if any trial failed.
The figures in SECURITY.md ("Crash consistency") come from this command.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability import harness
from tests.storage import concurrency, crashcheck, syscalls
from tests.storage.test_crash_points import CRASH_OPS


def _template(work: Path) -> Path:
    from ekm.manager import KeyManager

    template = work / "template"
    KeyManager(template, env={}).deploy()
    harness.prepare_home(template)
    return template


def soak_op(template: Path, work: Path, name: str, faults: bool, every: int) -> dict:
    op = harness.operation(name)
    plan = crashcheck.plan(template, work, op)
    trials: list[crashcheck.Trial] = []
    points = plan.points[::every]
    for i, point in enumerate(points):
        trials.append(
            crashcheck.trial(plan, template, work / f"{name}-k{i}", point, "signal=SIGKILL")
        )
    if faults:
        failable = [p for p in plan.points if p.syscall in syscalls.FAILABLE]
        for i, point in enumerate(x for x in failable if not x.to_terminal()):
            write = point.syscall.startswith(("write", "pwrite"))
            action = "error=ENOSPC" if write else "error=EIO"
            trials.append(crashcheck.trial(plan, template, work / f"{name}-f{i}", point, action))
    states = collections.Counter(t.state for t in trials)
    return {
        "op": name,
        "points": len(plan.points),
        "trials": len(trials),
        "killed": sum(t.killed for t in trials),
        "faults": sum(1 for t in trials if t.action != "SIGKILL"),
        "states": dict(states),
        "failures": [t.line() for t in trials if t.problems],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", default=",".join(CRASH_OPS), help="comma-separated operations")
    ap.add_argument("--faults", action="store_true", help="also ENOSPC/EIO at every write/fsync")
    ap.add_argument("--every", type=int, default=1, help="try every Nth point (1 = all)")
    ap.add_argument("--concurrency", type=float, default=0, metavar="SECONDS")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    args = ap.parse_args()
    if not syscalls.available():
        print("strace cannot inject faults here", file=sys.stderr)
        return 2
    results = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ekm-soak-") as tmp:
        work = Path(tmp)
        template = _template(work)
        for name in args.ops.split(","):
            (work / name).mkdir()
            r = soak_op(template, work / name, name, args.faults, args.every)
            results.append(r)
            print(
                f"{r['op']:<15} points {r['points']:>3}  trials {r['trials']:>3}  "
                f"killed {r['killed']:>3}  faults {r['faults']:>3}  states {r['states']}  "
                f"failures {len(r['failures'])}",
                flush=True,
            )
            for line in r["failures"]:
                print(f"    {line}", flush=True)
        if args.concurrency:
            home = harness.copy_home(template, work / "conc-home")
            before = harness.snapshot(home)
            (work / "ledgers").mkdir()
            procs = concurrency.start(home, work / "ledgers", args.concurrency)
            codes = [p.wait() for p in procs]
            ledger = concurrency.read(work / "ledgers")
            problems = concurrency.check(home, before, ledger)
            if any(codes):
                problems.append(f"worker exit codes {codes}")
            kinds = collections.Counter(e["kind"] for e in ledger.entries if e["ok"])
            failed = collections.Counter(e["kind"] for e in ledger.entries if not e["ok"])
            results.append({"op": "concurrency", "seconds": args.concurrency,
                            "succeeded": dict(kinds), "failed": dict(failed),
                            "failures": problems})  # fmt: skip
            print(f"concurrency {args.concurrency:g}s: succeeded {dict(kinds)}; "
                  f"failed attempts {dict(failed)}; problems {len(problems)}")  # fmt: skip
            for line in problems:
                print(f"    {line}")
    total = sum(r.get("trials", 0) for r in results)
    bad = sum(len(r["failures"]) for r in results)
    print(f"total: {total} trials, {bad} failures, {time.perf_counter() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
