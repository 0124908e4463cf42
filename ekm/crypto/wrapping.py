"""Key wrapping: an AEAD under one key version seals a data key.

Envelope encryption (records and streams) never encrypts data under a stored key directly: it
wraps a fresh data key with a :class:`KeyWrapper`. The protocol is tiny on purpose, so a file key
(:class:`AeadWrapper`), an HSM key (PKCS#11 wrap) or Vault Transit can all stand behind it.

A random 96-bit nonce under one AES-GCM key is safe for at most 2**32 encryptions
(NIST SP 800-38D, 8.3). :class:`AeadWrapper` counts its wraps in ``wrap_count``; the caller
persists the count (``KeyVersion.usage_count``) and passes it back in, and the wrapper refuses
to go past ``max_wraps`` so the limit is enforced rather than merely documented.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Protocol, runtime_checkable

from ekm.crypto.keytypes import KeyType
from ekm.errors import IntegrityError, InvalidError, StateError

#: NIST SP 800-38D 8.3: at most 2**32 invocations with random 96-bit IVs per key.
GCM_RANDOM_NONCE_LIMIT = 2**32

#: The one message for every authenticity failure (as Fernet's InvalidToken): never which check.
NOT_AUTHENTIC = (
    "ciphertext is not authentic or was made for different associated data "
    "(wrong key, tampered, truncated or not an ekm ciphertext)"
)

NONCE_LEN = 12
TAG_LEN = 16

_AEAD_KEY_LEN = {
    KeyType.AES_256_GCM: 32,
    KeyType.AES_128_GCM: 16,
    KeyType.CHACHA20_POLY1305: 32,
}


@runtime_checkable
class KeyWrapper(Protocol):
    """Seals and opens small secrets (data keys) under one named key version."""

    key_name: str
    version: int

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt ``plaintext`` bound to ``aad``; the result carries its own nonce."""
        ...

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        """Inverse of :meth:`wrap`; IntegrityError if ``blob`` or ``aad`` is not authentic."""
        ...


def aead_for(key_type: KeyType | str, material: bytes) -> Any:
    """The cryptography AEAD object for symmetric AEAD ``material`` (checked length)."""
    try:
        t = KeyType(key_type)
    except ValueError:
        raise InvalidError(f"unknown key type {key_type!r}") from None
    if t not in _AEAD_KEY_LEN:
        raise InvalidError(
            f"a {t.value} key cannot wrap data keys; use an aes-256-gcm, aes-128-gcm "
            "or chacha20-poly1305 key"
        )
    if len(material) != _AEAD_KEY_LEN[t]:
        raise IntegrityError(f"stored material for a {t.value} key has the wrong length")
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

    return ChaCha20Poly1305(material) if t is KeyType.CHACHA20_POLY1305 else AESGCM(material)


class WrapCounter:
    """The random-nonce budget of one key version, shared by every wrapper kind.

    Subclasses set ``key_name``, ``version``, ``wrap_count``, ``max_wraps`` and ``_lock``;
    :meth:`_take_wrap` spends one nonce or raises StateError telling the operator to rotate.
    """

    key_name: str
    version: int
    wrap_count: int
    max_wraps: int
    _lock: threading.Lock

    def _take_wrap(self) -> None:
        with self._lock:
            if self.wrap_count >= self.max_wraps:
                raise StateError(
                    f"key {self.key_name} v{self.version} has performed {self.wrap_count} "
                    f"wraps, its limit of {self.max_wraps}; rotate it (ekm rotate "
                    f"{self.key_name} --force)"
                )
            self.wrap_count += 1


class AeadWrapper(WrapCounter):
    """A :class:`KeyWrapper` over in-memory AEAD material: ``nonce(12) || ciphertext || tag``.

    ``wrap_count`` starts at the persisted count; :meth:`wrap` raises StateError once
    ``max_wraps`` is reached so that the caller rotates the key instead of risking a nonce
    collision.
    """

    def __init__(
        self,
        key_name: str,
        version: int,
        key_type: KeyType | str,
        material: bytes,
        *,
        wrap_count: int = 0,
        max_wraps: int = GCM_RANDOM_NONCE_LIMIT,
    ) -> None:
        if not key_name or not isinstance(key_name, str):
            raise InvalidError("a key wrapper needs a non-empty key name")
        if not isinstance(version, int) or version < 1:
            raise InvalidError(f"key version must be a positive integer, not {version!r}")
        self.key_name = key_name
        self.version = version
        self._aead = aead_for(key_type, material)
        self.key_type = KeyType(key_type)
        self.wrap_count = wrap_count
        self.max_wraps = max_wraps
        self._lock = threading.Lock()

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes:
        self._take_wrap()
        nonce = os.urandom(NONCE_LEN)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        if len(blob) < NONCE_LEN + TAG_LEN:
            raise IntegrityError(NOT_AUTHENTIC)
        try:
            return self._aead.decrypt(blob[:NONCE_LEN], blob[NONCE_LEN:], aad)
        except InvalidTag:
            raise IntegrityError(NOT_AUTHENTIC) from None

    def __repr__(self) -> str:  # never the material
        return f"AeadWrapper({self.key_name!r}, v{self.version}, {self.key_type.value})"
