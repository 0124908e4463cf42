"""The Vault backend: ekm's key documents on a KV version 2 mount, every write check-and-set.

Why this shape:

* The keystore above already encrypts material (AES-256-GCM under the root key) and MACs the
  metadata, so Vault stores the very same bytes the file backend would write: Vault's ACLs and
  audit devices protect them a second time, but a Vault operator who can read the mount still
  sees no plaintext key.
* The version token of :class:`~ekm.backends.base.DocumentStore` is the KV v2 version. A write
  sends ``cas=<version read>`` (0 for a new document), so two hosts rotating the same key at
  once cannot overwrite each other: the loser gets :class:`CasConflict` and the keystore
  re-reads and retries (:meth:`ekm.keystore.Keystore.mutate`).
* ``lock()`` is still the home's local file lock: it serialises the processes of one host
  (cheap, no round trip); check-and-set is what serialises hosts.
* The wrapped root key record (``master.json``) is shared through ``<prefix>/master`` so that a
  second home configured against the same Vault *joins* the keystore instead of creating a
  root key nobody else can use.

Layout under the mount: ``<prefix>/keys/<name>`` (one secret per key) and ``<prefix>/master``.
Everything read back is hostile input: shape, size and name are checked before use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ekm.errors import IntegrityError, InvalidError
from ekm.fsutil import FileLock

DEFAULT_PREFIX = "ekm"
DOC_FIELD = "ekm_document"
MASTER_FIELD = "ekm_master"
MAX_DOC_CHARS = 16 * 1024 * 1024
MAX_MASTER_CHARS = 1024 * 1024


class VaultDocumentStore:
    """Key documents as KV v2 secrets ``<mount>/data/<prefix>/keys/<name>``."""

    kind = "vault"

    def __init__(
        self,
        client: Any,
        *,
        lock_path: Path,
        lock_timeout: float = 30.0,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        prefix = prefix.strip("/")
        if not prefix or ".." in prefix.split("/"):
            raise InvalidError(f"vault keystore prefix {prefix!r} is not a valid KV path")
        self.client = client
        self.prefix = prefix
        self._lock = FileLock(lock_path, timeout=lock_timeout)

    # -- where ----------------------------------------------------------------------------
    def describe(self) -> str:
        mount = self.client.settings.mount_path
        return f"{self.client.endpoint}/v1/{mount}/data/{self.prefix}/keys"

    def _key_path(self, name: str) -> str:
        return f"{self.prefix}/keys/{name}"

    @property
    def master_path(self) -> str:
        return f"{self.prefix}/master"

    # -- documents ------------------------------------------------------------------------
    def names(self) -> list[str]:
        entries = self.client.kv_list(f"{self.prefix}/keys")
        # sub-folders ("x/") are not ours; names are re-validated by the keystore on load
        return sorted(e for e in entries if e and not e.endswith("/"))

    def read(self, name: str) -> tuple[bytes, Any] | None:
        got = self.client.kv_read(self._key_path(name))
        if got is None:
            return None
        data, version = got
        text = data.get(DOC_FIELD) if isinstance(data, dict) else None
        if not isinstance(text, str) or len(text) > MAX_DOC_CHARS:
            raise IntegrityError(
                f"{self.describe()}/{name} is not an ekm key document (written by something "
                "else, or tampered); restore it from a backup or remove it"
            )
        return text.encode("utf-8"), version

    def write(self, name: str, data: bytes, token: Any) -> Any:
        """Store ``data`` if the secret is still at version ``token`` (None: must be new)."""
        return self.client.kv_write(
            self._key_path(name), {DOC_FIELD: data.decode("utf-8")}, cas=token or 0
        )

    def delete(self, name: str, token: Any) -> None:
        self.client.kv_delete_all(self._key_path(name))

    def lock(self) -> FileLock:
        return self._lock

    # -- the shared master key record -----------------------------------------------------
    def read_master(self) -> tuple[bytes, int] | None:
        """The shared ``master.json`` content and its KV version, or None if not published."""
        got = self.client.kv_read(self.master_path)
        if got is None:
            return None
        data, version = got
        text = data.get(MASTER_FIELD) if isinstance(data, dict) else None
        if not isinstance(text, str) or len(text) > MAX_MASTER_CHARS:
            raise IntegrityError(
                f"{self.client.endpoint}: {self.master_path} is not an ekm master key record "
                "(tampered, or written by something else)"
            )
        return text.encode("utf-8"), version

    def publish_master(self, raw: bytes, *, cas: int = 0) -> int:
        """Publish ``master.json``; with ``cas=0`` it fails (CasConflict) if one exists."""
        return self.client.kv_write(self.master_path, {MASTER_FIELD: raw.decode("utf-8")}, cas=cas)

    def delete_master(self) -> None:
        self.client.kv_delete_all(self.master_path)
