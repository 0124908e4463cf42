"""Key export: real openssl reads our PEM/DER, PyJWT's PyJWK reads our JWKs, RFC shapes."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess

import jwt
import pytest

from ekm.crypto.export import export_key, jwks
from ekm.errors import InvalidError

PAIRS = ["rsa-2048", "ec-p256", "ec-p384", "ed25519", "x25519"]
OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl binary not installed")


def _openssl(*args: str, data: bytes) -> bytes:
    proc = subprocess.run([OPENSSL, *args], input=data, capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


@needs_openssl
@pytest.mark.parametrize("key_type", PAIRS)
def test_openssl_reads_public_and_private(materials, key_type):
    m = materials[key_type]
    pub_pem = export_key(key_type, m, fmt="pem", public=True)
    pub_der = export_key(key_type, m, fmt="der", public=True)
    assert pub_pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    # openssl parses each encoding and re-derives the same SPKI from the private key
    from_pem = _openssl("pkey", "-pubin", "-outform", "DER", data=pub_pem)
    from_der = _openssl("pkey", "-pubin", "-inform", "DER", "-outform", "DER", data=pub_der)
    priv_pem = export_key(key_type, m, fmt="pem", public=False)
    assert priv_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    from_priv = _openssl("pkey", "-pubout", "-outform", "DER", data=priv_pem)
    priv_der = export_key(key_type, m, fmt="der", public=False)
    from_priv_der = _openssl("pkey", "-inform", "DER", "-pubout", "-outform", "DER", data=priv_der)
    assert from_pem == from_der == from_priv == from_priv_der == pub_der
    assert priv_der == m  # PKCS#8 DER is the stored encoding


@needs_openssl
def test_openssl_signature_verifies_with_exported_key(materials, tmp_path):
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    key = load_der_private_key(materials["ed25519"], None)
    msg = tmp_path / "msg"
    msg.write_bytes(b"hello")
    (tmp_path / "sig").write_bytes(key.sign(b"hello"))
    (tmp_path / "pub.pem").write_bytes(
        export_key("ed25519", materials["ed25519"], fmt="pem", public=True)
    )
    out = _openssl(
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        str(tmp_path / "pub.pem"),
        "-rawin",
        "-in",
        str(msg),
        "-sigfile",
        str(tmp_path / "sig"),
        data=b"",
    )
    assert b"Signature Verified Successfully" in out


@pytest.mark.parametrize(
    ("key_type", "alg", "kty"),
    [
        ("rsa-2048", "PS256", "RSA"),
        ("ec-p256", "ES256", "EC"),
        ("ec-p384", "ES384", "EC"),
        ("ed25519", "EdDSA", "OKP"),
    ],
)
def test_pyjwk_loads_public_and_private_jwk_and_they_interoperate(materials, key_type, alg, kty):
    m = materials[key_type]
    pub = json.loads(export_key(key_type, m, fmt="jwk", public=True, kid="k:v1"))
    priv = json.loads(export_key(key_type, m, fmt="jwk", public=False, kid="k:v1"))
    assert pub["kty"] == kty and pub["alg"] == alg and pub["use"] == "sig" and pub["kid"] == "k:v1"
    assert "d" not in pub and "d" in priv
    # sign with the private JWK, verify with the public JWK: both parsed by PyJWT
    token = jwt.encode({"x": 1}, jwt.PyJWK(priv).key, algorithm=alg)
    assert jwt.decode(token, jwt.PyJWK(pub).key, algorithms=[alg]) == {"x": 1}


def test_ec_coordinates_are_fixed_length(materials):
    for key_type, size in (("ec-p256", 32), ("ec-p384", 48)):
        jwk = json.loads(export_key(key_type, materials[key_type], fmt="jwk", public=False))
        for field in ("x", "y", "d"):
            assert len(base64.urlsafe_b64decode(jwk[field] + "==")) == size


def test_x25519_jwk_rfc8037(materials):
    jwk = json.loads(export_key("x25519", materials["x25519"], fmt="jwk", public=True))
    assert jwk == {"kty": "OKP", "crv": "X25519", "x": jwk["x"], "alg": "ECDH-ES", "use": "enc"}
    raw = export_key("x25519", materials["x25519"], fmt="raw", public=True)
    assert base64.urlsafe_b64decode(jwk["x"] + "=") == raw and len(raw) == 32


@pytest.mark.parametrize(
    ("key_type", "alg", "use"),
    [
        ("hmac-sha256", "HS256", "sig"),
        ("hmac-sha512", "HS512", "sig"),
        ("aes-256-gcm", "A256GCM", "enc"),
        ("aes-128-gcm", "A128GCM", "enc"),
    ],
)
def test_symmetric_exports(materials, key_type, alg, use):
    m = materials[key_type]
    assert export_key(key_type, m, fmt="raw", public=False) == m
    assert base64.b64decode(export_key(key_type, m, fmt="base64", public=False)) == m
    jwk = json.loads(export_key(key_type, m, fmt="jwk", public=False, kid="s:v2"))
    assert jwk["kty"] == "oct" and jwk["alg"] == alg and jwk["use"] == use
    # PyJWT is a JWS library: it loads A*GCM (JWE) oct keys only with an explicit algorithm
    loaded = jwt.PyJWK(jwk) if use == "sig" else jwt.PyJWK(jwk, algorithm="HS256")
    assert loaded.key == m and loaded.key_id == "s:v2"


def test_hmac_oct_jwk_signs_like_raw_key(materials):
    m = materials["hmac-sha256"]
    jwk = jwt.PyJWK(json.loads(export_key("hmac-sha256", m, fmt="jwk", public=False)))
    token = jwt.encode({"a": 1}, jwk.key, algorithm="HS256")
    assert jwt.decode(token, m, algorithms=["HS256"]) == {"a": 1}


def test_jwks_document(materials):
    entries = [
        ("rsa:v1", "rsa-2048", materials["rsa-2048"]),
        ("ed:v4", "ed25519", materials["ed25519"]),
    ]
    doc = jwks(entries)
    assert [k["kid"] for k in doc["keys"]] == ["rsa:v1", "ed:v4"]
    assert all("d" not in k for k in doc["keys"])
    keyset = jwt.PyJWKSet.from_dict(doc)
    assert keyset["ed:v4"].key_id == "ed:v4"
    single = json.loads(export_key("ed25519", materials["ed25519"], fmt="jwks", public=True))
    assert single["keys"][0]["crv"] == "Ed25519"


@pytest.mark.parametrize(
    ("key_type", "fmt", "public", "message"),
    [
        ("aes-256-gcm", "raw", True, "symmetric and has no public part"),
        ("hmac-sha256", "pem", False, "exports as raw, base64 or jwk"),
        ("rsa-2048", "raw", True, "has no raw form"),
        ("ec-p256", "base64", True, "not base64"),
        ("rsa-2048", "xml", True, "unknown export format 'xml'"),
        ("des", "pem", True, "unknown key type 'des'"),
    ],
)
def test_export_errors(materials, key_type, fmt, public, message):
    m = materials.get(key_type, b"\x00" * 32)
    with pytest.raises(InvalidError, match=message) as exc:
        export_key(key_type, m, fmt=fmt, public=public)
    assert exc.value.exit_code == 3
    assert m.hex()[:16] not in str(exc.value)


def test_jwks_refuses_symmetric(materials):
    with pytest.raises(InvalidError, match=r"symmetric .* cannot go in a published JWKS"):
        jwks([("h:v1", "hmac-sha256", materials["hmac-sha256"])])


def test_pq_types_delegate_to_pq_module(materials):
    pq = pytest.importorskip("ekm.crypto.pq")
    from ekm.crypto import material

    m = material.generate("ml-dsa-65")
    assert export_key("ml-dsa-65", m, fmt="pem", public=True) == pq.export_public(
        "ml-dsa-65", m, "pem"
    )
