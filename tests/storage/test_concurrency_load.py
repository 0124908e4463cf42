"""Eight CLI processes and two application processes on one home for a while: nothing lost.

The workload (tests/storage/concurrency.py): rotations of two keys, encrypt-then-decrypt of
files under them, decrypts of every file made so far (so old versions are read while new
ones are written), key generation, API key creation and revocation, and two applications
using KeyManager for record encryption, API keys and rotations. Afterwards every successful
change is in the home (0 lost updates), every ciphertext under a still-enabled version
decrypted each time it was tried (0 failed decrypts), and the keystore and audit chain verify.

Short setting: ``EKM_CONCURRENCY_SECONDS`` (20 s); the long one:
``python3 benchmarks/crash_soak.py --concurrency 300``.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.reliability import harness
from tests.storage import concurrency

SECONDS = float(os.environ.get("EKM_CONCURRENCY_SECONDS", "20"))


def test_many_processes_lose_no_update_and_fail_no_decrypt(prepared: Path, tmp_path: Path) -> None:
    before = harness.snapshot(prepared)
    work = tmp_path / "ledgers"
    work.mkdir()
    procs = concurrency.start(prepared, work, SECONDS)
    codes = [p.wait(timeout=SECONDS + 300) for p in procs]
    assert codes == [0] * len(procs), f"a worker crashed: {codes}"
    ledger = concurrency.read(work)
    problems = concurrency.check(prepared, before, ledger)
    assert not problems, "\n".join(problems[:20])
    kinds = ("rotate", "encrypt", "decrypt", "api.decrypt", "generate", "apikey.create")
    done = {k: len(ledger.ok(k)) for k in kinds}
    failed = {k: sum(1 for e in ledger.entries if e["kind"] == k and not e["ok"]) for k in kinds}
    print(f"succeeded {done}; failed {failed}")
    assert all(done.values()), f"some kind of work never succeeded: {done}"
