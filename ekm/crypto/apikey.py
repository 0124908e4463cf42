"""API-key tokens: shown once, recognisable, typo-checked offline, stored only as an HMAC.

Shape: ``ekm_<tag>_<32 random base62><6 base62 CRC32>``, e.g. ``ekm_apimaster_...``.

* The ``ekm_`` prefix and a tag derived from the key name make leaked tokens easy to spot for
  secret scanners and people (GitHub's ``ghp_`` tokens do the same).
* The CRC32 checksum over everything before it lets :func:`check_format` catch a mistyped or
  truncated token without a database lookup. It is *not* a security check.
* 32 base62 characters carry about 190 bits from the OS CSPRNG.
* The server keeps only ``digest(mac_key, token)`` (HMAC-SHA256 under an ``api-auth`` key), so
  a leaked table of digests does not yield tokens; :func:`verify` compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib

from ekm.errors import InvalidError

PREFIX = "ekm_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LEN = 32
CHECK_LEN = 6
_TAG_RE = re.compile(r"^[a-z0-9]{1,16}$")
_TOKEN_RE = re.compile(rf"^ekm_([a-z0-9]{{1,16}})_([0-9A-Za-z]{{{RANDOM_LEN + CHECK_LEN}}})$")
_DOMAIN = b"ekm apikey v1\x00"


def tag_for(key_name: str) -> str:
    """The token tag for a key name: its letters and digits, lower-case, at most 16."""
    tag = re.sub(r"[^a-z0-9]", "", key_name.lower())[:16]
    return tag or "key"


def _base62(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


def _checksum(prefix: str) -> str:
    return _base62(zlib.crc32(prefix.encode()), CHECK_LEN)


def new_token(tag: str) -> str:
    """A fresh token; show it to the user once and store only :func:`digest` of it."""
    if not isinstance(tag, str) or not _TAG_RE.match(tag):
        raise InvalidError(
            f"API key tag {tag!r} is invalid; use 1-16 lower-case letters or digits "
            "(tag_for(name) derives one from a key name)"
        )
    body = "".join(secrets.choice(_ALPHABET) for _ in range(RANDOM_LEN))
    head = f"{PREFIX}{tag}_{body}"
    return head + _checksum(head)


def check_format(token: str) -> tuple[str, str]:
    """``(tag, body)`` of a well-formed token; InvalidError (never echoing it) otherwise."""
    m = _TOKEN_RE.match(token) if isinstance(token, str) else None
    if not m:
        raise InvalidError(
            f"this is not an ekm API key (expected ekm_<tag>_ and {RANDOM_LEN + CHECK_LEN} "
            "letters and digits); check that it was copied whole"
        )
    tag, body = m.groups()
    if not hmac.compare_digest(_checksum(token[:-CHECK_LEN]), token[-CHECK_LEN:]):
        raise InvalidError(
            "API key checksum does not match: it was mistyped or truncated; copy it again"
        )
    return tag, body


def token_id(token: str) -> str:
    """A short, non-secret id for listing and audit logs: ``<tag>:<12 hex of SHA-256>``."""
    tag, _body = check_format(token)
    return f"{tag}:{hashlib.sha256(token.encode()).hexdigest()[:12]}"


def _check_mac_key(mac_key: bytes) -> None:
    if not isinstance(mac_key, (bytes, bytearray)) or len(mac_key) < 16:
        raise InvalidError("the API-key MAC key must be at least 16 bytes (an hmac-sha256 key)")


def digest(mac_key: bytes, token: str) -> bytes:
    """HMAC-SHA256 of the token under ``mac_key``: the only thing the server stores."""
    _check_mac_key(mac_key)
    if not isinstance(token, str):
        raise InvalidError("an API key must be text")
    return hmac.new(bytes(mac_key), _DOMAIN + token.encode(), hashlib.sha256).digest()


def verify(mac_key: bytes, token: str, stored_digest: bytes) -> bool:
    """True if ``token`` matches ``stored_digest`` (constant-time); False for any malformed input.

    Callers that want to tell a user "you mistyped it" call :func:`check_format` first.
    """
    _check_mac_key(mac_key)
    if not isinstance(token, str) or not isinstance(stored_digest, (bytes, bytearray)):
        return False
    try:
        check_format(token)
        well_formed = True
    except InvalidError:
        well_formed = False
    ok = hmac.compare_digest(digest(mac_key, token), bytes(stored_digest))
    return ok and well_formed
