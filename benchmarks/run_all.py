#!/usr/bin/env python3
"""Run every benchmark in benchmarks/ with short settings and summarise ekm against its peers.

Run from the repository root:  python3 benchmarks/run_all.py [--long] [--only NAME ...]

Each ``bench_*.py`` script (and any added later) runs in its own process, one after the other
so they do not compete for the 2 cores. ``SHORT`` holds the quick arguments of the scripts we
know (seconds, not minutes); a new script runs with its own defaults unless it is added there.
``--long`` runs every script with its defaults. Each script's own report is printed in full;
then one table lists, per script, its exit status, its wall time and the lines where it
compares ekm with a peer measured in the same run (ratios, overheads, "x python", "vs").
crash_soak.py is not a benchmark of speed and runs only with ``--only crash_soak``.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Quick arguments per script: the whole suite runs in a few minutes on 2 cores.
SHORT: dict[str, list[str]] = {
    "bench_crypto": ["--size-mib", "64", "--records", "20000", "--repeat", "1"],
    "bench_pq": ["--seconds", "0.3"],
    "bench_hsm": ["--seconds", "0.5"],
    "bench_audit": ["--keys", "2000", "--repeat", "1"],
    "bench_report": ["--keys", "1000", "--records", "10000"],
    "bench_startup": ["--runs", "5", "--sizes", "1000"],
    "crash_soak": ["--kills", "50"],
}
EXPLICIT_ONLY = {"crash_soak"}
COMPARISON = re.compile(r"ratio|overhead|x python|\bvs\b|versus|relative|\d+(\.\d+)?x\b", re.I)


def comparison_lines(out: str) -> list[str]:
    """Lines comparing ekm with a peer: a matching header and the table rows under it."""
    picked: list[str] = []
    rows = out.splitlines()
    i = 0
    while i < len(rows):
        if COMPARISON.search(rows[i]):
            while i < len(rows) and rows[i].strip():
                if rows[i].strip() not in picked:
                    picked.append(rows[i].strip())
                i += 1
        i += 1
    return picked


def scripts(only: list[str]) -> list[Path]:
    found = sorted(p for p in HERE.glob("*.py") if p.name != Path(__file__).name)
    names = {p.stem for p in found}
    if only:
        unknown = set(only) - names
        if unknown:
            sys.exit(f"no such benchmark: {', '.join(sorted(unknown))}")
        return [p for p in found if p.stem in only]
    return [p for p in found if p.stem.startswith("bench_") and p.stem not in EXPLICIT_ONLY]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--long", action="store_true", help="each script's own (long) defaults")
    ap.add_argument("--only", nargs="*", default=[], metavar="NAME", help="e.g. bench_pq")
    ap.add_argument("--timeout", type=float, default=1800, help="per script, seconds")
    args = ap.parse_args()
    summary = []
    for script in scripts(args.only):
        extra = [] if args.long else SHORT.get(script.stem, [])
        cmd = [sys.executable, str(script), *extra]
        print(f"\n=== {script.name} {' '.join(extra)}", flush=True)
        start = time.perf_counter()
        try:
            res = subprocess.run(
                cmd, cwd=HERE.parent, capture_output=True, text=True, timeout=args.timeout,
                check=False,
            )  # fmt: skip
            out, code = res.stdout + res.stderr, res.returncode
        except subprocess.TimeoutExpired:
            out, code = "", "timeout"
        seconds = time.perf_counter() - start
        print(out.rstrip())
        lines = comparison_lines(out)
        status = "ok" if code == 0 else f"exit {code}"
        if code != 0 and re.search(r"skip|not installed|not found", out, re.I):
            status = f"skipped ({code})"
        summary.append((script.stem, status, seconds, lines))
    print("\n=== summary: ekm against its peers, measured in this run")
    print(f"{'benchmark':16}{'status':>14}{'wall s':>9}  comparisons")
    failed = 0
    for name, status, seconds, lines in summary:
        failed += not status.startswith(("ok", "skipped"))
        first, *rest = lines or ["(no comparison line printed)"]
        print(f"{name:16}{status:>14}{seconds:>9.1f}  {first[:110]}")
        for line in rest[:16]:
            print(f"{'':41}{line[:110]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
