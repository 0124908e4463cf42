"""Recipient slots: round trips, wrong recipient, truncation and every-byte mutation."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ekm.crypto import material, recipients
from ekm.errors import IntegrityError, InvalidError
from tests.pq.conftest import key_material

KINDS = ["x25519", "ml-kem-768", "ml-kem-1024", "x25519-ml-kem-768"]
OPEN_FAILED = "cannot open the recipient slot: it is not for this key or it was altered"


def _pub(key_type: str, m: bytes) -> bytes:
    return material.public_key(key_type, m).public_bytes_raw()


def _slot(key_type: str, file_key: bytes = b"K" * 32) -> bytes:
    m = key_material(key_type)
    return recipients.seal_file_key(key_type, _pub(key_type, m), file_key, recipient_id="r:v1")


@pytest.mark.parametrize("key_type", KINDS)
def test_round_trip(key_type: str) -> None:
    fk = os.urandom(32)
    slot = _slot(key_type, fk)
    assert fk not in slot
    assert recipients.open_file_key(key_type, key_material(key_type), slot) == fk
    hdr = recipients.parse_slot(slot)
    assert hdr.recipient_id == "r:v1" and hdr.key_type.value == key_type


@pytest.mark.parametrize("key_type", KINDS)
def test_slots_are_fresh_each_time(key_type: str) -> None:
    assert _slot(key_type) != _slot(key_type)


@pytest.mark.parametrize("key_type", KINDS)
def test_wrong_recipient_fails(key_type: str) -> None:
    other = material.generate(key_type)
    with pytest.raises(IntegrityError, match=OPEN_FAILED):
        recipients.open_file_key(key_type, other, _slot(key_type))


def test_wrong_kind_fails_with_same_message() -> None:
    slot = _slot("ml-kem-768")
    with pytest.raises(IntegrityError, match=OPEN_FAILED):
        recipients.open_file_key("ml-kem-1024", key_material("ml-kem-1024"), slot)


@pytest.mark.parametrize("key_type", KINDS)
def test_truncated_slot_fails(key_type: str) -> None:
    slot = _slot(key_type)
    for cut in (0, 5, 7, len(slot) // 2, len(slot) - 49, len(slot) - 1):
        with pytest.raises(IntegrityError, match=OPEN_FAILED):
            recipients.open_file_key(key_type, key_material(key_type), slot[:cut])
    with pytest.raises(IntegrityError, match=OPEN_FAILED):
        recipients.open_file_key(key_type, key_material(key_type), slot + b"\x00")


def test_recipient_id_is_authenticated() -> None:
    slot = _slot("x25519")
    forged = slot.replace(b"r:v1", b"r:v2", 1)
    assert forged != slot
    with pytest.raises(IntegrityError, match=OPEN_FAILED):
        recipients.open_file_key("x25519", key_material("x25519"), forged)


@pytest.mark.parametrize("key_type", KINDS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_byte_mutation_rejected(key_type: str, data: st.DataObject) -> None:
    slot = _slot(key_type)
    i = data.draw(st.integers(0, len(slot) - 1), label="index")
    flip = data.draw(st.integers(1, 255), label="xor")
    bad = slot[:i] + bytes([slot[i] ^ flip]) + slot[i + 1 :]
    with pytest.raises(IntegrityError, match=OPEN_FAILED):
        recipients.open_file_key(key_type, key_material(key_type), bad)


def test_non_recipient_type_refused() -> None:
    with pytest.raises(InvalidError, match="ml-dsa-65 keys cannot be recipients; use x25519"):
        recipients.seal_file_key("ml-dsa-65", b"", bytes(32), recipient_id="x")
    with pytest.raises(InvalidError, match="aes-256-gcm keys cannot be recipients"):
        recipients.open_file_key("aes-256-gcm", bytes(32), b"")


def test_bad_file_key_length_refused() -> None:
    pub = _pub("x25519", key_material("x25519"))
    with pytest.raises(InvalidError, match="a file key is 32 bytes, got 16"):
        recipients.seal_file_key("x25519", pub, bytes(16), recipient_id="x")


@pytest.mark.parametrize(
    ("key_type", "msg"),
    [
        ("x25519", "a x25519 public key is 32 bytes, got 31"),
        ("ml-kem-768", "a ml-kem-768 public key is 1184 bytes, got 31"),
        ("x25519-ml-kem-768", "an X-Wing public key is 1216 bytes, got 31"),
    ],
)
def test_bad_public_key_length_refused(key_type: str, msg: str) -> None:
    with pytest.raises(InvalidError, match=msg):
        recipients.seal_file_key(key_type, bytes(31), bytes(32), recipient_id="x")


def test_low_order_x25519_recipient_refused() -> None:
    with pytest.raises(InvalidError, match="low-order point"):
        recipients.seal_file_key("x25519", bytes(32), bytes(32), recipient_id="x")


@pytest.mark.parametrize("rid", ["", "x" * 256])
def test_recipient_id_length_refused(rid: str) -> None:
    pub = _pub("x25519", key_material("x25519"))
    with pytest.raises(InvalidError, match="recipient id must be 1 to 255 bytes"):
        recipients.seal_file_key("x25519", pub, bytes(32), recipient_id=rid)


def test_hybrid_slot_survives_broken_x25519_half_only_if_kem_holds() -> None:
    # The slot key comes from X-Wing's combined secret: changing either ciphertext half
    # (ML-KEM part or X25519 part) must fail, so neither half alone carries the key.
    slot = _slot("x25519-ml-kem-768")
    hdr = recipients.parse_slot(slot)
    start = len(hdr.header) - len(hdr.enc)
    for off in (0, 1087, 1088, 1119):
        i = start + off
        bad = slot[:i] + bytes([slot[i] ^ 1]) + slot[i + 1 :]
        with pytest.raises(IntegrityError, match=OPEN_FAILED):
            recipients.open_file_key("x25519-ml-kem-768", key_material("x25519-ml-kem-768"), bad)
