"""Envelope encryption of records (database fields, small values): format ``ekm record v1``.

The byte layout is specified in docs/FORMAT.md; this module is one implementation of it.
Each record names its key and version in the clear (so decryption picks the key instead of
trying them all, as Tink's prefix and Vault's ``vault:v3:`` do) and carries a data key wrapped
under that version. The data is sealed under the data key with AES-256-GCM; its associated data
is the caller's ``aad`` plus a domain label, *not* the wrapped key, so :func:`rewrap` can
replace the wrapped key (after a rotation) without touching the data.

Order of work on decryption: parse (bounds-checked, hostile input), resolve the key, verify
and unwrap the data key, then verify-and-decrypt the data. Every authenticity failure raises
IntegrityError with one message; an unknown key or version is the resolver's NotFoundError.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable

from ekm.crypto.dekcache import DataKeyCache
from ekm.crypto.wrapping import NONCE_LEN, NOT_AUTHENTIC, TAG_LEN, KeyWrapper
from ekm.errors import IntegrityError, InvalidError

RECORD_V1 = 0x01
DEK_LEN = 32
MAX_WRAPPED_LEN = 4096  # room for an RSA-OAEP or HSM-wrapped key; bounds hostile input
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_DATA_AAD = b"ekm record v1 data\x00"

Resolver = Callable[[str, int], KeyWrapper]


def check_key_name(name: str) -> bytes:
    """The UTF-8 bytes of a key name that may appear in a ciphertext header."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidError(
            f"key name {name!r} cannot be used in a ciphertext: use 1-128 letters, digits, "
            "'_', '.' or '-', starting with a letter or digit"
        )
    return name.encode()


def _header_prefix(name: bytes, version: int) -> bytes:
    """Format byte, key name and version: the associated data of the data-key wrap."""
    return struct.pack(">BB", RECORD_V1, len(name)) + name + struct.pack(">I", version)


def _check_version(version: int) -> None:
    if not isinstance(version, int) or not 1 <= version < 2**32:
        raise InvalidError(f"key version must be between 1 and 2**32-1, not {version!r}")


def _data_aad(aad: bytes) -> bytes:
    if not isinstance(aad, (bytes, bytearray, memoryview)):
        raise InvalidError("associated data must be bytes (encode text as UTF-8)")
    return _DATA_AAD + bytes(aad)


def encrypt(
    wrapper: KeyWrapper, plaintext: bytes, aad: bytes = b"", *, cache: DataKeyCache | None = None
) -> bytes:
    """Seal ``plaintext`` under a data key wrapped by ``wrapper``; ``aad`` must match on decrypt.

    With a ``cache``, one data key (and one wrap) serves many records until the cache retires
    it (age, use count); without one, every record gets a fresh data key.
    """
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data_aad = _data_aad(aad)
    hit = None
    if cache is not None:  # not ``if cache``: that would take its lock for __len__
        hit = cache.take_encryption_key(wrapper.key_name, wrapper.version)
    if hit is not None:
        _dek, _wrapped, (aead, prefix) = hit
    else:
        name = check_key_name(wrapper.key_name)
        _check_version(wrapper.version)
        hdr = _header_prefix(name, wrapper.version)
        dek = os.urandom(DEK_LEN)
        wrapped = wrapper.wrap(dek, hdr)
        if not 0 < len(wrapped) <= MAX_WRAPPED_LEN:
            raise InvalidError(f"key {wrapper.key_name} produced a wrapped key of bad length")
        aead = AESGCM(dek)
        prefix = hdr + struct.pack(">H", len(wrapped)) + wrapped
        if cache is not None:
            cache.put_encryption_key(
                wrapper.key_name, wrapper.version, dek, wrapped, aead=(aead, prefix)
            )
    nonce = os.urandom(NONCE_LEN)
    return prefix + nonce + aead.encrypt(nonce, plaintext, data_aad)


class _Parsed:
    __slots__ = ("body", "header", "key_name", "version", "wrapped")

    def __init__(self, key_name: str, version: int, header: bytes, wrapped: bytes, body: bytes):
        self.key_name = key_name
        self.version = version
        self.header = header
        self.wrapped = wrapped
        self.body = body


_VERSION_WLEN = struct.Struct(">IH")
_NAMES: dict[bytes, str] = {}  # key names already checked against _NAME_RE (bounded below)


def _name_of(raw: bytes) -> str:
    name = _NAMES.get(raw)
    if name is None:
        name = raw.decode()
        if not _NAME_RE.match(name):
            raise ValueError
        if len(_NAMES) >= 4096:
            _NAMES.clear()
        _NAMES[raw] = name
    return name


def _parse(blob: bytes) -> _Parsed:
    """Bounds-checked parse of a record; any malformation is the one IntegrityError."""
    try:
        if type(blob) is not bytes:
            blob = bytes(blob)
        if blob[0] != RECORD_V1:
            raise ValueError
        pos = 2 + blob[1]
        version, wlen = _VERSION_WLEN.unpack_from(blob, pos)
        wstart = pos + 6
        bstart = wstart + wlen
        if version < 1 or wlen == 0 or wlen > MAX_WRAPPED_LEN:
            raise ValueError
        if len(blob) < bstart + NONCE_LEN + TAG_LEN:
            raise ValueError
        name = _name_of(blob[2:pos])
        return _Parsed(name, version, blob[: pos + 4], blob[wstart:bstart], blob[bstart:])
    except (ValueError, IndexError, UnicodeDecodeError, struct.error, TypeError):
        raise IntegrityError(NOT_AUTHENTIC) from None


def peek(blob: bytes) -> tuple[str, int, str]:
    """``(key_name, version, kind)`` of a record or stream header without any key.

    ``kind`` is ``"record"`` or ``"stream"``. Nothing is verified: use it only to choose a key.
    """
    from ekm.crypto import stream

    if bytes(blob[: len(stream.MAGIC)]) == stream.MAGIC:
        return stream.peek_bytes(bytes(blob))
    p = _parse(blob)
    return p.key_name, p.version, "record"


def _unwrap(p: _Parsed, resolve: Resolver, cache: DataKeyCache | None) -> bytes:
    wrapper = resolve(p.key_name, p.version)  # NotFoundError for unknown/retired versions
    if cache is not None:
        dek = cache.get_decryption_key(p.key_name, p.version, p.wrapped)
        if dek is not None:
            return dek
    dek = wrapper.unwrap(p.wrapped, p.header)
    if len(dek) != DEK_LEN:
        raise IntegrityError(NOT_AUTHENTIC)
    if cache is not None:
        cache.put_decryption_key(p.key_name, p.version, p.wrapped, dek)
    return dek


def parse(blob: bytes) -> _Parsed:
    """The bounds-checked fields of a record (``key_name``, ``version``...), unverified.

    For callers that need the key name (e.g. to audit a failure) and then decrypt: pass the
    result to :func:`decrypt_parsed` instead of parsing twice.
    """
    return _parse(blob)


def decrypt(
    blob: bytes,
    aad: bytes = b"",
    *,
    resolve: Resolver,
    cache: DataKeyCache | None = None,
) -> bytes:
    """Verify and open a record; ``resolve(name, version)`` supplies the key wrapper.

    The resolver is called for every record (even on a cache hit), so a version that was
    disabled or destroyed stops decrypting at once.
    """
    return decrypt_parsed(_parse(blob), aad, resolve=resolve, cache=cache)


def decrypt_parsed(
    p: _Parsed, aad: bytes = b"", *, resolve: Resolver, cache: DataKeyCache | None = None
) -> bytes:
    """:func:`decrypt` of a record already split by :func:`parse`."""
    data_aad = _data_aad(aad)
    wrapper = resolve(p.key_name, p.version)  # the state check, on every record
    aead = None
    if cache is not None:  # not ``if cache``: that would take its lock for __len__
        aead = cache.get_decryption_aead(p.key_name, p.version, p.wrapped)
    if aead is None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        dek = None
        if cache is not None:
            dek = cache.get_decryption_key(p.key_name, p.version, p.wrapped)
        if dek is None:
            dek = wrapper.unwrap(p.wrapped, p.header)
            if len(dek) != DEK_LEN:
                raise IntegrityError(NOT_AUTHENTIC)
        aead = AESGCM(dek)
        if cache is not None:  # only reached once the wrap verified
            cache.put_decryption_key(p.key_name, p.version, p.wrapped, dek, aead=aead)
    body = p.body
    try:
        return aead.decrypt(body[:NONCE_LEN], body[NONCE_LEN:], data_aad)
    except Exception as exc:  # InvalidTag, imported only when it happens
        from cryptography.exceptions import InvalidTag

        if isinstance(exc, InvalidTag):
            raise IntegrityError(NOT_AUTHENTIC) from None
        raise


def rewrap(blob: bytes, resolve: Resolver, new_wrapper: KeyWrapper) -> bytes:
    """Re-wrap a record's data key under ``new_wrapper`` without re-encrypting the data.

    The wrapped key is verified (its AEAD tag) before anything is produced; the data part is
    copied unchanged and is verified, as before, by the next :func:`decrypt` with its AAD.
    A record already under ``new_wrapper``'s name and version is returned unchanged.
    """
    p = _parse(blob)
    if (p.key_name, p.version) == (new_wrapper.key_name, new_wrapper.version):
        return bytes(blob)
    dek = _unwrap(p, resolve, None)
    name = check_key_name(new_wrapper.key_name)
    _check_version(new_wrapper.version)
    hdr = _header_prefix(name, new_wrapper.version)
    wrapped = new_wrapper.wrap(dek, hdr)
    if not 0 < len(wrapped) <= MAX_WRAPPED_LEN:
        raise InvalidError(f"key {new_wrapper.key_name} produced a wrapped key of bad length")
    return hdr + struct.pack(">H", len(wrapped)) + wrapped + p.body
