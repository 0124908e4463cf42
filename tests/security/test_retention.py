"""Issue 22.3/22.5/22.8: rotation never takes decryption away from old data by itself.

Only an operator (``keys disable``/``destroy``) or an explicit policy (``keep_versions``,
``default_keep_versions``) disables versions; ``ekm status`` says which versions decrypt.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conftest import clean_environ
from tests.rotation.helpers import states


def test_three_rotations_then_data_under_v1_still_decrypts(run, home: Path, tmp_path: Path) -> None:
    plain = tmp_path / "p.txt"
    plain.write_bytes(b"ledger v1\n")
    run("encrypt", "--key", "session", "-o", str(tmp_path / "v1.ekm"), str(plain)).expect_ok()
    for _ in range(3):
        run("rotate", "session", "--force").expect_ok()
    assert states(home, "session") == {1: "active", 2: "active", 3: "active", 4: "primary"}
    out = run("decrypt", "-o", "-", str(tmp_path / "v1.ekm")).expect_ok()
    assert out.stdout == "ledger v1\n"
    doc = json.loads(run("status", "--json").expect_ok().stdout)
    (session,) = [k for k in doc["keys"] if k["name"] == "session"]
    assert [v["decrypts"] for v in session["versions"]] == [True, True, True, True]
    table = run("status").expect_ok().stdout
    line = next(x for x in table.splitlines() if x.lstrip("│ ").startswith("session"))
    assert "v1-v4" in line


def test_status_says_which_versions_no_longer_decrypt(run, home: Path) -> None:
    for _ in range(2):
        run("rotate", "session", "--force").expect_ok()
    run("keys", "destroy", "--yes", "session", "--version", "1").expect_ok()
    doc = json.loads(run("status", "--json").expect_ok().stdout)
    (session,) = [k for k in doc["keys"] if k["name"] == "session"]
    assert {v["version"]: v["decrypts"] for v in session["versions"]} == {
        1: False,
        2: True,
        3: True,
    }
    line = next(
        x for x in run("status").stdout.splitlines() if x.lstrip("│ ").startswith("session")
    )
    assert "v2-v3" in line


def test_an_explicit_keep_versions_policy_still_retires(run, home: Path, tmp_path: Path) -> None:
    cfg = home / "ekm.toml"
    cfg.write_text(
        cfg.read_text().replace("[rotation]", "[rotation]\ndefault_keep_versions = 1", 1)
        if "[rotation]" in cfg.read_text()
        else cfg.read_text() + "\n[rotation]\ndefault_keep_versions = 1\n"
    )
    plain = tmp_path / "p.txt"
    plain.write_bytes(b"x")
    run("encrypt", "--key", "session", "-o", str(tmp_path / "v1.ekm"), str(plain)).expect_ok()
    for _ in range(2):
        run("rotate", "session", "--force").expect_ok()
    assert states(home, "session") == {1: "disabled", 2: "active", 3: "primary"}
    res = run("decrypt", "-o", "-", str(tmp_path / "v1.ekm"))
    assert res.code == 3 and "version 1 of key 'session' is disabled" in res.stderr


def _ekm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("ekm")), *args],
        env=env,
        capture_output=True,
        timeout=300,
    )


def test_twelve_processes_rotating_and_decrypting_lose_no_decrypt(
    home: Path, tmp_path: Path
) -> None:
    """4 processes rotate while 8 encrypt and decrypt: every decrypt of data under an enabled
    version succeeds (issue 22.8 counted 37 of 43 failures)."""
    env = clean_environ(EKM_HOME=str(home))
    plain = tmp_path / "p.txt"
    plain.write_bytes(b"row 1\n")
    assert (
        _ekm(
            env, "encrypt", "--key", "session", "-o", str(tmp_path / "v1.ekm"), str(plain)
        ).returncode
        == 0
    )

    def rotator(i: int) -> list[str]:
        fails = []
        for _ in range(3):
            r = _ekm(env, "rotate", "session", "--force")
            if r.returncode != 0:
                fails.append(r.stderr.decode())
        return fails

    def reader(i: int) -> list[str]:
        fails = []
        for j in range(3):
            mine = tmp_path / f"w{i}-{j}.ekm"
            r = _ekm(env, "encrypt", "--key", "session", "-o", str(mine), str(plain))
            if r.returncode != 0:
                fails.append(r.stderr.decode())
                continue
            for ct in (tmp_path / "v1.ekm", mine):
                r = _ekm(env, "decrypt", "-o", "-", str(ct))
                if r.returncode != 0 or r.stdout != b"row 1\n":
                    fails.append(f"{ct.name}: {r.returncode} {r.stderr.decode()}")
        return fails

    with ThreadPoolExecutor(12) as pool:
        jobs = [pool.submit(rotator, i) for i in range(4)] + [
            pool.submit(reader, i) for i in range(8)
        ]
        failures = [f for j in jobs for f in j.result()]
    assert failures == []
    final = states(home, "session")
    assert len(final) == 13 and "disabled" not in final.values()
