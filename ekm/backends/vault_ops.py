"""Vault as a KeyManager operation set: deploy onto a shared keystore, and keystore migration.

A mixin of :class:`ekm.manager.KeyManager` (it uses the manager's config, home layout, master
key, audit log and Vault client). Why these operations exist:

* A keystore on Vault is shared: every home configured against the same Vault must decrypt the
  same documents, so they must share one root key. The first ``ekm deploy`` publishes its
  wrapped root key record (``master.json``) at ``<prefix>/master`` with check-and-set 0; every
  later deploy *joins* by fetching it. Only sources that another host can open are allowed:
  ``vault-transit`` (recommended: the root key is unwrapped by Vault and the wrapping key never
  leaves it) and ``passphrase`` (every host needs the same passphrase). ``file`` is refused: the
  key file would have to be copied between hosts by hand, which defeats the point of Vault.
  ``pkcs11`` is refused too: the wrapped root opens only in the HSM that wrapped it.
* ``migrate_keystore`` copies every document byte for byte (the documents are already encrypted
  and MACed under the root key), checks on the target that every key authenticates and every
  version's material decrypts to the same bytes, and only then rewrites ``ekm.toml``. Any
  failure removes what was copied: nothing is half-written, nothing is switched.
"""

from __future__ import annotations

import contextlib
import hmac
import json
from datetime import datetime
from typing import Any

from ekm.errors import (
    ConfigError,
    EkmError,
    IntegrityError,
    StateError,
    UsageError,
)
from ekm.timeutil import instant, utcnow

SHAREABLE_SOURCES = ("vault-transit", "passphrase")
STORAGE_BACKENDS = ("file", "vault")
_ROOT_AAD = b"ekm/v1/root-key"  # the associated data ekm.masterkey binds the root key to


class VaultOps:
    """Shared-keystore deployment and backend migration; mixed into KeyManager."""

    # -- plumbing -------------------------------------------------------------------------
    def vault_store(self) -> Any:
        """The Vault document store of ``[vault]`` (whatever the configured backend is)."""
        from ekm.backends.vaultstore import VaultDocumentStore

        return VaultDocumentStore(
            self.vault_client(), lock_path=self.layout.lock, lock_timeout=self._lock_timeout
        )

    def _check_shareable(self, source: str, flag: bool) -> None:
        if source in SHAREABLE_SOURCES:
            return
        why = (
            "its key file would have to be copied to every host by hand"
            if source == "file"
            else "the wrapped root key opens only in the HSM that wrapped it"
        )
        text = (
            f"master key source {source} cannot protect a keystore shared through Vault ({why}); "
            "use vault-transit (recommended) or passphrase"
        )
        raise (
            UsageError(f"--master-key {text}")
            if flag
            else ConfigError(f"{self.config.source}: [master_key] {text}")
        )

    def _record_vault_endpoint(self) -> None:
        """Keep where Vault is in ekm.toml when it came from VAULT_ADDR (cron has no shell)."""
        if not self.config.vault:
            self.config.vault = {"endpoint": self.vault_client().endpoint}

    # -- deploy -----------------------------------------------------------------------------
    def deploy_backend(
        self,
        *,
        backend: str | None = None,
        master_key: str | None = None,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """``ekm deploy`` with the storage backend chosen: Vault homes join a shared keystore.

        For ``file`` this is :meth:`deploy`. For ``vault`` the shared master key record is
        fetched from Vault (join) or created and published (first host) before the rest of
        the deployment runs, so every key is generated under the shared root key.
        """
        now = instant(now)
        configured = self.config.get("storage", "backend")
        if backend is not None:
            if backend not in STORAGE_BACKENDS:
                raise UsageError(f"--backend {backend!r}: expected file or vault")
            if self.config.path is not None and backend != configured:
                raise UsageError(
                    f"{self.config.source} already puts the keystore on {configured}; to move "
                    f"it run `ekm keys migrate --to {backend}`"
                )
            self.config.sections["storage"]["backend"] = backend
        if self.config.get("storage", "backend") != "vault":
            return self._deploy_local(master_key=master_key, dry_run=dry_run, now=now)

        source = master_key or (
            self.config.get("master_key", "source") if self.config.path else "vault-transit"
        )
        self._check_shareable(source, flag=master_key is not None)
        store = self.vault_store()
        shared = store.read_master()
        if dry_run:
            report = self._deploy_local(master_key=source, dry_run=True, now=now)
            report["actions"].insert(
                2,
                {
                    "step": "shared master key",
                    "status": "would join" if shared else "would create",
                    "detail": f"{store.client.endpoint} {store.master_path}",
                },
            )
            return report

        from ekm.fsutil import ensure_private_dir

        ensure_private_dir(self.home)
        if self.layout.master_meta.exists():
            step, source = self._check_local_master(store, shared), None
        elif shared is not None:
            source = self._join(shared[0], master_key)
            step = "joined"
        else:
            source, step = self._create_and_publish(store, source, master_key)
        self._record_vault_endpoint()
        report = self._deploy_local(master_key=source, now=now)
        report["actions"].insert(
            2,
            {
                "step": "shared master key",
                "status": step,
                "detail": f"{store.client.endpoint} {store.master_path}",
            },
        )
        report["changed"] = report["changed"] or step != "exists"
        if step != "exists":
            self.audit_log.append(f"keystore.{step.split()[0]}", backend="vault", now=now)
        return report

    def _check_local_master(self, store: Any, shared: tuple[bytes, int] | None) -> str:
        """A re-run: this home's record must be the one Vault shares (publish it if missing)."""
        local = self.layout.master_meta.read_bytes()
        if shared is None:
            from ekm import masterkey

            self._check_shareable(masterkey.read_meta(self.home)["source"], flag=False)
            store.publish_master(local, cas=0)
            return "published"
        if not hmac.compare_digest(_key_id(shared[0]), _key_id(local)):
            raise IntegrityError(
                f"{self.layout.master_meta} wraps another root key than the one shared at "
                f"{store.client.endpoint} {store.master_path}; this home belongs to another "
                "keystore (use a fresh --home to join this one)"
            )
        return "exists"

    def _join(self, raw: bytes, master_key: str | None) -> str:
        """Adopt the shared record; if this host cannot open it, leave nothing behind."""
        from ekm import masterkey
        from ekm.fsutil import atomic_write

        source = _parse_record(raw)
        if master_key and master_key != source:
            raise UsageError(
                f"the keystore shared in Vault uses master key source {source}, not {master_key}"
            )
        atomic_write(self.layout.master_meta, raw, home=self.home)
        try:
            root = masterkey.open_root(self.home, self._master_options(source))
        except BaseException:
            self.layout.master_meta.unlink(missing_ok=True)
            raise
        self._set_root(root)
        return source

    def _create_and_publish(
        self, store: Any, source: str, master_key: str | None
    ) -> tuple[str, str]:
        """First host: make the root key and publish it; lose a race gracefully by joining."""
        from ekm import masterkey
        from ekm.backends.vault_client import CasConflict

        root = masterkey.create(self.home, self._master_options(source))
        try:
            store.publish_master(self.layout.master_meta.read_bytes(), cas=0)
        except CasConflict:
            # another host published first: its root key wins, ours was never used
            root.wipe()
            self.layout.master_meta.unlink(missing_ok=True)
            shared = store.read_master()
            if shared is None:
                raise
            return self._join(shared[0], master_key), "joined"
        except BaseException:
            root.wipe()
            self.layout.master_meta.unlink(missing_ok=True)
            raise
        self._set_root(root)
        return source, "created"

    # -- migrate ----------------------------------------------------------------------------
    def migrate_keystore(
        self, to: str, *, master_key: str | None = None, now: datetime | None = None
    ) -> dict[str, Any]:
        """Copy every key to the ``to`` backend, verify it there, then switch ekm.toml.

        ``master_key="vault-transit"`` re-wraps this home's root key with Vault Transit on
        the way to Vault (a home on a ``file`` master key cannot share its keystore).
        Returns ``{"from", "to", "keys", "location", "master_key", "old_copy"}``.
        """
        now = instant(now)
        current = self.config.get("storage", "backend")
        if to not in STORAGE_BACKENDS:
            raise UsageError(f"--to {to!r}: expected file or vault")
        if to == current:
            raise UsageError(f"the keystore is already on {to}; nothing to migrate")
        if master_key not in (None, "vault-transit"):
            raise UsageError("--master-key: only vault-transit can re-wrap the root key here")
        if master_key and to != "vault":
            raise UsageError("--master-key vault-transit only applies to --to vault")
        cfg_path = self.config.path
        if cfg_path is None:
            raise ConfigError("this home has no ekm.toml to switch; run `ekm deploy` first")
        from ekm import masterkey

        self.unlock()
        self.audit_log.ensure_writable()
        meta = masterkey.read_meta(self.home)
        master_raw = self.layout.master_meta.read_bytes()
        if to == "vault":
            if master_key and meta["source"] != master_key:
                master_raw = self._rewrap_with_transit()
            else:
                self._check_shareable(meta["source"], flag=False)
            target = self.vault_store()
        else:
            from ekm.backends.filestore import FileDocumentStore

            target = FileDocumentStore(
                self.layout.keys_dir, self.layout.lock, self._lock_timeout, home=self.home
            )
        source_ks = self.keystore
        with source_ks.store.lock():
            source_ks.forget()
            names = source_ks.names()
            if target.names():
                raise StateError(
                    f"{target.describe()} already holds keys; nothing was copied (move them "
                    "away, or point [vault] at an empty prefix)"
                )
            published = False
            written: list[str] = []
            try:
                if to == "vault":
                    published = self._share_master(target, master_raw)
                for name in names:
                    got = source_ks.store.read(name)
                    if got is None:
                        raise StateError(f"key {name!r} vanished during the migration; retry")
                    target.write(name, got[0], None)
                    written.append(name)
                self._verify_copy(source_ks, target, names)
            except BaseException:
                for name in written:
                    with contextlib.suppress(EkmError):
                        target.delete(name, None)
                if published:
                    with contextlib.suppress(EkmError):
                        target.delete_master()
                raise
            old_copy = self._switch(to, master_raw, meta["source"] != _parse_record(master_raw))
            self.audit_log.append(
                "keystore.migrate", to=to, keys=len(names), location=target.describe(), now=now
            )
        return {
            "from": current,
            "to": to,
            "keys": names,
            "location": target.describe(),
            "master_key": _parse_record(master_raw),
            "old_copy": old_copy,
        }

    def _rewrap_with_transit(self) -> bytes:
        """The same root key, wrapped by Vault Transit instead (checked by unwrapping it)."""
        client = self.vault_client()
        client.transit_ensure_key()
        root = bytes(self._root.key)
        wrapped = client.transit_encrypt(root, context=_ROOT_AAD)
        if not hmac.compare_digest(client.transit_decrypt(wrapped, context=_ROOT_AAD), root):
            raise IntegrityError(
                f"Vault at {client.endpoint} did not give back the root key it wrapped; "
                "nothing was migrated"
            )
        record = {
            "format": 1,
            "source": "vault-transit",
            "wrapped_root": wrapped,
            "key_id": self._root.key_id,
        }
        return json.dumps(record, indent=1).encode()

    def _share_master(self, target: Any, master_raw: bytes) -> bool:
        """Publish the master record; True if we wrote it (so a rollback removes it)."""
        shared = target.read_master()
        if shared is None:
            target.publish_master(master_raw, cas=0)
            return True
        if not hmac.compare_digest(_key_id(shared[0]), _key_id(master_raw)):
            raise StateError(
                f"{target.client.endpoint} {target.master_path} holds another keystore's master "
                "key; nothing was copied (use an empty Vault prefix or mount)"
            )
        return False

    def _verify_copy(self, source_ks: Any, target: Any, names: list[str]) -> None:
        """Every key authenticates on the target and every version decrypts to the same bytes."""
        from ekm.keystore import Keystore

        copy = Keystore(target, self._root)
        if sorted(target.names()) != sorted(names):
            raise IntegrityError(
                f"{target.describe()} does not list exactly the copied keys; nothing was switched"
            )
        for name in names:
            original, copied = source_ks.load(name), copy.load(name, refresh=True)
            if copied.to_dict() != original.to_dict():
                raise IntegrityError(f"key {name!r} differs on {target.describe()}; not switched")
            for v in original.versions:
                if not source_ks.has_material(name, v.version):
                    continue
                if not hmac.compare_digest(
                    copy.material(name, v.version), source_ks.material(name, v.version)
                ):
                    raise IntegrityError(
                        f"key {name!r} version {v.version} does not decrypt to the same material "
                        f"on {target.describe()}; nothing was switched"
                    )

    def _switch(self, to: str, master_raw: bytes, rewrapped: bool) -> str | None:
        """Point ekm.toml (and master.json when re-wrapped) at the new backend."""
        import tomllib

        from ekm import config as cfgmod
        from ekm.fsutil import atomic_write

        path = self.config.path
        raw = tomllib.loads(path.read_text("utf-8"))
        raw.setdefault("storage", {})["backend"] = to
        if rewrapped:
            raw.setdefault("master_key", {})["source"] = "vault-transit"
        if to == "vault" and "vault" not in raw:
            raw["vault"] = {"endpoint": self.vault_client().endpoint}
        data = cfgmod.render(raw)
        new_config = cfgmod.parse(data, path)  # validate before anything is replaced
        if rewrapped:
            # same root key, either works
            atomic_write(self.layout.master_meta, master_raw, home=self.home)
        atomic_write(path, data, home=self.home)
        self.config = new_config
        self._keystore = None
        old_copy = None
        if to == "vault" and self.layout.keys_dir.exists():
            # keep the old documents (a fallback) but out of the way of a later migrate back
            old = self.home / f"keys.pre-vault-{utcnow().strftime('%Y%m%dT%H%M%S')}"
            self.layout.keys_dir.rename(old)
            old_copy = str(old)
        return old_copy


def _parse_record(raw: bytes) -> str:
    """The source of a master key record read from Vault (hostile: shape checked)."""
    try:
        meta = json.loads(raw)
        if not isinstance(meta, dict) or meta.get("format") != 1:
            raise ValueError
        source, wrapped = meta.get("source"), meta.get("wrapped_root")
        if not isinstance(source, str) or not isinstance(wrapped, str):
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        raise IntegrityError(
            "the master key record shared in Vault is malformed (tampered?); restore it"
        ) from None
    if source not in SHAREABLE_SOURCES:
        raise IntegrityError(
            f"the master key record shared in Vault names source {source[:32]!r}, which no "
            "other host can open (tampered?)"
        )
    return source


def _key_id(raw: bytes) -> bytes:
    try:
        meta = json.loads(raw)
        return str(meta.get("key_id") or meta.get("wrapped_root")).encode()
    except (ValueError, AttributeError):
        return b""
