"""Record envelope format: round trips, every tamper rejected with one message, cache, rewrap."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ekm.crypto import envelope
from ekm.crypto.dekcache import DataKeyCache
from ekm.crypto.wrapping import NOT_AUTHENTIC
from ekm.errors import IntegrityError, InvalidError, NotFoundError


def _rejects(blob, keyring, aad=b"ctx"):
    with pytest.raises(IntegrityError) as exc:
        envelope.decrypt(blob, aad, resolve=keyring)
    assert str(exc.value) == NOT_AUTHENTIC


def test_round_trip_names_key_and_version(keyring):
    w = keyring.add("database_encryption", 7)
    blob = envelope.encrypt(w, b"4111 1111 1111 1111", b"users.42.card")
    assert b"4111" not in blob
    assert envelope.peek(blob) == ("database_encryption", 7, "record")
    assert envelope.decrypt(blob, b"users.42.card", resolve=keyring) == b"4111 1111 1111 1111"


@given(plaintext=st.binary(max_size=300), aad=st.binary(max_size=40))
@settings(max_examples=40, deadline=None)
def test_round_trip_any_input(plaintext, aad):
    from tests.crypto.conftest import Keyring

    ring = Keyring()
    w = ring.add("k", 1, "chacha20-poly1305")
    assert envelope.decrypt(envelope.encrypt(w, plaintext, aad), aad, resolve=ring) == plaintext


def test_every_single_byte_mutation_rejected(keyring):
    w = keyring.add("k", 1)
    blob = envelope.encrypt(w, b"attack at dawn", b"ctx")
    for i in range(len(blob)):
        for bit in (0x01, 0x80):
            mutated = bytearray(blob)
            mutated[i] ^= bit
            with pytest.raises((IntegrityError, NotFoundError)) as exc:
                envelope.decrypt(bytes(mutated), b"ctx", resolve=keyring)
            if isinstance(exc.value, NotFoundError):  # name/version now names an unknown key
                assert envelope.peek(bytes(mutated))[:2] != ("k", 1)
            else:
                assert str(exc.value) == NOT_AUTHENTIC


def test_every_truncation_and_extension_rejected(keyring):
    w = keyring.add("k", 1)
    blob = envelope.encrypt(w, b"attack at dawn", b"ctx")
    for n in range(len(blob)):
        _rejects(blob[:n], keyring)
    _rejects(blob + b"\x00", keyring)


@pytest.mark.parametrize("garbage", [b"", b"\x01", b"\x00" * 200, b"not a ciphertext at all"])
def test_garbage_rejected(keyring, garbage):
    keyring.add("k", 1)
    _rejects(garbage, keyring)


def test_wrong_aad_and_wrong_key(keyring):
    w = keyring.add("k", 1)
    blob = envelope.encrypt(w, b"data", b"ctx")
    _rejects(blob, keyring, aad=b"ctx2")
    keyring.add("k", 1)  # same name and version, different material
    _rejects(blob, keyring)


def test_unknown_version_is_resolvers_not_found(keyring):
    blob = envelope.encrypt(keyring.add("k", 1), b"data")
    del keyring.wrappers[("k", 1)]
    with pytest.raises(NotFoundError, match="no usable version 1") as exc:
        envelope.decrypt(blob, resolve=keyring)
    assert exc.value.exit_code == 3


def test_cache_wraps_once_and_unwraps_once(keyring):
    w = keyring.add("k", 1)
    cache = DataKeyCache(max_size=8, ttl_seconds=60, max_messages=100)
    blobs = [envelope.encrypt(w, b"v%d" % i, cache=cache) for i in range(50)]
    assert w.wrap_count == 1
    unwraps = []
    real_unwrap = w.unwrap
    w.unwrap = lambda blob, aad: unwraps.append(1) or real_unwrap(blob, aad)
    dcache = DataKeyCache(max_size=8, ttl_seconds=60, max_messages=100)
    assert [envelope.decrypt(b, resolve=keyring, cache=dcache) for b in blobs][7] == b"v7"
    assert len(unwraps) == 1
    assert keyring.calls == 50  # resolver still consulted per record: retired keys stop at once


def test_cache_retires_data_key_after_max_messages(keyring):
    w = keyring.add("k", 1)
    cache = DataKeyCache(max_size=8, ttl_seconds=60, max_messages=10)
    for _ in range(25):
        envelope.encrypt(w, b"x", cache=cache)
    assert w.wrap_count == 3


def test_cached_decrypt_still_checks_data_tag(keyring):
    w = keyring.add("k", 1)
    cache = DataKeyCache()
    blob = envelope.encrypt(w, b"data", cache=cache)
    envelope.decrypt(blob, resolve=keyring, cache=cache)
    with pytest.raises(IntegrityError, match="not authentic"):
        envelope.decrypt(blob[:-1] + bytes([blob[-1] ^ 1]), resolve=keyring, cache=cache)


def test_rewrap_moves_to_new_version_without_reencrypting(keyring):
    old = keyring.add("k", 1)
    blob = envelope.encrypt(old, b"payload", b"ctx")
    new = keyring.add("k", 2)
    moved = envelope.rewrap(blob, keyring, new)
    assert envelope.peek(moved) == ("k", 2, "record")
    assert moved.endswith(blob[-(12 + 7 + 16) :])  # nonce + ciphertext + tag unchanged
    del keyring.wrappers[("k", 1)]
    assert envelope.decrypt(moved, b"ctx", resolve=keyring) == b"payload"
    assert envelope.rewrap(moved, keyring, new) == moved  # idempotent


def test_rewrap_refuses_tampered_header(keyring):
    blob = bytearray(envelope.encrypt(keyring.add("k", 1), b"payload"))
    blob[10] ^= 1  # inside the wrapped data key
    with pytest.raises(IntegrityError, match="not authentic"):
        envelope.rewrap(bytes(blob), keyring, keyring.add("k", 2))


def test_header_splice_between_keys_rejected(keyring):
    a = envelope.encrypt(keyring.add("a", 1), b"payload-a")
    b = envelope.encrypt(keyring.add("b", 1), b"payload-b")
    # a's header with b's body: the data key does not open b's body
    _rejects(a[: len(a) - (12 + 9 + 16)] + b[len(b) - (12 + 9 + 16) :], keyring, aad=b"")


@pytest.mark.parametrize("name", ["", "has space", "x" * 129, "-lead", "naïve"])
def test_bad_key_names_refused(keyring, name):
    w = keyring.add("k", 1)
    w.key_name = name
    with pytest.raises(InvalidError, match="cannot be used in a ciphertext"):
        envelope.encrypt(w, b"x")


def test_text_aad_refused(keyring):
    with pytest.raises(InvalidError, match="associated data must be bytes"):
        envelope.encrypt(keyring.add("k", 1), b"x", "text")  # type: ignore[arg-type]
