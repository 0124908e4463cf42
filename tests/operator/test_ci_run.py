"""``.ci/run`` runs the README's test command and then the smoke stage, both always, and fails
when either fails; the smoke stage's last line counts its steps.

The wiring is checked with stand-in scripts in a copy of the tree (the real ones install
packages and run this very suite); scripts/smoke.sh itself runs for real in CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def _tree(repo_root: Path, tmp_path: Path, suite_rc: int, smoke_rc: int) -> Path:
    root = tmp_path / "clone"
    (root / ".ci").mkdir(parents=True)
    (root / "scripts").mkdir()
    shutil.copy2(repo_root / ".ci" / "run", root / ".ci" / "run")
    (root / "scripts" / "python-env.sh").write_text("export EKM_PYTHON=python3\n")
    (root / "scripts" / "test.sh").write_text(
        f"echo suite ran >> ran.log\necho '3 passed'\nexit {suite_rc}\n"
    )
    (root / "scripts" / "smoke.sh").write_text(
        f"echo smoke ran >> ran.log\necho 'smoke: 1 passed, {smoke_rc} failed'\nexit {smoke_rc}\n"
    )
    return root


@pytest.mark.parametrize(
    ("suite_rc", "smoke_rc", "ok"), [(0, 0, True), (1, 0, False), (0, 1, False), (2, 1, False)]
)
def test_both_stages_run_and_either_fails_the_run(
    repo_root: Path, tmp_path: Path, suite_rc: int, smoke_rc: int, ok: bool
) -> None:
    root = _tree(repo_root, tmp_path, suite_rc, smoke_rc)
    res = subprocess.run(
        ["bash", ".ci/run"], cwd=root, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL, env={**os.environ, "CI": "true"},
    )  # fmt: skip
    assert (res.returncode == 0) is ok, res.stderr
    assert (root / "ran.log").read_text().splitlines() == ["suite ran", "smoke ran"]
    assert res.stdout.splitlines()[-1] == f"smoke: 1 passed, {smoke_rc} failed"
