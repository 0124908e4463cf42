"""Fixtures for the encryption tests: a home with recipient keys, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import copy_home

RECIPIENT_TYPES = {"inbox_x25519": "x25519", "inbox_mlkem": "ml-kem-768",
                   "inbox_hybrid": "x25519-ml-kem-768"}  # fmt: skip


@pytest.fixture(scope="session")
def crypto_template(template_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The root template plus one recipient key of each kind (generated once)."""
    from ekm.manager import KeyManager

    path = copy_home(template_home, tmp_path_factory.mktemp("ekm-crypto") / "home")
    mgr = KeyManager(path, env={})
    for name, key_type in RECIPIENT_TYPES.items():
        mgr.generate(name, type=key_type)
    return path


@pytest.fixture
def home(crypto_template: Path, tmp_path: Path) -> Path:
    """A private copy of the crypto template (overrides the root ``home``)."""
    return copy_home(crypto_template, tmp_path / "home")


@pytest.fixture
def other_home(crypto_template: Path, tmp_path: Path) -> Path:
    """A second, independent home with the *same key names* but other material."""
    from ekm.manager import KeyManager

    path = tmp_path / "other"
    mgr = KeyManager(path, env={})
    mgr.deploy(generate_keys=False)
    mgr.generate("session", type="aes-256-gcm")
    mgr.generate("inbox_x25519", type="x25519")
    return path


@pytest.fixture
def mgr(home: Path):
    from ekm.manager import KeyManager

    m = KeyManager(home, env={})
    yield m
    m.close()
