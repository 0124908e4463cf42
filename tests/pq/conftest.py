"""Fixtures for the post-quantum area: generated material per type, cached per session.

Key generation is cheap for everything except RSA, so one key per type per session keeps the
area fast without sharing state between tests that mutate anything (material is bytes).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ekm.crypto import material

_CACHE: dict[str, bytes] = {}


def key_material(key_type: str) -> bytes:
    """Material for ``key_type``, generated once per test session."""
    if key_type not in _CACHE:
        _CACHE[key_type] = material.generate(key_type)
    return _CACHE[key_type]


def openssl_reads(pem: bytes, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    """Run ``openssl pkey -pubin`` on a PEM public key and return the finished process."""
    path = tmp_path / "pub.pem"
    path.write_bytes(pem)
    return subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", str(path), "-noout", "-text"],
        capture_output=True,
        check=False,
    )


@pytest.fixture(scope="session")
def openssl_pq_algorithms() -> str:
    """Public-key algorithms the installed openssl lists (lower case), or skip if none."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    out = subprocess.run(
        ["openssl", "list", "-public-key-algorithms"], capture_output=True, check=False
    )
    return out.stdout.decode(errors="replace").lower()
