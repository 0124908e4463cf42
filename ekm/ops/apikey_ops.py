"""API keys through KeyManager: create (token shown once), verify, revoke, list.

Every verification failure (unknown, revoked, expired, malformed, key version gone) is
audit-logged as ``apikey.verify`` with ``result = "denied"`` and a ``reason``, so the monitor
can count bursts (brute force). The caller sees one message for all of them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ekm.crypto.keytypes import KeyRole, KeyUsage
from ekm.errors import EkmError, IntegrityError, InvalidError, UsageError

NOT_VALID = "API key is not valid (unknown, revoked or expired)"


def _name(key: Any) -> str:
    return key.value if isinstance(key, KeyRole) else str(key)


class ApiKeyOps:
    """Mixin for KeyManager."""

    def _apikey_store(self) -> Any:
        from ekm.apikeys import FILE_NAME, ApiKeyStore

        self.unlock()
        return ApiKeyStore(self.home / FILE_NAME, self._root.derive("apikeys-mac"), home=self.home)

    def _api_mac_key(self, name: str, version: int | None) -> tuple[Any, bytes]:
        key, kv = self._usable(name, version)
        if key.usage is not KeyUsage.API_AUTH:
            raise UsageError(
                f"key {name!r} is for {key.usage.value}; API keys need an api-auth key "
                "(e.g. api_master)"
            )
        if key.backend != "file":
            raise UsageError(f"key {name!r} lives in the HSM; API keys need a file-backed key")
        return kv, self.keystore.material(name, kv.version)

    def create_api_key(
        self,
        key: str | KeyRole = "api_master",
        *,
        name: str | None = None,
        expires: str | timedelta | datetime | None = None,
        now: datetime | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """``(token, record)``: the token is returned once and never stored or logged."""
        from ekm.crypto import apikey
        from ekm.timeutil import instant, iso, parse_duration

        now = instant(now)
        key_name = _name(key)
        if isinstance(expires, str):
            try:
                expires = parse_duration(expires)
            except ValueError as exc:
                raise UsageError(f"--expires: {exc}") from None
        if isinstance(expires, timedelta):
            if expires <= timedelta(0):
                raise UsageError("--expires must be a positive duration such as 90d")
            expires = now + expires
        if name is not None and (not name.strip() or len(name) > 100 or not name.isprintable()):
            raise UsageError("--name must be 1 to 100 printable characters")
        self.unlock()
        self.audit_log.ensure_writable()
        kv, mac_key = self._api_mac_key(key_name, None)
        token = apikey.new_token(apikey.tag_for(key_name))
        record = {
            "id": apikey.token_id(token), "name": name, "key": key_name, "version": kv.version,
            "digest": apikey.digest(mac_key, token).hex(), "created": iso(now),
            "expires": iso(expires) if expires else None, "revoked": None,
        }  # fmt: skip
        store = self._apikey_store()
        with self.keystore.store.lock():
            records = store.load()
            records.append(record)
            # fail closed: the record first, then the key; a failed write is recorded too
            self.audit_log.append(
                "apikey.create", key=key_name, version=kv.version, id=record["id"], now=now
            )
            try:
                store.save(records)
            except EkmError as exc:
                self.audit_log.append(
                    "apikey.create",
                    key=key_name,
                    id=record["id"],
                    result="error",
                    error=type(exc).__name__,
                    now=now,
                )
                raise
        return token, store.public(record)

    def generate_api_key(self, key: str | KeyRole = KeyRole.API_MASTER, **kwargs: Any) -> str:
        """Legacy: ``generate_api_key(KeyType.API_MASTER)`` -> the new token (shown once)."""
        return self.create_api_key(key, **kwargs)[0]

    def verify_api_key(self, token: str, *, now: datetime | None = None) -> dict[str, Any]:
        """The record of a valid token; IntegrityError (one message) otherwise. Audited."""
        from ekm.crypto import apikey
        from ekm.timeutil import from_iso, instant

        now = instant(now)
        store = self._apikey_store()
        records = store.load()
        reason, record = None, None
        try:
            key_id = apikey.token_id(token)
        except InvalidError:
            key_id, reason = None, "malformed"
        if key_id is not None:
            record = next((r for r in records if r["id"] == key_id), None)
            if record is None:
                reason = "unknown"
            elif record["revoked"]:
                reason = "revoked"
            elif record["expires"] and from_iso(record["expires"]) <= now:
                reason = "expired"
            else:
                try:
                    _kv, mac_key = self._api_mac_key(record["key"], record["version"])
                    if not apikey.verify(mac_key, token, bytes.fromhex(record["digest"])):
                        reason = "mismatch"
                except EkmError:
                    reason = "key version unusable"
        if reason is not None:
            self.audit_log.append(
                "apikey.verify", key=record["key"] if record else None, result="denied",
                reason=reason, id=key_id, now=now,
            )  # fmt: skip
            raise IntegrityError(NOT_VALID)
        self.audit_log.append("apikey.verify", key=record["key"], id=key_id, now=now)
        return store.public(record)

    def revoke_api_key(self, key_id: str, *, now: datetime | None = None) -> dict[str, Any]:
        """Mark an API key revoked (kept for the record); NotFoundError for an unknown id."""
        from ekm.timeutil import instant, iso

        now = instant(now)
        store = self._apikey_store()
        self.audit_log.ensure_writable()
        with self.keystore.store.lock():
            records = store.load()
            record = store.find(records, key_id)
            self.audit_log.append("apikey.revoke", key=record["key"], id=key_id, now=now)
            if not record["revoked"]:
                record["revoked"] = iso(now)
                try:
                    store.save(records)
                except EkmError as exc:
                    self.audit_log.append(
                        "apikey.revoke",
                        key=record["key"],
                        id=key_id,
                        result="error",
                        error=type(exc).__name__,
                        now=now,
                    )
                    raise
        return store.public(record)

    def list_api_keys(self) -> list[dict[str, Any]]:
        """Ids, names, key, dates: never tokens or digests."""
        store = self._apikey_store()
        return [store.public(r) for r in store.load()]
