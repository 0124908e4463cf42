"""Issue 6, through the ``ekm`` command on a real SoftHSM2 token: deploy with the master key in
the token, generate every HSM key type, rotate, export public keys, sign and encrypt, destroy,
and audit; each claim checked from outside ekm (pkcs11-tool, openssl, the audit log)."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from tests.hsm_integration.conftest import Hsm, api, ekm, objects

HSM_TYPES = ["aes-256-gcm", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384", "ed25519"]
ASYMMETRIC = [t for t in HSM_TYPES if t != "aes-256-gcm"]
PRIVATE_CLASS = {"aes-256-gcm": "Secret Key Object"}


def _name(key_type: str) -> str:
    return "h_" + key_type.replace("-", "_")


@pytest.fixture(scope="module")
def generated(hsm: Hsm) -> dict[str, str]:
    """One HSM key of every type, made by ``ekm generate --backend pkcs11``."""
    names = {}
    for key_type in HSM_TYPES:
        name = _name(key_type)
        res = ekm(hsm.env(), "--json", "generate", name, "--type", key_type, "--backend", "pkcs11")
        res.expect_ok()
        assert json.loads(res.stdout)["generated"] == [
            {
                "name": name,
                "type": key_type,
                "usage": "encryption" if key_type == "aes-256-gcm" else "signing",
                "backend": "pkcs11",
                "version": 1,
            }
        ]
        names[key_type] = name
    return names


def test_deploy_put_the_master_key_in_the_token(hsm: Hsm, run_ekm) -> None:
    meta = json.loads((hsm.home / "master.json").read_text())
    assert meta["source"] == "pkcs11" and meta["hsm_key_label"] == "ekm-master"
    assert not (hsm.home / "master.key").exists()  # no key file: the token holds the KEK
    (master,) = objects(hsm.token)["ekm-master"]
    assert master["class"] == "Secret Key Object"
    assert master["usage"] == "encrypt, decrypt"
    assert "sensitive, always sensitive, never extractable" in master["access"]
    # The configured key set: file keys wrapped by the token's master key, and one key whose
    # material deploy created in the token.
    status = json.loads(run_ekm("--json", "status").expect_ok().stdout)
    assert status["backends"]["master_key"]["source"] == "pkcs11"
    backends = {k["name"]: k["backend"] for k in status["keys"]}
    assert backends["app_signing"] == backends["app_data"] == "file"
    assert backends["hsm_configured"] == "pkcs11"
    pair = objects(hsm.token)["ekm/hsm_configured/v1"]
    assert sorted(o["class"] for o in pair) == ["Private Key Object", "Public Key Object"]
    # Idempotent: a second deploy changes nothing (and needs the token to check the key set).
    again = json.loads(run_ekm("--json", "deploy", "--master-key", "pkcs11").expect_ok().stdout)
    assert again["changed"] is False
    assert run_ekm("deploy", "--status").code == 0


def test_file_keys_need_the_token_to_unlock(hsm: Hsm, run_ekm, tmp_path: Path) -> None:
    out = tmp_path / "app_signing.pem"
    run_ekm("keys", "export", "app_signing", "--public", "--out", str(out)).expect_ok()
    assert out.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    # Without the PIN the master key cannot be unwrapped: the keystore stays locked.
    res = ekm({k: v for k, v in hsm.env().items() if k != "EKM_TEST_HSM_PIN"},
              "keys", "export", "app_signing", "--public")  # fmt: skip
    res.expect_error(3, "[hsm] pin_env names EKM_TEST_HSM_PIN, which is not set or empty")


@pytest.mark.parametrize("key_type", HSM_TYPES)
def test_generated_keys_are_token_objects_never_extractable(
    hsm: Hsm, generated: dict[str, str], run_ekm, key_type: str
) -> None:
    name = generated[key_type]
    label = f"ekm/{name}/v1"
    found = objects(hsm.token)[label]
    private = [o for o in found if o["class"] in ("Secret Key Object", "Private Key Object")]
    assert len(private) == 1
    assert "sensitive, always sensitive, never extractable" in private[0]["access"]
    if key_type == "aes-256-gcm":
        assert len(found) == 1 and private[0]["usage"] == "encrypt, decrypt"
    else:  # a pair sharing one CKA_ID; the private half only signs
        assert sorted(o["class"] for o in found) == ["Private Key Object", "Public Key Object"]
        assert private[0]["usage"] == "sign"
        assert found[0]["id"] == found[1]["id"]
    # The keystore records where the material is, and holds none of it.
    show = json.loads(run_ekm("--json", "keys", "show", name).expect_ok().stdout)
    assert show["backend"] == "pkcs11"


@pytest.mark.parametrize("key_type", HSM_TYPES)
def test_reveal_of_an_hsm_key_is_refused(generated: dict[str, str], run_ekm, key_type: str) -> None:
    res = run_ekm("keys", "export", generated[key_type], "--reveal", "--format", "der")
    res.expect_error(2, f"key '{generated[key_type]}' lives in the HSM and is not extractable")
    assert res.stdout == ""


@pytest.mark.parametrize("key_type", ASYMMETRIC)
def test_export_public_reads_in_openssl(
    generated: dict[str, str], run_ekm, tmp_path: Path, key_type: str
) -> None:
    name = generated[key_type]
    pem = tmp_path / "pub.pem"
    run_ekm("keys", "export", name, "--public", "--out", str(pem)).expect_ok()
    text = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", str(pem), "-noout", "-text"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    expected = {
        "rsa-3072": "Public-Key: (3072 bit)",
        "rsa-4096": "Public-Key: (4096 bit)",
        "ec-p256": "NIST CURVE: P-256",
        "ec-p384": "NIST CURVE: P-384",
        "ed25519": "ED25519 Public-Key",
    }[key_type]
    assert expected in text
    der = run_ekm("keys", "export", name, "--public", "--format", "der", "--out",
                  str(tmp_path / "pub.der")).expect_ok()  # fmt: skip
    assert der.code == 0
    from cryptography.hazmat.primitives import serialization as ser

    assert (
        ser.load_pem_public_key(pem.read_bytes()).public_bytes(
            ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo
        )
        == (tmp_path / "pub.der").read_bytes()
    )
    jwk = json.loads(run_ekm("keys", "export", name, "--public", "--format", "jwk").stdout)
    assert jwk["kid"] == f"{name}:v1" and jwk["use"] == "sig" and "d" not in jwk
    assert jwk["alg"] == {"rsa-3072": "PS256", "rsa-4096": "PS256", "ec-p256": "ES256",
                          "ec-p384": "ES384", "ed25519": "EdDSA"}[key_type]  # fmt: skip


def test_export_public_of_the_aes_key_is_refused(generated: dict[str, str], run_ekm) -> None:
    res = run_ekm("keys", "export", generated["aes-256-gcm"], "--public")
    res.expect_error(2, "is symmetric (aes-256-gcm); it has no public part")


@pytest.mark.parametrize("key_type", ASYMMETRIC)
def test_sign_in_the_token_verifies_with_openssl(
    hsm: Hsm, generated: dict[str, str], run_ekm, tmp_path: Path, key_type: str
) -> None:
    name = generated[key_type]
    data = b"invoice 42: pay 100 EUR"
    out = api(hsm.env(), "sign", name, data.hex())
    assert "error" not in out, out
    sig = bytes.fromhex(out["signature"])
    (tmp_path / "data").write_bytes(data)
    (tmp_path / "sig").write_bytes(sig)
    run_ekm("keys", "export", name, "--public", "--out", str(tmp_path / "pub.pem")).expect_ok()
    cmd = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"),
           "-sigfile", str(tmp_path / "sig")]  # fmt: skip
    if key_type == "ed25519":
        cmd += ["-rawin", "-in", str(tmp_path / "data")]
    else:
        digest = "sha384" if key_type == "ec-p384" else "sha256"
        import hashlib

        (tmp_path / "digest").write_bytes(hashlib.new(digest, data).digest())
        cmd += ["-in", str(tmp_path / "digest"), "-pkeyopt", f"digest:{digest}"]
        if key_type.startswith("rsa"):
            cmd += ["-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:32"]
    ok = subprocess.run(cmd, capture_output=True, text=True)
    assert ok.returncode == 0 and "Signature Verified Successfully" in ok.stdout, ok.stderr
    (tmp_path / "data").write_bytes(data + b"0")
    if key_type == "ed25519":
        bad = subprocess.run(cmd, capture_output=True, text=True)
        assert bad.returncode != 0
    # The ekm detached signature document verifies with the public key alone.
    from ekm.crypto import signatures

    info = signatures.verify(
        bytes.fromhex(out["document"]), data,
        lambda n, v: (key_type, bytes.fromhex(out["public_der"])),
    )  # fmt: skip
    assert (info.key_name, info.version) == (name, 1)


def test_encrypt_in_the_token_round_trips_and_detects_tampering(
    hsm: Hsm, generated: dict[str, str]
) -> None:
    name = generated["aes-256-gcm"]
    secret = b"data key \x00\xff"
    sealed = api(hsm.env(), "seal", name, secret.hex(), "record-7")
    blob = bytes.fromhex(sealed["blob"])
    assert len(blob) == 12 + len(secret) + 16 and secret not in blob
    opened = api(hsm.env(), "open", name, str(sealed["version"]), blob.hex(), "record-7")
    assert bytes.fromhex(opened["plaintext"]) == secret
    for bad_blob, aad in [(blob[:-1] + bytes([blob[-1] ^ 1]), "record-7"), (blob, "record-8"),
                          (blob[:20], "record-7")]:  # fmt: skip
        out = api(hsm.env(), "open", name, str(sealed["version"]), bad_blob.hex(), aad)
        assert out["error"] == "IntegrityError" and out["exit_code"] == 4
        assert out["message"].startswith("ciphertext is not authentic")


def test_a_signing_key_cannot_encrypt_nor_an_aes_key_sign(
    hsm: Hsm, generated: dict[str, str]
) -> None:
    out = api(hsm.env(), "seal", generated["ec-p256"], "00", "")
    assert out["error"] == "InvalidError" and out["exit_code"] == 3
    assert "only aes-256-gcm HSM keys encrypt" in out["message"]
    out = api(hsm.env(), "sign", generated["aes-256-gcm"], "00")
    assert out["error"] == "InvalidError" and "cannot sign in an HSM" in out["message"]
    out = api(hsm.env(), "sign", "app_signing", "00")  # a file key is not an HSM key
    assert out["error"] == "InvalidError" and "on the file backend, not pkcs11" in out["message"]


def test_rotate_makes_a_new_object_and_destroy_removes_the_old(
    hsm: Hsm, run_ekm, tmp_path: Path
) -> None:
    name = "rotating_signer"
    run_ekm("generate", name, "--type", "ec-p256", "--backend", "pkcs11", "--no-backup").expect_ok()
    v1_pub = run_ekm("keys", "export", name, "--public").expect_ok().stdout
    run_ekm("rotate", name, "--force").expect_ok()
    labels = objects(hsm.token)
    assert f"ekm/{name}/v1" in labels and f"ekm/{name}/v2" in labels
    v2_pub = run_ekm("keys", "export", name, "--public").expect_ok().stdout
    assert v2_pub != v1_pub  # a new key pair, not a relabelled one
    assert run_ekm("keys", "export", name, "--public", "--version", "1").stdout == v1_pub
    jwks = json.loads(run_ekm("keys", "export", name, "--public", "--format", "jwks").stdout)
    assert [k["kid"] for k in jwks["keys"]] == [f"{name}:v1", f"{name}:v2"]  # v1 still verifies
    # The old version still verifies; the new one signs.
    assert api(hsm.env(), "sign", name, "00")["version"] == 2
    out = api(hsm.env(), "sign", name, "00", "1")
    assert out["error"] == "StateError" and "only the primary version" in out["message"]

    run_ekm(
        "keys", "destroy", "--yes", name, "--version", "1", "--recovery-window", "0s"
    ).expect_ok()
    labels = objects(hsm.token)
    assert f"ekm/{name}/v1" not in labels and len(labels[f"ekm/{name}/v2"]) == 2
    res = run_ekm("keys", "export", name, "--public", "--version", "1")
    res.expect_error(3, f"key '{name}' version 1 is destroyed")
    jwks = json.loads(run_ekm("keys", "export", name, "--public", "--format", "jwks").stdout)
    assert [k["kid"] for k in jwks["keys"]] == [f"{name}:v2"]
    # The primary cannot be destroyed.
    run_ekm("keys", "destroy", "--yes", name, "--version", "2").expect_error(3, "is the primary")


def test_rotate_the_aes_key_keeps_old_ciphertexts_readable(hsm: Hsm, run_ekm) -> None:
    name = "rotating_aes"
    res = run_ekm("generate", name, "--type", "aes-256-gcm", "--backend", "pkcs11", "--no-backup")
    res.expect_ok()
    sealed = api(hsm.env(), "seal", name, "c0ffee", "a")
    run_ekm("rotate", name, "--force").expect_ok()
    assert api(hsm.env(), "seal", name, "00", "a")["version"] == 2
    assert api(hsm.env(), "open", name, "1", sealed["blob"], "a")["plaintext"] == "c0ffee"
    # v2 cannot open v1's ciphertext: the version names the key, no guessing.
    assert api(hsm.env(), "open", name, "2", sealed["blob"], "a")["error"] == "IntegrityError"


def test_pqc_type_on_the_pkcs11_backend_is_refused(hsm: Hsm, run_ekm) -> None:
    before = set(objects(hsm.token))
    for key_type, kind in (("ml-dsa-65", "ML-DSA"), ("ml-kem-768", "ML-KEM")):
        res = run_ekm("generate", f"pq_{kind.lower().replace('-', '_')}", "--type", key_type,
                      "--backend", "pkcs11")  # fmt: skip
        res.expect_error(3, f"SoftHSM (token 'ekm-int') has no {kind} mechanism for {key_type}",
                         "file backend")  # fmt: skip
    assert set(objects(hsm.token)) == before
    names = [k["name"] for k in json.loads(run_ekm("--json", "status").stdout)["keys"]]
    assert not [n for n in names if n.startswith("pq_")]


def test_generate_twice_points_to_rotate(generated: dict[str, str], run_ekm) -> None:
    name = generated["ec-p384"]
    res = run_ekm("generate", name, "--type", "ec-p384", "--backend", "pkcs11")
    res.expect_error(3, f"key {name!r} already exists; use `ekm rotate {name}`")


def test_status_hsm_connected(hsm: Hsm, run_ekm) -> None:
    res = run_ekm("--json", "status", "--hsm").expect_ok()
    d = json.loads(res.stdout)["backends"]["hsm"]
    assert d["connected"] is True and d["logged_in"] is True
    assert d["token"]["label"] == "ekm-int" and d["missing_mechanisms"] == []
    assert set(d["supported_types"]) == set(HSM_TYPES)
    assert d["pin_source"] == "environment variable EKM_TEST_HSM_PIN ([hsm] pin_env)"
    table = run_ekm("status", "--hsm").expect_ok()
    assert "ekm-int" in table.stdout and "supported_types" in table.stdout
    # plain text, never a Python repr of a dict or a list (issue 21)
    assert not any(c in table.stdout for c in ("{", "}", "['", "':", "True", "False"))
    assert "label=ekm-int" in table.stdout and "connected         yes" in table.stdout


def test_status_hsm_not_connected_is_exit_5(hsm: Hsm, run_ekm) -> None:
    res = run_ekm("--json", "status", "--hsm", pin="0000-wrong-pin")
    assert res.code == 5, res.stderr
    d = json.loads(res.stdout)["backends"]["hsm"]
    assert d["connected"] is False and "refused the PIN" in d["error_message"]
    table = run_ekm("status", "--hsm", pin="0000-wrong-pin")
    assert table.code == 5 and "HSM: not connected:" in table.stderr
    assert "Traceback" not in table.stderr
    # The token is not locked by that: the right PIN still works.
    run_ekm("status", "--hsm").expect_ok()


def test_every_hsm_operation_is_in_the_audit_log(hsm: Hsm, generated: dict[str, str]) -> None:
    records = [json.loads(line) for line in (hsm.home / "audit.log").read_text().splitlines()]
    gens = {r["key"]: r for r in records if r["op"] == "generate" and r.get("backend") == "pkcs11"}
    assert set(generated.values()) <= set(gens)
    assert any(r["op"] == "key.export" and r["key"] in generated.values() for r in records)
    text = (hsm.home / "audit.log").read_text()
    assert hsm.token.pin not in text
    assert base64.b64encode(hsm.token.pin.encode()).decode() not in text
    verified = api(hsm.env(), "verify-log")
    assert verified["ok"] is True and verified["records"] == len(records)
