"""JWT sign/verify: kid names the version, alg fixed by key type, time injected, one error."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import jwt
import pytest

from ekm.crypto import jwt_tokens
from ekm.crypto.jwt_tokens import NOT_VALID
from ekm.errors import IntegrityError, InvalidError, NotFoundError

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
T = int(NOW.timestamp())
SIGNERS = [
    ("hmac-sha256", "HS256"),
    ("hmac-sha384", "HS384"),
    ("hmac-sha512", "HS512"),
    ("rsa-2048", "PS256"),
    ("ec-p256", "ES256"),
    ("ec-p384", "ES384"),
    ("ed25519", "EdDSA"),
]


def _invalid(token, keys, **kw):
    with pytest.raises(IntegrityError) as exc:
        jwt_tokens.verify(token, keys=keys, now=NOW, **kw)
    assert str(exc.value) == NOT_VALID


@pytest.mark.parametrize(("key_type", "alg"), SIGNERS)
def test_sign_verify_each_algorithm(materials, key_type, alg):
    kid = jwt_tokens.make_kid("jwt_signing", 3)
    token = jwt_tokens.sign(
        {"sub": "u1", "exp": T + 60}, kid=kid, key_type=key_type, material=materials[key_type]
    )
    header = jwt.get_unverified_header(token)
    assert header["kid"] == "jwt_signing:v3" and header["alg"] == alg
    claims = jwt_tokens.verify(token, keys={kid: (key_type, materials[key_type])}, now=NOW)
    assert claims["sub"] == "u1"


@pytest.mark.parametrize("key_type", ["rsa-2048", "ec-p256", "ed25519"])
def test_verify_with_public_key_only(materials, key_type):
    from ekm.crypto.export import export_key

    m = materials[key_type]
    token = jwt_tokens.sign({"a": 1}, kid="k:v1", key_type=key_type, material=m)
    for public in (
        export_key(key_type, m, fmt="der", public=True),
        export_key(key_type, m, fmt="pem", public=True),
    ):
        assert jwt_tokens.verify(token, keys={"k:v1": (key_type, public)}, now=NOW) == {"a": 1}


def test_rotation_old_versions_verify_until_retired(materials):
    old = materials["hmac-sha256"]
    new = materials["hmac-sha512"][:32]
    t_old = jwt_tokens.sign({"v": 1}, kid="j:v1", key_type="hmac-sha256", material=old)
    keys = {"j:v1": ("hmac-sha256", old), "j:v2": ("hmac-sha256", new)}
    assert jwt_tokens.verify(t_old, keys=keys, now=NOW) == {"v": 1}
    del keys["j:v1"]  # retired
    with pytest.raises(NotFoundError, match="'j:v1'; the version is unknown or retired"):
        jwt_tokens.verify(t_old, keys=keys, now=NOW)


def test_times_checked_against_injected_now(materials):
    m = materials["hmac-sha256"]
    keys = {"j:v1": ("hmac-sha256", m)}

    def tok(**claims):
        return jwt_tokens.sign(claims, kid="j:v1", key_type="hmac-sha256", material=m)

    assert jwt_tokens.verify(tok(exp=T + 1), keys=keys, now=NOW)
    _invalid(tok(exp=T), keys)
    assert jwt_tokens.verify(tok(exp=T), keys=keys, now=NOW, leeway=5)
    _invalid(tok(nbf=T + 10), keys)
    _invalid(tok(iat=T + 10), keys)
    assert jwt_tokens.verify(tok(nbf=T + 10), keys=keys, leeway=10, now=NOW)
    _invalid(tok(exp="tomorrow"), keys)
    later = NOW + timedelta(days=1)
    with pytest.raises(IntegrityError):
        jwt_tokens.verify(tok(exp=T + 60), keys=keys, now=later)


def test_audience_and_issuer(materials):
    m = materials["ed25519"]
    keys = {"e:v1": ("ed25519", m)}
    token = jwt_tokens.sign(
        {"aud": "api", "iss": "ekm"}, kid="e:v1", key_type="ed25519", material=m
    )
    assert jwt_tokens.verify(token, keys=keys, audience="api", issuer="ekm", now=NOW)
    _invalid(token, keys, audience="other")
    _invalid(token, keys)  # an aud claim with no expected audience is refused
    _invalid(token, keys, audience="api", issuer="evil")


def _b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def test_alg_confusion_and_none_refused(materials):
    m = materials["hmac-sha256"]
    keys = {"j:v1": ("hmac-sha256", m)}
    good = jwt_tokens.sign({"a": 1}, kid="j:v1", key_type="hmac-sha256", material=m)
    _h, p, s = good.split(".")
    _invalid(f"{_b64({'alg': 'none', 'kid': 'j:v1'})}.{p}.", keys)
    _invalid(f"{_b64({'alg': 'HS512', 'kid': 'j:v1'})}.{p}.{s}", keys)
    # an RSA public key used as an HMAC secret (the classic confusion) is refused
    rsa_keys = {"r:v1": ("rsa-2048", materials["rsa-2048"])}
    forged = jwt.encode({"a": 1}, m, algorithm="HS256", headers={"kid": "r:v1"})
    _invalid(forged, rsa_keys)


def test_tampered_payload_and_garbage(materials):
    m = materials["ec-p256"]
    keys = {"e:v1": ("ec-p256", m)}
    h, _p, s = jwt_tokens.sign({"admin": False}, kid="e:v1", key_type="ec-p256", material=m).split(
        "."
    )
    _invalid(f"{h}.{_b64({'admin': True})}.{s}", keys)
    for garbage in ("", "a.b.c", "not a jwt", "x" * 70000):
        _invalid(garbage, keys)


def test_missing_or_hostile_kid_is_not_found(materials):
    m = materials["hmac-sha256"]
    keys = {"j:v1": ("hmac-sha256", m)}
    no_kid = jwt.encode({"a": 1}, m, algorithm="HS256")
    with pytest.raises(NotFoundError, match="key id None") as exc:
        jwt_tokens.verify(no_kid, keys=keys, now=NOW)
    assert exc.value.exit_code == 3
    long_kid = jwt.encode({"a": 1}, m, algorithm="HS256", headers={"kid": "k\n" * 100})
    with pytest.raises(NotFoundError) as exc:
        jwt_tokens.verify(long_kid, keys=keys, now=NOW)
    assert "\n" not in str(exc.value) and len(str(exc.value)) < 200


@pytest.mark.parametrize(
    ("key_type", "message"),
    [
        ("aes-256-gcm", "cannot sign JWTs"),
        ("x25519", "cannot sign JWTs"),
        ("ml-dsa-65", "cannot sign JWTs"),
        ("des", "unknown key type"),
    ],
)
def test_non_signing_types_refused(materials, key_type, message):
    with pytest.raises(InvalidError, match=message):
        jwt_tokens.sign({}, kid="k:v1", key_type=key_type, material=b"\x00" * 32)


def test_short_hmac_key_and_bad_kid_refused(materials):
    with pytest.raises(InvalidError, match="at least 32 bytes"):
        jwt_tokens.sign({}, kid="k:v1", key_type="hmac-sha256", material=b"short")
    with pytest.raises(NotFoundError, match="not of the form name:vN"):
        jwt_tokens.sign({}, kid="k-1", key_type="hmac-sha256", material=b"k" * 32)
    with pytest.raises(InvalidError, match="cannot make a JWT key id"):
        jwt_tokens.make_kid("bad name", 1)
    assert jwt_tokens.parse_kid("jwt_signing:v12") == ("jwt_signing", 12)
