"""Recipient slots: a 32-byte file key sealed to a public key, age-stanza style.

The stream container (``ekm/crypto/stream.py``) carries one slot per recipient; this module
only turns (recipient public key, file key) into slot bytes and back. The byte layout is the
contract in docs/FORMAT-recipients.md; in short::

    slot   = header || wrapped
    header = "ekmR" || 0x01 (version) || kind (1) || len(rid) (1) || rid
             || len(enc) (2, big-endian) || enc
    wrapped = ChaCha20-Poly1305(key = wrap_key, nonce = 12 zero bytes,
                                plaintext = file_key, aad = header)        (48 bytes)
    wrap_key = HKDF-SHA256(ikm = ss, salt = enc || recipient_pk,
                           info = "ekm/recipient/v1/" || kind name)

``enc`` is the ephemeral X25519 public key (kind x25519), the ML-KEM ciphertext (ml-kem-*) or
the X-Wing ciphertext (x25519-ml-kem-768); ``ss`` is the X25519 shared secret, the ML-KEM
shared secret or the X-Wing combined secret. Putting ``recipient_pk`` in the salt binds the
slot to the key it was made for (ML-KEM alone is not MAL-BIND-K-PK); the zero nonce is safe
because every wrap key is used once (age does the same). The header is the AAD, so the
recipient id, kind and ``enc`` cannot be swapped without failing the tag.

Every failure to open (malformed, truncated, other key, other kind, tampered) raises the same
IntegrityError: the caller learns "not for this key or not authentic", never which check failed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ekm.crypto.keytypes import KeyType
from ekm.errors import IntegrityError, InvalidError

MAGIC = b"ekmR"
VERSION = 1
FILE_KEY_LEN = 32
_TAG_LEN = 16
_WRAPPED_LEN = FILE_KEY_LEN + _TAG_LEN
_ZERO_NONCE = bytes(12)

KIND: dict[KeyType, int] = {
    KeyType.X25519: 1,
    KeyType.ML_KEM_768: 2,
    KeyType.ML_KEM_1024: 3,
    KeyType.HYBRID_X25519_ML_KEM_768: 4,
}
_KIND_TYPE = {v: k for k, v in KIND.items()}
_ENC_LEN = {1: 32, 2: 1088, 3: 1568, 4: 1120}
_PK_LEN = {KeyType.X25519: 32, KeyType.ML_KEM_768: 1184, KeyType.ML_KEM_1024: 1568}

OPEN_FAILED = (
    "cannot open the recipient slot: it is not for this key or it was altered; "
    "check that the right private key is used"
)


@dataclass(frozen=True)
class SlotHeader:
    """The parsed, still unauthenticated header of a slot (enough to pick the key)."""

    key_type: KeyType
    recipient_id: str
    enc: bytes
    header: bytes  # the exact bytes authenticated as AAD
    wrapped: bytes


def _recipient_type(key_type: KeyType | str) -> KeyType:
    t = KeyType(key_type)
    if t not in KIND:
        raise InvalidError(
            f"{t.value} keys cannot be recipients; use x25519, ml-kem-768, ml-kem-1024 or "
            "x25519-ml-kem-768"
        )
    return t


def _header(kind: int, recipient_id: str, enc: bytes) -> bytes:
    rid = recipient_id.encode("utf-8")
    if not 1 <= len(rid) <= 255:
        raise InvalidError("a recipient id must be 1 to 255 bytes of UTF-8")
    return MAGIC + bytes([VERSION, kind, len(rid)]) + rid + struct.pack(">H", len(enc)) + enc


def _wrap_key(t: KeyType, ss: bytes, enc: bytes, pk: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    info = b"ekm/recipient/v1/" + t.value.encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=enc + pk, info=info).derive(ss)


def _encapsulate(t: KeyType, pk: bytes) -> tuple[bytes, bytes]:
    """(shared secret, enc) for the recipient public key; InvalidError for a bad key."""
    if t is KeyType.HYBRID_X25519_ML_KEM_768:
        from ekm.crypto import xwing

        return xwing.encapsulate(pk)
    if len(pk) != _PK_LEN[t]:
        raise InvalidError(f"a {t.value} public key is {_PK_LEN[t]} bytes, got {len(pk)}")
    if t is KeyType.X25519:
        from cryptography.hazmat.primitives.asymmetric import x25519

        eph = x25519.X25519PrivateKey.generate()
        try:
            ss = eph.exchange(x25519.X25519PublicKey.from_public_bytes(pk))
        except ValueError:
            raise InvalidError("the x25519 recipient key is a low-order point") from None
        return ss, eph.public_key().public_bytes_raw()
    from ekm.crypto import pq

    return pq.load_public(t, pk).encapsulate()


def seal_file_key(
    key_type: KeyType | str, public_bytes: bytes, file_key: bytes, *, recipient_id: str
) -> bytes:
    """Slot bytes that give ``file_key`` (32 bytes) to the holder of ``public_bytes`` (raw).

    ``recipient_id`` names the recipient key (e.g. ``"backup-kem:v3"``) so a reader can pick its
    key without trial decryption; it is authenticated but not secret.
    """
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    t = _recipient_type(key_type)
    if len(file_key) != FILE_KEY_LEN:
        raise InvalidError(f"a file key is {FILE_KEY_LEN} bytes, got {len(file_key)}")
    pk = bytes(public_bytes)
    ss, enc = _encapsulate(t, pk)
    header = _header(KIND[t], recipient_id, enc)
    wrapped = ChaCha20Poly1305(_wrap_key(t, ss, enc, pk)).encrypt(
        _ZERO_NONCE, bytes(file_key), header
    )
    return header + wrapped


def parse_slot(slot_bytes: bytes) -> SlotHeader:
    """Split a slot into its fields; IntegrityError (the one message) if it is malformed.

    Nothing returned here is authentic until :func:`open_file_key` succeeds.
    """
    b = bytes(slot_bytes)
    if len(b) < 7 or b[:4] != MAGIC or b[4] != VERSION or b[5] not in _KIND_TYPE:
        raise IntegrityError(OPEN_FAILED)
    kind, rid_len = b[5], b[6]
    pos = 7 + rid_len
    if rid_len == 0 or len(b) < pos + 2:
        raise IntegrityError(OPEN_FAILED)
    try:
        rid = b[7:pos].decode("utf-8")
    except UnicodeDecodeError:
        raise IntegrityError(OPEN_FAILED) from None
    (enc_len,) = struct.unpack(">H", b[pos : pos + 2])
    pos += 2
    if enc_len != _ENC_LEN[kind] or len(b) != pos + enc_len + _WRAPPED_LEN:
        raise IntegrityError(OPEN_FAILED)
    enc = b[pos : pos + enc_len]
    return SlotHeader(_KIND_TYPE[kind], rid, enc, b[: pos + enc_len], b[pos + enc_len :])


def _decapsulate(t: KeyType, material: bytes, enc: bytes) -> tuple[bytes, bytes]:
    """(shared secret, own raw public key) from the private material and ``enc``."""
    from ekm.crypto import material as mat

    key = mat.private_key(t, material)
    pk = key.public_key().public_bytes_raw()
    if t is KeyType.X25519:
        from cryptography.hazmat.primitives.asymmetric import x25519

        return key.exchange(x25519.X25519PublicKey.from_public_bytes(enc)), pk
    return key.decapsulate(enc), pk


def open_file_key(key_type: KeyType | str, private_material: bytes, slot_bytes: bytes) -> bytes:
    """The 32-byte file key in ``slot_bytes``, using the recipient's stored ``private_material``.

    IntegrityError with one message for every failure (wrong key, wrong kind, truncated or
    altered slot); InvalidError only if ``key_type`` can never be a recipient.
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    t = _recipient_type(key_type)
    slot = parse_slot(slot_bytes)
    if slot.key_type is not t:
        raise IntegrityError(OPEN_FAILED)
    try:
        ss, pk = _decapsulate(t, private_material, slot.enc)
        key = _wrap_key(t, ss, slot.enc, pk)
        return ChaCha20Poly1305(key).decrypt(_ZERO_NONCE, slot.wrapped, slot.header)
    except (ValueError, InvalidTag, IntegrityError):
        raise IntegrityError(OPEN_FAILED) from None
