"""Post-quantum and hybrid key material: seeds, key objects, public/private exports.

Material layouts (what the keystore encrypts at rest; all are seeds, so a key is small and the
expanded form can never drift from the seed):

===================== ======= =============================================================
type                  bytes   layout
===================== ======= =============================================================
ml-kem-768/1024       64      FIPS 203 ``d || z`` (KeyGen_internal seed)
ml-dsa-44/65/87       32      FIPS 204 ``xi`` (KeyGen_internal seed)
x25519-ml-kem-768     32      the X-Wing seed (draft-connolly-cfrg-xwing-kem-10, section 5.2)
ed25519-ml-dsa-65     64      ``ML-DSA-65 seed (32) || Ed25519 private key (32)``: the order of
                              draft-ietf-lamps-pq-composite-sigs (ML-DSA first, then the
                              traditional key)
===================== ======= =============================================================

Public encodings:

* ML-KEM / ML-DSA: SPKI (PEM/DER) with the NIST OIDs (RFC 9881 / RFC 9935 lineage, as written
  by cryptography), raw FIPS bytes, and JWK with the ``AKP`` ("Algorithm Key Pair") key type of
  draft-ietf-cose-dilithium: ``{"kty": "AKP", "alg": "ML-DSA-65", "pub": b64url}``. No JOSE
  draft for ML-KEM keys has reached RFC; the AKP type is algorithm-generic (alg, pub, priv),
  so ekm writes the same shape with ``"alg": "ML-KEM-768"`` and says so in FORMAT-recipients.md.
* X-Wing: SPKI with ``id-XWing`` 1.3.6.1.4.1.62253.25722 exactly as the X-Wing draft's section
  5.8 (its Appendix D example is a test vector here), raw 1216 bytes, AKP JWK ``"alg": "X-Wing"``.
* ed25519-ml-dsa-65: raw ``mldsaPK || ed25519PK`` and AKP JWK ``"alg": "ML-DSA-65-Ed25519"``
  only. The composite draft's OIDs moved between revisions and no deployed parser (OpenSSL,
  cryptography) reads them, so a PEM ekm wrote today could silently mean something else
  tomorrow; exporting it is refused with a message that names the formats that work.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from typing import Any

from ekm.crypto.keytypes import KeyType
from ekm.errors import IntegrityError, InvalidError

PUBLIC_FORMATS = ("pem", "der", "jwk", "raw")

SEED_LEN: dict[KeyType, int] = {
    KeyType.ML_KEM_768: 64,
    KeyType.ML_KEM_1024: 64,
    KeyType.ML_DSA_44: 32,
    KeyType.ML_DSA_65: 32,
    KeyType.ML_DSA_87: 32,
    KeyType.HYBRID_X25519_ML_KEM_768: 32,
    KeyType.HYBRID_ED25519_ML_DSA_65: 64,
}

# JOSE "alg" names written in AKP JWKs.
JOSE_ALG: dict[KeyType, str] = {
    KeyType.ML_KEM_768: "ML-KEM-768",
    KeyType.ML_KEM_1024: "ML-KEM-1024",
    KeyType.ML_DSA_44: "ML-DSA-44",
    KeyType.ML_DSA_65: "ML-DSA-65",
    KeyType.ML_DSA_87: "ML-DSA-87",
    KeyType.HYBRID_X25519_ML_KEM_768: "X-Wing",
    KeyType.HYBRID_ED25519_ML_DSA_65: "ML-DSA-65-Ed25519",
}

# DER of the X-Wing OID 1.3.6.1.4.1.62253.25722 (draft-connolly-cfrg-xwing-kem-10, 5.8).
_XWING_OID_DER = bytes.fromhex("060b2b0601040183e62d81c87a")

#: ``[pqc] algorithms`` spellings -> FIPS 203/204 names. The round-3 CRYSTALS names are the
#: old system's; a bare "CRYSTALS-Kyber"/"CRYSTALS-Dilithium" meant its default parameter set
#: (Kyber-768, Dilithium3), which became ML-KEM-768 and ML-DSA-65.
PQC_ALGORITHMS: dict[str, str] = {
    **{n.lower(): n for n in ("ML-KEM-768", "ML-KEM-1024", "ML-DSA-44", "ML-DSA-65", "ML-DSA-87")},
    "crystals-kyber": "ML-KEM-768",
    "crystals-kyber-768": "ML-KEM-768",
    "crystals-kyber-1024": "ML-KEM-1024",
    "kyber768": "ML-KEM-768",
    "kyber1024": "ML-KEM-1024",
    "crystals-dilithium": "ML-DSA-65",
    "crystals-dilithium2": "ML-DSA-44",
    "crystals-dilithium3": "ML-DSA-65",
    "crystals-dilithium5": "ML-DSA-87",
    "dilithium2": "ML-DSA-44",
    "dilithium3": "ML-DSA-65",
    "dilithium5": "ML-DSA-87",
}


def check_algorithm_names(value: Any) -> list[str]:
    """The ``[pqc] algorithms`` checker: FIPS names (aliases mapped), ValueError otherwise.

    The ValueError text is the "expected ..." part of the ConfigError that names the file and
    the key (ekm/config.py), so it names the offending entry and the accepted spellings.
    """
    accepted = "a list of ML-KEM-768, ML-KEM-1024, ML-DSA-44, ML-DSA-65, ML-DSA-87 (or the "
    accepted += "CRYSTALS-Kyber / CRYSTALS-Dilithium names)"
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ValueError(accepted)
    out: list[str] = []
    for name in value:
        fips = PQC_ALGORITHMS.get(name.strip().lower())
        if fips is None:
            shown = name if len(name) <= 40 else name[:37] + "..."
            raise ValueError(f"{accepted}; {shown!r} is not one")
        if fips not in out:
            out.append(fips)
    return out


MLDSA65_PK_LEN = 1952
MLDSA65_SIG_LEN = 3309
ED25519_PK_LEN = 32
ED25519_SIG_LEN = 64


def _type(key_type: KeyType | str) -> KeyType:
    t = KeyType(key_type)
    if t not in SEED_LEN:
        raise InvalidError(f"{t.value} is not a post-quantum or hybrid key type")
    return t


def generate_seed(key_type: KeyType | str) -> bytes:
    """Fresh material for a PQ or hybrid type: the seed(s) in the layout of the module doc."""
    return os.urandom(SEED_LEN[_type(key_type)])


# --- hybrid key objects -------------------------------------------------------------------


@dataclass(frozen=True)
class XWingPublicKey:
    """An X-Wing encapsulation key (1216 bytes: ML-KEM-768 key || X25519 key)."""

    raw: bytes

    def public_bytes_raw(self) -> bytes:
        return self.raw

    def encapsulate(self) -> tuple[bytes, bytes]:
        """(shared secret, ciphertext), as :func:`ekm.crypto.xwing.encapsulate`."""
        from ekm.crypto import xwing

        return xwing.encapsulate(self.raw)


class XWingPrivateKey:
    """An X-Wing decapsulation key held as its 32-byte seed."""

    def __init__(self, seed: bytes) -> None:
        from ekm.crypto import xwing

        self._seed = bytes(seed)
        # Expand once: decapsulation then costs one ML-KEM decaps and one X25519 exchange.
        self._sk_m, self._sk_x, pk_m, self._pk_x = xwing._expand(self._seed)
        self._pk = pk_m + self._pk_x

    def public_key(self) -> XWingPublicKey:
        return XWingPublicKey(self._pk)

    def private_bytes_raw(self) -> bytes:
        return self._seed

    def decapsulate(self, ct: bytes) -> bytes:
        from ekm.crypto import xwing

        return xwing.decapsulate_expanded(self._sk_m, self._sk_x, self._pk_x, ct)

    def __repr__(self) -> str:  # never show the seed
        return "<XWingPrivateKey>"


@dataclass(frozen=True)
class CompositeSigPublicKey:
    """An ML-DSA-65 + Ed25519 composite public key: ``mldsaPK (1952) || ed25519PK (32)``."""

    mldsa: Any
    ed25519: Any

    def public_bytes_raw(self) -> bytes:
        return self.mldsa.public_bytes_raw() + self.ed25519.public_bytes_raw()

    @classmethod
    def from_public_bytes(cls, raw: bytes) -> CompositeSigPublicKey:
        """Parse the raw composite encoding; InvalidError if it is not one."""
        from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

        if len(raw) != MLDSA65_PK_LEN + ED25519_PK_LEN:
            raise InvalidError(
                f"an ed25519-ml-dsa-65 public key is {MLDSA65_PK_LEN + ED25519_PK_LEN} bytes, "
                f"got {len(raw)}"
            )
        raw = bytes(raw)
        try:
            m = mldsa.MLDSA65PublicKey.from_public_bytes(raw[:MLDSA65_PK_LEN])
            e = ed25519.Ed25519PublicKey.from_public_bytes(raw[MLDSA65_PK_LEN:])
        except ValueError:
            raise InvalidError("not a valid ed25519-ml-dsa-65 public key") from None
        return cls(m, e)


class CompositeSigPrivateKey:
    """An ML-DSA-65 + Ed25519 composite signing key (both halves always used together)."""

    def __init__(self, material: bytes) -> None:
        from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

        self.mldsa = mldsa.MLDSA65PrivateKey.from_seed_bytes(bytes(material[:32]))
        self.ed25519 = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(material[32:]))

    def public_key(self) -> CompositeSigPublicKey:
        return CompositeSigPublicKey(self.mldsa.public_key(), self.ed25519.public_key())

    def private_bytes_raw(self) -> bytes:
        from cryptography.hazmat.primitives import serialization as ser

        ed = self.ed25519.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())
        return self.mldsa.private_bytes_raw() + ed

    def __repr__(self) -> str:  # never show the seeds
        return "<CompositeSigPrivateKey ed25519-ml-dsa-65>"


# --- loading --------------------------------------------------------------------------------


def private_key(key_type: KeyType | str, material: bytes) -> Any:
    """The private-key object of PQ/hybrid ``material``; IntegrityError if it has the wrong shape.

    Pure types give cryptography objects (``MLKEM768PrivateKey``, ``MLDSA65PrivateKey``, ...);
    hybrids give :class:`XWingPrivateKey` / :class:`CompositeSigPrivateKey`. All have
    ``.public_key()``, and every public key has ``.public_bytes_raw()``.
    """
    t = _type(key_type)
    if len(material) != SEED_LEN[t]:
        raise IntegrityError(f"stored material for a {t.value} key has the wrong length")
    try:
        return _load(t, bytes(material))
    except ValueError:
        raise IntegrityError(f"stored material is not a valid {t.value} private key") from None


def _load(t: KeyType, material: bytes) -> Any:
    from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem

    classes: dict[KeyType, Any] = {
        KeyType.ML_KEM_768: mlkem.MLKEM768PrivateKey,
        KeyType.ML_KEM_1024: mlkem.MLKEM1024PrivateKey,
        KeyType.ML_DSA_44: mldsa.MLDSA44PrivateKey,
        KeyType.ML_DSA_65: mldsa.MLDSA65PrivateKey,
        KeyType.ML_DSA_87: mldsa.MLDSA87PrivateKey,
    }
    if t in classes:
        return classes[t].from_seed_bytes(material)
    if t is KeyType.HYBRID_X25519_ML_KEM_768:
        return XWingPrivateKey(material)
    return CompositeSigPrivateKey(material)


def public_bytes(key_type: KeyType | str, material: bytes) -> bytes:
    """The raw public key (FIPS encoding; hybrids: the concatenations of the module doc)."""
    return private_key(key_type, material).public_key().public_bytes_raw()


def load_public(key_type: KeyType | str, raw: bytes) -> Any:
    """A public-key object from raw bytes; InvalidError if ``raw`` is not one of ``key_type``."""
    from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem

    t = _type(key_type)
    if t is KeyType.HYBRID_X25519_ML_KEM_768:
        from ekm.crypto import xwing

        xwing._load_pk(raw)
        return XWingPublicKey(bytes(raw))
    if t is KeyType.HYBRID_ED25519_ML_DSA_65:
        return CompositeSigPublicKey.from_public_bytes(raw)
    classes: dict[KeyType, Any] = {
        KeyType.ML_KEM_768: mlkem.MLKEM768PublicKey,
        KeyType.ML_KEM_1024: mlkem.MLKEM1024PublicKey,
        KeyType.ML_DSA_44: mldsa.MLDSA44PublicKey,
        KeyType.ML_DSA_65: mldsa.MLDSA65PublicKey,
        KeyType.ML_DSA_87: mldsa.MLDSA87PublicKey,
    }
    try:
        return classes[t].from_public_bytes(bytes(raw))
    except ValueError:
        raise InvalidError(f"not a valid {t.value} public key") from None


# --- export ---------------------------------------------------------------------------------


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(body)) + body


def _pem(label: str, der: bytes) -> bytes:
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return (
        "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]) + "\n"
    ).encode()


def _jwk(t: KeyType, pub: bytes, priv: bytes | None = None) -> bytes:
    doc = {"kty": "AKP", "alg": JOSE_ALG[t], "pub": _b64u(pub)}
    if priv is not None:
        doc["priv"] = _b64u(priv)
    return json.dumps(doc, sort_keys=True).encode()


def _check_fmt(fmt: str) -> str:
    f = str(fmt).lower()
    if f not in PUBLIC_FORMATS:
        raise InvalidError(
            f"unknown key format {fmt!r}; expected one of: {', '.join(PUBLIC_FORMATS)}"
        )
    return f


def _refuse_composite_asn1(t: KeyType, f: str) -> None:
    if t is KeyType.HYBRID_ED25519_ML_DSA_65 and f in ("pem", "der"):
        raise InvalidError(
            f"{t.value} keys have no stable PEM/DER encoding yet (the composite-signature OIDs "
            "are not final); export with --format raw or --format jwk"
        )


def export_public(key_type: KeyType | str, material: bytes, fmt: str) -> bytes:
    """The public key of ``material`` as ``fmt`` ("pem" | "der" | "jwk" | "raw")."""
    t = _type(key_type)
    f = _check_fmt(fmt)
    _refuse_composite_asn1(t, f)
    pub = private_key(t, material).public_key()
    raw = pub.public_bytes_raw()
    if f == "raw":
        return raw
    if f == "jwk":
        return _jwk(t, raw)
    if t is KeyType.HYBRID_X25519_ML_KEM_768:
        spki = _der(0x30, _der(0x30, _XWING_OID_DER) + _der(0x03, b"\x00" + raw))
        return spki if f == "der" else _pem("PUBLIC KEY", spki)
    from cryptography.hazmat.primitives import serialization as ser

    enc = ser.Encoding.DER if f == "der" else ser.Encoding.PEM
    return pub.public_bytes(enc, ser.PublicFormat.SubjectPublicKeyInfo)


def export_private(key_type: KeyType | str, material: bytes, fmt: str) -> bytes:
    """The private key as ``fmt``: PKCS#8 seed-only form (pem/der), the seed (raw), AKP JWK.

    The caller (``ekm keys export --reveal``) decides whether a secret may leave the store;
    this function only encodes.
    """
    t = _type(key_type)
    f = _check_fmt(fmt)
    _refuse_composite_asn1(t, f)
    key = private_key(t, material)
    seed = bytes(material)
    if f == "raw":
        return seed
    if f == "jwk":
        return _jwk(t, key.public_key().public_bytes_raw(), seed)
    if t is KeyType.HYBRID_X25519_ML_KEM_768:
        # OneAsymmetricKey v0, privateKey OCTET STRING = the raw 32-byte seed (draft 5.8.2).
        p8 = _der(0x30, b"\x02\x01\x00" + _der(0x30, _XWING_OID_DER) + _der(0x04, seed))
        return p8 if f == "der" else _pem("PRIVATE KEY", p8)
    from cryptography.hazmat.primitives import serialization as ser

    enc = ser.Encoding.DER if f == "der" else ser.Encoding.PEM
    return key.private_bytes(enc, ser.PrivateFormat.PKCS8, ser.NoEncryption())
