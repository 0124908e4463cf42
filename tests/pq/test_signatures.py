"""Detached signatures: every signing type, composite halves, mutation, openssl interop."""

from __future__ import annotations

import hashlib
import io
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ekm.crypto import material, signatures
from ekm.errors import IntegrityError, InvalidError, NotFoundError
from tests.pq.conftest import key_material

TYPES = [
    "ed25519",
    "ec-p256",
    "ec-p384",
    "rsa-2048",
    "ml-dsa-44",
    "ml-dsa-65",
    "ml-dsa-87",
    "ed25519-ml-dsa-65",
]
FAILED = "signature verification failed: the signature does not match the data or the key"
DATA = b"release-1.2.3.tar.gz contents"


def _resolver(key_type: str, public: Any = None):
    pub = public if public is not None else material.public_key(key_type, key_material(key_type))

    def resolve(name: str, version: int) -> tuple[str, Any]:
        if (name, version) != ("release", 7):
            raise NotFoundError(f"no key {name!r} version {version}")
        return key_type, pub

    return resolve


_DOCS: dict[str, bytes] = {}


def _sign(key_type: str, data: bytes = DATA) -> bytes:
    return signatures.sign(key_type, key_material(key_type), data, key_name="release", version=7)


@pytest.mark.parametrize("key_type", TYPES)
def test_round_trip(key_type: str) -> None:
    doc = _sign(key_type)
    info = signatures.verify(doc, DATA, _resolver(key_type))
    assert (info.key_name, info.version, info.key_type.value) == ("release", 7, key_type)
    h = signatures.parse(doc)
    assert (h.key_name, h.version, h.algorithm) == ("release", 7, info.algorithm)


@pytest.mark.parametrize("key_type", TYPES)
def test_other_data_fails(key_type: str) -> None:
    with pytest.raises(IntegrityError, match=FAILED):
        signatures.verify(_sign(key_type), DATA + b"!", _resolver(key_type))


@pytest.mark.parametrize("key_type", TYPES)
def test_other_key_of_same_type_fails(key_type: str) -> None:
    other = material.public_key(key_type, material.generate(key_type))
    with pytest.raises(IntegrityError, match=FAILED):
        signatures.verify(_sign(key_type), DATA, _resolver(key_type, other))


def test_public_key_as_bytes_is_accepted() -> None:
    from cryptography.hazmat.primitives import serialization as ser

    for key_type in ("ed25519", "ml-dsa-65", "ed25519-ml-dsa-65"):
        raw = material.public_key(key_type, key_material(key_type)).public_bytes_raw()
        signatures.verify(_sign(key_type), DATA, _resolver(key_type, raw))
    pem = material.public_key("ec-p256", key_material("ec-p256")).public_bytes(
        ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo
    )
    signatures.verify(_sign("ec-p256"), DATA, _resolver("ec-p256", pem))


def test_streaming_prehash_equals_one_shot() -> None:
    blob = bytes(range(256)) * 9000  # > 2 chunks of 1 MiB
    digest = signatures.prehash(io.BytesIO(blob))
    assert digest == hashlib.sha512(blob).digest()
    doc = signatures.sign_digest(
        "ed25519", key_material("ed25519"), digest, key_name="release", version=7
    )
    signatures.verify(doc, blob, _resolver("ed25519"))
    signatures.verify_digest(_sign("ed25519", blob), digest, _resolver("ed25519"))


def _composite_halves(doc: bytes) -> tuple[bytes, bytes, bytes]:
    h = signatures.parse(doc)
    return doc[: len(doc) - len(h.signature)], h.signature[:3309], h.signature[3309:]


def test_composite_with_only_ed25519_half_valid_fails() -> None:
    prefix, _m, e = _composite_halves(_sign("ed25519-ml-dsa-65"))
    _p2, m_other, _e2 = _composite_halves(_sign("ed25519-ml-dsa-65", b"other data"))
    with pytest.raises(IntegrityError, match=FAILED):
        signatures.verify(prefix + m_other + e, DATA, _resolver("ed25519-ml-dsa-65"))


def test_composite_with_only_mldsa_half_valid_fails() -> None:
    prefix, m, _e = _composite_halves(_sign("ed25519-ml-dsa-65"))
    _p2, _m2, e_other = _composite_halves(_sign("ed25519-ml-dsa-65", b"other data"))
    with pytest.raises(IntegrityError, match=FAILED):
        signatures.verify(prefix + m + e_other, DATA, _resolver("ed25519-ml-dsa-65"))


def test_composite_halves_verify_as_the_draft_specifies() -> None:
    # Rebuild M' independently and check each half with the component keys directly.
    key = material.private_key("ed25519-ml-dsa-65", key_material("ed25519-ml-dsa-65"))
    doc = _sign("ed25519-ml-dsa-65")
    h = signatures.parse(doc)
    m_prime = (
        b"CompositeAlgorithmSignatures2025"
        + b"COMPSIG-MLDSA65-Ed25519-SHA512"
        + bytes([len(h.header)])
        + h.header
        + hashlib.sha512(DATA).digest()
    )
    pub = key.public_key()
    pub.mldsa.verify(h.signature[:3309], m_prime, b"COMPSIG-MLDSA65-Ed25519-SHA512")
    pub.ed25519.verify(h.signature[3309:], m_prime)


def test_relabelled_key_name_or_version_fails() -> None:
    doc = _sign("ed25519")
    renamed = doc.replace(b"release", b"releasf", 1)

    def any_key(name: str, version: int) -> tuple[str, Any]:
        return "ed25519", material.public_key("ed25519", key_material("ed25519"))

    with pytest.raises(IntegrityError, match=FAILED):
        signatures.verify(renamed, DATA, any_key)


def test_resolved_type_must_match_algorithm() -> None:
    doc = _sign("ml-dsa-65")
    with pytest.raises(IntegrityError, match=FAILED):
        signatures.verify(doc, DATA, _resolver("ml-dsa-44"))
    with pytest.raises(IntegrityError, match=FAILED):
        signatures.verify(doc, DATA, _resolver("ed25519"))


def test_rsa_size_must_match_type() -> None:
    doc = _sign("rsa-2048")
    pub = material.public_key("rsa-2048", key_material("rsa-2048"))
    with pytest.raises(IntegrityError, match=FAILED):
        signatures.verify(doc, DATA, _resolver("rsa-3072", pub))


def test_unknown_key_passes_through_as_not_found() -> None:
    doc = signatures.sign("ed25519", key_material("ed25519"), DATA, key_name="nope", version=1)
    with pytest.raises(NotFoundError, match="no key 'nope' version 1"):
        signatures.verify(doc, DATA, _resolver("ed25519"))


@pytest.mark.parametrize("key_type", TYPES)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_byte_mutation_rejected(key_type: str, data: st.DataObject) -> None:
    # One document per type (ECDSA's DER length varies per signature; hypothesis needs a
    # stable search space).
    doc = _DOCS.setdefault(key_type, _sign(key_type))
    i = data.draw(st.integers(0, len(doc) - 1), label="index")
    flip = data.draw(st.integers(1, 255), label="xor")
    bad = doc[:i] + bytes([doc[i] ^ flip]) + doc[i + 1 :]

    def resolve(name: str, version: int) -> tuple[str, Any]:
        return key_type, material.public_key(key_type, key_material(key_type))

    with pytest.raises(IntegrityError, match=FAILED):
        signatures.verify(bad, DATA, resolve)


@pytest.mark.parametrize("cut", [0, 3, 7, 20, -1])
def test_truncated_document_fails(cut: int) -> None:
    doc = _sign("ml-dsa-44")
    with pytest.raises(IntegrityError, match=FAILED):
        signatures.verify(doc[:cut], DATA, _resolver("ml-dsa-44"))


def test_parse_rejects_garbage_with_invalid_error() -> None:
    with pytest.raises(InvalidError, match="not an ekm detached signature"):
        signatures.parse(b"-----BEGIN PGP SIGNATURE-----")
    with pytest.raises(InvalidError, match="not an ekm detached signature"):
        signatures.parse(b"ekmS\x01\x01" + bytes(20000))


@pytest.mark.parametrize("key_type", ["hmac-sha256", "aes-256-gcm", "ml-kem-768", "x25519"])
def test_non_signing_types_refused(key_type: str) -> None:
    with pytest.raises(InvalidError, match=f"{key_type} keys cannot make detached signatures"):
        signatures.sign(key_type, b"", DATA, key_name="k", version=1)


@pytest.mark.parametrize(("name", "version"), [("", 1), ("n" * 201, 1), ("k", 0), ("k", 2**32)])
def test_bad_name_or_version_refused(name: str, version: int) -> None:
    with pytest.raises(InvalidError, match=r"key name must be|out of range"):
        signatures.sign("ed25519", key_material("ed25519"), DATA, key_name=name, version=version)


def test_bad_digest_length_refused() -> None:
    with pytest.raises(InvalidError, match="SHA-512 prehash is 64 bytes, got 32"):
        signatures.sign_digest(
            "ed25519", key_material("ed25519"), bytes(32), key_name="k", version=1
        )


# --- interop: openssl verifies the classic signatures over the documented representative ---

_OPENSSL_ARGS = {
    "ed25519": ["pkeyutl", "-verify", "-rawin"],
    "ec-p256": ["dgst", "-sha256"],
    "ec-p384": ["dgst", "-sha384"],
    "rsa-2048": [
        "dgst",
        "-sha256",
        "-sigopt",
        "rsa_padding_mode:pss",
        "-sigopt",
        "rsa_pss_saltlen:32",
    ],
}


@pytest.mark.parametrize("key_type", list(_OPENSSL_ARGS))
def test_openssl_verifies_classic_signature(key_type: str, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization as ser

    doc = _sign(key_type)
    h = signatures.parse(doc)
    rep = b"ekm-detached-signature-v1\x00" + bytes([len(h.header)]) + h.header
    rep += hashlib.sha512(DATA).digest()
    pub = material.public_key(key_type, key_material(key_type))
    (tmp_path / "pub.pem").write_bytes(
        pub.public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "rep").write_bytes(rep)
    (tmp_path / "sig").write_bytes(h.signature)
    args = _OPENSSL_ARGS[key_type]
    if args[0] == "pkeyutl":
        cmd = ["openssl", *args, "-pubin", "-inkey", "pub.pem", "-in", "rep", "-sigfile", "sig"]
    else:
        cmd = ["openssl", *args, "-verify", "pub.pem", "-signature", "sig", "rep"]
    ok = subprocess.run(cmd, cwd=tmp_path, capture_output=True, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (tmp_path / "rep").write_bytes(rep[:-1] + bytes([rep[-1] ^ 1]))
    bad = subprocess.run(cmd, cwd=tmp_path, capture_output=True, check=False)
    assert bad.returncode != 0
