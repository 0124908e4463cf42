"""Fixtures for post-quantum keys used through the real ``ekm`` command.

``pq_template`` copies the session's deployed template home once and adds one key of every
signing and recipient type ekm has (classic and post-quantum), so the tests here never pay for
key generation; ``pq_home`` is a private copy per test (tests destroy, rotate and tamper).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import copy_home

#: name -> type of the keys every pq_home holds besides the default key set.
SIGNERS = {
    "s_ed25519": "ed25519",
    "s_p256": "ec-p256",
    "s_p384": "ec-p384",
    "s_rsa": "rsa-2048",
    "s_mldsa44": "ml-dsa-44",
    "s_mldsa65": "ml-dsa-65",
    "s_mldsa87": "ml-dsa-87",
    "s_hybrid": "ed25519-ml-dsa-65",
}
RECIPIENTS = {
    "r_x25519": "x25519",
    "r_mlkem768": "ml-kem-768",
    "r_mlkem1024": "ml-kem-1024",
    "r_xwing": "x25519-ml-kem-768",
}


@pytest.fixture(scope="session")
def pq_template(template_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template home plus SIGNERS and RECIPIENTS (generated once per session)."""
    from ekm.manager import KeyManager

    path = copy_home(template_home, tmp_path_factory.mktemp("pq-template") / "home")
    km = KeyManager(path, env={})
    for name, key_type in {**SIGNERS, **RECIPIENTS}.items():
        km.generate(name, type=key_type)
    return path


@pytest.fixture
def pq_home(pq_template: Path, tmp_path: Path) -> Path:
    """A private copy of ``pq_template``."""
    return copy_home(pq_template, tmp_path / "pqhome")


@pytest.fixture
def pq_env(base_env: dict[str, str], pq_home: Path) -> dict[str, str]:
    return {**base_env, "EKM_HOME": str(pq_home)}


@pytest.fixture
def prun(run: Any, pq_env: dict[str, str]) -> Any:
    """``run`` on ``pq_home``."""

    def _run(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> Any:
        return run(*args, env=env or pq_env, stdin=stdin)

    return _run


def audit_records(home: Path, op: str | None = None) -> list[dict[str, Any]]:
    """The audit log's records (``op`` only, when given), oldest first."""
    out = []
    for line in (home / "audit.log").read_text().splitlines():
        rec = json.loads(line)
        if op is None or rec.get("op") == op:
            out.append(rec)
    return out
