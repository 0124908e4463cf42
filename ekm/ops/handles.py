"""Resolving ``(key name, version)`` to something that can wrap, unwrap or open a data key.

Every ciphertext names its key and version; decryption asks :meth:`HandleOps._resolve`, which
checks the version's *state* on every call (so a version disabled or destroyed in this process
stops decrypting at once, even with data keys in the cache) and returns a wrapper that counts
wraps through the :class:`~ekm.ops.usage.UsageLedger`.

Why a destroyed or disabled version is exit 3 (StateError) and not exit 4: the ciphertext may
be perfectly authentic; what refuses it is the key's lifecycle state, an operator decision that
the operator can look up (``ekm keys show``) and, for ``disabled``, undo. Exit 4 means
"tampering or wrong secret: investigate", which would send the operator down the wrong path.
Unknown keys and versions are exit 3 (NotFoundError) for the same reason, as in FORMAT.md.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from ekm.crypto.keytypes import KeyState, KeyType, KeyUsage, spec
from ekm.errors import BackendError, StateError, UsageError
from ekm.ops.usage import UsageLedger

_ENCRYPTING_USAGES = (KeyUsage.ENCRYPTION, KeyUsage.KEY_WRAPPING)
_RECIPIENT_FAMILIES = ("ecdh", "ml-kem", "hybrid-kem")


class CountedWrapper:
    """A KeyWrapper whose wraps are charged to the ledger and whose uses can be audited.

    ``audit(op, name, version)`` is called after each wrap/unwrap when given: for the record
    API that is the audit policy "one record per data-key wrap or unwrap, not per record".
    """

    def __init__(self, inner: Any, ledger: UsageLedger, audit: Any = None) -> None:
        self.inner = inner
        self.key_name = inner.key_name
        self.version = inner.version
        self._ledger = ledger
        self._audit = audit

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes:
        self._ledger.charge(self.key_name, self.version)
        out = self.inner.wrap(plaintext, aad)
        if self._audit is not None:
            self._audit("datakey.wrap", self.key_name, self.version)
        return out

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        out = self.inner.unwrap(blob, aad)
        if self._audit is not None:
            self._audit("datakey.unwrap", self.key_name, self.version)
        return out

    def __repr__(self) -> str:
        return f"CountedWrapper({self.key_name!r}, v{self.version})"


@dataclass
class OpsState:
    """Per-manager state of the crypto operations (created lazily: KeyManager.__init__ is
    shared code)."""

    ledger: UsageLedger
    wrappers: dict[tuple[str, int], Any] = field(default_factory=dict)
    counted: dict[tuple[str, int, Any], CountedWrapper] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    persist_lock: threading.Lock = field(default_factory=threading.Lock)
    executor: Any = None
    warnings: list[str] = field(default_factory=list)


class HandleOps:
    """Mixin for KeyManager: key-version resolution, usage counting, the data-key cache."""

    # ---- state -------------------------------------------------------------------------------
    def _ops(self) -> OpsState:
        state = self.__dict__.get("_crypto_ops_state")
        if state is None:
            frac = self.config.get("rotation", "usage_warn_fraction")
            state = OpsState(
                ledger=UsageLedger(
                    self._persist_usage, warn_fraction=frac, on_warn=self._usage_warn
                )
            )
            self.__dict__["_crypto_ops_state"] = state
        return state

    @property
    def dek_cache(self) -> Any:
        """The in-memory data-key cache of ``[cache]`` (None when disabled); never on disk."""
        if self._dek_cache is None:
            section = self.config.sections["cache"]
            if not section["enabled"] or section["max_size"] < 1 or section["ttl_seconds"] < 1:
                self._dek_cache = False
            else:
                from ekm.crypto.dekcache import DataKeyCache

                self._dek_cache = DataKeyCache(section["max_size"], float(section["ttl_seconds"]))
        # not ``or``: an empty DataKeyCache is falsy (it has __len__)
        return None if self._dek_cache is False else self._dek_cache

    def _persist_usage(self, name: str, version: int, delta: int) -> int:
        """Add ``delta`` to the stored usage count under the keystore lock; the new count."""
        store = self.keystore

        def add(key: Any) -> None:
            kv = key.version(version)
            kv.usage_count = max(0, kv.usage_count + delta)

        # The local lock serialises this host's processes; on a shared (Vault) store
        # another host may still write the key in between, so mutate re-reads and re-adds
        # after a check-and-set conflict instead of failing the encryption.
        with self._ops().persist_lock, store.store.lock():
            store.load(name, refresh=True)  # what other processes wrote before our lock
            return store.mutate(name, add).version(version).usage_count

    def _usage_warn(self, name: str, version: int, count: int, limit: int) -> None:
        text = (
            f"key {name} version {version} has made {count} of its {limit} AES-GCM encryptions; "
            f"rotate it soon (ekm rotate {name} --force)"
        )
        self._ops().warnings.append(text)
        import logging

        logging.getLogger("ekm").warning(text)
        self.audit_log.append(
            "key.usage_warning", key=name, version=version, result="warning", count=count
        )

    def usage_warnings(self) -> list[str]:
        """Warnings raised in this process (the CLI prints them on stderr), then cleared."""
        state = self._ops()
        out, state.warnings = state.warnings, []
        return out

    def flush_usage(self) -> None:
        """Give unused wrap reservations back to the keystore (see ekm/ops/usage.py)."""
        state = self.__dict__.get("_crypto_ops_state")
        if state is not None and self.unlocked:
            state.ledger.release()

    def close(self) -> None:
        """Flush usage counts, drop cached data keys and stop the worker threads."""
        self.flush_usage()
        if self._dek_cache not in (None, False):
            self._dek_cache.clear()
        hot = self.__dict__.get("_hot_records")
        if hot is not None:
            hot.clear()
        state = self.__dict__.get("_crypto_ops_state")
        if state is not None:
            state.wrappers.clear()
            state.counted.clear()
            if state.executor is not None:
                state.executor.shutdown(wait=True)
                state.executor = None

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- resolution ----------------------------------------------------------------------------
    def _usable(self, name: str, version: int | None) -> tuple[Any, Any]:
        """(Key, KeyVersion) that may decrypt/verify now; StateError/NotFoundError otherwise."""
        key = self.keystore.load_shared(name)  # read-only here
        kv = key.version(version)
        if kv.state in (KeyState.DESTROYED, KeyState.DISABLED):
            hint = (
                f"re-enable it (ekm keys enable {name} --version {kv.version})"
                if kv.state is KeyState.DISABLED
                else "data under it can only be read with a backup made before it was destroyed"
            )
            raise StateError(f"version {kv.version} of key {name!r} is {kv.state.value}; {hint}")
        if kv.version < key.min_decryption_version:
            raise StateError(
                f"version {kv.version} of key {name!r} is below its minimum decryption version "
                f"{key.min_decryption_version}; rewrap data before raising that minimum"
            )
        return key, kv

    def _inner_wrapper(self, key: Any, kv: Any) -> Any:
        key_type = key.type_of(kv)
        if spec(key_type).family != "aead":
            raise UsageError(
                f"key {key.name!r} is {key_type.value}; data encryption needs an aes-256-gcm, "
                "aes-128-gcm or chacha20-poly1305 key (or --recipient for a public key)"
            )
        if key.usage not in _ENCRYPTING_USAGES:
            raise UsageError(
                f"key {key.name!r} is for {key.usage.value}, not encryption (one key, one purpose)"
            )
        if key.backend == "pkcs11":
            try:
                from ekm.backends.hsm_handle import HsmAeadWrapper
            except ImportError:
                raise BackendError(
                    f"key {key.name!r} lives in the HSM and this ekm has no HSM data-key "
                    "wrapping (ekm.backends.hsm_handle); use a file-backed key"
                ) from None
            label = kv.backend_ref or self.hsm_label(key.name, kv.version)
            return HsmAeadWrapper(self.hsm_token(), label, key.name, kv.version)
        from ekm.crypto.wrapping import AeadWrapper

        material = self.keystore.material(key.name, kv.version)
        # The ledger enforces the 2**32 limit across processes; the wrapper's own in-memory
        # count would only see this process.
        return AeadWrapper(key.name, kv.version, key_type, material, max_wraps=2**64)

    def _resolve(self, name: str, version: int | None = None, *, audit: Any = None) -> Any:
        """A counted wrapper for a usable version (the primary when ``version`` is None)."""
        key, kv = self._usable(name, version)  # the state check: on every call
        state = self._ops()
        handle = (name, kv.version, audit)  # a CountedWrapper holds no per-call state
        counted = state.counted.get(handle)
        if counted is not None:
            return counted
        with state.lock:
            inner = state.wrappers.get((name, kv.version))
        if inner is None:
            self.unlock()
            inner = self._inner_wrapper(key, kv)
            with state.lock:
                state.wrappers[(name, kv.version)] = inner
        counted = CountedWrapper(inner, state.ledger, audit)
        with state.lock:
            state.counted[handle] = counted
        return counted

    def _encryption_wrapper(self, name: str, *, audit: Any = None) -> Any:
        """The primary version's wrapper: new data is only ever sealed under the primary."""
        key = self.keystore.load_shared(name)  # read-only here
        if key.primary is None:
            raise StateError(f"key {name!r} has no primary version; rotate it first")
        return self._resolve(name, key.primary.version, audit=audit)

    def recipient_key(self, recipient_id: str) -> tuple[KeyType, bytes]:
        """(type, private material) of ``name:vN`` held here (kind 0x02 stream slots)."""
        from ekm.crypto.jwt_tokens import parse_kid

        name, version = parse_kid(recipient_id)
        key, kv = self._usable(name, version)
        key_type = key.type_of(kv)
        if spec(key_type).family not in _RECIPIENT_FAMILIES or key.backend != "file":
            raise UsageError(f"key {name!r} ({key_type.value}) cannot open recipient files")
        self.unlock()
        return key_type, self.keystore.material(name, kv.version)
