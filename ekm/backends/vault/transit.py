"""Transit wrap/unwrap of the Vault client: the key that wraps ekm's root key never leaves Vault.

A mixin of :class:`~ekm.backends.vault.client.VaultClient` (it uses the client's ``_call``,
``_fail``, ``_where`` and ``_clean``); kept apart so each module stays readable. A bad
ciphertext, wrong context or a version below ``min_decryption_version`` is an IntegrityError
(exit 4); a missing or wrong-typed key is a BackendError (exit 5).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ekm.backends.vault.util import _CIPHERTEXT_RE, _dict, _errors_text
from ekm.errors import BackendError, IntegrityError


class TransitOps:
    """``transit_ensure_key``, ``transit_encrypt``, ``transit_decrypt``, ``transit_rewrap``."""

    settings: Any
    _call: Any
    _fail: Any
    _where: Any
    _clean: Any

    def _transit(self, area: str) -> str:
        return f"{self.settings.transit_mount}/{area}/{self.settings.transit_key}"

    def transit_ensure_key(
        self, type: str = "aes256-gcm96", *, derived: bool = False
    ) -> dict[str, Any]:
        """Create the Transit key if missing; refuse an existing key of another kind."""
        url, name, m = self._transit("keys"), self.settings.transit_key, self.settings.transit_mount

        def read(c: Any) -> Any:
            return c.secrets.transit.read_key(name, mount_point=m)

        reply = self._call(read, "Transit key read", url)
        if reply.status == 404:
            created = self._call(
                lambda c: c.secrets.transit.create_key(
                    name, derived=derived, key_type=type, mount_point=m
                ),
                "Transit key create",
                url,
            )
            if created.status not in (200, 204):
                self._fail(created, "Transit key create", url, "create")
            reply = self._call(read, "Transit key read", url)
        if reply.status != 200:
            self._fail(reply, "Transit key read", url, "read")
        info = (reply.body or {}).get("data")
        if not isinstance(info, dict):
            raise BackendError(f"{self._where()} returned a malformed Transit key for {url}")
        if info.get("type") != type or bool(info.get("derived")) != derived:
            raise BackendError(
                f"{self._where()}: Transit key {url} is {self._clean(str(info.get('type')))} "
                f"(derived={bool(info.get('derived'))}), not {type} (derived={derived}); "
                "set vault.transit_key to another name"
            )
        if info.get("supports_encryption") is False:
            raise BackendError(f"{self._where()}: Transit key {url} cannot encrypt")
        return {
            "type": info.get("type"),
            "derived": bool(info.get("derived")),
            "latest_version": info.get("latest_version"),
            "min_decryption_version": info.get("min_decryption_version"),
        }

    def transit_encrypt(self, plaintext: bytes, context: bytes | None = None) -> str:
        """Encrypt under the Transit key; returns ``vault:vN:...``."""
        url, name, m = (
            self._transit("encrypt"),
            self.settings.transit_key,
            self.settings.transit_mount,
        )
        b64 = base64.b64encode(plaintext).decode()
        ctx = base64.b64encode(context).decode() if context is not None else None
        reply = self._call(
            lambda c: c.secrets.transit.encrypt_data(name, b64, context=ctx, mount_point=m),
            "Transit encrypt",
            url,
        )
        if reply.status != 200:
            self._fail(reply, "Transit encrypt", url, "update")
        ct = _dict(_dict(reply.body).get("data")).get("ciphertext")
        if not isinstance(ct, str) or not _CIPHERTEXT_RE.match(ct):
            raise BackendError(f"{self._where()} returned a malformed Transit ciphertext")
        return ct

    def transit_decrypt(self, ciphertext: str, context: bytes | None = None) -> bytes:
        """Decrypt a ``vault:vN:...`` ciphertext; a bad one is an IntegrityError (exit 4)."""
        return self._transit_open("decrypt", ciphertext, context)

    def transit_rewrap(self, ciphertext: str, context: bytes | None = None) -> str:
        """Re-encrypt under the latest key version without the plaintext leaving Vault."""
        return self._transit_open("rewrap", ciphertext, context)

    def _transit_open(self, area: str, ciphertext: str, context: bytes | None) -> Any:
        if not isinstance(ciphertext, str) or not _CIPHERTEXT_RE.match(ciphertext):
            raise IntegrityError("not a Vault Transit ciphertext (expected vault:vN:<base64>)")
        url, name, m = self._transit(area), self.settings.transit_key, self.settings.transit_mount
        ctx = base64.b64encode(context).decode() if context is not None else None
        op = f"Transit {area}"
        transit = "decrypt_data" if area == "decrypt" else "rewrap_data"
        reply = self._call(
            lambda c: getattr(c.secrets.transit, transit)(
                name, ciphertext, context=ctx, mount_point=m
            ),
            op,
            url,
        )
        if reply.status == 400:
            text = _errors_text(reply.body).lower()
            if "key not found" in text:
                raise BackendError(
                    f"{self._where()}: Transit key {url} does not exist; check vault.transit_key"
                )
            why = "the ciphertext was tampered with, or the key or context is wrong"
            if "too old" in text or "disallowed" in text:
                why = "its key version is below the key's min_decryption_version"
            elif "invalid key version" in text:
                why = "it names a key version the Transit key does not have"
            raise IntegrityError(f"{self._where()} could not {area} with {url}: {why}")
        if reply.status != 200:
            self._fail(reply, op, url, "update")
        data = _dict(_dict(reply.body).get("data"))
        if area == "rewrap":
            ct = data.get("ciphertext")
            if not isinstance(ct, str) or not _CIPHERTEXT_RE.match(ct):
                raise BackendError(f"{self._where()} returned a malformed Transit ciphertext")
            return ct
        plaintext = data.get("plaintext")
        try:
            if not isinstance(plaintext, str):  # a missing one decoded to b"" before
                raise ValueError("no plaintext")
            return base64.b64decode(plaintext, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise BackendError(f"{self._where()} returned malformed Transit plaintext") from None
