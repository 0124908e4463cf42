"""Known-answer tests: ekm and an independent reference agree byte for byte, both ways.

The vectors (``*.json``) fix every random input, so a second implementation of the formats
can check itself against them. Here they are checked in three directions:

1. the reference encoder (``reference.py``, written from docs/ alone) reproduces each stored
   ciphertext exactly, so the files are not stale;
2. ekm opens each stored ciphertext to its plaintext, and refuses every single-byte change;
3. ekm's own fresh output (random data key, nonces, salt) opens with the reference decoder,
   and ekm's Ed25519 signature over a vector is byte-identical to the stored one.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from ekm.crypto import envelope, signatures, stream
from ekm.crypto.keytypes import KeyType
from ekm.crypto.recipient_slot import RecipientSlot
from ekm.crypto.wrapping import AeadWrapper
from ekm.errors import EkmError, IntegrityError, NotFoundError

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402
import reference  # noqa: E402

VECTORS = generate.load_all()


def _ids(vs: list[dict[str, Any]]) -> list[str]:
    return [v["name"] for v in vs]


def _of(fmt: str) -> list[dict[str, Any]]:
    return [v for v in VECTORS if v["format"] == fmt]


def _resolver(v: dict[str, Any]) -> Any:
    """What ekm's KeyManager hands the formats: a wrapper by name and version, or a recipient."""

    class Resolver:
        def __call__(self, name: str, version: int) -> AeadWrapper:
            if (name, version) != (v.get("key_name"), v.get("key_version")):
                raise NotFoundError(f"no key {name} v{version}")  # as KeyManager's resolver
            return AeadWrapper(name, version, v["key_type"], v["key"])

        def recipient_key(self, rid: str) -> tuple[KeyType, bytes]:
            if rid != v["recipient_id"]:
                raise NotFoundError(f"no recipient key {rid}")
            return KeyType(v["recipient_type"]), _ekm_private_material(v)

    return Resolver()


def _ekm_private_material(v: dict[str, Any]) -> bytes:
    """ekm stores X25519 keys as PKCS#8 DER and ML-KEM keys as their 64-byte FIPS 203 seed."""
    if v["recipient_type"] != "x25519":
        return v["recipient_key"]
    return x25519.X25519PrivateKey.from_private_bytes(v["recipient_key"]).private_bytes(
        ser.Encoding.DER, ser.PrivateFormat.PKCS8, ser.NoEncryption()
    )


def _ekm_open(v: dict[str, Any], blob: bytes) -> bytes:
    if v["format"] == "record-v1":
        return envelope.decrypt(blob, v["aad"], resolve=_resolver(v))
    out = io.BytesIO()
    stream.decrypt_stream(io.BytesIO(blob), out, _resolver(v), v["aad"])
    return out.getvalue()


def test_the_vector_files_cover_every_format_and_slot_kind() -> None:
    names = {v["name"] for v in VECTORS}
    assert len(names) == len(VECTORS), "vector names must be unique"
    assert {v["format"] for v in VECTORS} == {"record-v1", "stream-v1", "signature-v1"}
    kinds = {v.get("recipient_type", "named-key") for v in _of("stream-v1")}
    assert kinds == {"named-key", "x25519", "ml-kem-768", "ml-kem-1024"}


@pytest.mark.parametrize("v", VECTORS, ids=_ids(VECTORS))
def test_reference_reproduces_the_stored_bytes(v: dict[str, Any]) -> None:
    assert reference.encode(v) == v["expected"]


@pytest.mark.parametrize(
    "v", [v for v in VECTORS if "kem_ciphertext" in v], ids=lambda v: v["name"]
)
def test_kem_vectors_are_consistent_with_fips_203_decapsulation(v: dict[str, Any]) -> None:
    sk = reference.mlkem_private(v["recipient_type"], v["recipient_key"])
    assert sk.decapsulate(v["kem_ciphertext"]) == v["kem_shared_secret"]


@pytest.mark.parametrize(
    "v", _of("record-v1") + _of("stream-v1"), ids=_ids(_of("record-v1") + _of("stream-v1"))
)
def test_ekm_opens_the_stored_ciphertext(v: dict[str, Any]) -> None:
    assert _ekm_open(v, v["expected"]) == v["plaintext"]


@pytest.mark.parametrize(
    "v", _of("record-v1") + _of("stream-v1"), ids=_ids(_of("record-v1") + _of("stream-v1"))
)
def test_ekm_refuses_every_single_byte_change(v: dict[str, Any]) -> None:
    blob = v["expected"]
    step = max(1, len(blob) // 400)  # the KEM headers are long; every byte of the rest
    for i in range(0, len(blob), step):
        for flip in (0x01, 0x80):
            bad = bytearray(blob)
            bad[i] ^= flip
            with pytest.raises(EkmError):
                _ekm_open(v, bytes(bad))
    with pytest.raises(IntegrityError):
        _ekm_open(v, blob[:-1])


@pytest.mark.parametrize("v", _of("record-v1"), ids=_ids(_of("record-v1")))
def test_ekm_record_output_opens_with_the_reference(v: dict[str, Any]) -> None:
    wrapper = AeadWrapper(v["key_name"], v["key_version"], v["key_type"], v["key"])
    blob = envelope.encrypt(wrapper, v["plaintext"], v["aad"])
    assert reference.record_decode(v, blob) == v["plaintext"]
    assert blob != v["expected"]  # fresh data key and nonces, not a replay of the vector
    with pytest.raises(reference.NotAuthentic):
        reference.record_decode({**v, "aad": v["aad"] + b"!"}, blob)


@pytest.mark.parametrize("v", _of("stream-v1"), ids=_ids(_of("stream-v1")))
def test_ekm_stream_output_opens_with_the_reference(v: dict[str, Any]) -> None:
    if "recipient_type" in v:
        sk = _ekm_private_material(v)
        if v["recipient_type"] == "x25519":
            pk = x25519.X25519PrivateKey.from_private_bytes(v["recipient_key"]).public_key()
        else:
            pk = reference.mlkem_private(v["recipient_type"], sk).public_key()
        slot: Any = RecipientSlot([(v["recipient_type"], pk.public_bytes_raw(), v["recipient_id"])])
    else:
        slot = AeadWrapper(v["key_name"], v["key_version"], v["key_type"], v["key"])
    out = io.BytesIO()
    stream.encrypt_stream(
        io.BytesIO(v["plaintext"]), out, slot, v["aad"], segment_size=v["segment_size"]
    )
    assert reference.stream_decode(v, out.getvalue()) == v["plaintext"]
    assert len(out.getvalue()) == len(v["expected"])  # same layout, other random inputs


@pytest.mark.parametrize("v", _of("signature-v1"), ids=_ids(_of("signature-v1")))
def test_signature_vectors_both_ways(v: dict[str, Any]) -> None:
    sk = ed25519.Ed25519PrivateKey.from_private_bytes(v["key"])
    der = sk.private_bytes(ser.Encoding.DER, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    made = signatures.sign(
        KeyType.ED25519, der, v["plaintext"], key_name=v["key_name"], version=v["key_version"]
    )
    assert made == v["expected"]  # Ed25519 is deterministic: byte-identical
    pub = sk.public_key().public_bytes_raw()
    info = signatures.verify(v["expected"], v["plaintext"], lambda n, ver: (KeyType.ED25519, pub))
    assert (info.key_name, info.version) == (v["key_name"], v["key_version"])
    with pytest.raises(IntegrityError):
        signatures.verify(
            v["expected"], v["plaintext"] + b"x", lambda n, ver: (KeyType.ED25519, pub)
        )


def test_vector_files_are_what_the_generator_writes(tmp_path: Path) -> None:
    """Editing a JSON file by hand (or the generator without regenerating) is caught."""
    previous = {v["name"]: v for v in VECTORS}
    fresh = {v["name"]: generate.to_json(v) for v in generate._vectors(previous)}
    stored = {}
    for path in HERE.glob("*.json"):
        for d in json.loads(path.read_text())["vectors"]:
            stored[d["name"]] = d
    assert stored == fresh
