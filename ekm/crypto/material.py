"""Key material: generation, loading, and the public half of asymmetric keys.

Material encodings (what the keystore encrypts at rest):

* symmetric types (AES, ChaCha20, HMAC): the raw key bytes;
* RSA, EC, Ed25519, X25519: PKCS#8 DER of the private key;
* ML-KEM and ML-DSA: the FIPS 203/204 seed (64 and 32 bytes), from which the key expands;
* hybrids: see :mod:`ekm.crypto.hybrid` (the component seeds, concatenated).

Heavy cryptography modules are imported inside the functions that need them.
"""

from __future__ import annotations

import os
from typing import Any

from ekm.crypto.keytypes import KeyType, spec
from ekm.errors import IntegrityError, InvalidError

_SYMMETRIC_LEN = {
    KeyType.AES_256_GCM: 32,
    KeyType.AES_128_GCM: 16,
    KeyType.CHACHA20_POLY1305: 32,
    KeyType.HMAC_SHA256: 32,
    KeyType.HMAC_SHA384: 48,
    KeyType.HMAC_SHA512: 64,
}


def generate(key_type: KeyType | str) -> bytes:
    """Fresh random material for ``key_type`` from the OS CSPRNG (via OpenSSL for pairs)."""
    t = KeyType(key_type)
    if t in _SYMMETRIC_LEN:
        return os.urandom(_SYMMETRIC_LEN[t])
    fam = spec(t).family
    if fam in ("ml-kem", "ml-dsa", "hybrid-kem", "hybrid-sig"):
        from ekm.crypto import pq

        return pq.generate_seed(t)
    from cryptography.hazmat.primitives import serialization as ser

    key = _generate_classic(t)
    return key.private_bytes(ser.Encoding.DER, ser.PrivateFormat.PKCS8, ser.NoEncryption())


def _generate_classic(t: KeyType) -> Any:
    if t in (KeyType.RSA_2048, KeyType.RSA_3072, KeyType.RSA_4096):
        from cryptography.hazmat.primitives.asymmetric import rsa

        return rsa.generate_private_key(public_exponent=65537, key_size=spec(t).key_bits)
    if t in (KeyType.EC_P256, KeyType.EC_P384):
        from cryptography.hazmat.primitives.asymmetric import ec

        curve = ec.SECP256R1() if t is KeyType.EC_P256 else ec.SECP384R1()
        return ec.generate_private_key(curve)
    if t is KeyType.ED25519:
        from cryptography.hazmat.primitives.asymmetric import ed25519

        return ed25519.Ed25519PrivateKey.generate()
    if t is KeyType.X25519:
        from cryptography.hazmat.primitives.asymmetric import x25519

        return x25519.X25519PrivateKey.generate()
    raise InvalidError(f"cannot generate key type {t.value}")


def check_material(key_type: KeyType | str, material: bytes) -> None:
    """Raise IntegrityError unless ``material`` has the shape ``key_type`` needs."""
    t = KeyType(key_type)
    if t in _SYMMETRIC_LEN:
        if len(material) != _SYMMETRIC_LEN[t]:
            raise IntegrityError(f"stored material for a {t.value} key has the wrong length")
        return
    private_key(t, material)


def private_key(key_type: KeyType | str, material: bytes) -> Any:
    """The cryptography private-key object for asymmetric ``material``."""
    t = KeyType(key_type)
    fam = spec(t).family
    if not spec(t).asymmetric:
        raise InvalidError(f"{t.value} is a symmetric key type; it has no private key object")
    if fam in ("ml-kem", "ml-dsa", "hybrid-kem", "hybrid-sig"):
        from ekm.crypto import pq

        return pq.private_key(t, material)
    from cryptography.hazmat.primitives import serialization as ser

    try:
        key = ser.load_der_private_key(material, password=None)
    except (ValueError, TypeError):
        raise IntegrityError(f"stored material is not a valid {t.value} private key") from None
    _check_classic_kind(t, key)
    return key


def _check_classic_kind(t: KeyType, key: Any) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

    fam = spec(t).family
    ok = (
        (fam == "rsa" and isinstance(key, rsa.RSAPrivateKey) and key.key_size == spec(t).key_bits)
        or (
            fam == "ec"
            and isinstance(key, ec.EllipticCurvePrivateKey)
            and key.curve.key_size == spec(t).key_bits
        )
        or (t is KeyType.ED25519 and isinstance(key, ed25519.Ed25519PrivateKey))
        or (t is KeyType.X25519 and isinstance(key, x25519.X25519PrivateKey))
    )
    if not ok:
        raise IntegrityError(f"stored material does not match key type {t.value}")


def public_key(key_type: KeyType | str, material: bytes) -> Any:
    """The public-key object of an asymmetric key (hybrids return a pq composite object)."""
    return private_key(key_type, material).public_key()
