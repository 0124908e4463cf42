"""KV v2 check-and-set on a real OpenBao: two homes rotating the same keys at once lose nothing.

The homes have separate local locks, so only OpenBao's ``cas`` stands between their writes;
every rotation must land as its own version, none lost, none duplicated. (Moved here from
tests/vault_integration, which keeps only the conflicts an imitation injects on purpose.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ekm.crypto.material import check_material
from ekm.manager import KeyManager

ROOT = Path(__file__).resolve().parents[2]
N = 6


def _rotations(home: Path) -> list[tuple[str, int]]:
    lines = (home / "audit.log").read_text().splitlines()
    return [
        (r["key"], r["version"])
        for r in map(json.loads, lines)
        if r["op"] == "rotate" and r.get("result") == "ok"
    ]


def test_two_processes_rotating_the_same_keys_lose_no_version(
    make_home: Callable[..., Path], run: Callable[..., Any], bao_env: dict[str, str]
) -> None:
    a, b = make_home("a"), make_home("b")
    for home in (a, b):
        run("--home", str(home), "deploy", env=bao_env).expect_ok()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.vault_integration.rotator", str(home), str(N)],
            cwd=ROOT,
            env=bao_env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for home in (a, b)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    mgr = KeyManager(a, env=bao_env)
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
    for home in (a, b):
        run("--home", str(home), "audit", "--verify-log", env=bao_env).expect_ok()
