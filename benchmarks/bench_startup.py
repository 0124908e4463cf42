#!/usr/bin/env python3
"""Cold start of the ekm command against bare Python, on homes of 0, 1,000 and 10,000 keys.

Run from the repository root:  python3 benchmarks/bench_startup.py [--runs 11] [--sizes 1000,10000]

Measures the median wall time of N runs of ``python -c pass`` (the floor), ``python -c
"import ekm"``, ``ekm --version``, ``ekm --help``, and, per home size, ``ekm status`` and
``ekm rotate --check`` (both metadata-only: no master key is unlocked, as from cron). The big
homes are written in-process through the Keystore API with a known root key (a few seconds for
10,000 keys), not by running ``ekm generate`` 10,000 times. Prints a table with the ratio to
``python -c pass``. Timings belong here, never in test asserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

EKM = str(Path(sys.executable).with_name("ekm"))


def _no_sync_store() -> type:
    from ekm.backends.filestore import FileDocumentStore

    class NoSyncStore(FileDocumentStore):
        """Writes key documents without fsync (a throw-away benchmark home, built fast)."""

        def read(self, name: str) -> None:
            return None  # fresh names only

        def write(self, name: str, data: bytes, token: object) -> None:
            fd = os.open(self.path(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)

    return NoSyncStore


def build_home(path: Path, n: int) -> None:
    """Deploy a home (file master key, no keys), then write ``n`` AES keys directly."""
    from ekm import masterkey
    from ekm.crypto.keytypes import KeyState, KeyType, KeyUsage
    from ekm.keystore import Keystore
    from ekm.manager import KeyManager
    from ekm.model import Key, KeyVersion, RotationPolicy

    mgr = KeyManager(path, env={})
    mgr.deploy(generate_keys=False)
    _NoSyncStore = _no_sync_store()
    root = masterkey.open_root(path, mgr._master_options())
    ks = Keystore(_NoSyncStore(path / "keys", path / ".lock"), root)
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    material = os.urandom(32)  # one value for speed: this home measures parsing, not secrecy
    for i in range(n):
        created = base + timedelta(minutes=i)
        key = Key(
            name=f"bench_{i:05d}", type=KeyType.AES_256_GCM, usage=KeyUsage.ENCRYPTION,
            backend="file",
            policy=RotationPolicy(interval=timedelta(days=90), notify_before=timedelta(days=7),
                                  backup=False, keep_versions=None),
            labels={}, versions=[KeyVersion(1, KeyState.PRIMARY, created, activated=created)],
            created=created, rotated=None,
        )  # fmt: skip
        ks.save(key, add_material={1: material}, create=True)


def median_run(argv: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)  # fmt: skip
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--sizes", default="1000,10000")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EKM_")}
    env["NO_COLOR"] = "1"
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="ekm-startup-") as tmp:
        rows.append(("python -c pass", median_run([sys.executable, "-c", "pass"], env, args.runs)))
        rows.append(
            (
                "python -c 'import ekm'",
                median_run([sys.executable, "-c", "import ekm"], env, args.runs),
            )
        )
        empty = Path(tmp) / "empty"
        build_home(empty, 0)
        henv = {**env, "EKM_HOME": str(empty)}
        rows.append(("ekm --version", median_run([EKM, "--version"], henv, args.runs)))
        rows.append(("ekm --help", median_run([EKM, "--help"], henv, args.runs)))
        for n in [0, *sizes]:
            home = Path(tmp) / f"h{n}"
            if n:
                t0 = time.perf_counter()
                build_home(home, n)
                print(
                    f"built a home of {n} keys in {time.perf_counter() - t0:.1f} s", file=sys.stderr
                )
            else:
                home = empty
            henv = {**env, "EKM_HOME": str(home)}
            runs = max(3, args.runs // (1 + n // 2000))
            rows.append((f"ekm status ({n} keys)", median_run([EKM, "status"], henv, runs)))
            rows.append(
                (
                    f"ekm rotate --check ({n} keys)",
                    median_run([EKM, "rotate", "--check"], henv, runs),
                )
            )
    floor = rows[0][1]
    print(f"{'command':34}{'median ms':>11}{'x python':>10}")
    for name, seconds in rows:
        print(f"{name:34}{seconds * 1000:>11.1f}{seconds / floor:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
