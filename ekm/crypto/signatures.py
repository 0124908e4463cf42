"""Detached signatures for every signing key type, in one documented format.

A signature document (docs/FORMAT-recipients.md, "Detached signatures") is::

    doc    = header || u32be(len(sig)) || sig
    header = "ekmS" || 0x01 (format version) || alg (1) || len(name) (1) || name (UTF-8)
             || u32be(key version)

The data is never signed directly: it is hashed once with SHA-512 (so a file of any size is
signed in one streaming pass, :func:`prehash`), and a fixed-size *message representative*
that binds the header (key name, version, algorithm) to that digest is signed:

* ed25519-ml-dsa-65 follows draft-ietf-lamps-pq-composite-sigs (wire format of -15 to -19):
  ``M' = "CompositeAlgorithmSignatures2025" || "COMPSIG-MLDSA65-Ed25519-SHA512" || len(ctx)
  || ctx || SHA-512(data)`` with ``ctx = header``; ML-DSA-65 signs ``M'`` with its FIPS 204
  context set to the label, Ed25519 signs ``M'``; ``sig = mldsaSig (3309) || ed25519Sig (64)``.
  Both halves must verify, so the signature holds while either algorithm does.
* every other type signs ``R = "ekm-detached-signature-v1" || 0x00 || len(header) || header
  || SHA-512(data)``: Ed25519 (pure), ML-DSA (pure, empty context), ECDSA P-256/SHA-256,
  ECDSA P-384/SHA-384, RSA-PSS/SHA-256 (MGF1-SHA-256, 32-byte salt).

Binding the header means a signature cannot be re-labelled as another key's, version's or
algorithm's. Every verification failure raises the same IntegrityError.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from ekm.crypto.keytypes import KeyType, spec
from ekm.errors import EkmError, IntegrityError, InvalidError

MAGIC = b"ekmS"
VERSION = 1
MAX_DOC = 16 * 1024
MAX_NAME = 200  # keeps the composite ctx (= header) within ML-DSA's 255-byte limit
DOMAIN = b"ekm-detached-signature-v1\x00"
COMPOSITE_PREFIX = b"CompositeAlgorithmSignatures2025"
COMPOSITE_LABEL = b"COMPSIG-MLDSA65-Ed25519-SHA512"
COMPOSITE_DRAFT = "draft-ietf-lamps-pq-composite-sigs (wire format of -15..-19)"

ALG_NAMES = {
    1: "ed25519",
    2: "ecdsa-p256-sha256",
    3: "ecdsa-p384-sha384",
    4: "rsa-pss-sha256",
    5: "ml-dsa-44",
    6: "ml-dsa-65",
    7: "ml-dsa-87",
    8: "ml-dsa-65-ed25519-sha512",
}
_ALG_OF: dict[KeyType, int] = {
    KeyType.ED25519: 1,
    KeyType.EC_P256: 2,
    KeyType.EC_P384: 3,
    KeyType.RSA_2048: 4,
    KeyType.RSA_3072: 4,
    KeyType.RSA_4096: 4,
    KeyType.ML_DSA_44: 5,
    KeyType.ML_DSA_65: 6,
    KeyType.ML_DSA_87: 7,
    KeyType.HYBRID_ED25519_ML_DSA_65: 8,
}
_MLDSA65_SIG = 3309
_ED25519_SIG = 64

VERIFY_FAILED = (
    "signature verification failed: the signature does not match the data or the key; "
    "do not trust the data"
)

ResolvePublic = Callable[[str, int], tuple[Any, Any]]


@dataclass(frozen=True)
class SignatureHeader:
    """The parsed header of a signature document (not yet authentic)."""

    key_name: str
    version: int
    algorithm: str
    alg_id: int
    header: bytes
    signature: bytes


@dataclass(frozen=True)
class SignatureInfo:
    """What a successful :func:`verify` vouches for."""

    key_name: str
    version: int
    key_type: KeyType
    algorithm: str


def prehash(stream: BinaryIO, chunk: int = 1 << 20) -> bytes:
    """SHA-512 of a binary stream, read in chunks (what :func:`sign_digest` signs)."""
    h = hashlib.sha512()
    while block := stream.read(chunk):
        h.update(block)
    return h.digest()


def _alg(key_type: KeyType | str) -> tuple[KeyType, int]:
    t = KeyType(key_type)
    if t not in _ALG_OF:
        raise InvalidError(
            f"{t.value} keys cannot make detached signatures; use an ed25519, ec, rsa, "
            "ml-dsa or ed25519-ml-dsa-65 key"
        )
    return t, _ALG_OF[t]


def _header(alg_id: int, key_name: str, version: int) -> bytes:
    name = key_name.encode("utf-8")
    if not 1 <= len(name) <= MAX_NAME:
        raise InvalidError(f"a key name must be 1 to {MAX_NAME} bytes of UTF-8 to sign with it")
    if not 1 <= version <= 0xFFFFFFFF:
        raise InvalidError(f"key version {version} is out of range (1 .. 2^32-1)")
    return MAGIC + bytes([VERSION, alg_id, len(name)]) + name + struct.pack(">I", version)


def _representative(alg_id: int, header: bytes, digest: bytes) -> bytes:
    if alg_id == 8:
        return COMPOSITE_PREFIX + COMPOSITE_LABEL + bytes([len(header)]) + header + digest
    return DOMAIN + bytes([len(header)]) + header + digest


def _check_digest(digest: bytes) -> bytes:
    if len(digest) != 64:
        raise InvalidError(f"a SHA-512 prehash is 64 bytes, got {len(digest)}")
    return bytes(digest)


def sign(
    key_type: KeyType | str, material: bytes, data: bytes, *, key_name: str, version: int
) -> bytes:
    """A detached signature document over ``data`` by the key version ``key_name`` v``version``."""
    return sign_digest(
        key_type, material, hashlib.sha512(data).digest(), key_name=key_name, version=version
    )


def sign_digest(
    key_type: KeyType | str, material: bytes, digest: bytes, *, key_name: str, version: int
) -> bytes:
    """As :func:`sign`, given the SHA-512 ``digest`` of the data (for streamed files)."""
    from ekm.crypto import material as mat

    t, _ = _alg(key_type)
    return sign_with_key(
        t, mat.private_key(t, material), digest, key_name=key_name, version=version
    )


def sign_with_key(
    key_type: KeyType | str, key: Any, digest: bytes, *, key_name: str, version: int
) -> bytes:
    """As :func:`sign_digest`, given the loaded private-key object of ``key_type``.

    For callers that sign many documents with one key (KeyManager caches the object): loading
    an ML-DSA key expands its seed, which costs about as much as a signature.
    """
    t, alg_id = _alg(key_type)
    header = _header(alg_id, key_name, version)
    rep = _representative(alg_id, header, _check_digest(digest))
    sig = _raw_sign(t, key, rep)
    return header + struct.pack(">I", len(sig)) + sig


def algorithm_of(key_type: KeyType | str) -> str:
    """The algorithm name a document made by ``key_type`` carries (e.g. ``ml-dsa-65``)."""
    return ALG_NAMES[_alg(key_type)[1]]


def _raw_sign(t: KeyType, key: Any, rep: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding

    fam = spec(t).family
    if t is KeyType.HYBRID_ED25519_ML_DSA_65:
        return key.mldsa.sign(rep, COMPOSITE_LABEL) + key.ed25519.sign(rep)
    if fam in ("eddsa", "ml-dsa"):
        return key.sign(rep)
    if fam == "ec":
        h = hashes.SHA256() if t is KeyType.EC_P256 else hashes.SHA384()
        return key.sign(rep, ec.ECDSA(h))
    return key.sign(rep, _pss(padding), hashes.SHA256())


def _pss(padding: Any) -> Any:
    from cryptography.hazmat.primitives import hashes

    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


def parse(sig_doc: bytes) -> SignatureHeader:
    """Split a signature document; InvalidError (exit 3) if it is not a well-formed one."""
    b = bytes(sig_doc)
    bad = InvalidError("not an ekm detached signature (bad magic, version or length); re-create it")
    if len(b) > MAX_DOC or len(b) < 7 or b[:4] != MAGIC or b[4] != VERSION:
        raise bad
    alg_id, name_len = b[5], b[6]
    end = 7 + name_len + 4
    if alg_id not in ALG_NAMES or not 1 <= name_len <= MAX_NAME or len(b) < end + 4:
        raise bad
    try:
        name = b[7 : 7 + name_len].decode("utf-8")
    except UnicodeDecodeError:
        raise bad from None
    (version,) = struct.unpack(">I", b[end - 4 : end])
    (sig_len,) = struct.unpack(">I", b[end : end + 4])
    if version == 0 or len(b) != end + 4 + sig_len or sig_len == 0:
        raise bad
    return SignatureHeader(name, version, ALG_NAMES[alg_id], alg_id, b[:end], b[end + 4 :])


def verify(sig_doc: bytes, data: bytes, resolve_public: ResolvePublic) -> SignatureInfo:
    """Check ``sig_doc`` over ``data``; IntegrityError (one message) on any failure.

    ``resolve_public(name, version)`` returns ``(key_type, public)`` where ``public`` is a
    public-key object or its bytes (raw for PQ/hybrid/Ed25519, SPKI DER or PEM for EC/RSA).
    Its own errors (an unknown key: NotFoundError) pass through unchanged.
    """
    return verify_digest(sig_doc, hashlib.sha512(data).digest(), resolve_public)


def verify_digest(sig_doc: bytes, digest: bytes, resolve_public: ResolvePublic) -> SignatureInfo:
    """As :func:`verify`, given the SHA-512 ``digest`` of the data."""
    digest = _check_digest(digest)
    try:
        h = parse(sig_doc)
    except InvalidError:
        raise IntegrityError(VERIFY_FAILED) from None
    key_type, public = resolve_public(h.key_name, h.version)
    try:
        t = KeyType(key_type)
    except ValueError:
        raise IntegrityError(VERIFY_FAILED) from None
    if _ALG_OF.get(t) != h.alg_id:
        raise IntegrityError(VERIFY_FAILED)
    rep = _representative(h.alg_id, h.header, digest)
    try:
        ok = _raw_verify(t, _public_obj(t, public), rep, h.signature)
    except (ValueError, TypeError, EkmError):
        ok = False
    if not ok:
        raise IntegrityError(VERIFY_FAILED)
    return SignatureInfo(h.key_name, h.version, t, h.algorithm)


def _public_obj(t: KeyType, public: Any) -> Any:
    if not isinstance(public, (bytes, bytearray, memoryview)):
        return public
    raw = bytes(public)
    if spec(t).post_quantum:
        from ekm.crypto import pq

        return pq.load_public(t, raw)
    from cryptography.hazmat.primitives import serialization as ser

    if t is KeyType.ED25519 and len(raw) == 32:
        from cryptography.hazmat.primitives.asymmetric import ed25519

        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    if raw.lstrip().startswith(b"-----BEGIN"):
        return ser.load_pem_public_key(raw)
    return ser.load_der_public_key(raw)


def _raw_verify(t: KeyType, pub: Any, rep: bytes, sig: bytes) -> bool:
    """True iff ``sig`` verifies; checks the key object's kind and size against ``t``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa

    from ekm.crypto import pq

    fam = spec(t).family
    try:
        if t is KeyType.HYBRID_ED25519_ML_DSA_65:
            if not isinstance(pub, pq.CompositeSigPublicKey):
                return False
            if len(sig) != _MLDSA65_SIG + _ED25519_SIG:
                return False
            # Both halves are checked; either failing fails the whole (no short-cut leaks
            # which one).
            m_ok = _try(pub.mldsa.verify, sig[:_MLDSA65_SIG], rep, COMPOSITE_LABEL)
            e_ok = _try(pub.ed25519.verify, sig[_MLDSA65_SIG:], rep)
            return m_ok and e_ok
        kinds = {
            "eddsa": ed25519.Ed25519PublicKey,
            "ec": ec.EllipticCurvePublicKey,
            "rsa": rsa.RSAPublicKey,
            "ml-dsa": {
                KeyType.ML_DSA_44: mldsa.MLDSA44PublicKey,
                KeyType.ML_DSA_65: mldsa.MLDSA65PublicKey,
                KeyType.ML_DSA_87: mldsa.MLDSA87PublicKey,
            }.get(t),
        }
        kind = kinds.get(fam)
        if kind is None or not isinstance(pub, kind):
            return False
        if fam == "ec":
            if pub.curve.key_size != spec(t).key_bits:
                return False
            h = hashes.SHA256() if t is KeyType.EC_P256 else hashes.SHA384()
            pub.verify(sig, rep, ec.ECDSA(h))
        elif fam == "rsa":
            if pub.key_size != spec(t).key_bits:
                return False
            pub.verify(sig, rep, _pss(padding), hashes.SHA256())
        else:
            pub.verify(sig, rep)
    except InvalidSignature:
        return False
    return True


def _try(fn: Callable[..., None], *args: Any) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        fn(*args)
    except (InvalidSignature, ValueError):
        return False
    return True
