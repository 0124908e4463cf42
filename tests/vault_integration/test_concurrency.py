"""CAS conflicts injected before a write are retried or fail clearly.

Two homes rotating at once against a real server: tests/openbao/test_cas.py.
"""

from __future__ import annotations

import json
from pathlib import Path

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
