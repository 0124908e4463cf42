"""Exported keys load in other people's code: the real ``openssl pkey`` binary and PyJWT.

One home per module holds the default RSA key plus an EC P-256 and an Ed25519 key; every test
only exports from it (exports append audit records, nothing else changes).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import clean_environ, copy_home

pytest.importorskip("ekm.crypto.export")

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl binary not installed")

ASYMMETRIC = ["rsa", "ec", "ed"]  # names in the module home
#: what ``openssl pkey -text_pub`` prints first for each key
OPENSSL_HEADER = {
    "rsa": "Public-Key: (4096 bit)",
    "ec": "Public-Key: (256 bit)",
    "ed": "ED25519 Public-Key:",
}


@pytest.fixture(scope="module")
def ihome(template_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ekm.manager import KeyManager

    home = copy_home(template_home, tmp_path_factory.mktemp("interop") / "home")
    mgr = KeyManager(home, env={})
    mgr.generate("ec", type="ec-p256")
    mgr.generate("ed", type="ed25519")
    return home


@pytest.fixture
def ienv(ihome: Path) -> dict[str, str]:
    return clean_environ(EKM_HOME=str(ihome))


def _openssl_text(path: Path, *, public: bool, der: bool = False) -> str:
    args = [OPENSSL, "pkey", "-in", str(path), "-noout", "-text"]
    if public:
        args.insert(2, "-pubin")
        args[args.index("-text")] = "-text_pub"
    if der:
        args += ["-inform", "DER"]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _export(run, env, tmp_path: Path, name: str, *flags: str) -> Path:
    out = tmp_path / f"{name}-{'-'.join(f.strip('-') for f in flags)}"
    run("keys", "export", name, *flags, "--out", str(out), env=env).expect_ok()
    return out


@needs_openssl
@pytest.mark.parametrize("name", ASYMMETRIC)
@pytest.mark.parametrize("fmt", ["pem", "der"])
def test_public_key_loads_in_openssl(run, ienv, tmp_path, name, fmt):
    out = _export(run, ienv, tmp_path, name, "--public", "--format", fmt)
    text = _openssl_text(out, public=True, der=fmt == "der")
    assert text.splitlines()[0] == OPENSSL_HEADER[name]
    if fmt == "der":  # the same key as the PEM export, byte for byte once converted
        pem = subprocess.run(
            [OPENSSL, "pkey", "-pubin", "-inform", "DER", "-in", str(out)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert pem == run("keys", "export", name, "--public", env=ienv).stdout


@needs_openssl
@pytest.mark.parametrize("name", ASYMMETRIC)
def test_private_key_pem_loads_in_openssl_and_matches_the_public_key(run, ienv, tmp_path, name):
    priv = _export(run, ienv, tmp_path, name, "--reveal", "--format", "pem")
    assert priv.stat().st_mode & 0o077 == 0  # secret written 0600
    assert priv.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    pub = _export(run, ienv, tmp_path, name, "--public", "--format", "pem")
    derived = subprocess.run(
        [OPENSSL, "pkey", "-in", str(priv), "-pubout"], capture_output=True, text=True, check=True
    ).stdout
    assert derived == pub.read_text()


@needs_openssl
def test_private_key_on_stdout_only_with_reveal(run, ienv):
    res = run("keys", "export", "ed", env=ienv).expect_ok()
    assert "PRIVATE" not in res.stdout and "BEGIN PUBLIC KEY" in res.stdout
    res = run("keys", "export", "ed", "--reveal", env=ienv).expect_ok()
    proc = subprocess.run(
        [OPENSSL, "pkey", "-noout"], input=res.stdout, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", ASYMMETRIC)
def test_public_jwk_loads_in_pyjwt(run, ienv, name):
    import jwt

    res = run("keys", "export", name, "--public", "--format", "jwk", env=ienv).expect_ok()
    doc = json.loads(res.stdout)
    assert doc["kid"] == f"{name}:v1"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(doc), "private members in a public JWK"
    jwk = jwt.PyJWK(doc)
    assert jwk.key_id == f"{name}:v1"


def test_private_jwk_signs_and_public_jwk_verifies(run, ienv):
    import jwt

    priv = json.loads(run("keys", "export", "ec", "--reveal", "--format", "jwk", env=ienv).stdout)
    pub = json.loads(run("keys", "export", "ec", "--public", "--format", "jwk", env=ienv).stdout)
    token = jwt.encode({"sub": "svc"}, jwt.PyJWK(priv).key, algorithm="ES256")
    assert jwt.decode(token, jwt.PyJWK(pub).key, algorithms=["ES256"]) == {"sub": "svc"}


def test_jwks_holds_the_public_key(run, ienv):
    import jwt

    res = run("keys", "export", "rsa", "--format", "jwks", env=ienv).expect_ok()
    jwks = jwt.PyJWKSet.from_dict(json.loads(res.stdout))
    assert [k.key_id for k in jwks.keys] == ["rsa:v1"]
    assert "d" not in json.loads(res.stdout)["keys"][0]


def test_symmetric_jwk_round_trips_the_material(run, ienv):
    import base64

    from ekm.manager import KeyManager

    res = run("keys", "export", "hmac", "--reveal", "--format", "jwk", env=ienv).expect_ok()
    doc = json.loads(res.stdout)
    secret = KeyManager(Path(ienv["EKM_HOME"]), env={}).get_key("hmac", "mac")
    assert base64.urlsafe_b64decode(doc["k"] + "=" * (-len(doc["k"]) % 4)) == secret
