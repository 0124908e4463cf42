"""Key export in standard encodings, so other tools can use ekm keys.

* public keys: SPKI PEM / DER (``openssl pkey -pubin`` reads them), JWK and JWKS
  (RFC 7517/7518, RFC 8037 for Ed25519/X25519), each JWK with ``kid``, ``alg`` and ``use``;
* private keys: PKCS#8 PEM / DER (unencrypted: the caller gates this behind ``--reveal``) or
  JWK; Ed25519/X25519 also as the raw 32-byte key;
* symmetric keys: raw bytes, base64, or JWK ``kty: oct``.

Post-quantum families are delegated to :mod:`ekm.crypto.pq` (``export_public`` /
``export_private``). This module never decides *whether* a secret may be exported; it
only encodes, and it never puts key bytes into an error message.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ekm.crypto.keytypes import KeyType, spec
from ekm.errors import InvalidError

FORMATS = ("pem", "der", "jwk", "jwks", "raw", "base64")
_PQ_FAMILIES = ("ml-kem", "ml-dsa", "hybrid-kem", "hybrid-sig")
_OCT_ALG = {
    KeyType.AES_256_GCM: "A256GCM",
    KeyType.AES_128_GCM: "A128GCM",
    KeyType.HMAC_SHA256: "HS256",
    KeyType.HMAC_SHA384: "HS384",
    KeyType.HMAC_SHA512: "HS512",
}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _int_b64(value: int, length: int | None = None) -> str:
    length = length or max(1, (value.bit_length() + 7) // 8)
    return _b64url(value.to_bytes(length, "big"))


def _type(key_type: KeyType | str) -> KeyType:
    try:
        return KeyType(key_type)
    except ValueError:
        raise InvalidError(f"unknown key type {key_type!r}") from None


def export_key(
    key_type: KeyType | str,
    material: bytes,
    *,
    fmt: str,
    public: bool,
    kid: str | None = None,
) -> bytes:
    """Encode a key (``public=True``: its public half) in ``fmt``; JWK/JWKS are UTF-8 JSON."""
    t = _type(key_type)
    if fmt not in FORMATS:
        raise InvalidError(f"unknown export format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    s = spec(t)
    if s.family in _PQ_FAMILIES:
        return _export_pq(t, material, fmt, public, kid)
    if s.symmetric:
        return _export_symmetric(t, material, fmt, public, kid)
    if fmt in ("jwk", "jwks"):
        jwk = to_jwk(t, material, public=public, kid=kid)
        doc = {"keys": [jwk]} if fmt == "jwks" else jwk
        return json.dumps(doc, sort_keys=True).encode()
    return _export_classic(t, material, fmt, public)


def _export_pq(t: KeyType, material: bytes, fmt: str, public: bool, kid: str | None) -> bytes:
    from ekm.crypto import pq

    inner = "jwk" if fmt == "jwks" else fmt
    out = pq.export_public(t, material, inner) if public else pq.export_private(t, material, inner)
    if inner == "jwk":
        doc = json.loads(out)
        if kid is not None:
            doc["kid"] = kid
        out = json.dumps({"keys": [doc]} if fmt == "jwks" else doc, sort_keys=True).encode()
    return out


def _export_symmetric(
    t: KeyType, material: bytes, fmt: str, public: bool, kid: str | None
) -> bytes:
    if public:
        raise InvalidError(
            f"a {t.value} key is symmetric and has no public part; export it with --reveal"
        )
    if fmt == "raw":
        return bytes(material)
    if fmt == "base64":
        return base64.b64encode(material)
    if fmt == "jwk":
        jwk: dict[str, Any] = {"kty": "oct", "k": _b64url(material)}
        jwk["use"] = "enc" if spec(t).family == "aead" else "sig"
        if t in _OCT_ALG:
            jwk["alg"] = _OCT_ALG[t]
        if kid is not None:
            jwk["kid"] = kid
        return json.dumps(jwk, sort_keys=True).encode()
    raise InvalidError(
        f"a {t.value} key exports as raw, base64 or jwk, not {fmt} (PEM/DER hold key pairs)"
    )


def _export_classic(t: KeyType, material: bytes, fmt: str, public: bool) -> bytes:
    from cryptography.hazmat.primitives import serialization as ser

    from ekm.crypto.material import private_key

    priv = private_key(t, material)
    okp = t in (KeyType.ED25519, KeyType.X25519)
    if fmt == "raw":
        if not okp:
            raise InvalidError(f"a {t.value} key has no raw form; use pem, der or jwk")
        if public:
            return priv.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
        return priv.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())
    if fmt == "base64":
        raise InvalidError(f"a {t.value} key exports as pem, der, jwk or jwks, not base64")
    enc = ser.Encoding.PEM if fmt == "pem" else ser.Encoding.DER
    if public:
        return priv.public_key().public_bytes(enc, ser.PublicFormat.SubjectPublicKeyInfo)
    return priv.private_bytes(enc, ser.PrivateFormat.PKCS8, ser.NoEncryption())


def to_jwk(
    key_type: KeyType | str, material: bytes, *, public: bool = True, kid: str | None = None
) -> dict[str, Any]:
    """The JWK (dict) of an RSA, EC, Ed25519 or X25519 key, with ``alg`` and ``use``."""
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from ekm.crypto.material import private_key

    t = _type(key_type)
    s = spec(t)
    if s.symmetric or s.family in _PQ_FAMILIES:
        raise InvalidError(f"a {t.value} key has no classic public JWK; use export_key")
    priv = private_key(t, material)
    jwk = _public_jwk(t, priv.public_key())
    if not public:
        if isinstance(priv, rsa.RSAPrivateKey):
            pn = priv.private_numbers()
            jwk |= {
                "d": _int_b64(pn.d),
                "p": _int_b64(pn.p),
                "q": _int_b64(pn.q),
                "dp": _int_b64(pn.dmp1),
                "dq": _int_b64(pn.dmq1),
                "qi": _int_b64(pn.iqmp),
            }
        elif isinstance(priv, ec.EllipticCurvePrivateKey):
            size = (priv.curve.key_size + 7) // 8
            jwk["d"] = _int_b64(priv.private_numbers().private_value, size)
        else:
            raw = priv.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())
            jwk["d"] = _b64url(raw)
    if kid is not None:
        jwk["kid"] = kid
    return jwk


def _public_jwk(t: KeyType, pub: Any) -> dict[str, Any]:
    """The public JWK members (``kty``, ``n``/``e``, ``crv``/``x``/``y``) plus ``alg``/``use``."""
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    jwk: dict[str, Any]
    if isinstance(pub, rsa.RSAPublicKey):
        pn = pub.public_numbers()
        jwk = {"kty": "RSA", "n": _int_b64(pn.n), "e": _int_b64(pn.e)}
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        size = (pub.curve.key_size + 7) // 8
        nums = pub.public_numbers()
        crv = "P-256" if t is KeyType.EC_P256 else "P-384"
        jwk = {"kty": "EC", "crv": crv, "x": _int_b64(nums.x, size), "y": _int_b64(nums.y, size)}
    else:
        raw_pub = pub.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519" if t is KeyType.ED25519 else "X25519"}
        jwk["x"] = _b64url(raw_pub)
    if t is KeyType.X25519:
        jwk |= {"alg": "ECDH-ES", "use": "enc"}
    else:
        jwk |= {"alg": spec(t).jose_alg, "use": "sig"}
    return jwk


#: What a SubjectPublicKeyInfo of each classic asymmetric type must hold: (class name, size).
_SPKI_SHAPE = {
    KeyType.RSA_2048: ("RSAPublicKey", 2048),
    KeyType.RSA_3072: ("RSAPublicKey", 3072),
    KeyType.RSA_4096: ("RSAPublicKey", 4096),
    KeyType.EC_P256: ("EllipticCurvePublicKey", "secp256r1"),
    KeyType.EC_P384: ("EllipticCurvePublicKey", "secp384r1"),
    KeyType.ED25519: ("Ed25519PublicKey", None),
    KeyType.X25519: ("X25519PublicKey", None),
}


def _spki_matches(t: KeyType, pub: Any) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

    kind, size = _SPKI_SHAPE[t]
    classes = {
        "RSAPublicKey": rsa.RSAPublicKey,
        "EllipticCurvePublicKey": ec.EllipticCurvePublicKey,
        "Ed25519PublicKey": ed25519.Ed25519PublicKey,
        "X25519PublicKey": x25519.X25519PublicKey,
    }
    if not isinstance(pub, classes[kind]):
        return False
    if isinstance(pub, rsa.RSAPublicKey):
        return pub.key_size == size
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return pub.curve.name == size
    return True


def export_public_der(
    key_type: KeyType | str, der: bytes, *, fmt: str, kid: str | None = None
) -> bytes:
    """Encode a public key given as DER SubjectPublicKeyInfo (an HSM's public half) in ``fmt``.

    HSM-held keys have no private material in ekm, only the public half the token reports; this
    re-encodes it exactly as :func:`export_key` would encode the public half of file material,
    so an HSM key and a file key of one type export identically. The DER is treated as hostile:
    it must parse and must be a key of ``key_type`` (size and curve included).
    """
    from cryptography.hazmat.primitives import serialization as ser

    t = _type(key_type)
    if fmt not in FORMATS:
        raise InvalidError(f"unknown export format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    if t not in _SPKI_SHAPE:
        raise InvalidError(f"a {t.value} key has no classic public key to export from DER")
    try:
        pub = ser.load_der_public_key(bytes(der))
    except (ValueError, TypeError):
        raise InvalidError(
            f"the public key given for a {t.value} key is not DER SubjectPublicKeyInfo"
        ) from None
    if not _spki_matches(t, pub):
        raise InvalidError(f"the public key given is not a {t.value} key")
    if fmt in ("jwk", "jwks"):
        jwk = _public_jwk(t, pub)
        if kid is not None:
            jwk["kid"] = kid
        return json.dumps({"keys": [jwk]} if fmt == "jwks" else jwk, sort_keys=True).encode()
    if fmt == "raw":
        if t not in (KeyType.ED25519, KeyType.X25519):
            raise InvalidError(f"a {t.value} key has no raw form; use pem, der or jwk")
        return pub.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    if fmt == "base64":
        raise InvalidError(f"a {t.value} key exports as pem, der, jwk or jwks, not base64")
    enc = ser.Encoding.PEM if fmt == "pem" else ser.Encoding.DER
    return pub.public_bytes(enc, ser.PublicFormat.SubjectPublicKeyInfo)


def jwks(entries: list[tuple[str, KeyType | str, bytes]]) -> dict[str, Any]:
    """A JWK Set of the *public* halves of ``(kid, key_type, material)`` entries.

    Symmetric keys are refused: a JWKS is published, and a symmetric key is never public.
    """
    keys = []
    for kid, key_type, material in entries:
        t = _type(key_type)
        if spec(t).symmetric:
            raise InvalidError(
                f"key {kid} is symmetric ({t.value}) and cannot go in a published JWKS"
            )
        keys.append(json.loads(export_key(t, material, fmt="jwk", public=True, kid=kid)))
    return {"keys": keys}
