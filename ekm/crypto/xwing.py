"""X-Wing: the X25519 + ML-KEM-768 hybrid KEM (ekm key type ``x25519-ml-kem-768``).

Implements draft-connolly-cfrg-xwing-kem-10 (September 2025), sections 5.2-5.5, exactly:

* the private (decapsulation) key is a 32-byte seed; ``SHAKE256(seed, 96 bytes)`` expands it,
  bytes 0..63 are the ML-KEM-768 ``KeyGen_internal(d, z)`` seed and bytes 64..95 the X25519
  private key;
* the public (encapsulation) key is ``pk_M (1184) || pk_X (32)`` = 1216 bytes;
* the ciphertext is ``ct_M (1088) || ct_X (32)`` = 1120 bytes;
* the shared secret is ``SHA3-256(ss_M || ss_X || ct_X || pk_X || XWingLabel)`` with
  ``XWingLabel = b"\\\\.//^\\\\"`` (hex 5c2e2f2f5e5c).

Why X-Wing and not an ad-hoc combiner: the draft's combiner is proven IND-CCA if *either*
ML-KEM-768 or X25519 holds (eprint 2024/039), and leaving ``ct_M`` out of the hash is only
safe because of ML-KEM's FO transform; a home-made KDF over both secrets would lose that proof.

Deviation, on purpose: X25519 with a low-order ``ct_X`` gives an all-zero secret that
cryptography refuses; ekm treats that as a failed decapsulation (IntegrityError) instead of
deriving a key from it. Derandomized encapsulation (``eseed``) needs ML-KEM's
``Encaps_internal(pk, m)``, which the cryptography backend does not expose: ``eseed`` is only
accepted for the X25519 half, see :func:`encapsulate`.
"""

from __future__ import annotations

import hashlib
import os

from ekm.errors import IntegrityError, InvalidError

DRAFT = "draft-connolly-cfrg-xwing-kem-10"
XWING_LABEL = bytes.fromhex("5c2e2f2f5e5c")  # "\./" "/^\"
SEED_LEN = 32
PK_LEN = 1216
CT_LEN = 1120
SS_LEN = 32
_PK_M_LEN = 1184
_CT_M_LEN = 1088

_DECAPS_FAILED = "X-Wing decapsulation failed: the ciphertext is malformed or not for this key"


def _expand(seed: bytes) -> tuple[object, object, bytes, bytes]:
    """Expand a 32-byte X-Wing seed into (ML-KEM key, X25519 key, pk_M, pk_X)."""
    from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

    if len(seed) != SEED_LEN:
        raise InvalidError(f"an X-Wing private key is a {SEED_LEN}-byte seed, got {len(seed)}")
    expanded = hashlib.shake_256(bytes(seed)).digest(96)
    sk_m = mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
    sk_x = x25519.X25519PrivateKey.from_private_bytes(expanded[64:96])
    pk_m = sk_m.public_key().public_bytes_raw()
    pk_x = sk_x.public_key().public_bytes_raw()
    return sk_m, sk_x, pk_m, pk_x


def combiner(ss_m: bytes, ss_x: bytes, ct_x: bytes, pk_x: bytes) -> bytes:
    """The X-Wing combiner (draft section 5.3): SHA3-256 over both secrets and the X25519 parts."""
    return hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + XWING_LABEL).digest()


def generate(seed: bytes | None = None) -> tuple[bytes, bytes]:
    """``GenerateKeyPairDerand``: (sk_seed, pk) from a 32-byte seed (a fresh one if None)."""
    sk = os.urandom(SEED_LEN) if seed is None else bytes(seed)
    _, _, pk_m, pk_x = _expand(sk)
    return sk, pk_m + pk_x


def public_key(sk_seed: bytes) -> bytes:
    """The 1216-byte encapsulation key of a seed."""
    return generate(sk_seed)[1]


def _load_pk(pk: bytes) -> tuple[object, object, bytes]:
    from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

    if len(pk) != PK_LEN:
        raise InvalidError(f"an X-Wing public key is {PK_LEN} bytes, got {len(pk)}")
    pk = bytes(pk)
    try:
        # from_public_bytes performs FIPS 203's encapsulation-key (modulus) check, which the
        # draft mandates before encapsulating (section 5.4).
        pk_m = mlkem.MLKEM768PublicKey.from_public_bytes(pk[:_PK_M_LEN])
    except ValueError:
        raise InvalidError(
            "the X-Wing public key fails the ML-KEM encapsulation key check; "
            "re-export it from the recipient"
        ) from None
    pk_x = x25519.X25519PublicKey.from_public_bytes(pk[_PK_M_LEN:])
    return pk_m, pk_x, pk[_PK_M_LEN:]


def encapsulate(pk: bytes, eseed: bytes | None = None) -> tuple[bytes, bytes]:
    """``Encapsulate``: (shared secret, 1120-byte ciphertext) for the public key ``pk``.

    ``eseed`` (64 bytes, draft section 5.4 ``EncapsulateDerand``) must be None: ML-KEM's
    derandomized encapsulation is not exposed by the cryptography backend, and silently using
    fresh randomness for half of it would make a caller believe a result is reproducible when
    it is not. Known-answer tests therefore check key generation and decapsulation.
    """
    from cryptography.hazmat.primitives.asymmetric import x25519

    if eseed is not None:
        raise InvalidError(
            "derandomized X-Wing encapsulation (eseed) is not supported by this build: "
            "the cryptography backend has no ML-KEM Encaps_internal; call without eseed"
        )
    pk_m, pk_x, pk_x_raw = _load_pk(pk)
    ek_x = x25519.X25519PrivateKey.generate()
    ct_x = ek_x.public_key().public_bytes_raw()
    try:
        ss_x = ek_x.exchange(pk_x)
    except ValueError:
        raise InvalidError("the X-Wing public key has a low-order X25519 part") from None
    ss_m, ct_m = pk_m.encapsulate()
    return combiner(ss_m, ss_x, ct_x, pk_x_raw), ct_m + ct_x


def decapsulate(sk_seed: bytes, ct: bytes) -> bytes:
    """``Decapsulate``: the 32-byte shared secret; IntegrityError if ``ct`` is malformed.

    A well-formed ciphertext made for another key yields a different secret (ML-KEM's implicit
    rejection), so callers must authenticate what they derive from it (an AEAD tag).
    """
    if len(ct) != CT_LEN:
        raise IntegrityError(_DECAPS_FAILED)
    sk_m, sk_x, _pk_m, pk_x = _expand(sk_seed)
    return decapsulate_expanded(sk_m, sk_x, pk_x, ct)


def decapsulate_expanded(sk_m: object, sk_x: object, pk_x: bytes, ct: bytes) -> bytes:
    """:func:`decapsulate` with the seed already expanded (draft section 5.5.1's caching).

    The expanded form stays inside the process (the draft forbids transmitting it).
    """
    from cryptography.hazmat.primitives.asymmetric import x25519

    if len(ct) != CT_LEN:
        raise IntegrityError(_DECAPS_FAILED)
    ct = bytes(ct)
    ct_x = ct[_CT_M_LEN:]
    try:
        ss_m = sk_m.decapsulate(ct[:_CT_M_LEN])  # type: ignore[attr-defined]
        ss_x = sk_x.exchange(x25519.X25519PublicKey.from_public_bytes(ct_x))  # type: ignore[attr-defined]
    except ValueError:
        raise IntegrityError(_DECAPS_FAILED) from None
    return combiner(ss_m, ss_x, ct_x, pk_x)
