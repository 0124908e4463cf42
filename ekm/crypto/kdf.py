"""Key derivation from secrets and password hashing: Argon2id, scrypt, PBKDF2-HMAC-SHA256.

Defaults and floors follow current guidance, and parameters below the floor are refused
(InvalidError) unless the caller passes ``force=True`` (for interoperability with old data):

* Argon2id (RFC 9106 4.): m=64 MiB, t=3, p=4 (second recommended option); the first option
  (m=2 GiB, t=1) is accepted as well.
* scrypt (RFC 7914; OWASP): N=2**17, r=8, p=1.
* PBKDF2-HMAC-SHA256 (OWASP 2023, SP 800-132): 600,000 iterations.

Salts are random, at least 16 bytes (SP 800-132 5.1). Hashes are PHC strings
(``$argon2id$v=19$m=65536,t=3,p=4$salt$hash``, ``$scrypt$ln=17,r=8,p=1$salt$hash``,
``$pbkdf2-sha256$i=600000$salt$hash``; base64 without padding), the Argon2 one in the exact
form argon2-cffi, libsodium and the reference implementation read. A stored hash is hostile
input: its parameters are bounded above too, so a forged hash cannot make verification
allocate gigabytes or run for minutes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
from dataclasses import dataclass, field
from typing import Any

from ekm.errors import InvalidError

KDFS = ("argon2id", "scrypt", "pbkdf2")
DEFAULTS: dict[str, dict[str, int]] = {
    "argon2id": {"memory_cost": 65536, "time_cost": 3, "parallelism": 4},
    "scrypt": {"n": 2**17, "r": 8, "p": 1},
    "pbkdf2": {"iterations": 600_000},
}
# Upper bounds, for hostile stored hashes and typos (not security floors).
_MAX = {
    "memory_cost": 4 * 1024 * 1024,  # 4 GiB in KiB
    "time_cost": 64,
    "parallelism": 64,
    "n": 2**20,
    "r": 32,
    "p": 16,
    "iterations": 20_000_000,
}
MIN_SALT = 16
MIN_LENGTH = 16
MAX_LENGTH = 1024


@dataclass(frozen=True)
class DerivedKey:
    """A derived key with everything needed to derive it again (``phc`` encodes it all)."""

    key: bytes = field(repr=False)
    salt: bytes
    params: dict[str, Any]
    phc: str = field(repr=False)


#: The shortest passphrase ekm accepts for anything it protects with one (the master key, a
#: backup bundle), whichever way it arrives: prompt, environment, file or Python API.
MIN_PASSPHRASE_CHARS = 12


def check_new_passphrase(passphrase: str, what: str = "the passphrase") -> None:
    """Refuse a passphrase that would protect something new but is too short.

    One rule for every source: the prompt used to enforce it while EKM_BACKUP_PASSPHRASE and
    the Python API did not (issue 17 item 5). InvalidError (exit 3) names no secret.
    """
    from ekm.errors import InvalidError

    if not isinstance(passphrase, str) or len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise InvalidError(f"{what} must have at least {MIN_PASSPHRASE_CHARS} characters")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9+/]*", text):
        raise ValueError("not base64")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _check_params(kdf: str, params: dict[str, Any], force: bool) -> dict[str, int]:
    if kdf not in DEFAULTS:
        raise InvalidError(f"unknown KDF {kdf!r}; expected one of: {', '.join(KDFS)}")
    unknown = set(params) - set(DEFAULTS[kdf])
    if unknown:
        raise InvalidError(
            f"unknown {kdf} parameter(s) {', '.join(sorted(unknown))}; "
            f"expected: {', '.join(DEFAULTS[kdf])}"
        )
    merged = {**DEFAULTS[kdf], **params}
    for name, value in merged.items():
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= _MAX[name]:
            raise InvalidError(f"{kdf} {name} must be an integer from 1 to {_MAX[name]}")
    if kdf == "scrypt" and merged["n"] & (merged["n"] - 1):
        raise InvalidError("scrypt n must be a power of two (e.g. 131072 = 2**17)")
    if kdf == "argon2id" and merged["memory_cost"] < 8 * merged["parallelism"]:
        raise InvalidError("argon2id memory_cost must be at least 8 KiB per lane (8 * p)")
    if not force and _weak(kdf, merged):
        raise InvalidError(
            f"{kdf} parameters {_fmt(merged)} are below the recommended minimum "
            f"({_fmt(DEFAULTS[kdf])}); raise them, or pass force=True to accept weaker ones"
        )
    return merged


def _weak(kdf: str, p: dict[str, int]) -> bool:
    if kdf == "argon2id":
        m, t = p["memory_cost"], p["time_cost"]
        return not ((m >= 65536 and t >= 3) or (m >= 2 * 1024 * 1024 and t >= 1))
    if kdf == "scrypt":
        return p["n"] < 2**17 or p["r"] < 8
    return p["iterations"] < 600_000


def _fmt(params: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _raw(kdf: str, secret: bytes, salt: bytes, length: int, p: dict[str, int]) -> bytes:
    if kdf == "argon2id":
        from argon2.low_level import Type, hash_secret_raw

        return hash_secret_raw(
            secret, salt, p["time_cost"], p["memory_cost"], p["parallelism"], length, Type.ID
        )
    if kdf == "scrypt":
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        return Scrypt(salt, length, p["n"], p["r"], p["p"]).derive(secret)
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    return PBKDF2HMAC(hashes.SHA256(), length, salt, p["iterations"]).derive(secret)


def _phc(kdf: str, p: dict[str, int], salt: bytes, key: bytes) -> str:
    if kdf == "argon2id":
        head = f"$argon2id$v=19$m={p['memory_cost']},t={p['time_cost']},p={p['parallelism']}"
    elif kdf == "scrypt":
        head = f"$scrypt$ln={p['n'].bit_length() - 1},r={p['r']},p={p['p']}"
    else:
        head = f"$pbkdf2-sha256$i={p['iterations']}"
    return f"{head}${_b64(salt)}${_b64(key)}"


def _secret_bytes(secret: str | bytes) -> bytes:
    if isinstance(secret, str):
        secret = secret.encode()
    if not isinstance(secret, (bytes, bytearray)) or not secret:
        raise InvalidError("the secret or password is empty; supply a non-empty value")
    return bytes(secret)


def derive_key(
    secret: str | bytes,
    *,
    kdf: str,
    salt: bytes | None = None,
    length: int = 32,
    force: bool = False,
    **params: int,
) -> DerivedKey:
    """Derive ``length`` bytes from ``secret`` with ``kdf``; a random salt unless one is given."""
    p = _check_params(kdf, params, force)
    secret_b = _secret_bytes(secret)
    salt = os.urandom(MIN_SALT) if salt is None else bytes(salt)
    if len(salt) < MIN_SALT and not force:
        raise InvalidError(f"salt must be at least {MIN_SALT} bytes; use a random salt")
    if not isinstance(length, int) or not (MIN_LENGTH if not force else 4) <= length <= MAX_LENGTH:
        raise InvalidError(f"derived key length must be from {MIN_LENGTH} to {MAX_LENGTH} bytes")
    key = _raw(kdf, secret_b, salt, length, p)
    return DerivedKey(key, salt, {"kdf": kdf, **p}, _phc(kdf, p, salt, key))


def hash_password(password: str | bytes, kdf: str = "argon2id", **params: int) -> str:
    """A PHC string for ``password`` (random salt, 32-byte hash, recommended parameters)."""
    return derive_key(password, kdf=kdf, **params).phc


_PHC_RE = re.compile(
    r"^\$([a-z0-9-]{1,32})\$(?:v=(\d{1,3})\$)?"  # algorithm, optional version
    r"([a-z]{1,2}=\d{1,10}(?:,[a-z]{1,2}=\d{1,10})*)"  # parameters
    r"\$([A-Za-z0-9+/]{1,128})\$([A-Za-z0-9+/]{1,1400})$"  # salt, hash
)
_PHC_PARAMS = {
    "argon2id": {"m": "memory_cost", "t": "time_cost", "p": "parallelism"},
    "scrypt": {"ln": "n", "r": "r", "p": "p"},
    "pbkdf2-sha256": {"i": "iterations"},
}


def parse_phc(phc: str) -> tuple[str, dict[str, int], bytes, bytes]:
    """``(kdf, params, salt, hash)`` of a PHC string; InvalidError if ekm cannot read it."""
    bad = InvalidError(
        "stored password hash is not a PHC string ekm can verify "
        "(argon2id v=19, scrypt or pbkdf2-sha256); reset the password"
    )
    m = _PHC_RE.match(phc) if isinstance(phc, str) else None
    if not m or m.group(1) not in _PHC_PARAMS:
        raise bad
    ident, version, fields, salt_b64, hash_b64 = m.groups()
    if (ident == "argon2id") != (version is not None) or (version and version != "19"):
        raise bad
    names = _PHC_PARAMS[ident]
    params: dict[str, int] = {}
    for item in fields.split(","):
        k, v = item.split("=")
        if k not in names or names[k] in params:
            raise bad
        params[names[k]] = int(v)
    if set(params) != set(names.values()):
        raise bad
    if ident == "scrypt":
        if params["n"] > 20:
            raise bad
        params["n"] = 2 ** params["n"]
    try:
        salt, digest = _unb64(salt_b64), _unb64(hash_b64)
    except (ValueError, binascii.Error):
        raise bad from None
    if not 4 <= len(digest) <= MAX_LENGTH:
        raise bad
    kdf = "pbkdf2" if ident == "pbkdf2-sha256" else ident
    try:
        _check_params(kdf, params, force=True)
    except InvalidError:
        raise bad from None
    return kdf, params, salt, digest


def verify_password(password: str | bytes, phc: str) -> bool:
    """True if ``password`` matches ``phc`` (constant-time compare); InvalidError if unreadable.

    Old hashes with weaker parameters still verify (use :func:`needs_rehash` to upgrade them
    at the next login).
    """
    kdf, params, salt, digest = parse_phc(phc)
    try:
        secret = _secret_bytes(password)
    except InvalidError:
        return False
    return hmac.compare_digest(_raw(kdf, secret, salt, len(digest), params), digest)


def needs_rehash(phc: str, kdf: str = "argon2id") -> bool:
    """True if ``phc`` was made with another KDF or parameters below today's minimum."""
    used, params, _salt, _digest = parse_phc(phc)
    return used != kdf or _weak(used, params)
