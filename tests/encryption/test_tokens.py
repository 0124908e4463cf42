"""JWTs across rotation and destruction; API keys through the command; KDFs via KeyManager."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import pytest

from ekm.crypto.keytypes import KeyType
from ekm.errors import IntegrityError, NotFoundError, StateError
from ekm.manager import KeyManager
from ekm.timeutil import utcnow


def test_jwt_survives_rotation_and_dies_with_its_version(mgr):
    t1 = mgr.sign_jwt({"sub": "alice"})
    assert mgr.verify_jwt(t1) == {"sub": "alice"}
    mgr.rotate("jwt_signing", force=True)
    t2 = mgr.sign_jwt({"sub": "bob"})
    import jwt

    assert jwt.get_unverified_header(t2)["kid"] == "jwt_signing:v2"
    assert mgr.verify_jwt(t1) == {"sub": "alice"}  # nobody is logged out by a rotation
    mgr.destroy_version("jwt_signing", 1)
    with pytest.raises(StateError, match="version 1 of key 'jwt_signing' is destroyed"):
        mgr.verify_jwt(t1)
    assert mgr.verify_jwt(t2) == {"sub": "bob"}
    with pytest.raises(IntegrityError, match="token is not valid"):
        mgr.verify_jwt(t2[:-2] + ("AA" if t2[-2:] != "AA" else "BB"))
    with pytest.raises(IntegrityError, match="token is not valid"):
        mgr.verify_jwt("not.a.jwt")
    with pytest.raises(NotFoundError, match="not 'jwt_signing'"):
        mgr.verify_jwt(mgr.sign_jwt({"x": 1}, key="rsa"))


def test_jwt_expiry_uses_now_and_config(mgr):
    now = utcnow()
    tok = mgr.sign_jwt({"sub": "a", "exp": int((now + timedelta(minutes=5)).timestamp())})
    assert mgr.verify_jwt(tok, now=now)["sub"] == "a"
    with pytest.raises(IntegrityError):
        mgr.verify_jwt(tok, now=now + timedelta(minutes=6))
    cfg = mgr.get_jwt_config()
    assert (cfg.kid, cfg.algorithm, cfg.key_name, cfg.version) == ("jwt_signing:v1", "HS256",
                                                                   "jwt_signing", 1)  # fmt: skip
    assert len(cfg.access_secret) == 32 and "access_secret" not in repr(cfg)
    import jwt

    legacy = jwt.encode({"sub": "old"}, cfg.access_secret, algorithm="HS256",
                        headers={"kid": cfg.kid})  # fmt: skip
    assert mgr.verify_jwt(legacy)["sub"] == "old"


def test_api_keys_through_the_api(mgr, home):
    token = mgr.generate_api_key(KeyType.API_MASTER)
    assert token.startswith("ekm_apimaster_")
    rec = mgr.verify_api_key(token)
    assert rec["key"] == "api_master" and "digest" not in rec
    assert token not in (home / "apikeys.json").read_text()
    assert oct((home / "apikeys.json").stat().st_mode & 0o777) == "0o600"
    tok2, _rec2 = mgr.create_api_key(expires="1d")
    with pytest.raises(IntegrityError, match="API key is not valid"):
        mgr.verify_api_key(tok2, now=utcnow() + timedelta(days=2))
    mgr.revoke_api_key(rec["id"])
    with pytest.raises(IntegrityError, match="API key is not valid"):
        mgr.verify_api_key(token)
    with pytest.raises(NotFoundError, match="no API key with id"):
        mgr.revoke_api_key("apimaster:000000000000")
    log = (home / "audit.log").read_text()
    assert log.count('"reason":"expired"') == 1 and log.count('"reason":"revoked"') == 1
    assert token not in log and tok2 not in log


def test_tampered_apikeys_file_is_refused(mgr, home):
    token = mgr.generate_api_key()
    path = home / "apikeys.json"
    doc = json.loads(path.read_text())
    doc["keys"][0]["revoked"] = None
    doc["keys"][0]["expires"] = "2099-01-01T00:00:00Z"
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    with pytest.raises(IntegrityError, match=r"apikeys\.json failed its integrity check"):
        KeyManager(home, env={}).verify_api_key(token)


def test_apikey_cli(run, ekm_env):
    created = run("--json", "apikey", "create", "--name", "ci", "--expires", "90d").expect_ok()
    token = json.loads(created.stdout)["token"]
    listed = run("apikey", "list").expect_ok()
    assert "ci" in listed.stdout and token not in listed.stdout
    r = subprocess.run(["ekm", "apikey", "verify"], input=token, capture_output=True, text=True,
                       env=ekm_env, check=False)  # fmt: skip
    assert r.returncode == 0 and "valid" in r.stderr and token not in r.stderr + r.stdout
    ok = run("apikey", "verify", "--token-env", "T", env={**ekm_env, "T": token})
    ok.expect_ok()
    bad = token[:-8] + ("A" * 8 if not token.endswith("A" * 8) else "B" * 8)
    run("apikey", "verify", stdin=bad).expect_error(4, "API key is not valid")
    run("apikey", "verify", stdin="").expect_error(2, "no token on stdin")
    run("apikey", "verify", "--token-env", "NOPE").expect_error(2, "NOPE")
    run("apikey", "create", "--expires", "soon").expect_error(2, "--expires")
    run("apikey", "create", "--key", "session").expect_error(2, "api-auth key")
    rid = json.loads(created.stdout)["id"]
    run("apikey", "revoke", "--yes", rid).expect_ok()
    run("apikey", "verify", stdin=token).expect_error(4, "API key is not valid")


def test_kdf_passthrough(mgr):
    phc = mgr.hash_password("correct horse", kdf="pbkdf2")
    assert mgr.verify_password("correct horse", phc) and not mgr.verify_password("wrong", phc)
    d = mgr.derive_key("s3cret", kdf="scrypt", salt=b"\0" * 16)
    assert len(d.key) == 32 and d.key == mgr.derive_key("s3cret", kdf="scrypt", salt=b"\0" * 16).key


def test_jwks_publishes_pending_versions(mgr):
    mgr.generate("idp", type="ec-p256", usage="signing")
    mgr.prepare_rotation("idp")
    kids = [k["kid"] for k in json.loads(mgr.export_jwks("idp"))["keys"]]
    assert kids == ["idp:v1", "idp:v2"]  # v2 is pending: verifiers learn it before it signs
