"""KeyManager: the one Python API that the CLI and applications both use.

It ties the layers together: the config, the keystore over its storage backend, the master
key (unlocked lazily, only when an operation needs material), and the audit log (every key
operation writes a record; if it cannot, the operation is refused). Time is a parameter:
methods take ``now=`` so tests and ``--as-of`` never patch the clock.

Old callers construct ``EnterpriseKeyManager(hsm_config=..., vault_config=..., cache_config=...,
monitoring_config=..., pqc_config=...)``; those dictionaries are mapped onto the same config
sections that ``ekm.toml`` has.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ekm import config as cfgmod
from ekm.auditlog import AuditLog
from ekm.backends.filestore import FileDocumentStore
from ekm.backends.vault_ops import VaultOps
from ekm.compliance.ops import AuditOps
from ekm.crypto.keytypes import KeyState, KeyType, KeyUsage, parse_type, parse_usage, spec
from ekm.errors import (
    ConfigError,
    EkmError,
    IntegrityError,
    KeyExistsError,
    NotFoundError,
    UsageError,
)
from ekm.home import HomeLayout, default_home
from ekm.keystore import Keystore
from ekm.masterkey import MasterKeyOptions, RootKey
from ekm.model import Key, KeyVersion, RotationPolicy
from ekm.monitor.ops import MonitorOps
from ekm.ops import CryptoOps
from ekm.ops.signing import SigningOps
from ekm.report.ops import ReportOps
from ekm.rotation.ops import RotationOps
from ekm.storage.paths import check_ancestors, check_private, ensure_private_dir
from ekm.timeutil import instant, iso, parse_duration

PassphraseProvider = Callable[[bool], str]

_DEFAULT_USAGE_BY_FAMILY = {
    "aead": KeyUsage.ENCRYPTION, "mac": KeyUsage.MAC, "rsa": KeyUsage.SIGNING,
    "ec": KeyUsage.SIGNING, "eddsa": KeyUsage.SIGNING, "ecdh": KeyUsage.ENCRYPTION,
    "ml-kem": KeyUsage.ENCRYPTION, "ml-dsa": KeyUsage.SIGNING,
    "hybrid-kem": KeyUsage.ENCRYPTION, "hybrid-sig": KeyUsage.SIGNING,
}  # fmt: skip


def _legacy_value(arg: str, section: str, key: str, value: Any) -> Any:
    """Check one value of an old-style constructor dictionary against the config schema."""
    try:
        return cfgmod.SCHEMA[section][key].check(value)
    except ValueError as exc:
        raise ConfigError(f"{arg}[{key!r}] = {value!r} is invalid; expected {exc}") from None


def default_usage(key_type: KeyType) -> KeyUsage:
    """The usage a key of this type gets when none is given."""
    return _DEFAULT_USAGE_BY_FAMILY[spec(key_type).family]


class KeyManager(RotationOps, MonitorOps, AuditOps, CryptoOps, SigningOps, VaultOps, ReportOps):
    """Generate, store, rotate, use and audit the keys of one ekm home."""

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        config: str | os.PathLike[str] | cfgmod.Config | None = None,
        *,
        passphrase: str | None = None,
        passphrase_provider: PassphraseProvider | None = None,
        hsm_config: Mapping[str, Any] | None = None,
        vault_config: Mapping[str, Any] | None = None,
        cache_config: Mapping[str, Any] | None = None,
        monitoring_config: Mapping[str, Any] | None = None,
        pqc_config: Mapping[str, Any] | None = None,
        debug: bool = False,
        env: Mapping[str, str] | None = None,
        lock_timeout: float | None = None,
    ) -> None:
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.home = Path(home).expanduser() if home else default_home(self.env)
        self.layout = HomeLayout(self.home)
        self.debug = debug
        if isinstance(config, cfgmod.Config):
            self.config = config
        else:
            explicit = config is not None or bool(self.env.get("EKM_CONFIG"))
            path = cfgmod.locate(self.home, config, self.env)
            self.config = cfgmod.load(path, required=explicit)
            if self.config.path is None and path.exists():
                self.config.path = path
            self.config_path = path
        self._apply_legacy(hsm_config, vault_config, cache_config, monitoring_config, pqc_config)
        self._passphrase = passphrase
        self._passphrase_provider = passphrase_provider
        timeout = lock_timeout
        if timeout is None:
            timeout = parse_duration(self.config.get("storage", "lock_timeout")).total_seconds()
        self._lock_timeout = timeout
        self._root: RootKey | None = None
        self._keystore: Keystore | None = None
        self._audit: AuditLog | None = None
        self._token: Any = None
        self._vault: Any = None
        self._dek_cache: Any = None

    # ------------------------------------------------------------------------------------
    # Legacy constructor dictionaries (the old EnterpriseKeyManager's callers)
    # ------------------------------------------------------------------------------------
    def _apply_legacy(self, hsm, vault, cache, monitoring, pqc) -> None:
        c = self.config
        if hsm and hsm.get("enabled", True):
            mapped = {k: v for k, v in hsm.items() if k not in ("enabled", "provider")}
            if "pin" in mapped:
                warnings.warn(
                    "hsm_config['pin'] holds the PIN in code; prefer pin_env or pin_file",
                    stacklevel=3,
                )
            c.hsm = {**(c.hsm or {}), **mapped}
        if vault and vault.get("enabled", True):
            c.vault = {**(c.vault or {}), **{k: v for k, v in vault.items() if k != "enabled"}}
        if cache:
            section = c.sections["cache"]
            for key in ("enabled", "max_size", "ttl_seconds"):
                if key in cache:
                    section[key] = _legacy_value("cache_config", "cache", key, cache[key])
        if monitoring:
            section = c.sections["monitor"]
            if monitoring.get("webhook_url"):
                section["webhook"] = str(monitoring["webhook_url"])
            if monitoring.get("slack_url"):
                section["slack"] = str(monitoring["slack_url"])
            if monitoring.get("alert_levels"):
                section["alert_levels"] = [str(x).upper() for x in monitoring["alert_levels"]]
        if pqc:
            section = c.sections["pqc"]
            for key in ("enabled", "algorithms", "hybrid_mode"):
                if key in pqc:
                    section[key] = _legacy_value("pqc_config", "pqc", key, pqc[key])

    # ------------------------------------------------------------------------------------
    # Plumbing: store, master key, audit log
    # ------------------------------------------------------------------------------------
    @property
    def deployed(self) -> bool:
        return self.layout.master_meta.exists()

    def _require_deployed(self) -> None:
        if not self.home.exists():
            raise NotFoundError(f"no ekm home at {self.home} (run `ekm deploy`, or pass --home)")
        if not self.deployed:
            raise NotFoundError(
                f"{self.home} is not an ekm home: master.json is missing (run `ekm deploy`)"
            )
        check_private(self.home)
        check_ancestors(self.home)

    def _document_store(self) -> Any:
        backend = self.config.get("storage", "backend")
        if backend == "vault":
            from ekm.backends.vaultstore import VaultDocumentStore

            return VaultDocumentStore(
                self.vault_client(), lock_path=self.layout.lock, lock_timeout=self._lock_timeout
            )
        return FileDocumentStore(
            self.layout.keys_dir, self.layout.lock, self._lock_timeout, home=self.home
        )

    @property
    def keystore(self) -> Keystore:
        """The keystore (metadata readable without unlocking)."""
        if self._keystore is None:
            self._require_deployed()
            self._keystore = Keystore(self._document_store(), self._root)
        return self._keystore

    @property
    def audit_log(self) -> AuditLog:
        if self._audit is None:
            section = self.config.sections["audit"]
            path = Path(section["log"])
            if not path.is_absolute():
                path = self.home / path
            self._audit = AuditLog(
                path,
                actor=section["actor"],
                max_bytes=section["max_bytes"],
                mac_key=self._root.derive("audit-mac") if self._root else None,
            )
        return self._audit

    def _passphrase_for(self, new: bool) -> str:
        if self._passphrase is not None:
            return self._passphrase
        if self.env.get("EKM_PASSPHRASE"):
            return self.env["EKM_PASSPHRASE"]
        if self._passphrase_provider is not None:
            return self._passphrase_provider(new)
        raise ConfigError(
            "the master key is passphrase-derived: set EKM_PASSPHRASE or run ekm "
            "on a terminal to be asked"
        )

    def _master_options(self, source: str | None = None) -> MasterKeyOptions:
        mk = self.config.sections["master_key"]
        source = source or mk["source"]
        return MasterKeyOptions(
            source=source,
            key_file=mk["key_file"],
            passphrase=self._passphrase_for,
            argon2=(mk["argon2_memory_kib"], mk["argon2_iterations"], mk["argon2_parallelism"]),
            hsm=self.hsm_token() if source == "pkcs11" else None,
            hsm_key_label=mk["hsm_key_label"],
            vault=self.vault_client() if source == "vault-transit" else None,
        )

    def unlock(self) -> None:
        """Unwrap the root key (once per process); failures are audit-logged."""
        if self._root is not None:
            return
        self._require_deployed()
        from ekm import masterkey

        meta = masterkey.read_meta(self.home)
        try:
            root = masterkey.open_root(self.home, self._master_options(meta["source"]))
        except IntegrityError as exc:
            self._audit_failure("unlock", None, None, exc)
            raise
        self._set_root(root)

    def _set_root(self, root: RootKey) -> None:
        self._root = root
        self._keystore = None
        self._audit = None

    @property
    def unlocked(self) -> bool:
        return self._root is not None

    def _audit_failure(self, op: str, key: str | None, version: int | None, exc: EkmError) -> None:
        """Record a failed operation; never masks the original error."""
        try:
            if self.layout.root.exists():
                self.audit_log.append(
                    op,
                    key=key,
                    version=version,
                    result="denied" if isinstance(exc, IntegrityError) else "error",
                    error=type(exc).__name__,
                )
        except EkmError:
            pass

    def hsm_token(self) -> Any:
        """The PKCS#11 token of ``[hsm]`` (opened once per process)."""
        if self._token is None:
            if not self.config.hsm:
                raise ConfigError(
                    f"{self.config.source}: the [hsm] section is missing; it is "
                    "needed for the pkcs11 backend or master key"
                )
            from ekm.backends.pkcs11_token import HsmSettings, Token

            settings = HsmSettings.from_mapping(
                self.config.hsm, env=self.env, source=self.config.source
            )
            self._token = Token.open(settings)
        return self._token

    def vault_client(self) -> Any:
        """The Vault client of ``[vault]`` (hvac imported only now)."""
        if self._vault is None:
            if self.config.vault is None and not self.env.get("VAULT_ADDR"):
                raise ConfigError(
                    f"{self.config.source}: the [vault] section is missing; it is "
                    "needed for the vault backend or master key"
                )
            from ekm.backends.vault_client import VaultClient, VaultSettings

            settings = VaultSettings.from_mapping(
                self.config.vault or {}, env=self.env, source=self.config.source
            )
            self._vault = VaultClient(settings)
        return self._vault

    # ------------------------------------------------------------------------------------
    # Deploy
    # ------------------------------------------------------------------------------------
    def deploy(
        self,
        *,
        master_key: str | None = None,
        dry_run: bool = False,
        generate_keys: bool = True,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """First deployment, idempotent (see :meth:`_deploy_local`).

        With the keystore on Vault the home first joins (or creates) the shared master key
        record, so every host generates keys under the same root key.
        """
        if self.config.get("storage", "backend") == "vault":
            return self.deploy_backend(master_key=master_key, dry_run=dry_run, now=now)
        return self._deploy_local(
            master_key=master_key, dry_run=dry_run, generate_keys=generate_keys, now=now
        )

    def _deploy_local(
        self,
        *,
        master_key: str | None = None,
        dry_run: bool = False,
        generate_keys: bool = True,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """First deployment, idempotent: home, ekm.toml, master key, audit log, key set.

        Returns ``{"home", "dry_run", "changed", "actions": [{"step", "status", "detail"}]}``
        where status is ``created``, ``exists``, ``fixed`` or ``would create``.
        """
        now = instant(now)
        actions: list[dict[str, str]] = []

        def act(step: str, done: bool, detail: str, status: str = "created") -> None:
            if done:
                actions.append({"step": step, "status": "exists", "detail": detail})
            else:
                actions.append(
                    {
                        "step": step,
                        "status": "would create" if dry_run else status,
                        "detail": detail,
                    }
                )

        # 1. home
        home_existed = self.home.exists()
        if not dry_run:
            ensure_private_dir(self.home)
            check_ancestors(self.home)
            ensure_private_dir(self.layout.keys_dir, home=self.home)
        act("home", home_existed, f"{self.home} (0700)")

        # 2. config
        cfg_path = getattr(self, "config_path", self.home / cfgmod.CONFIG_NAME)
        source = master_key or (
            self.config.get("master_key", "source") if self.config.path else "file"
        )
        if source not in cfgmod.MASTER_KEY_SOURCES:
            raise UsageError(
                f"--master-key {source!r}: expected one of " + ", ".join(cfgmod.MASTER_KEY_SOURCES)
            )
        cfg_exists = cfg_path.exists()
        if not cfg_exists and not dry_run:
            from ekm.fsutil import atomic_write

            raw = cfgmod.initial_config(
                source,
                storage_backend=self.config.get("storage", "backend"),
                pqc=self.config.get("pqc", "enabled") and self.config.get("pqc", "hybrid_mode"),
            )
            if self.config.hsm:
                raw["hsm"] = self.config.hsm
            if self.config.vault:
                raw["vault"] = self.config.vault
            atomic_write(cfg_path, cfgmod.render(raw), home=self.home)
            self.config = cfgmod.load(cfg_path)
            self.config_path = cfg_path
        act("config", cfg_exists, str(cfg_path))

        # 3. master key
        master_exists = self.layout.master_meta.exists()
        if master_exists and master_key:
            from ekm import masterkey

            current = masterkey.read_meta(self.home)["source"]
            if current != master_key:
                raise UsageError(
                    f"this home's master key source is {current}; changing it to "
                    f"{master_key} is not done by deploy"
                )
        if not master_exists and not dry_run:
            from ekm import masterkey

            self._set_root(masterkey.create(self.home, self._master_options(source)))
        act("master key", master_exists, f"source {source}")

        # 4. audit log
        audit_exists = self.audit_log.path.exists()
        if not dry_run and not audit_exists:
            self.unlock()
            self.audit_log.append("deploy", master_key_source=source, now=now)
        act("audit log", audit_exists, str(self.audit_log.path))

        # 5. key set
        if generate_keys:
            if dry_run and not master_exists:
                missing = list(self.config.keys)
            else:
                missing = [n for n in self.config.keys if not self._key_exists(n)]
            for name in self.config.keys:
                act(f"key {name}", name not in missing, self.config.keys[name].type.value)
            if missing and not dry_run:
                self.generate_missing(missing, now=now)
            if master_exists:
                for name, detail in self._converge_policies(dry_run=dry_run, now=now):
                    actions.append(
                        {
                            "step": f"policy {name}",
                            "detail": detail,
                            "status": "would update" if dry_run else "updated",
                        }
                    )
        changed = any(a["status"] != "exists" for a in actions)
        return {"home": str(self.home), "dry_run": dry_run, "changed": changed, "actions": actions}

    def _policy_from_spec(self, spec_: cfgmod.KeySpec) -> RotationPolicy:
        policy = self.config.policy_for(spec_.type.value, {
            "rotate_every": spec_.rotate_every or "never", "notify_before": spec_.notify_before,
            "backup": spec_.backup, "keep_versions": spec_.keep_versions})  # fmt: skip
        interval = policy.get("rotate_every")
        return RotationPolicy(
            interval=None if interval in (None, "never") else parse_duration(interval),
            notify_before=parse_duration(policy.get("notify_before") or "0s"),
            backup=bool(policy.get("backup")),
            keep_versions=policy.get("keep_versions"),
        )

    def _converge_policies(self, *, dry_run: bool, now: datetime) -> list[tuple[str, str]]:
        """Bring existing keys' rotation policies in line with ekm.toml (deploy re-run).

        A key stores its policy (so cron needs no config to decide), and ekm.toml is where
        operators change it: running ``ekm deploy`` again applies the change and says so.
        """
        changes = []
        for name, spec_ in self.config.keys.items():
            if not self._key_exists(name):
                continue
            key = self.keystore.load(name)
            want = self._policy_from_spec(spec_)
            if key.policy != want:
                old, new = key.policy.to_dict(), want.to_dict()
                diff = ", ".join(f"{k} {old[k]} -> {new[k]}" for k in new if old[k] != new[k])
                changes.append((name, diff, want))
        if dry_run or not changes:
            return [(n, d) for n, d, _ in changes]
        self.unlock()
        self.audit_log.ensure_writable()
        with self.keystore.store.lock():
            self.keystore.forget()
            for name, diff, want in changes:

                def update(key: Key, want: RotationPolicy = want) -> None:
                    key.policy = want

                self.audit_log.append("key.policy", key=name, change=diff, now=now)
                self.keystore.mutate(name, update)
        return [(n, d) for n, d, _ in changes]

    def _key_exists(self, name: str) -> bool:
        return self.keystore.exists(name)

    def deploy_status(self) -> dict[str, Any]:
        """What is in place: ``{"home", "complete", "items": [{"item", "ok", "detail"}]}``."""
        items: list[dict[str, Any]] = []

        def item(name: str, ok: bool, detail: str) -> None:
            items.append({"item": name, "ok": ok, "detail": detail})

        item("home", self.home.is_dir(), str(self.home))
        cfg_path = getattr(self, "config_path", self.home / cfgmod.CONFIG_NAME)
        item("config", cfg_path.exists(), str(cfg_path))
        item("master key", self.layout.master_meta.exists(), str(self.layout.master_meta))
        item("audit log", self.audit_log.path.exists(), str(self.audit_log.path))
        if self.deployed:
            present = set(self.keystore.names())
            for name in self.config.keys:
                item(f"key {name}", name in present, self.config.keys[name].type.value)
        else:
            for name in self.config.keys:
                item(f"key {name}", False, self.config.keys[name].type.value)
        return {"home": str(self.home), "complete": all(i["ok"] for i in items), "items": items}

    # ------------------------------------------------------------------------------------
    # Generate
    # ------------------------------------------------------------------------------------
    def generate(
        self,
        name: str | None = None,
        *,
        type: str | KeyType | None = None,
        usage: str | KeyUsage | None = None,
        rotate_every: str | None = None,
        notify_before: str | None = None,
        backup: bool | None = None,
        backend: str | None = None,
        labels: Mapping[str, str] | None = None,
        now: datetime | None = None,
    ) -> list[Key]:
        """Create one key (``name``) or every configured key that does not exist yet."""
        if name is None:
            self._require_deployed()
            missing = [n for n in self.config.keys if not self._key_exists(n)]
            return self.generate_missing(missing, now=now)
        cfgmod.check_key_name(name)
        configured = self.config.keys.get(name)
        if type is None and configured is None:
            raise UsageError(
                f"key {name!r} is not in the configured key set; give --type (and --usage)"
            )
        try:
            key_type = parse_type(type) if type is not None else configured.type
            key_usage = parse_usage(usage) if usage is not None else None
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if key_usage is not None:
            pass
        elif configured is not None and configured.type == key_type:
            key_usage = configured.usage
        else:
            key_usage = default_usage(key_type)
        if key_usage not in spec(key_type).usages:
            raise UsageError(
                f"key type {key_type.value} cannot be used for {key_usage.value}; "
                "valid usages: " + ", ".join(sorted(u.value for u in spec(key_type).usages))
            )
        overrides = {"rotate_every": rotate_every, "notify_before": notify_before, "backup": backup}
        if configured is not None and configured.type == key_type:
            base = {
                "rotate_every": configured.rotate_every or "never",
                "notify_before": configured.notify_before,
                "backup": configured.backup,
                "keep_versions": configured.keep_versions,
            }
            base.update({k: v for k, v in overrides.items() if v is not None})
            overrides = base
        for field_name in ("rotate_every", "notify_before"):
            value = overrides.get(field_name)
            if value is not None and value != "never":
                try:
                    parse_duration(value)
                except ValueError as exc:
                    raise UsageError(f"--{field_name.replace('_', '-')}: {exc}") from None
        policy = self.config.policy_for(key_type.value, overrides)
        key_backend = backend or (configured.backend if configured else "file")
        key_labels = dict(labels or (configured.labels if configured else {}))
        key = self._new_key(name, key_type, key_usage, policy, key_backend, key_labels, now)
        return self._create_keys([key], now=now)

    def generate_missing(self, names: Iterable[str], *, now: datetime | None = None) -> list[Key]:
        """Create the configured keys ``names`` (used by deploy and bare ``ekm generate``)."""
        keys = []
        for name in names:
            ks = self.config.keys[name]
            policy = self.config.policy_for(
                ks.type.value,
                {
                    "rotate_every": ks.rotate_every or "never",
                    "notify_before": ks.notify_before,
                    "backup": ks.backup,
                    "keep_versions": ks.keep_versions,
                },
            )
            keys.append(self._new_key(name, ks.type, ks.usage, policy, ks.backend, ks.labels, now))
        return self._create_keys(keys, now=now)

    def _new_key(
        self,
        name: str,
        key_type: KeyType,
        usage: KeyUsage,
        policy: Mapping[str, Any],
        backend: str,
        labels: Mapping[str, str],
        now: datetime | None,
    ) -> Key:
        now = instant(now)
        if backend not in cfgmod.BACKENDS:
            raise UsageError(f"--backend {backend!r}: expected one of {', '.join(cfgmod.BACKENDS)}")
        if backend == "vault" and self.config.get("storage", "backend") != "vault":
            raise UsageError(
                "--backend vault needs the keystore on Vault: set [storage] backend "
                '= "vault" in ekm.toml (or run `ekm keys migrate --to vault`)'
            )
        if backend == "vault":
            backend = "file"  # material is wrapped in the keystore document, which Vault holds
        interval = policy.get("rotate_every")
        return Key(
            name=name, type=key_type, usage=usage, backend=backend,
            policy=RotationPolicy(
                interval=None if interval in (None, "never") else parse_duration(interval),
                notify_before=parse_duration(policy.get("notify_before") or "0s"),
                backup=bool(policy.get("backup")),
                keep_versions=policy.get("keep_versions"),
            ),
            labels=dict(labels),
            versions=[KeyVersion(1, KeyState.PRIMARY, now, activated=now)],
            created=now, rotated=None,
        )  # fmt: skip

    def _create_keys(self, keys: list[Key], *, now: datetime | None) -> list[Key]:
        if not keys:
            return []
        self.unlock()
        self.audit_log.ensure_writable()
        store = self.keystore
        created: list[Key] = []
        with store.store.lock():
            store.forget()
            for key in keys:
                if store.exists(key.name):
                    raise KeyExistsError(
                        f"key {key.name!r} already exists; use `ekm rotate "
                        f"{key.name}` to make a new version"
                    )
            # Fail closed: the records are written before the keys, so a key never exists
            # without its audit record; a failed write is recorded as such afterwards.
            self.audit_log.append_many(
                [
                    {"op": "generate", "key": k.name, "version": 1, "result": "ok",
                     "type": k.type.value, "backend": k.backend, "now": now}
                    for k in keys
                ]
            )  # fmt: skip
            for key in keys:
                try:
                    material = self._make_material(key, key.versions[0])
                    store.save(key, add_material=material, create=True)
                except EkmError as exc:
                    self._audit_failure("generate", key.name, 1, exc)
                    ref = key.versions[0].backend_ref
                    if key.backend == "pkcs11" and ref:  # no orphaned object in the token
                        with contextlib.suppress(EkmError):
                            self.hsm_token().destroy(ref)
                    raise
                created.append(key)
        return created

    def _make_material(self, key: Key, version: KeyVersion) -> dict[int, bytes]:
        """New material for one version: in the keystore, or as an object in the HSM."""
        key_type = key.type_of(version)
        if key.backend == "pkcs11":
            label = self.hsm_label(key.name, version.version)
            self.hsm_token().generate(label, key_type)
            version.backend_ref = label
            return {}
        from ekm.crypto import material

        return {version.version: material.generate(key_type)}

    def hsm_label(self, name: str, version: int) -> str:
        prefix = (self.config.hsm or {}).get("key_label_prefix", "ekm")
        return f"{prefix}/{name}/v{version}"

    # ------------------------------------------------------------------------------------
    # Read
    # ------------------------------------------------------------------------------------
    def kept_in(self, key_backend: str) -> str:
        """Where a key with this metadata ``backend`` is kept, as ``ekm status`` shows it.

        A key's own backend is ``pkcs11`` (its material is an object in the token) or ``file``
        (its material is wrapped inside the key's document); that document lives where the
        keystore does, so with ``[storage] backend = "vault"`` a ``file`` key is kept in Vault.
        Read from the config alone: no connection is made.
        """
        if key_backend == "file" and self.config.get("storage", "backend") == "vault":
            return "vault"
        return key_backend

    def list_keys(self) -> list[Key]:
        """Every key's metadata (no master key needed)."""
        return self.keystore.load_all()

    def key_info(self, name: str) -> Key:
        """One key's metadata; NotFoundError for an unknown name."""
        return self.keystore.load(name)

    def get_key(
        self, name: str, usage: str | KeyUsage | None = None, version: int | None = None
    ) -> bytes:
        """The material of ``name`` (primary version unless ``version``), audit-logged.

        ``usage`` guards against using a key for the wrong purpose (one key, one purpose).
        HSM-held keys have no extractable material: use encrypt/sign through ekm instead.
        """
        self.unlock()
        key = self.keystore.load(name)
        if usage is not None and parse_usage(getattr(usage, "value", usage)) is not key.usage:
            raise UsageError(
                f"key {name!r} is for {key.usage.value}, not "
                f"{parse_usage(getattr(usage, 'value', usage)).value}"
            )
        kv = key.version(version)
        if kv.state not in (KeyState.PRIMARY, KeyState.ACTIVE, KeyState.PENDING):
            raise NotFoundError(
                f"key {name!r} version {kv.version} is {kv.state.value}; its "
                "material cannot be used"
            )
        if key.backend == "pkcs11":
            raise UsageError(
                f"key {name!r} lives in the HSM and is not extractable; use "
                "ekm's encrypt/sign operations"
            )
        self.audit_log.ensure_writable()
        secret = self.keystore.material(name, kv.version)
        self.audit_log.append("key.read", key=name, version=kv.version)
        return secret

    def material(self, name: str, version: int) -> bytes:
        """Material of one version without a usage check (internal: backups, exports)."""
        self.unlock()
        return self.keystore.material(name, version)

    # ------------------------------------------------------------------------------------
    # Status
    # ------------------------------------------------------------------------------------
    def status(self, *, now: datetime | None = None) -> dict[str, Any]:
        """The CLI.md ``ekm status --json`` document (no master key needed)."""
        from ekm.rotation.schedule import next_rotation_meta

        now = instant(now)
        keys = []
        # Built from the raw metadata (as `rotate --check`): status on 10,000 keys stays fast.
        for name, meta in self.keystore.iter_meta():
            nxt, notify = next_rotation_meta(name, meta)
            try:
                min_dec = int(meta.get("min_decryption_version", 1))
                versions = [
                    {
                        "version": int(v["version"]),
                        "state": str(v["state"]),
                        "created": str(v["created"]),
                        "usage_count": int(v.get("usage_count", 0)),
                        # what handles._usable accepts: enabled and not below the minimum
                        "decrypts": str(v["state"]) in ("primary", "active", "pending")
                        and int(v["version"]) >= min_dec,
                        **({"type": str(v["type"])} if v.get("type") else {}),
                    }
                    for v in meta["versions"]
                ]
                primary = next((v["version"] for v in versions if v["state"] == "primary"), None)
                keys.append(
                    {
                        "name": name,
                        "type": str(meta["type"]),
                        "usage": str(meta["usage"]),
                        "backend": self.kept_in(str(meta.get("backend", "file"))),
                        "primary_version": primary,
                        "versions": versions,
                        "next_rotation": iso(nxt) if nxt else None,
                        "due": nxt is not None and nxt <= now,
                        "notify": nxt is not None and now < nxt <= now + notify,
                        "labels": dict(meta.get("labels") or {}),
                        "rotation_stage": meta.get("rotation_stage"),
                        "min_decryption_version": min_dec,
                    }
                )
            except (KeyError, TypeError, ValueError, AttributeError):
                raise IntegrityError(f"key {name!r}: malformed metadata (tampered?)") from None
        from ekm import masterkey

        meta = masterkey.read_meta(self.home)
        log = self.audit_log
        files = log.files()
        return {
            "home": str(self.home),
            "config": self.config.source,
            "time": iso(now),
            "keys": keys,
            "backends": {
                "storage": {
                    "kind": self.config.get("storage", "backend"),
                    "location": self.keystore.store.describe(),
                },
                "master_key": {"source": meta["source"], "key_id": meta.get("key_id")},
            },
            "audit_log": {
                "path": str(log.path),
                "files": len(files),
                "bytes": sum(p.stat().st_size for p in files),
            },
        }

    # ------------------------------------------------------------------------------------
    # Export
    # ------------------------------------------------------------------------------------
    def export_key(
        self, name: str, *, version: int | None = None, public: bool = False, fmt: str = "pem"
    ) -> bytes:
        """Export a key version: the public half, or (explicitly) the secret material."""
        key = self.keystore.load(name)
        kv = key.version(version)
        key_type = key.type_of(kv)
        if kv.state is KeyState.DESTROYED:
            raise NotFoundError(f"key {name!r} version {kv.version} is destroyed")
        if public and not spec(key_type).asymmetric:
            raise UsageError(
                f"key {name!r} is symmetric ({key_type.value}); it has no public "
                "part (use --reveal to export the secret)"
            )
        self.unlock()
        self.audit_log.ensure_writable()
        from ekm.crypto import export

        kid = f"{name}:v{kv.version}"
        if key.backend == "pkcs11":
            if not public:
                raise UsageError(
                    f"key {name!r} lives in the HSM and is not extractable; only --public works"
                )
            der = self.hsm_token().public_key_der(
                kv.backend_ref or self.hsm_label(name, kv.version), key_type
            )
            out = export.export_public_der(key_type, der, fmt=fmt, kid=kid)
        else:
            out = export.export_key(
                key_type, self.keystore.material(name, kv.version), fmt=fmt, public=public, kid=kid
            )
        self.audit_log.append(
            "key.export",
            key=name,
            version=kv.version,
            part="public" if public else "secret",
            format=fmt,
        )
        return out

    def export_jwks(self, name: str) -> bytes:
        """A JWKS of every readable version of an asymmetric key, ``pending`` included, so
        verifiers learn a new key before it signs (rollover)."""
        import json

        from ekm.crypto import export

        key = self.keystore.load(name)
        if not spec(key.type).asymmetric:
            raise UsageError(
                f"key {name!r} is symmetric ({key.type.value}); a JWKS publishes public keys only"
            )
        self.unlock()
        entries = []
        for kv in key.versions:
            if kv.state not in (KeyState.PRIMARY, KeyState.ACTIVE, KeyState.PENDING):
                continue
            kid = f"{name}:v{kv.version}"
            key_type = key.type_of(kv)
            if key.backend == "pkcs11":
                der = self.hsm_token().public_key_der(
                    kv.backend_ref or self.hsm_label(name, kv.version), key_type
                )
                jwk = json.loads(export.export_public_der(key_type, der, fmt="jwk", kid=kid))
            else:
                jwk = json.loads(
                    export.export_key(
                        key_type,
                        self.keystore.material(name, kv.version),
                        fmt="jwk",
                        public=True,
                        kid=kid,
                    )
                )
            entries.append(jwk)
        self.audit_log.append("key.export", key=name, part="public", format="jwks")
        return (json.dumps({"keys": entries}, indent=2) + "\n").encode()

    # ------------------------------------------------------------------------------------
    # Backend diagnostics
    # ------------------------------------------------------------------------------------
    def diagnose_hsm(self) -> Any:
        """``HsmDiagnosis`` (``.connected``, ``.error_message``, token info, mechanisms).

        Never raises for an unreachable or misconfigured HSM: that is what it reports.
        """
        from ekm.backends import pkcs11_token

        if not self.config.hsm:
            return pkcs11_token.HsmDiagnosis(
                connected=False,
                error_message=f"{self.config.source}: no [hsm] section; set [hsm] library_path "
                "and token_label to use a PKCS#11 module",
            )
        try:
            settings = pkcs11_token.HsmSettings.from_mapping(
                self.config.hsm, env=self.env, source=self.config.source
            )
        except EkmError as exc:
            return pkcs11_token.HsmDiagnosis(connected=False, error_message=str(exc))
        return pkcs11_token.diagnose(settings)

    def vault_status(self) -> dict[str, Any]:
        """Vault's seal state, version, auth identity and token TTL (BackendError if down)."""
        return self.vault_client().status()
