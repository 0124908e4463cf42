"""Key operations on HSM-held key versions: the same small objects file keys use.

Envelope encryption only needs a :class:`ekm.crypto.wrapping.KeyWrapper` (``wrap``/``unwrap``
of a data key), and signing only needs ``sign(data)`` plus the public key. This module gives
keys whose backend is ``pkcs11`` exactly those shapes, so ``ekm encrypt``/``ekm sign`` treat a
file key and an HSM key alike and never branch on where material lives:

* :class:`HsmAeadWrapper`: AES-256-GCM *inside the token* (the key never leaves it), blob layout
  ``iv(12) || ciphertext || tag(16)`` as :class:`ekm.crypto.wrapping.AeadWrapper`, the same
  2**32 random-IV limit enforced through ``wrap_count``, and the same single "not authentic"
  message for every failed check (the caller learns *that* it failed, never *which* check);
* :class:`HsmSigner`: signatures made in the token (RSA-PSS/SHA-256 with a 32-byte salt, ECDSA
  P-256/SHA-256 or P-384/SHA-384 DER-encoded, pure Ed25519), byte-compatible with what
  :mod:`ekm.crypto.signatures` makes from file material, so ``ekm verify`` needs nothing from
  the HSM: verification uses the public key only.

:func:`wrapper_for` and :func:`signer_for` build them from a key's metadata (a
:class:`ekm.model.Key`) and check the backend, the version's state and the type first, so a
caller cannot point an HSM operation at a destroyed version or the wrong kind of key.
"""

from __future__ import annotations

import struct
import threading
from typing import Any

from ekm.crypto.keytypes import KeyState, KeyType, spec
from ekm.crypto.wrapping import (
    GCM_RANDOM_NONCE_LIMIT,
    NONCE_LEN,
    NOT_AUTHENTIC,
    TAG_LEN,
    WrapCounter,
)
from ekm.errors import IntegrityError, InvalidError, NotFoundError, StateError

#: Key types whose versions can sign in a token (see ekm.backends.pkcs11_token.TYPE_MECHANISMS).
SIGNING_TYPES = frozenset(
    {KeyType.RSA_3072, KeyType.RSA_4096, KeyType.EC_P256, KeyType.EC_P384, KeyType.ED25519}
)
_USABLE = (KeyState.PRIMARY, KeyState.ACTIVE, KeyState.PENDING)


def _check_name_version(key_name: str, version: int) -> None:
    if not isinstance(key_name, str) or not key_name:
        raise InvalidError("an HSM key handle needs a non-empty key name")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidError(f"key version must be a positive integer, not {version!r}")


class HsmAeadWrapper(WrapCounter):
    """A :class:`~ekm.crypto.wrapping.KeyWrapper` whose AES-256-GCM runs in the token.

    ``token`` is an :class:`ekm.backends.pkcs11_token.Token` (or anything with its
    ``aead_encrypt``/``aead_decrypt``); ``label`` is the version's token label
    (``KeyVersion.backend_ref``). Construction talks to nobody: the first wrap or unwrap finds
    the object, so building a wrapper for every readable version of a key is free.
    """

    key_type = KeyType.AES_256_GCM

    def __init__(
        self,
        token: Any,
        label: str,
        key_name: str,
        version: int,
        *,
        wrap_count: int = 0,
        max_wraps: int = GCM_RANDOM_NONCE_LIMIT,
    ) -> None:
        _check_name_version(key_name, version)
        if not isinstance(label, str) or not label:
            raise InvalidError(f"key {key_name} v{version} has no HSM label; it cannot be used")
        self._token = token
        self.label = label
        self.key_name = key_name
        self.version = version
        self.wrap_count = wrap_count
        self.max_wraps = max_wraps
        self._lock = threading.Lock()

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt in the token; StateError once ``max_wraps`` random IVs have been used."""
        self._take_wrap()
        return self._token.aead_encrypt(self.label, bytes(plaintext), bytes(aad))

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        """Decrypt in the token; IntegrityError (one message) if blob or aad is not authentic."""
        from ekm.backends.pkcs11_token import NotAuthenticError

        if not isinstance(blob, bytes | bytearray) or len(blob) < NONCE_LEN + TAG_LEN:
            raise IntegrityError(NOT_AUTHENTIC)
        try:
            return self._token.aead_decrypt(self.label, bytes(blob), bytes(aad))
        except NotAuthenticError:
            raise IntegrityError(NOT_AUTHENTIC) from None

    def __repr__(self) -> str:
        return f"HsmAeadWrapper({self.key_name!r}, v{self.version}, label={self.label!r})"


class HsmSigner:
    """Signs with a token-held private key; verifies locally with its public half.

    ``sign(data)`` gives the raw signature the algorithm defines (ECDSA as DER), which is what
    :mod:`ekm.crypto.signatures` and ``openssl dgst -verify`` expect; ``sign_jws`` gives the
    JOSE form (ECDSA as fixed-size ``r || s``, RFC 7518 3.4) for JWTs; ``sign_document`` gives an
    ekm detached signature document that ``ekm.crypto.signatures.verify`` checks.
    """

    def __init__(
        self,
        token: Any,
        label: str,
        key_type: KeyType | str,
        *,
        key_name: str | None = None,
        version: int | None = None,
    ) -> None:
        try:
            t = KeyType(key_type)
        except ValueError:
            raise InvalidError(f"unknown key type {key_type!r}") from None
        if t not in SIGNING_TYPES:
            raise InvalidError(
                f"{t.value} keys cannot sign in an HSM; use rsa-3072, rsa-4096, ec-p256, "
                "ec-p384 or ed25519"
            )
        if not isinstance(label, str) or not label:
            raise InvalidError("an HSM signer needs the key version's token label")
        if key_name is not None or version is not None:
            _check_name_version(key_name or "", version if version is not None else 0)
        self._token = token
        self.label = label
        self.key_type = t
        self.key_name = key_name
        self.version = version
        self._der: bytes | None = None
        self._lock = threading.Lock()

    @property
    def jose_alg(self) -> str:
        """The JWS ``alg`` of this key's signatures (PS256, ES256, ES384, EdDSA)."""
        return str(spec(self.key_type).jose_alg)

    def sign(self, data: bytes) -> bytes:
        """The signature over ``data``, made in the token (the private key never leaves it)."""
        return self._token.sign(self.label, self.key_type, bytes(data))

    def sign_jws(self, signing_input: bytes) -> bytes:
        """A JWS signature over ``signing_input``: ECDSA converted from DER to ``r || s``."""
        sig = self.sign(signing_input)
        if spec(self.key_type).family != "ec":
            return sig
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        r, s = decode_dss_signature(sig)
        size = (spec(self.key_type).key_bits + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")

    def sign_document(self, digest: bytes) -> bytes:
        """An ekm detached signature document over the data whose SHA-512 is ``digest``.

        The layout and the signed representative are those of :mod:`ekm.crypto.signatures`
        (the token signs what ``_raw_sign`` would sign with file material), so a document made
        here verifies with ``signatures.verify`` and the public key alone.
        """
        from ekm.crypto import signatures as sigs

        if self.key_name is None or self.version is None:
            raise InvalidError("a signature document needs the signer's key name and version")
        _, alg_id = sigs._alg(self.key_type)
        header = sigs._header(alg_id, self.key_name, self.version)
        rep = sigs._representative(alg_id, header, sigs._check_digest(digest))
        sig = self.sign(rep)
        return header + struct.pack(">I", len(sig)) + sig

    def public_key_der(self) -> bytes:
        """The public half as DER SubjectPublicKeyInfo (read from the token once, then cached)."""
        with self._lock:
            if self._der is None:
                self._der = bytes(self._token.public_key_der(self.label, self.key_type))
            return self._der

    def public_key(self) -> Any:
        """The public half as a cryptography public-key object."""
        from cryptography.hazmat.primitives import serialization as ser

        return ser.load_der_public_key(self.public_key_der())

    def verify(self, data: bytes, signature: bytes) -> None:
        """Check a :meth:`sign` signature locally; IntegrityError (one message) if it fails."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding

        from ekm.crypto.signatures import VERIFY_FAILED

        pub = self.public_key()
        fam = spec(self.key_type).family
        try:
            if fam == "ec":
                h = hashes.SHA256() if self.key_type is KeyType.EC_P256 else hashes.SHA384()
                pub.verify(bytes(signature), bytes(data), ec.ECDSA(h))
            elif fam == "rsa":
                pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
                pub.verify(bytes(signature), bytes(data), pss, hashes.SHA256())
            else:
                pub.verify(bytes(signature), bytes(data))
        except (InvalidSignature, ValueError, TypeError):
            raise IntegrityError(VERIFY_FAILED) from None

    def __repr__(self) -> str:
        return f"HsmSigner({self.key_type.value}, label={self.label!r})"


# ----------------------------------------------------------------------------------------
# From key metadata
# ----------------------------------------------------------------------------------------


def _hsm_version(key: Any, version: int | None, *, for_new_data: bool) -> Any:
    """The KeyVersion to use, refused unless the key is on pkcs11 and the state allows it."""
    if key.backend != "pkcs11":
        raise InvalidError(
            f"key {key.name!r} is on the {key.backend} backend, not pkcs11; use its file material"
        )
    kv = key.version(version)
    if kv.state not in _USABLE:
        raise NotFoundError(
            f"key {key.name!r} version {kv.version} is {kv.state.value}; "
            "it cannot be used (ekm keys show " + key.name + ")"
        )
    if for_new_data and kv.state is not KeyState.PRIMARY:
        raise StateError(
            f"key {key.name!r} version {kv.version} is {kv.state.value}: only the primary "
            "version encrypts or signs new data"
        )
    if not kv.backend_ref:
        raise InvalidError(
            f"key {key.name!r} version {kv.version} has no HSM label in its metadata; "
            "restore the keystore from a backup"
        )
    return kv


def wrapper_for(
    token: Any, key: Any, version: int | None = None, *, for_wrap: bool = False
) -> HsmAeadWrapper:
    """The :class:`HsmAeadWrapper` of ``key`` (a pkcs11 aes-256-gcm :class:`ekm.model.Key`).

    ``version`` None means the primary. ``for_wrap=True`` refuses any version but the primary
    (new ciphertexts are made by the primary only); unwrapping accepts pending and active ones.
    ``wrap_count`` starts at the version's persisted ``usage_count``.
    """
    kv = _hsm_version(key, version, for_new_data=for_wrap)
    t = key.type_of(kv)
    if t is not KeyType.AES_256_GCM:
        raise InvalidError(
            f"key {key.name!r} is {t.value}; only aes-256-gcm HSM keys encrypt (wrap data keys)"
        )
    return HsmAeadWrapper(
        token, kv.backend_ref, key.name, kv.version, wrap_count=int(kv.usage_count or 0)
    )


def signer_for(
    token: Any, key: Any, version: int | None = None, *, for_signing: bool = True
) -> HsmSigner:
    """The :class:`HsmSigner` of ``key``'s ``version`` (primary when None).

    ``for_signing=False`` accepts pending and active versions too (public key, verification).
    """
    kv = _hsm_version(key, version, for_new_data=for_signing)
    return HsmSigner(token, kv.backend_ref, key.type_of(kv), key_name=key.name, version=kv.version)
