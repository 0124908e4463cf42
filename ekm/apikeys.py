"""The API-key table of a home: ``apikeys.json`` holds ids, names and HMAC digests, never tokens.

A token is shown once, at creation. What is stored is ``HMAC-SHA256(api-auth key version,
token)`` (ekm/crypto/apikey.py), so a copy of this file does not yield a token, and the MAC
key never leaves the keystore. The file is authenticated as a whole with a key derived from the
master key: un-revoking a key or extending its expiry by editing the file is detected
(IntegrityError, exit 4). Writes are atomic (ekm.fsutil) and made under the keystore lock.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from ekm.errors import IntegrityError, NotFoundError
from ekm.fsutil import atomic_write, read_private

FILE_NAME = "apikeys.json"
FORMAT = 1
_FIELDS = ("id", "name", "key", "version", "digest", "created", "expires", "revoked")


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class ApiKeyStore:
    """Load/save the table; every load checks the file MAC (hostile input otherwise)."""

    def __init__(self, path: Path, mac_key: bytes, *, home: Path | None = None) -> None:
        self.path = path
        self.home = home if home is not None else path.parent
        self._mac_key = mac_key

    def _mac(self, records: list[dict[str, Any]]) -> str:
        body = _canonical({"format": FORMAT, "keys": records})
        return hmac.new(self._mac_key, body, hashlib.sha256).hexdigest()

    def load(self) -> list[dict[str, Any]]:
        """The records (digests as hex); an empty list when no key was ever created."""
        if not self.path.exists():
            return []
        bad = IntegrityError(
            f"{self.path} failed its integrity check (edited, truncated or from another home); "
            "restore it from a backup or revoke and re-create the API keys"
        )
        try:
            doc = json.loads(read_private(self.path, limit=16 * 1024 * 1024, home=self.home))
            records = doc["keys"]
            if doc.get("format") != FORMAT or not isinstance(records, list):
                raise ValueError
            for r in records:
                if not isinstance(r, dict) or set(r) != set(_FIELDS):
                    raise ValueError
            mac = doc["mac"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise bad from None
        if not isinstance(mac, str) or not hmac.compare_digest(mac, self._mac(records)):
            raise bad
        return records

    def save(self, records: list[dict[str, Any]]) -> None:
        """Replace the table atomically (0600); call under the keystore lock."""
        doc = {"format": FORMAT, "keys": records, "mac": self._mac(records)}
        atomic_write(
            self.path,
            json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n",
            home=self.home,
        )

    @staticmethod
    def find(records: list[dict[str, Any]], key_id: str) -> dict[str, Any]:
        for r in records:
            if r["id"] == key_id:
                return r
        raise NotFoundError(f"no API key with id {key_id[:64]!r} (see `ekm apikey list`)")

    @staticmethod
    def public(record: dict[str, Any]) -> dict[str, Any]:
        """A record without its digest (what list/verify show)."""
        return {k: v for k, v in record.items() if k != "digest"}
