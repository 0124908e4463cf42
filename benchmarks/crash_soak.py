#!/usr/bin/env python3
"""Crash soak: SIGKILL real ``ekm`` operations many times and check every home afterwards.

Run from the repository root:  python3 benchmarks/crash_soak.py [--kills 1000] [--seed 1]

The long version of tests/reliability/test_crash_sigkill.py (same code: tests/reliability/
crashkill.py). Kills are spread over every available operation of the harness table
(generate, rotate, staged prepare/activate, destroy, backup create/restore, encrypt), each at
a random instant in [0, 1.2 T] of its clean run time T. Prints, per operation: kills, how many
landed while it ran, the state found (before / after / mixed) and any violation of the
storage contract. Exit 1 if any kill broke a home.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability import crashkill, harness


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    from ekm.manager import KeyManager

    with tempfile.TemporaryDirectory(prefix="ekm-soak-") as tmp:
        work = Path(tmp)
        template = work / "template"
        KeyManager(template, env={}).deploy()
        harness.prepare_home(template)
        before = harness.snapshot(template)
        ciphertexts = harness.make_ciphertexts(template, before)
        ops = [op for op in harness.OPERATIONS if op.available()]
        refs = {op.name: crashkill.reference(template, work, op) for op in ops}
        stats: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        failures: list[str] = []
        start = time.perf_counter()
        for i in range(args.kills):
            op = ops[i % len(ops)]
            ref = refs[op.name]
            delay = rng.uniform(0, 1.2) * ref.seconds
            where = work / f"k{i}"
            try:
                o = crashkill.kill_trial(template, where, ref, before, ciphertexts, delay)
                s = stats[op.name]
                s["kills"] += 1
                s["landed"] += o.killed
                s[o.state] += 1
                s["torn_audit"] += o.torn_audit
                s["stray_tmp"] += o.stray > 0
            except AssertionError as exc:
                stats[op.name]["kills"] += 1
                stats[op.name]["VIOLATION"] += 1
                failures.append(f"{op.name} killed at {delay:.3f}s: {exc}")
            finally:
                import shutil

                shutil.rmtree(where, ignore_errors=True)
                shutil.rmtree(where.with_name(where.name + "-out"), ignore_errors=True)
        elapsed = time.perf_counter() - start
    cols = ["kills", "landed", "before", "after", "mixed", "torn_audit", "stray_tmp", "VIOLATION"]
    print(f"{'operation':16}" + "".join(f"{c:>11}" for c in cols) + f"{'T (s)':>9}")
    for name, s in stats.items():
        print(f"{name:16}" + "".join(f"{s[c]:>11}" for c in cols) + f"{refs[name].seconds:>9.3f}")
    print(f"{args.kills} kills in {elapsed:.0f} s; violations: {len(failures)}")
    for line in failures[:20]:
        print("  " + line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
