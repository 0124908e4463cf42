"""HsmAeadWrapper and HsmSigner in-process on the session's shared SoftHSM2 token (the objects
``ekm encrypt``/``ekm sign`` use for pkcs11 keys), and export_public_der on hostile input."""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from datetime import UTC, datetime

import pytest

from ekm.backends.hsm_handle import HsmAeadWrapper, HsmSigner, signer_for, wrapper_for
from ekm.crypto.keytypes import KeyState, KeyType, KeyUsage
from ekm.crypto.wrapping import NOT_AUTHENTIC, AeadWrapper, KeyWrapper
from ekm.errors import IntegrityError, InvalidError, NotFoundError, StateError
from ekm.model import Key, KeyVersion, RotationPolicy
from tests import softhsm

NOW = datetime(2026, 1, 1, tzinfo=UTC)
_n = itertools.count(1)


@pytest.fixture(scope="module")
def token():
    from ekm.backends.pkcs11_token import HsmSettings, Token

    shared = softhsm.shared_token()
    settings = HsmSettings.from_mapping(
        shared.hsm_table(), env={"EKM_TEST_HSM_PIN": shared.pin}, source="test.toml"
    )
    return Token.open(settings)


def _label(kind: str) -> str:
    return f"handle/{kind}/{next(_n)}-{os.getpid()}"


def _key(name: str, key_type: KeyType, labels: list[str], states: list[KeyState]) -> Key:
    versions = [
        KeyVersion(i + 1, state, NOW, activated=NOW, backend_ref=label)
        for i, (label, state) in enumerate(zip(labels, states, strict=True))
    ]
    usage = KeyUsage.ENCRYPTION if key_type is KeyType.AES_256_GCM else KeyUsage.SIGNING
    policy = RotationPolicy(
        interval=None, notify_before=NOW - NOW, backup=False, keep_versions=None
    )
    return Key(name=name, type=key_type, usage=usage, backend="pkcs11", policy=policy, labels={},
               versions=versions, created=NOW, rotated=None)  # fmt: skip


def test_wrapper_is_a_key_wrapper_and_round_trips(token) -> None:
    label = _label("aes")
    token.generate(label, KeyType.AES_256_GCM)
    w = HsmAeadWrapper(token, label, "billing", 3)
    assert isinstance(w, KeyWrapper)
    blob = w.wrap(b"data key", b"aad")
    assert len(blob) == 12 + 8 + 16 and w.wrap_count == 1
    assert w.unwrap(blob, b"aad") == b"data key"
    assert w.wrap(b"", b"") != w.wrap(b"", b"")  # random IVs
    assert repr(w) == f"HsmAeadWrapper('billing', v3, label={label!r})"


@pytest.mark.parametrize("tamper", ["tag", "iv", "aad", "short", "empty", "other-key"])
def test_unwrap_failures_are_one_message(token, tamper: str) -> None:
    label = _label("aes")
    token.generate(label, KeyType.AES_256_GCM)
    w = HsmAeadWrapper(token, label, "k", 1)
    blob, aad = w.wrap(b"secret", b"ctx"), b"ctx"
    if tamper == "tag":
        blob = blob[:-1] + bytes([blob[-1] ^ 1])
    elif tamper == "iv":
        blob = bytes([blob[0] ^ 1]) + blob[1:]
    elif tamper == "aad":
        aad = b"other"
    elif tamper == "short":
        blob = blob[:27]
    elif tamper == "empty":
        blob = b""
    else:
        other = _label("aes")
        token.generate(other, KeyType.AES_256_GCM)
        w = HsmAeadWrapper(token, other, "k", 1)
    with pytest.raises(IntegrityError) as info:
        w.unwrap(blob, aad)
    assert info.value.message == NOT_AUTHENTIC and info.value.exit_code == 4


def test_wrapper_blob_layout_matches_the_file_wrapper(token) -> None:
    """Same layout and same refusal message as AeadWrapper: callers never branch on backend."""
    file_w = AeadWrapper("k", 1, KeyType.AES_256_GCM, bytes(32))
    with pytest.raises(IntegrityError) as a:
        file_w.unwrap(b"\0" * 40, b"")
    label = _label("aes")
    token.generate(label, KeyType.AES_256_GCM)
    with pytest.raises(IntegrityError) as b:
        HsmAeadWrapper(token, label, "k", 1).unwrap(b"\0" * 40, b"")
    assert a.value.message == b.value.message


def test_wrapper_enforces_the_random_iv_limit(token) -> None:
    label = _label("aes")
    token.generate(label, KeyType.AES_256_GCM)
    w = HsmAeadWrapper(token, label, "billing", 2, wrap_count=4, max_wraps=5)
    w.wrap(b"x", b"")
    with pytest.raises(StateError, match=r"^key billing v2 has performed 5 wraps, its limit of 5; "
                                         r"rotate it \(ekm rotate billing --force\)$"):  # fmt: skip
        w.wrap(b"x", b"")


def test_wrapper_on_a_missing_object(token) -> None:
    w = HsmAeadWrapper(token, _label("gone"), "k", 1)
    with pytest.raises(NotFoundError, match="no key labelled 'handle/gone/"):
        w.wrap(b"x", b"")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("lbl", "", 1), "needs a non-empty key name"),
        (("lbl", "k", 0), "key version must be a positive integer, not 0"),
        (("lbl", "k", True), "key version must be a positive integer, not True"),
        (("", "k", 1), "key k v1 has no HSM label"),
    ],
)
def test_wrapper_arguments(token, args, message: str) -> None:
    with pytest.raises(InvalidError, match=message):
        HsmAeadWrapper(token, *args)


@pytest.mark.parametrize(
    "key_type", [KeyType.EC_P256, KeyType.EC_P384, KeyType.ED25519, KeyType.RSA_3072]
)
def test_signer_signs_in_the_token_and_verifies_locally(token, key_type: KeyType) -> None:
    label = _label(key_type.value)
    token.generate(label, key_type)
    s = HsmSigner(token, label, key_type, key_name="jwt", version=1)
    sig = s.sign(b"payload")
    s.verify(b"payload", sig)
    with pytest.raises(IntegrityError, match=r"^signature verification failed"):
        s.verify(b"payload!", sig)
    with pytest.raises(IntegrityError, match=r"^signature verification failed"):
        s.verify(b"payload", b"\x00" * len(sig))
    assert s.public_key_der() == token.public_key_der(label, key_type)
    from ekm.crypto import signatures

    doc = s.sign_document(hashlib.sha512(b"file").digest())
    info = signatures.verify(doc, b"file", lambda n, v: (key_type, s.public_key_der()))
    assert (info.key_name, info.version, info.key_type) == ("jwt", 1, key_type)
    with pytest.raises(IntegrityError):
        signatures.verify(doc, b"other file", lambda n, v: (key_type, s.public_key_der()))


@pytest.mark.parametrize(("key_type", "alg"), [(KeyType.EC_P256, "ES256"),
                                               (KeyType.ED25519, "EdDSA")])  # fmt: skip
def test_signer_jws_verifies_with_pyjwt(token, key_type: KeyType, alg: str) -> None:
    import base64
    import json

    import jwt

    label = _label(key_type.value)
    token.generate(label, key_type)
    s = HsmSigner(token, label, key_type)
    assert s.jose_alg == alg

    def b64(b: bytes) -> bytes:
        return base64.urlsafe_b64encode(b).rstrip(b"=")

    header = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": "jwt:v1"}).encode())
    payload = b64(json.dumps({"sub": "42"}).encode())
    signing_input = header + b"." + payload
    token_str = (signing_input + b"." + b64(s.sign_jws(signing_input))).decode()
    pem = _pem(s)
    assert jwt.decode(token_str, pem, algorithms=[alg]) == {"sub": "42"}


def _pem(s: HsmSigner) -> bytes:
    from cryptography.hazmat.primitives import serialization as ser

    return s.public_key().public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)


def test_signer_refuses_types_and_a_document_without_identity(token) -> None:
    with pytest.raises(InvalidError, match=r"^aes-256-gcm keys cannot sign in an HSM"):
        HsmSigner(token, "x", KeyType.AES_256_GCM)
    with pytest.raises(InvalidError, match=r"^ml-dsa-65 keys cannot sign in an HSM"):
        HsmSigner(token, "x", "ml-dsa-65")
    with pytest.raises(InvalidError, match=r"^unknown key type 'rsa-1024'"):
        HsmSigner(token, "x", "rsa-1024")
    with pytest.raises(InvalidError, match="needs the key version's token label"):
        HsmSigner(token, "", KeyType.ED25519)
    s = HsmSigner(token, "x", KeyType.ED25519)
    with pytest.raises(InvalidError, match="needs the signer's key name and version"):
        s.sign_document(bytes(64))


def test_from_metadata_checks_backend_state_and_type(token) -> None:
    l1, l2 = _label("aes"), _label("aes")
    token.generate(l1, KeyType.AES_256_GCM)
    token.generate(l2, KeyType.AES_256_GCM)
    key = _key("billing", KeyType.AES_256_GCM, [l1, l2], [KeyState.ACTIVE, KeyState.PRIMARY])
    w = wrapper_for(token, key, for_wrap=True)
    assert (w.version, w.label) == (2, l2)
    old = wrapper_for(token, key, 1)  # an active version still unwraps
    blob = HsmAeadWrapper(token, l1, "billing", 1).wrap(b"k", b"")
    assert old.unwrap(blob, b"") == b"k"
    with pytest.raises(StateError, match="version 1 is active: only the primary version"):
        wrapper_for(token, key, 1, for_wrap=True)
    key.versions[0].state = KeyState.DESTROYED
    with pytest.raises(NotFoundError, match="'billing' version 1 is destroyed; it cannot be used"):
        wrapper_for(token, key, 1)
    with pytest.raises(NotFoundError, match="has no version 9"):
        wrapper_for(token, key, 9)
    key.versions[1].backend_ref = None
    with pytest.raises(InvalidError, match="version 2 has no HSM label in its metadata"):
        wrapper_for(token, key)
    key.backend = "file"
    with pytest.raises(InvalidError, match=r"^key 'billing' is on the file backend, not pkcs11"):
        wrapper_for(token, key)


def test_signer_for_and_type_mismatch(token) -> None:
    label = _label("ec")
    token.generate(label, KeyType.EC_P256)
    key = _key("jwt", KeyType.EC_P256, [label], [KeyState.PRIMARY])
    s = signer_for(token, key)
    assert (s.key_name, s.version, s.key_type) == ("jwt", 1, KeyType.EC_P256)
    with pytest.raises(InvalidError, match=r"^key 'jwt' is ec-p256; only aes-256-gcm HSM keys"):
        wrapper_for(token, key)
    # Metadata that lies about the type is caught by the token layer, not signed with.
    liar = _key("jwt", KeyType.EC_P384, [label], [KeyState.PRIMARY])
    with pytest.raises(InvalidError, match="has type ec-p256, not ec-p384"):
        signer_for(token, liar).sign(b"x")


# -- export_public_der: the HSM's public half, re-encoded (hostile DER refused) --------------


def _der(private) -> bytes:
    from cryptography.hazmat.primitives import serialization as ser

    return private.public_key().public_bytes(
        ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.ED25519])
def test_export_public_der_matches_file_export(key_type: KeyType) -> None:
    from ekm.crypto import export, material

    mat = material.generate(key_type)
    der = _der(material.private_key(key_type, mat))
    for fmt in ("pem", "der", "jwk", "jwks"):
        assert export.export_public_der(key_type, der, fmt=fmt, kid="k:v1") == export.export_key(
            key_type, mat, fmt=fmt, public=True, kid="k:v1"
        )
    if key_type is KeyType.ED25519:
        assert export.export_public_der(key_type, der, fmt="raw") == der[-32:]


@pytest.mark.parametrize(
    ("key_type", "der_of", "fmt", "message"),
    [
        (KeyType.EC_P256, "garbage", "pem", "is not DER SubjectPublicKeyInfo"),
        (KeyType.EC_P256, "ec-p384", "pem", "the public key given is not a ec-p256 key"),
        (KeyType.RSA_4096, "ec-p256", "pem", "the public key given is not a rsa-4096 key"),
        (KeyType.ED25519, "ec-p256", "jwk", "the public key given is not a ed25519 key"),
        (KeyType.EC_P256, "ec-p256", "raw", "a ec-p256 key has no raw form"),
        (KeyType.EC_P256, "ec-p256", "base64", "exports as pem, der, jwk or jwks, not base64"),
        (KeyType.EC_P256, "ec-p256", "xml", "unknown export format 'xml'"),
        (KeyType.AES_256_GCM, "ec-p256", "pem", "has no classic public key to export from DER"),
        (KeyType.ML_DSA_65, "ec-p256", "pem", "has no classic public key to export from DER"),
    ],
)
def test_export_public_der_refuses(key_type, der_of: str, fmt: str, message: str) -> None:
    from ekm.crypto import export, material

    if der_of == "garbage":
        der = b"\x30\x03\x02\x01\x00"
    else:
        t = KeyType(der_of)
        der = _der(material.private_key(t, material.generate(t)))
    with pytest.raises(InvalidError, match=re.escape(message)) as info:
        export.export_public_der(key_type, der, fmt=fmt)
    assert info.value.exit_code == 3
