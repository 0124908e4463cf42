"""JWT signing and verification (PyJWT) with key ids that name the key version.

``kid`` is ``"<name>:v<version>"`` so a verifier picks the key directly; verification takes
the set of verification keys (every non-retired version), so tokens signed before a rotation
stay valid until their version is retired. The algorithm is fixed by the *key type*, never
taken from the token header (no ``alg`` confusion, no ``none``): HS256/384/512 for hmac keys,
PS256 for RSA, ES256/ES384 for EC, EdDSA for Ed25519.

Time is a parameter: ``exp``, ``nbf`` and ``iat`` are checked here against ``now`` (PyJWT reads
the wall clock, so its own time checks are switched off). Every invalid token raises
IntegrityError with one message; an unknown ``kid`` raises NotFoundError.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ekm.crypto.keytypes import KeyType, spec
from ekm.errors import IntegrityError, InvalidError, NotFoundError

NOT_VALID = (
    "token is not valid: bad signature, malformed, expired, not yet valid, "
    "or issued for another audience or issuer"
)
_KID_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]{0,127}):v([1-9][0-9]{0,9})$")


def make_kid(name: str, version: int) -> str:
    """The ``kid`` of a key version: ``name:v<version>``."""
    kid = f"{name}:v{version}"
    if not _KID_RE.match(kid):
        raise InvalidError(f"cannot make a JWT key id from key {name!r} version {version!r}")
    return kid


def parse_kid(kid: str) -> tuple[str, int]:
    """``(name, version)`` from a ``kid``; NotFoundError if it is not one of ours."""
    m = _KID_RE.match(kid) if isinstance(kid, str) else None
    if not m:
        raise NotFoundError(f"JWT key id {_show(kid)} is not of the form name:vN")
    return m.group(1), int(m.group(2))


def _show(value: Any) -> str:
    """A hostile header value, made safe and short for a one-line message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def algorithm(key_type: KeyType | str) -> str:
    """The JWS ``alg`` for a key type; InvalidError for types that cannot sign JWTs."""
    try:
        s = spec(key_type)
    except (ValueError, KeyError):
        raise InvalidError(f"unknown key type {key_type!r}") from None
    if s.jose_alg is None or s.post_quantum:
        raise InvalidError(
            f"a {s.type.value} key cannot sign JWTs; use an hmac-sha*, rsa-*, ec-p256, "
            "ec-p384 or ed25519 key"
        )
    return s.jose_alg


def _signing_key(key_type: KeyType, material: Any) -> Any:
    if not spec(key_type).asymmetric:
        if not isinstance(material, (bytes, bytearray)) or len(material) < 32:
            raise InvalidError("an hmac JWT key must be at least 32 bytes of material")
        return bytes(material)
    if isinstance(material, (bytes, bytearray)):
        from ekm.crypto.material import private_key

        return private_key(key_type, bytes(material))
    return material


def _verification_key(key_type: KeyType, material: Any) -> Any:
    """Public key (or hmac secret) from private DER, SPKI DER/PEM, or a key object."""
    if not spec(key_type).asymmetric:
        return _signing_key(key_type, material)
    if hasattr(material, "public_key"):
        return material.public_key()
    if not isinstance(material, (bytes, bytearray)):
        return material  # already a public key object
    from cryptography.hazmat.primitives import serialization as ser

    data = bytes(material)
    if data.startswith(b"-----BEGIN PUBLIC KEY-----"):
        return ser.load_pem_public_key(data)
    try:
        return ser.load_der_public_key(data)
    except ValueError:
        from ekm.crypto.material import private_key

        return private_key(key_type, data).public_key()


def sign(
    claims: dict[str, Any],
    *,
    kid: str,
    key_type: KeyType | str,
    material: Any,
    headers: Mapping[str, Any] | None = None,
) -> str:
    """A compact JWS over ``claims`` with ``kid`` and the algorithm of ``key_type``."""
    import jwt

    alg = algorithm(key_type)
    t = KeyType(key_type)
    parse_kid(kid)
    if not isinstance(claims, dict):
        raise InvalidError("JWT claims must be a JSON object (a dict)")
    key = _signing_key(t, material)
    try:
        return jwt.encode(claims, key, algorithm=alg, headers={**(headers or {}), "kid": kid})
    except (TypeError, ValueError) as exc:
        raise InvalidError(f"JWT claims cannot be encoded: {type(exc).__name__}") from None


def verify(
    token: str,
    *,
    keys: Mapping[str, tuple[KeyType | str, Any]],
    audience: str | list[str] | None = None,
    issuer: str | None = None,
    leeway: int = 0,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The claims of a valid ``token`` signed by one of ``keys`` (kid -> (type, material)).

    ``material`` may be the private material, the public key (SPKI DER/PEM or object) or the
    hmac secret. Tokens carrying ``aud`` are refused unless ``audience`` matches.
    """
    import jwt

    from ekm.timeutil import utcnow

    if not isinstance(token, str) or len(token) > 64 * 1024:
        raise IntegrityError(NOT_VALID)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise IntegrityError(NOT_VALID) from None
    kid = header.get("kid")
    if not isinstance(kid, str) or kid not in keys:
        raise NotFoundError(
            f"no verification key for JWT key id {_show(kid)}; the version is unknown "
            "or retired (check the token issuer's key set)"
        )
    key_type, material = keys[kid]
    alg = algorithm(key_type)
    t = KeyType(key_type)
    try:
        claims = jwt.decode(
            token,
            _verification_key(t, material),
            algorithms=[alg],
            audience=audience,
            issuer=issuer,
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.PyJWTError:
        raise IntegrityError(NOT_VALID) from None
    _check_times(claims, (now or utcnow()).timestamp(), leeway)
    return claims


def _check_times(claims: dict[str, Any], now: float, leeway: int) -> None:
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise IntegrityError(NOT_VALID)
        if name == "exp" and now >= value + leeway:
            raise IntegrityError(NOT_VALID)
        if name in ("nbf", "iat") and now < value - leeway:
            raise IntegrityError(NOT_VALID)
