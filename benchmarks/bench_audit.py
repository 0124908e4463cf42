"""Benchmark: evaluate 10,000 keys against every built-in rule set.

Run: python3 benchmarks/bench_audit.py [--keys N] [--repeat R]
Prints the best wall time of R runs for evaluation alone and for evaluation plus the JSON and
SARIF renderings. The target is well under 2 s for 10,000 keys x all rule sets on 2 cores.

``--home-dir D`` also times the real cold command on a filled home (built as
bench_report.py builds it, reused when D/home exists):
``ekm --home D/home audit --compliance all --format json -o OUT --soft-fail`` (issue 5:
target under 2 s with 10,000 keys and 100,000 audit records). Run ``python3 -m compileall -q
ekm`` first and this script under ``env -u PYTHONDONTWRITEBYTECODE``.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import datetime, timedelta, timezone

from ekm.compliance.engine import evaluate, load_rule_sets
from ekm.compliance.formats import to_json, to_sarif
from ekm.compliance.inventory import DeploymentFacts, Inventory, KeyRecord, VersionRecord
from ekm.crypto.keytypes import KeyState, KeyType, spec

NOW = datetime(2026, 11, 28, tzinfo=timezone.utc)


def build(n: int, seed: int = 7) -> Inventory:
    """A mixed inventory: every key type, 1-4 versions, some overdue, some destroyed versions."""
    rng = random.Random(seed)
    types = list(KeyType)
    keys = []
    for i in range(n):
        t = types[i % len(types)]
        versions = []
        count = rng.randint(1, 4)
        for v in range(1, count + 1):
            state = (
                KeyState.PRIMARY
                if v == count
                else rng.choice([KeyState.ACTIVE, KeyState.DISABLED, KeyState.DESTROYED])
            )
            versions.append(
                VersionRecord(
                    v,
                    state,
                    NOW - timedelta(days=rng.randint(1, 900)),
                    usage_count=rng.randint(0, 2**32),
                    material_present=state is not KeyState.DESTROYED or rng.random() < 0.01,
                    fingerprint=f"fp{rng.getrandbits(64):x}",
                )
            )
        keys.append(
            KeyRecord(
                name=f"key{i}",
                type=t,
                usage=sorted(spec(t).usages)[0],
                versions=versions,
                rotate_every=timedelta(days=rng.choice([7, 30, 90, 365])),
                backup_required=rng.random() < 0.7,
                last_backup=NOW - timedelta(days=rng.randint(0, 100)),
                labels={"owner": "bench"} if rng.random() < 0.5 else {},
            )
        )
    facts = DeploymentFacts(
        unsafe_paths=[], master_key_source="passphrase", passphrase_kdf="argon2id",  # noqa: S106
        keystore_mac_ok=True, audit_log_present=True, audit_chain_ok=True,
        hsm_pin_in_config=False, module_validation={"file": "fips-140-3"},
    )  # fmt: skip
    return Inventory(home="/srv/ekm", as_of=NOW, keys=keys, deployment=facts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--home-dir", help="also time the cold `ekm audit` on a filled home here")
    args = ap.parse_args()
    if args.home_dir:
        cold(args)
    inventory = build(args.keys)
    rule_sets = load_rule_sets("all")
    rules = sum(len(rs.rules) for rs in rule_sets)
    best_eval = best_all = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        result = evaluate(inventory, rule_sets)
        t1 = time.perf_counter()
        to_json(result)
        to_sarif(result, home=inventory.home, tool_version="bench")
        t2 = time.perf_counter()
        best_eval = min(best_eval, t1 - t0)
        best_all = min(best_all, t2 - t0)
    print(
        f"{args.keys} keys x {rules} rules ({len(rule_sets)} rule sets): "
        f"evaluate {best_eval:.3f} s, evaluate+json+sarif {best_all:.3f} s "
        f"(best of {args.repeat}); {len(result.findings)} findings, "
        f"{len(result.passed)} passed, {len(result.unknown)} unknown"
    )


def cold(args: argparse.Namespace) -> None:
    """Time one real ``ekm audit --compliance all --format json`` process (best of repeat)."""
    import resource
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_report import fill

    home = Path(args.home_dir) / "home"
    if not (home / "master.json").exists():
        fill(home, args.keys, 100_000)
    best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        import shutil

        cmd = [shutil.which("ekm") or "ekm", "--home", str(home), "audit", "--compliance", "all"]
        cmd += ["--format", "json", "-o", f"{tmp}/audit.json", "--soft-fail"]
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            best = min(best, time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"cold `ekm audit --compliance all --format json` on {home}: {best:.2f} s "
          f"(best of {args.repeat}), peak RSS {peak:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
