"""Every feature ships with ``pip install .``, and the commands that do not use a feature do not
pay for it: ``ekm --version``, ``ekm status`` and ``ekm rotate --check`` (cron, every minute)
import none of the HSM, Vault, metrics, PDF or inotify packages.

Measured on the real console script with ``PYTHONPROFILEIMPORTTIME`` (= ``python -X importtime``),
which lists every module the process imported.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import clean_environ, copy_home

FEATURE_MODULES = ("pkcs11", "hvac", "requests", "prometheus_client", "reportlab", "inotify_simple")


def _imported(env: dict[str, str], *args: str) -> set[str]:
    proc = subprocess.run(
        ["ekm", *args], env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, capture_output=True,
        text=True, stdin=subprocess.DEVNULL, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    found = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)", proc.stderr, re.M)
    return {name.strip().split(".")[0] for name in found}


@pytest.mark.parametrize("args", [("--version",), ("status",), ("rotate", "--check")])
def test_light_commands_load_no_feature_package(
    template_home: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    env = clean_environ(EKM_HOME=str(copy_home(template_home, tmp_path / "home")))
    modules = _imported(env, *args)
    assert "ekm" in modules  # the profile really lists what was imported
    assert modules.isdisjoint(FEATURE_MODULES), sorted(modules & set(FEATURE_MODULES))


def test_the_profile_sees_a_feature_package_when_used(template_home: Path, tmp_path: Path) -> None:
    """The check above can fail: a PDF report does list reportlab."""
    env = clean_environ(EKM_HOME=str(copy_home(template_home, tmp_path / "home")))
    assert "reportlab" in _imported(env, "report", "--format", "pdf", "-o", str(tmp_path / "r.pdf"))
