"""Report rendering at scale: 10,000 keys and 100,000 audit records, every format.

Run from the repository root:  python3 benchmarks/bench_report.py [--keys N] [--records N]
Prints the wall time of each step and the peak resident memory of the process. The target
(issue 12): under 10 s per format and under 300 MiB. Not part of the test suite (no timed asserts).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.report.synthetic import report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--records", type=int, default=100_000)
    args = ap.parse_args()

    from ekm.report import render

    t0 = time.perf_counter()
    data = report(extra_keys=args.keys, n_events=args.records)
    t1 = time.perf_counter()
    print(
        f"model: {len(data.keys)} keys, {args.records} audit records binned "
        f"into {len(data.activity)} days: {t1 - t0:.2f} s"
    )
    for fmt in ("json", "markdown", "html", "pdf"):
        t = time.perf_counter()
        out = render(data, fmt)
        print(f"{fmt:8s} {time.perf_counter() - t:6.2f} s  {len(out) / 1e6:7.2f} MB")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
