"""Fixtures for the crypto tests: real AEAD wrappers and a resolver over them."""

from __future__ import annotations

import os

import pytest

from ekm.crypto.wrapping import AeadWrapper
from ekm.errors import NotFoundError


class Keyring:
    """A tiny stand-in for KeyManager.handle: name/version -> wrapper, NotFoundError otherwise."""

    def __init__(self) -> None:
        self.wrappers: dict[tuple[str, int], AeadWrapper] = {}
        self.calls = 0

    def add(self, name: str, version: int, key_type: str = "aes-256-gcm") -> AeadWrapper:
        length = 16 if key_type == "aes-128-gcm" else 32
        w = AeadWrapper(name, version, key_type, os.urandom(length))
        self.wrappers[(name, version)] = w
        return w

    def __call__(self, name: str, version: int) -> AeadWrapper:
        self.calls += 1
        try:
            return self.wrappers[(name, version)]
        except KeyError:
            raise NotFoundError(f"key {name} has no usable version {version}") from None


@pytest.fixture
def keyring() -> Keyring:
    return Keyring()


@pytest.fixture(scope="session")
def materials() -> dict[str, bytes]:
    """One key of each classic type, generated once per session (RSA is slow to generate)."""
    from ekm.crypto import material

    types = ["rsa-2048", "ec-p256", "ec-p384", "ed25519", "x25519"]
    types += ["hmac-sha256", "hmac-sha384", "hmac-sha512", "aes-256-gcm", "aes-128-gcm"]
    types += ["chacha20-poly1305"]
    return {t: material.generate(t) for t in types}
