"""PQ/hybrid key material: FIPS 203/204 known answers, exports, loading and interop."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ekm.crypto import material, pq
from ekm.errors import IntegrityError, InvalidError
from tests.pq.conftest import key_material, openssl_reads
from tests.pq.vectors import MLDSA44_PUB_SPKI_B64, MLKEM1024_PUB_HEX, unhex

PURE = ["ml-kem-768", "ml-kem-1024", "ml-dsa-44", "ml-dsa-65", "ml-dsa-87"]
ALL = [*PURE, "x25519-ml-kem-768", "ed25519-ml-dsa-65"]
SEED_LEN = {
    "ml-kem-768": 64,
    "ml-kem-1024": 64,
    "ml-dsa-44": 32,
    "ml-dsa-65": 32,
    "ml-dsa-87": 32,
    "x25519-ml-kem-768": 32,
    "ed25519-ml-dsa-65": 64,
}


def _b64u_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_mldsa44_keygen_known_answer() -> None:
    spki = base64.b64decode("".join(MLDSA44_PUB_SPKI_B64.split()))
    assert pq.public_bytes("ml-dsa-44", bytes(range(32))) == spki[-1312:]


def test_mlkem1024_keygen_known_answer() -> None:
    assert pq.public_bytes("ml-kem-1024", bytes(range(64))) == unhex(MLKEM1024_PUB_HEX)


@pytest.mark.parametrize("key_type", ALL)
def test_material_is_a_seed_of_the_documented_length(key_type: str) -> None:
    m = material.generate(key_type)  # material.py delegates to pq.generate_seed
    assert len(m) == SEED_LEN[key_type]
    material.check_material(key_type, m)
    assert material.generate(key_type) != m


@pytest.mark.parametrize("key_type", ALL)
def test_wrong_length_material_is_integrity_error(key_type: str) -> None:
    with pytest.raises(IntegrityError, match=f"stored material for a {key_type} key has the wrong"):
        pq.private_key(key_type, bytes(SEED_LEN[key_type] - 1))


def test_composite_layout_is_mldsa_seed_then_ed25519() -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

    m = bytes(range(64))
    pub = pq.public_bytes("ed25519-ml-dsa-65", m)
    want_m = mldsa.MLDSA65PrivateKey.from_seed_bytes(m[:32]).public_key().public_bytes_raw()
    want_e = ed25519.Ed25519PrivateKey.from_private_bytes(m[32:]).public_key().public_bytes_raw()
    assert pub == want_m + want_e
    assert pq.private_key("ed25519-ml-dsa-65", m).private_bytes_raw() == m


@pytest.mark.parametrize("key_type", PURE)
def test_pem_and_der_load_in_cryptography(key_type: str) -> None:
    from cryptography.hazmat.primitives import serialization as ser

    m = key_material(key_type)
    raw = pq.export_public(key_type, m, "raw")
    for loaded in (
        ser.load_pem_public_key(pq.export_public(key_type, m, "pem")),
        ser.load_der_public_key(pq.export_public(key_type, m, "der")),
    ):
        assert loaded.public_bytes_raw() == raw  # type: ignore[union-attr]
    priv = ser.load_pem_private_key(pq.export_private(key_type, m, "pem"), password=None)
    assert priv.private_bytes_raw() == m  # type: ignore[union-attr]


@pytest.mark.parametrize("key_type", ALL)
def test_jwk_is_akp_with_pub_and_priv(key_type: str) -> None:
    m = key_material(key_type)
    pub = json.loads(pq.export_public(key_type, m, "jwk"))
    assert pub["kty"] == "AKP" and pub["alg"] == pq.JOSE_ALG[pq.KeyType(key_type)]
    assert _b64u_decode(pub["pub"]) == pq.export_public(key_type, m, "raw")
    assert "priv" not in pub
    priv = json.loads(pq.export_private(key_type, m, "jwk"))
    assert _b64u_decode(priv["priv"]) == m


def test_xwing_der_round_trips_through_draft_oid() -> None:
    m = key_material("x25519-ml-kem-768")
    der = pq.export_public("x25519-ml-kem-768", m, "der")
    assert bytes.fromhex("060b2b0601040183e62d81c87a") in der
    assert der.endswith(pq.export_public("x25519-ml-kem-768", m, "raw"))


@pytest.mark.parametrize("fmt", ["pem", "der"])
def test_composite_asn1_export_refused(fmt: str) -> None:
    m = key_material("ed25519-ml-dsa-65")
    with pytest.raises(
        InvalidError, match=r"no stable PEM/DER encoding.*--format raw or --format jwk$"
    ):
        pq.export_public("ed25519-ml-dsa-65", m, fmt)
    with pytest.raises(InvalidError, match="no stable PEM/DER encoding"):
        pq.export_private("ed25519-ml-dsa-65", m, fmt)


def test_unknown_format_refused() -> None:
    with pytest.raises(InvalidError, match="unknown key format 'ssh'; expected one of: pem, der"):
        pq.export_public("ml-dsa-65", key_material("ml-dsa-65"), "ssh")


def test_classic_type_refused() -> None:
    with pytest.raises(InvalidError, match="rsa-2048 is not a post-quantum or hybrid key type"):
        pq.generate_seed("rsa-2048")


@pytest.mark.parametrize("key_type", ALL)
def test_load_public_round_trip_and_bad_length(key_type: str) -> None:
    raw = pq.export_public(key_type, key_material(key_type), "raw")
    assert pq.load_public(key_type, raw).public_bytes_raw() == raw
    want = {
        "x25519-ml-kem-768": "an X-Wing public key is 1216 bytes, got 1215",
        "ed25519-ml-dsa-65": "an ed25519-ml-dsa-65 public key is 1984 bytes, got 1983",
    }.get(key_type, f"not a valid {key_type} public key")
    with pytest.raises(InvalidError, match=want):
        pq.load_public(key_type, raw[:-1])


def test_repr_never_shows_seed() -> None:
    m = bytes(range(64))
    assert m.hex() not in repr(pq.private_key("ed25519-ml-dsa-65", m))
    assert m[:32].hex() not in repr(pq.private_key("x25519-ml-kem-768", m[:32]))


@pytest.mark.parametrize("key_type", PURE)
def test_openssl_reads_exported_pem(
    key_type: str, openssl_pq_algorithms: str, tmp_path: Path
) -> None:
    name = key_type.replace("-", "").upper()  # OpenSSL 3.5 lists ML-KEM-768 / ML-DSA-65
    if (
        key_type.upper() not in openssl_pq_algorithms.upper()
        and name not in openssl_pq_algorithms.upper()
    ):
        pytest.skip(
            f"the installed openssl does not know {key_type.upper()} "
            "(ML-KEM/ML-DSA arrived in OpenSSL 3.5; this one is older)"
        )
    proc = openssl_reads(pq.export_public(key_type, key_material(key_type), "pem"), tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()


def test_openssl_reads_xwing_spki_structure(tmp_path: Path) -> None:
    # No openssl knows id-XWing, but asn1parse proves the SPKI is well-formed DER with the OID.
    import subprocess

    path = tmp_path / "xwing.der"
    path.write_bytes(
        pq.export_public("x25519-ml-kem-768", key_material("x25519-ml-kem-768"), "der")
    )
    out = subprocess.run(
        ["openssl", "asn1parse", "-inform", "DER", "-in", str(path)],
        capture_output=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr.decode()
    assert b"1.3.6.1.4.1.62253.25722" in out.stdout
    assert b"BIT STRING" in out.stdout
