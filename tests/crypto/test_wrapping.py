"""AeadWrapper: round trips, one authenticity message, the SP 800-38D wrap limit."""

from __future__ import annotations

import os

import pytest

from ekm.crypto.wrapping import NOT_AUTHENTIC, AeadWrapper, KeyWrapper
from ekm.errors import IntegrityError, InvalidError, StateError


@pytest.mark.parametrize(
    ("key_type", "length"),
    [("aes-256-gcm", 32), ("aes-128-gcm", 16), ("chacha20-poly1305", 32)],
)
def test_round_trip_and_fresh_nonce(key_type, length):
    w = AeadWrapper("k", 1, key_type, os.urandom(length))
    assert isinstance(w, KeyWrapper)
    a, b = w.wrap(b"secret", b"aad"), w.wrap(b"secret", b"aad")
    assert a != b  # random nonce per wrap
    assert w.unwrap(a, b"aad") == b"secret"
    assert w.wrap_count == 2


@pytest.mark.parametrize("blob_change", ["aad", "flip", "short", "empty", "other-key"])
def test_every_failure_is_one_integrity_error(blob_change):
    w = AeadWrapper("k", 1, "aes-256-gcm", os.urandom(32))
    blob, aad = w.wrap(b"secret", b"aad"), b"aad"
    if blob_change == "aad":
        aad = b"other"
    elif blob_change == "flip":
        blob = blob[:-1] + bytes([blob[-1] ^ 1])
    elif blob_change == "short":
        blob = blob[:20]
    elif blob_change == "empty":
        blob = b""
    else:
        w = AeadWrapper("k", 1, "aes-256-gcm", os.urandom(32))
    with pytest.raises(IntegrityError) as exc:
        w.unwrap(blob, aad)
    assert str(exc.value) == NOT_AUTHENTIC
    assert exc.value.exit_code == 4


def test_wrap_limit_enforced_from_persisted_count():
    w = AeadWrapper("db", 3, "aes-256-gcm", os.urandom(32), wrap_count=9, max_wraps=10)
    w.wrap(b"x", b"")
    with pytest.raises(StateError, match=r"db v3 has performed 10 wraps.*rotate it") as exc:
        w.wrap(b"x", b"")
    assert exc.value.exit_code == 3
    assert w.wrap_count == 10


def test_non_aead_type_refused():
    with pytest.raises(InvalidError, match="hmac-sha256 key cannot wrap data keys"):
        AeadWrapper("k", 1, "hmac-sha256", os.urandom(32))


def test_unknown_type_refused():
    with pytest.raises(InvalidError, match="unknown key type 'des'"):
        AeadWrapper("k", 1, "des", os.urandom(8))


def test_wrong_material_length_is_integrity_error_without_material():
    material = os.urandom(31)
    with pytest.raises(IntegrityError, match="wrong length") as exc:
        AeadWrapper("k", 1, "aes-256-gcm", material)
    assert material.hex() not in str(exc.value)


@pytest.mark.parametrize(("name", "version"), [("", 1), ("k", 0), ("k", -1)])
def test_bad_identity_refused(name, version):
    with pytest.raises(InvalidError):
        AeadWrapper(name, version, "aes-256-gcm", os.urandom(32))


def test_repr_never_shows_material():
    material = os.urandom(32)
    w = AeadWrapper("k", 2, "aes-256-gcm", material)
    assert repr(w) == "AeadWrapper('k', v2, aes-256-gcm)"
    assert material.hex() not in repr(w)
