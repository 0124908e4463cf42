"""The Transit secrets engine: named, versioned keys; ``vault:vN:`` ciphertexts.

Only the standard library is used, so the cipher is an encrypt-then-MAC construction
(HMAC-SHA256 keystream + HMAC-SHA256 tag) rather than Vault's AES-GCM. What ekm can observe
is the same: ciphertexts name their key version, tampering fails authentication, derived keys
need the same context, rotation adds a version and old ciphertexts still decrypt until
``min_decryption_version`` passes them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

Reply = tuple[int, "dict[str, Any] | None"]

ENCRYPTION_TYPES = {"aes128-gcm96", "aes256-gcm96", "chacha20-poly1305"}
SIGNING_TYPES = {"ed25519", "ecdsa-p256", "rsa-2048", "rsa-4096"}
AUTH_FAILED = "cipher: message authentication failed"
MISSING_CONTEXT = (
    "missing 'context' for key derivation; the key was created using a derived key, which "
    "means additional, per-request information must be included in order to perform "
    "operations with the key"
)
_CT_RE = re.compile(r"^vault:v(\d+):([A-Za-z0-9+/=]+)$")


def _b64(data: str, what: str) -> bytes | str:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError, TypeError):
        return f"failed to base64-decode {what}"


@dataclass
class _Key:
    type: str
    derived: bool
    versions: dict[int, bytes] = field(default_factory=dict)
    created: dict[int, float] = field(default_factory=dict)
    min_decryption_version: int = 1
    min_encryption_version: int = 0

    @property
    def latest(self) -> int:
        return max(self.versions)

    def rotate(self) -> None:
        n = len(self.versions) + 1
        self.versions[n] = os.urandom(32)
        self.created[n] = time.time()


def _subkeys(key: bytes, context: bytes | None) -> tuple[bytes, bytes]:
    if context is not None:
        key = hmac.new(key, b"derive" + context, hashlib.sha256).digest()
    enc = hmac.new(key, b"enc", hashlib.sha256).digest()
    mac = hmac.new(key, b"mac", hashlib.sha256).digest()
    return enc, mac


def _keystream(enc: bytes, nonce: bytes, length: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hmac.new(enc, nonce + counter.to_bytes(4, "big"), hashlib.sha256).digest()
        counter += 1
    return bytes(out[:length])


def seal_bytes(key: bytes, plaintext: bytes, context: bytes | None) -> bytes:
    enc, mac = _subkeys(key, context)
    nonce = os.urandom(12)
    stream = _keystream(enc, nonce, len(plaintext))
    ct = bytes(a ^ b for a, b in zip(plaintext, stream, strict=True))
    tag = hmac.new(mac, nonce + ct, hashlib.sha256).digest()[:16]
    return nonce + ct + tag


def open_bytes(key: bytes, blob: bytes, context: bytes | None) -> bytes | None:
    if len(blob) < 28:
        return None
    enc, mac = _subkeys(key, context)
    nonce, ct, tag = blob[:12], blob[12:-16], blob[-16:]
    want = hmac.new(mac, nonce + ct, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(tag, want):
        return None
    return bytes(a ^ b for a, b in zip(ct, _keystream(enc, nonce, len(ct)), strict=True))


class Transit:
    """keys/<name> (create, read, delete), keys/<name>/rotate, keys/<name>/config,
    encrypt/<name>, decrypt/<name>, rewrap/<name>."""

    def __init__(self) -> None:
        self.keys: dict[str, _Key] = {}

    def capability(self, method: str, rel: str, query: dict[str, str]) -> str:
        if method == "GET":
            return "read"
        if method == "DELETE":
            return "delete"
        if method == "LIST":
            return "list"
        area, _, name = rel.partition("/")
        if area in ("keys", "encrypt") and name not in self.keys:
            return "create"
        return "update"

    def handle(self, method: str, rel: str, query: dict[str, str], body: Any) -> Reply:
        parts = rel.split("/")
        body = body if isinstance(body, dict) else {}
        if parts[0] == "keys" and len(parts) == 2 and parts[1]:
            return self._key(method, parts[1], body)
        if parts[0] == "keys" and len(parts) == 3 and method in ("POST", "PUT"):
            key = self.keys.get(parts[1])
            if key is None:
                return 400, {"errors": ["key not found"]}
            if parts[2] == "rotate":
                key.rotate()
                return 200, self._describe(parts[1], key)
            if parts[2] == "config":
                for attr in ("min_decryption_version", "min_encryption_version"):
                    if attr in body:
                        setattr(key, attr, int(body[attr]))
                return 200, self._describe(parts[1], key)
        if len(parts) == 2 and parts[0] in ("encrypt", "decrypt", "rewrap") and parts[1]:
            if method not in ("POST", "PUT"):
                return 405, {"errors": ["unsupported operation"]}
            return getattr(self, f"_{parts[0]}")(parts[1], body)
        return 404, {"errors": [f'no handler for route "{rel}". route entry not found.']}

    def _describe(self, name: str, key: _Key) -> dict[str, Any]:
        return {
            "data": {
                "name": name,
                "type": key.type,
                "derived": key.derived,
                "exportable": False,
                "deletion_allowed": False,
                "latest_version": key.latest,
                "min_decryption_version": key.min_decryption_version,
                "min_encryption_version": key.min_encryption_version,
                "supports_encryption": key.type in ENCRYPTION_TYPES,
                "supports_decryption": key.type in ENCRYPTION_TYPES,
                "supports_signing": key.type in SIGNING_TYPES,
                "keys": {str(n): int(t) for n, t in key.created.items()},
            }
        }

    def _create(self, name: str, ktype: str, derived: bool) -> _Key:
        key = self.keys[name] = _Key(type=ktype, derived=derived)
        key.rotate()
        return key

    def _key(self, method: str, name: str, body: dict[str, Any]) -> Reply:
        key = self.keys.get(name)
        if method == "GET":
            return (404, {"errors": []}) if key is None else (200, self._describe(name, key))
        if method in ("POST", "PUT"):
            ktype = body.get("type", "aes256-gcm96")
            if ktype not in ENCRYPTION_TYPES | SIGNING_TYPES:
                return 400, {"errors": [f"unknown key type: {ktype}"]}
            if key is None:
                key = self._create(name, ktype, bool(body.get("derived", False)))
            return 200, self._describe(name, key)
        if method == "DELETE":
            return 400, {"errors": ["deletion is not allowed for this key"]}
        return 405, {"errors": ["unsupported operation"]}

    def _context(self, key: _Key, body: dict[str, Any]) -> bytes | str | None:
        raw = body.get("context")
        if not key.derived:
            return None
        if not raw:
            return MISSING_CONTEXT
        return _b64(raw, "context")

    def _encrypt(self, name: str, body: dict[str, Any]) -> Reply:
        if "plaintext" not in body or not isinstance(body["plaintext"], str):
            return 400, {"errors": ["missing plaintext to encrypt"]}
        plaintext = _b64(body["plaintext"], "plaintext")
        if isinstance(plaintext, str):
            return 400, {"errors": [plaintext]}
        key = self.keys.get(name)
        if key is None:  # Vault upserts a key on first encrypt
            key = self._create(name, "aes256-gcm96", bool(body.get("context")))
        if key.type not in ENCRYPTION_TYPES:
            return 400, {"errors": [f"key type {key.type} does not support encryption"]}
        context = self._context(key, body)
        if isinstance(context, str):
            return 400, {"errors": [context]}
        n = key.latest
        blob = seal_bytes(key.versions[n], plaintext, context)
        ct = f"vault:v{n}:" + base64.b64encode(blob).decode()
        return 200, {"data": {"ciphertext": ct, "key_version": n}}

    def _open(self, name: str, body: dict[str, Any]) -> tuple[_Key, bytes | None] | str:
        key = self.keys.get(name)
        if key is None:
            return "encryption key not found"
        ct = body.get("ciphertext")
        if not isinstance(ct, str) or not ct:
            return "missing ciphertext to decrypt"
        if not ct.startswith("vault:"):
            return "invalid ciphertext: no prefix"
        m = _CT_RE.match(ct)
        if not m:
            return "invalid ciphertext: wrong number of fields"
        n = int(m.group(1))
        if n not in key.versions:
            return "invalid key version"
        if n < key.min_decryption_version:
            return "ciphertext or signature version is disallowed by policy (too old)"
        context = self._context(key, body)
        if isinstance(context, str):
            return context
        blob = _b64(m.group(2), "ciphertext")
        if isinstance(blob, str):
            return "invalid ciphertext: could not decode"
        plaintext = open_bytes(key.versions[n], blob, context)
        if plaintext is None:
            return AUTH_FAILED
        return key, plaintext

    def _decrypt(self, name: str, body: dict[str, Any]) -> Reply:
        opened = self._open(name, body)
        if isinstance(opened, str):
            return 400, {"errors": [opened]}
        _, plaintext = opened
        return 200, {"data": {"plaintext": base64.b64encode(plaintext or b"").decode()}}

    def _rewrap(self, name: str, body: dict[str, Any]) -> Reply:
        opened = self._open(name, body)
        if isinstance(opened, str):
            return 400, {"errors": [opened]}
        key, plaintext = opened
        context = self._context(key, body)
        n = key.latest
        blob = seal_bytes(key.versions[n], plaintext or b"", context)  # type: ignore[arg-type]
        ct = f"vault:v{n}:" + base64.b64encode(blob).decode()
        return 200, {"data": {"ciphertext": ct, "key_version": n}}
