"""PQ keys as a product feature: config, deploy, exports, audits, bad input, the HSM boundary."""

from __future__ import annotations

import json
import subprocess

import pytest
import tomli_w

from ekm.errors import ConfigError
from ekm.manager import KeyManager
from tests import softhsm
from tests.conftest import Result, clean_environ


def _write_config(home, doc) -> None:
    home.mkdir(mode=0o700)
    (home / "ekm.toml").write_text(tomli_w.dumps(doc))
    (home / "ekm.toml").chmod(0o600)


SMALL_KEYS = {"data": {"type": "aes-256-gcm", "usage": "encryption"}}


def test_deploy_with_pqc_hybrid_mode_creates_the_pq_keys(run, tmp_path, base_env):
    home = tmp_path / "h"
    # no [keys]: the default key set, which [pqc] enabled + hybrid_mode extends
    _write_config(home, {"pqc": {"enabled": True, "hybrid_mode": True,
                                 "algorithms": ["CRYSTALS-Kyber", "ML-DSA-65"]}})  # fmt: skip
    env = {**base_env, "EKM_HOME": str(home)}
    run("deploy", env=env).expect_ok()
    status = json.loads(run("--json", "status", env=env).expect_ok().stdout)
    types = {k["name"]: k["type"] for k in status["keys"]}
    assert types["pq_recipient"] == "x25519-ml-kem-768"
    assert types["pq_signing"] == "ed25519-ml-dsa-65"
    f = tmp_path / "f"
    f.write_bytes(b"x")
    run("sign", "-k", "pq_signing", str(f), env=env).expect_ok()
    run("verify", str(f), env=env).expect_ok()


@pytest.mark.parametrize(
    ("pqc", "fragment"),
    [
        ({"algorithms": ["ML-KEM-768", "Falcon-512"]}, "pqc.algorithms = list is invalid"),
        ({"algorithms": "ML-KEM-768"}, "pqc.algorithms"),
        ({"enabled": "yes"}, "pqc.enabled = 'yes' is invalid"),
    ],
)
def test_bad_pqc_config_names_the_key(run, tmp_path, base_env, pqc, fragment):
    home = tmp_path / "h"
    _write_config(home, {"pqc": pqc, "keys": SMALL_KEYS})
    line = run("deploy", env={**base_env, "EKM_HOME": str(home)}).expect_error(
        3, str(home / "ekm.toml"), fragment
    )
    if "Falcon" in json.dumps(pqc):
        assert "'Falcon-512' is not one" in line and "ML-DSA-87" in line


def test_legacy_pqc_config(tmp_path):
    from ekm import EnterpriseKeyManager

    km = EnterpriseKeyManager(
        tmp_path / "h", env={},
        pqc_config={"enabled": True, "algorithms": ["CRYSTALS-Dilithium", "Kyber1024"]},
    )  # fmt: skip
    assert km.config.get("pqc", "algorithms") == ["ML-DSA-65", "ML-KEM-1024"]
    with pytest.raises(ConfigError, match=r"pqc_config\['algorithms'\] .* 'SPHINCS\+' is not one"):
        EnterpriseKeyManager(tmp_path / "h2", env={}, pqc_config={"algorithms": ["SPHINCS+"]})


def test_public_exports_load_in_cryptography(prun, tmp_path):
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem

    kinds = {
        "s_mldsa44": mldsa.MLDSA44PublicKey,
        "s_mldsa87": mldsa.MLDSA87PublicKey,
        "r_mlkem768": mlkem.MLKEM768PublicKey,
        "r_mlkem1024": mlkem.MLKEM1024PublicKey,
    }
    for name, kind in kinds.items():
        out = tmp_path / f"{name}.pem"
        prun("keys", "export", name, "--public", "--out", str(out)).expect_ok()
        assert isinstance(ser.load_pem_public_key(out.read_bytes()), kind)
    # a signature made by ekm verifies with the exported key alone (outside ekm)
    f = tmp_path / "f"
    f.write_bytes(b"interop")
    prun("sign", "-k", "s_mldsa87", str(f)).expect_ok()
    from ekm.crypto import signatures

    pub = ser.load_pem_public_key((tmp_path / "s_mldsa87.pem").read_bytes())
    info = signatures.verify((tmp_path / "f.sig").read_bytes(), b"interop",
                             lambda n, v: ("ml-dsa-87", pub))  # fmt: skip
    assert info.key_name == "s_mldsa87"
    prun("keys", "export", "s_hybrid", "--public").expect_error(3, "--format raw or --format jwk")


def test_public_exports_load_in_openssl(prun, tmp_path):
    algs = subprocess.run(
        ["openssl", "list", "-public-key-algorithms"], capture_output=True, text=True, check=False
    ).stdout.lower()
    if "ml-dsa" not in algs or "ml-kem" not in algs:
        version = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout
        pytest.skip(f"{version.strip()} has no ML-KEM/ML-DSA (OpenSSL 3.5+ has)")
    for name in ("s_mldsa65", "r_mlkem768"):
        out = tmp_path / f"{name}.pem"
        prun("keys", "export", name, "--public", "--out", str(out)).expect_ok()
        proc = subprocess.run(["openssl", "pkey", "-pubin", "-in", str(out), "-noout", "-text"],
                              capture_output=True, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stderr


def test_audit_compliance_knows_pq_types(prun):
    """On a home holding both, NIST IR 8547 after 2035 (from 2036-01-01, issue 18; it was
    2035-01-01) flags RSA/ECC and passes ML-DSA/ML-KEM."""
    res = prun("audit", "--compliance", "nist-800-131a", "--as-of", "2036-01-01",
               "--format", "json", "--soft-fail")  # fmt: skip
    doc = json.loads(res.stdout)
    flagged = {f["key"] for f in doc["findings"]}
    assert {"s_rsa", "s_p256", "s_p384", "s_ed25519", "r_x25519", "rsa"} <= flagged
    assert not flagged & {"s_mldsa44", "s_mldsa65", "s_mldsa87", "r_mlkem768", "r_mlkem1024"}
    for rule_set in ("cnsa-2.0", "fips-140-3"):
        res = prun("audit", "--compliance", rule_set, "--format", "json", "--soft-fail")
        assert res.code == 0, res.stderr
        doc = json.loads(res.stdout)
        assert "unknown" not in json.dumps(doc).lower() or doc["findings"]
    cnsa = json.loads(prun("audit", "--compliance", "cnsa-2.0", "--format", "json",
                           "--soft-fail").stdout)  # fmt: skip
    cnsa_flagged = {f["key"] for f in cnsa["findings"]}
    # CNSA 2.0 wants ML-DSA-87 / ML-KEM-1024: the category-5 keys pass, the classic ones do not
    assert "s_rsa" in cnsa_flagged and "s_mldsa87" not in cnsa_flagged
    assert "r_mlkem1024" not in cnsa_flagged


def test_bad_kem_input_through_the_command(prun, pq_home, tmp_path):
    plain = tmp_path / "p"
    plain.write_bytes(b"secret" * 100)
    enc = tmp_path / "p.ekm"
    prun("encrypt", "-r", "r_xwing", "-o", str(enc), str(plain)).expect_ok()
    blob = enc.read_bytes()
    # truncated inside the header (the KEM ciphertext of the slot)
    (tmp_path / "t1").write_bytes(blob[:200])
    prun("decrypt", "-o", str(tmp_path / "o1"), str(tmp_path / "t1")).expect_error(
        4, "not authentic", "truncated"
    )
    assert not (tmp_path / "o1").exists()
    # one flipped bit in the X-Wing ciphertext: not authentic, exit 4, no output
    from ekm.crypto import stream

    with open(enc, "rb") as fh:
        stream.read_header(fh)
        header_len = fh.tell()
    pos = header_len - 40
    bad = bytearray(blob)
    bad[pos] ^= 1
    (tmp_path / "t2").write_bytes(bytes(bad))
    prun("decrypt", "-o", str(tmp_path / "o2"), str(tmp_path / "t2")).expect_error(
        4, "cannot open the recipient slot"
    )
    assert not (tmp_path / "o2").exists()
    # wrong recipient: same name and version in another home, other key material
    other = tmp_path / "other"
    from tests.conftest import copy_home

    copy_home(pq_home, other)
    km = KeyManager(other, env={})
    km.rotate("r_xwing")
    km.destroy_version("r_xwing", 1)
    km.rotate("r_xwing")  # v3 has fresh material; the file names v1
    env = {**clean_environ(), "EKM_HOME": str(other)}
    prun("decrypt", str(enc), env=env).expect_error(3, "version 1 of key 'r_xwing' is destroyed")


def _ekm(env, *args) -> Result:
    p = subprocess.run(["ekm", *args], env=env, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=120, check=False)  # fmt: skip
    return Result(p.returncode, p.stdout, p.stderr)


@pytest.mark.skipif(not softhsm.available(), reason="SoftHSM2 is not installed")
def test_pkcs11_backend_signs_classic_and_refuses_pq(tmp_path):
    token = softhsm.make_token(tmp_path / "softhsm", label="ekm-pq")
    home = tmp_path / "h"
    _write_config(home, {"hsm": token.hsm_table(), "keys": SMALL_KEYS})
    env = token.env(clean_environ(EKM_HOME=str(home)))
    env["EKM_TEST_HSM_PIN"] = token.pin
    _ekm(env, "deploy").expect_ok()
    line = _ekm(env, "generate", "hsm_pq", "--type", "ml-dsa-65", "--backend", "pkcs11")
    line.expect_error(3, "SoftHSM (token 'ekm-pq')", "no ML-DSA mechanism", "file backend")
    _ekm(env, "generate", "hsm_ed", "--type", "ed25519", "--backend", "pkcs11").expect_ok()
    _ekm(env, "generate", "hsm_ec", "--type", "ec-p384", "--backend", "pkcs11").expect_ok()
    f = tmp_path / "f"
    f.write_bytes(b"signed in the token")
    for name in ("hsm_ed", "hsm_ec"):
        sig = tmp_path / f"{name}.sig"
        _ekm(env, "sign", "-k", name, "-o", str(sig), str(f)).expect_ok()
        out = _ekm(env, "--json", "verify", str(f), "--sig", str(sig)).expect_ok()
        assert json.loads(out.stdout)["key"] == name
    rec = [json.loads(x) for x in (home / "audit.log").read_text().splitlines()]
    signs = [r for r in rec if r["op"] == "sign"]
    assert [r["backend"] for r in signs] == ["pkcs11", "pkcs11"]
    # migrating an HSM key to a PQ type is refused, naming the backend
    _ekm(env, "rotate", "hsm_ed", "--to-type", "ml-dsa-65").expect_error(
        3, "backend pkcs11 cannot hold ml-dsa-65"
    )
    for out in (line.stderr, line.stdout):
        assert token.pin not in out and token.so_pin not in out
