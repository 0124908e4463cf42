"""The token layer on a real SoftHSM2 token: keys generated inside, used inside, checked outside."""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from ekm.backends.pkcs11_token import REQUIRED_MECHANISMS, Token, diagnose
from ekm.crypto.keytypes import KeyType
from ekm.errors import (
    BackendError,
    IntegrityError,
    InvalidError,
    KeyExistsError,
    NotFoundError,
)
from tests import softhsm

ASYMMETRIC = [KeyType.RSA_3072, KeyType.EC_P256, KeyType.EC_P384, KeyType.ED25519]


def verify(der: bytes, key_type: KeyType, sig: bytes, data: bytes) -> None:
    """Verify with pyca/cryptography: raises InvalidSignature when the token signed wrong."""
    pub = load_der_public_key(der)
    if isinstance(pub, rsa.RSAPublicKey):
        pub.verify(sig, data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        h = hashes.SHA256() if key_type is KeyType.EC_P256 else hashes.SHA384()
        pub.verify(sig, data, ec.ECDSA(h))
    else:
        assert isinstance(pub, ed25519.Ed25519PublicKey)
        pub.verify(sig, data)


# -- AES-GCM and the master key ----------------------------------------------------------------


def test_aead_round_trip_and_format(token: Token, label: str) -> None:
    token.generate(label, KeyType.AES_256_GCM)
    blob = token.aead_encrypt(label, b"v" * 100, b"db/users/email")
    assert len(blob) == 12 + 100 + 16
    assert token.aead_decrypt(label, blob, b"db/users/email") == b"v" * 100
    assert token.aead_encrypt(label, b"v" * 100, b"db/users/email")[:12] != blob[:12]


def test_aead_ciphertext_is_standard_aes_gcm(token: Token, label: str) -> None:
    """Empty AAD and empty plaintext work, and each tamper is refused as IntegrityError."""
    token.generate(label, KeyType.AES_256_GCM)
    blob = token.aead_encrypt(label, b"", b"")
    assert token.aead_decrypt(label, blob) == b""
    good = token.aead_encrypt(label, b"secret value", b"aad")
    for bad_blob, aad in [
        (good[:-1] + bytes([good[-1] ^ 1]), b"aad"),  # tag
        (bytes([good[0] ^ 1]) + good[1:], b"aad"),  # IV
        (good[:12] + bytes([good[12] ^ 1]) + good[13:], b"aad"),  # ciphertext
        (good, b"other aad"),
        (good, b""),
    ]:
        with pytest.raises(IntegrityError, match=r"^the ciphertext failed authentication") as info:
            token.aead_decrypt(label, bad_blob, aad)
        assert info.value.exit_code == 4
    assert token.aead_decrypt(label, good, b"aad") == b"secret value"


def test_truncated_ciphertext(token: Token, label: str) -> None:
    token.generate(label, KeyType.AES_256_GCM)
    with pytest.raises(IntegrityError, match=r"^the HSM ciphertext is truncated"):
        token.aead_decrypt(label, b"\x00" * 27)


def test_decrypt_with_another_key_fails_authentication(token: Token, label: str) -> None:
    token.generate(label + "a", KeyType.AES_256_GCM)
    token.generate(label + "b", KeyType.AES_256_GCM)
    blob = token.aead_encrypt(label + "a", b"x", b"")
    with pytest.raises(IntegrityError):
        token.aead_decrypt(label + "b", blob, b"")


def test_master_key_wraps_the_root_key(token: Token, label: str) -> None:
    assert token.generate_master_key(label) == label
    root = bytes(range(32))
    blob = token.wrap_with(label, root)
    assert len(blob) == 61 and blob[0] == 1 and root not in blob
    assert token.unwrap_with(label, blob) == root
    # The label is bound: a blob cannot be replayed as another master key's.
    other = label + "-2"
    token.generate_master_key(other)
    with pytest.raises(IntegrityError, match="failed authentication"):
        token.unwrap_with(other, blob)
    # The root key is exactly 32 bytes; anything else is refused before the token is used.
    for bad in (b"", root[:31], root + b"x"):
        with pytest.raises(InvalidError, match=r"^the root key to wrap must be 32 bytes"):
            token.wrap_with(label, bad)
    for bad in (blob[:-1], b"\x02" + blob[1:], b""):
        with pytest.raises(IntegrityError, match=r"^the wrapped root key is malformed"):
            token.unwrap_with(label, bad)


def test_aead_with_a_signing_key_is_not_found(token: Token, label: str) -> None:
    token.generate(label, KeyType.EC_P256)
    with pytest.raises(NotFoundError, match=f"^no key labelled '{re.escape(label)}'"):
        token.aead_encrypt(label, b"x", b"")


# -- asymmetric keys ---------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", ASYMMETRIC, ids=str)
def test_sign_in_token_verifies_with_cryptography(token: Token, label: str, key_type) -> None:
    token.generate(label, key_type)
    der = token.public_key_der(label, key_type)
    data = b"payload to sign"
    sig = token.sign(label, key_type, data)
    verify(der, key_type, sig, data)
    from cryptography.exceptions import InvalidSignature

    with pytest.raises(InvalidSignature):
        verify(der, key_type, sig, data + b"!")


def test_rsa_4096(token: Token, label: str) -> None:
    token.generate(label, KeyType.RSA_4096)
    der = token.public_key_der(label, KeyType.RSA_4096)
    pub = load_der_public_key(der)
    assert isinstance(pub, rsa.RSAPublicKey) and pub.key_size == 4096
    assert pub.public_numbers().e == 65537
    sig = token.sign(label, KeyType.RSA_4096, b"m")
    verify(der, KeyType.RSA_4096, sig, b"m")


@pytest.mark.parametrize(
    ("key_type", "openssl_says"),
    [
        (KeyType.EC_P384, "NIST CURVE: P-384"),
        (KeyType.ED25519, "ED25519 Public-Key"),
        (KeyType.RSA_3072, "Public-Key: (3072 bit)"),
    ],
    ids=str,
)
def test_public_key_loads_in_openssl(
    token: Token, label: str, tmp_path: Path, key_type, openssl_says: str
) -> None:
    token.generate(label, key_type)
    path = tmp_path / "pub.der"
    path.write_bytes(token.public_key_der(label, key_type))
    out = subprocess.run(
        ["openssl", "pkey", "-pubin", "-inform", "DER", "-in", str(path), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert openssl_says.lower() in out.lower()


def test_openssl_verifies_an_hsm_ecdsa_signature(token: Token, label: str, tmp_path: Path) -> None:
    token.generate(label, KeyType.EC_P256)
    (tmp_path / "pub.der").write_bytes(token.public_key_der(label, KeyType.EC_P256))
    (tmp_path / "data").write_bytes(b"release-1.2.3.tar.gz")
    (tmp_path / "sig").write_bytes(token.sign(label, KeyType.EC_P256, b"release-1.2.3.tar.gz"))
    proc = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", str(tmp_path / "pub.der"), "-keyform", "DER",
         "-signature", str(tmp_path / "sig"), str(tmp_path / "data")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0 and "Verified OK" in proc.stdout


# -- labels, existence, destroy ----------------------------------------------------------------


def test_labels_list_has_and_destroy(token: Token, label: str) -> None:
    token.generate(f"{label}/v1", KeyType.AES_256_GCM)
    token.generate(f"{label}/v2", KeyType.EC_P256)
    assert token.list_labels(label) == [f"{label}/v1", f"{label}/v2"]
    assert token.has_key(f"{label}/v2")
    blob = token.aead_encrypt(f"{label}/v1", b"x", b"")
    token.destroy(f"{label}/v1")
    token.destroy(f"{label}/v2")  # both halves of the pair go
    assert token.list_labels(label) == []
    assert not token.has_key(f"{label}/v2")
    with pytest.raises(NotFoundError, match=r"^no key labelled .* in HSM token 'ekm-shared'") as i:
        token.aead_decrypt(f"{label}/v1", blob, b"")
    assert i.value.exit_code == 3
    with pytest.raises(NotFoundError, match=r"to destroy$"):
        token.destroy(f"{label}/v1")
    with pytest.raises(NotFoundError):
        token.public_key_der(f"{label}/v2", KeyType.EC_P256)


def test_generate_refuses_an_existing_label(token: Token, label: str) -> None:
    token.generate(label, KeyType.AES_256_GCM)
    with pytest.raises(KeyExistsError, match=r"already holds a key labelled .*rotate") as info:
        token.generate(label, KeyType.EC_P256)
    assert info.value.exit_code == 3
    with pytest.raises(KeyExistsError):
        token.generate_master_key(label)
    assert token.list_labels(label) == [label]


def test_settings_key_label_convention(token: Token, hsm_settings) -> None:
    label = hsm_settings.key_label("convention_key", 1)
    assert label == "ekm/convention_key/v1"
    token.generate(label, KeyType.ED25519)
    assert label in token.list_labels("ekm/")


@pytest.mark.parametrize("bad", ["", "x" * 129, "tab\there"])
def test_bad_labels(token: Token, bad: str) -> None:
    with pytest.raises(InvalidError, match="must be 1-128 printable characters"):
        token.generate(bad, KeyType.AES_256_GCM)


# -- what the token lacks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_type", "mechanism"),
    [(KeyType.ML_DSA_65, "ML-DSA"), (KeyType.ML_KEM_768, "ML-KEM"),
     (KeyType.HYBRID_ED25519_ML_DSA_65, "ML-DSA")],
    ids=str,
)  # fmt: skip
def test_post_quantum_types_are_invalid_naming_the_backend(
    token: Token, label: str, key_type, mechanism: str
) -> None:
    with pytest.raises(InvalidError, match=f"^SoftHSM \\(token 'ekm-shared'\\) has no {mechanism}"):
        token.generate(label, key_type)
    assert not token.has_key(label)


@pytest.mark.parametrize("key_type", [KeyType.HMAC_SHA256, KeyType.RSA_2048, KeyType.X25519])
def test_other_types_are_invalid(token: Token, label: str, key_type) -> None:
    with pytest.raises(InvalidError, match=f"^{key_type} keys cannot be held in the HSM") as i:
        token.generate(label, key_type)
    assert i.value.exit_code == 3


def test_missing_classical_mechanism_is_a_backend_error(hsm_settings, label: str) -> None:
    """A token without CKM_EDDSA (as many HSMs): ed25519 is refused up front with exit 5."""
    real = Token.open(hsm_settings)
    lacking = Token(hsm_settings, real._lib, real._slot)
    lacking._mechanisms = real.mechanisms() - {"CKM_EDDSA"}
    with pytest.raises(BackendError, match="lacks CKM_EDDSA, needed for ed25519 keys") as info:
        lacking.generate(label, KeyType.ED25519)
    assert info.value.exit_code == 5
    assert KeyType.ED25519 not in lacking.supported_types()
    assert not real.has_key(label)


def test_mechanisms_cover_what_ekm_needs(token: Token) -> None:
    have = token.mechanisms()
    assert set(REQUIRED_MECHANISMS) <= have
    assert "CKM_AES_KEY_WRAP_PAD" in have
    assert not any("ML_DSA" in m for m in have)


# -- diagnostics -------------------------------------------------------------------------------


def test_diagnose_connected(hsm_settings, hsm_token) -> None:
    d = diagnose(hsm_settings)
    assert d.connected and d.error_message is None and d.logged_in
    assert d.module_path == hsm_token.module_path
    assert d.library["manufacturer"] == "SoftHSM"
    assert d.token["label"] == hsm_token.label
    assert d.token["model"] == "SoftHSM v2"
    assert d.token["firmware_version"].startswith("2.")
    assert re.fullmatch(r"[0-9a-f]{16}", d.token["serial"])
    assert "TOKEN_INITIALIZED" in d.token["flags"]
    assert isinstance(d.slot_id, int)
    assert all(d.mechanisms[m] for m in REQUIRED_MECHANISMS)
    assert d.missing_mechanisms == []
    assert "ed25519" in d.supported_types
    out = d.to_dict()
    assert out["pin_source"].startswith("environment variable EKM_TEST_HSM_PIN")
    assert hsm_token.pin not in repr(out)


# -- sessions ----------------------------------------------------------------------------------


def test_open_is_cached_per_process(hsm_settings, token: Token) -> None:
    assert Token.open(hsm_settings) is token


def test_concurrent_use_from_threads(token: Token, label: str) -> None:
    token.generate(label, KeyType.AES_256_GCM)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(50):
                data = f"{n}-{i}".encode()
                assert (
                    token.aead_decrypt(label, token.aead_encrypt(label, data, b"t"), b"t") == data
                )
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# -- seen from outside ekm ---------------------------------------------------------------------


def test_pkcs11_tool_sees_sensitive_never_extractable_objects(
    token: Token, hsm_token: softhsm.SoftHsmToken, label: str
) -> None:
    token.generate(label + "/aes", KeyType.AES_256_GCM)
    token.generate(label + "/ec", KeyType.EC_P256)
    token.generate_master_key(label + "/master")
    listing = softhsm.list_objects(hsm_token)
    blocks = re.split(r"\n(?=\S)", listing)

    def blocks_for(lbl: str) -> list[str]:
        return [b for b in blocks if re.search(rf"label:\s+{re.escape(lbl)}\s*$", b, re.M)]

    for lbl, kinds in [
        (label + "/aes", ["Secret Key Object"]),
        (label + "/master", ["Secret Key Object"]),
        (label + "/ec", ["Private Key Object", "Public Key Object"]),
    ]:
        found = blocks_for(lbl)
        assert sorted(b.splitlines()[0].split(";")[0] for b in found) == sorted(kinds), listing
        for b in found:
            if not b.startswith("Public"):
                assert "Access:     sensitive, always sensitive, never extractable, local" in b
    assert "ID:         " in blocks_for(label + "/ec")[0]
    ids = {re.search(r"ID:\s+(\S+)", b).group(1) for b in blocks_for(label + "/ec")}
    assert len(ids) == 1  # both halves of the pair share CKA_ID


def test_module_loaded_once_whatever_the_spelling(token: Token, hsm_token) -> None:
    """A symlink and its target are one module: a second initialisation would fail."""
    import os

    from ekm.backends.pkcs11_token import _load_library

    real = os.path.realpath(hsm_token.module_path)
    assert real != hsm_token.module_path  # Debian ships the module path as a symlink
    assert _load_library(real) is _load_library(hsm_token.module_path) is token._lib


@pytest.mark.parametrize(
    ("made", "asked", "expected"),
    [
        (KeyType.EC_P256, KeyType.RSA_3072, "has type ec-p256, not rsa-3072"),
        (KeyType.EC_P256, KeyType.EC_P384, "has type ec-p256, not ec-p384"),
        (KeyType.ED25519, KeyType.EC_P256, "has type ed25519, not ec-p256"),
        (KeyType.RSA_3072, KeyType.RSA_4096, "has type rsa-3072, not rsa-4096"),
    ],
    ids=str,
)
def test_a_key_used_as_another_type_is_refused(
    token: Token, label: str, made, asked, expected: str
) -> None:
    token.generate(label, made)
    for use in (lambda: token.sign(label, asked, b"x"), lambda: token.public_key_der(label, asked)):
        with pytest.raises(InvalidError, match=re.escape(expected)) as info:
            use()
        assert info.value.exit_code == 3
    assert token.public_key_der(label, made)  # the right type still works (nothing was cached)
