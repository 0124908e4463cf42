"""Concurrent rotations from two homes lose nothing; CAS conflicts are retried or fail clearly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ekm.crypto.material import check_material
from ekm.manager import KeyManager

ROOT = Path(__file__).resolve().parents[2]
N = 6


def _rotations(home: Path) -> list[tuple[str, int]]:
    lines = (home / "audit.log").read_text().splitlines()
    return [
        (r["key"], r["version"])
        for r in map(json.loads, lines)
        if r["op"] == "rotate" and r.get("result") == "ok"  # failures are recorded too
    ]


def test_two_processes_rotating_the_same_keys_lose_no_version(pair, venv):
    a, b = pair
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.vault_integration.rotator", str(home), str(N)],
            cwd=ROOT,
            env=venv,
            stderr=subprocess.PIPE,
            text=True,
        )
        for home in (a, b)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    mgr = KeyManager(a, env=venv)
    for name in ("alpha", "beta"):
        key = mgr.key_info(name)
        assert [v.version for v in key.versions] == list(range(1, 2 * N + 2))  # no gap
        assert key.primary_version == 2 * N + 1
        for v in key.versions:  # every version's material decrypts, and has the right shape
            check_material(key.type_of(v), mgr.material(name, v.version))
    # each home recorded exactly its own rotations, and together they cover every version
    ra, rb = _rotations(a), _rotations(b)
    assert len(ra) == len(rb) == 2 * N
    for name in ("alpha", "beta"):
        made = sorted(v for k, v in ra + rb if k == name)
        assert made == list(range(2, 2 * N + 2))


def test_a_cas_conflict_is_retried_on_fresh_state(pair, run, venv, vault):
    a, b = pair
    vault.interfere("secret/data/ekm/keys/alpha", 2)
    run("--home", str(a), "rotate", "alpha", "--force", env=venv).expect_ok()
    assert vault.interfered == 2  # two real conflicts happened, and were absorbed
    key = KeyManager(b, env=venv).key_info("alpha")
    assert [v.version for v in key.versions] == [1, 2] and key.primary_version == 2


def test_a_persistent_cas_conflict_fails_clearly_and_writes_nothing(pair, run, venv, vault):
    a, _ = pair
    vault.interfere("secret/data/ekm/keys/alpha", 100)
    res = run("--home", str(a), "rotate", "alpha", "--force", env=venv)
    res.expect_error(5, "another host changed key 'alpha' at the same time", "nothing was written")
    vault.interfere("secret/data/ekm/keys/alpha", 0)
    assert KeyManager(a, env=venv).key_info("alpha").latest_version == 1
    assert _rotations(a) == []
