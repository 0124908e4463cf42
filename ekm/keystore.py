"""The keystore: key metadata and encrypted material over a DocumentStore.

Document format (JSON, one per key)::

    {"format": 1, "meta": {Key.to_dict()}, "material": {"<version>": "<b64 nonce||ct||tag>"},
     "mac": "<hex HMAC-SHA256>"}

* material is AES-256-GCM under a key derived from the root key, with the key's name, version
  and type as associated data, so a blob cannot be moved to another key or version;
* ``mac`` authenticates ``format``, ``meta`` and ``material`` (HMAC under another derived key);
  it is checked whenever the master key is unlocked, so editing metadata by hand is detected;
* metadata is readable without the master key, so ``ekm rotate --check`` needs no secret.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

from ekm.backends.base import DocumentStore
from ekm.crypto.keytypes import KeyType
from ekm.errors import IntegrityError, InvalidError, NotFoundError
from ekm.masterkey import RootKey
from ekm.model import Key

FORMAT = 1


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def material_aad(name: str, version: int, key_type: KeyType) -> bytes:
    return f"ekm/v1/material|{name}|{version}|{key_type.value}".encode()


def _check_lookup_name(name: str) -> None:
    """Refuse a name that could leave the keys directory (or KV folder) before any lookup.

    Names come from the command line, ciphertext headers, JWT ``kid``s and backups; a
    ``../master`` must not make the file backend read (and, locked, trust) a document outside
    ``keys/``. Creation applies the stricter rule of :func:`ekm.config.check_key_name`.
    """
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= 128
        or name[0] == "."
        or "/" in name
        or "\\" in name
        or not name.isprintable()
    ):
        raise NotFoundError(
            f"no key named {str(name)[:64]!r}: key names are 1-64 characters of a-z, 0-9, "
            "_ - . (run `ekm status` to list the keys)"
        )


class Keystore:
    """Loads and saves keys; wraps material and checks MACs when the root key is present."""

    def __init__(self, store: DocumentStore, root: RootKey | None = None) -> None:
        self.store = store
        self.root = root
        self._docs: dict[str, tuple[dict[str, Any], Any]] = {}
        self._pending: list[tuple[str, bytes]] | None = None
        self._shared: dict[str, tuple[dict[str, Any], Key]] = {}
        self._mac_key = root.derive("metadata-mac") if root else None
        self._wrap_key = root.derive("material-wrap") if root else None

    @property
    def unlocked(self) -> bool:
        return self.root is not None

    # -- reading ----------------------------------------------------------------------------
    def names(self) -> list[str]:
        return self.store.names()

    def exists(self, name: str) -> bool:
        return name in self._docs or self.store.read(name) is not None

    def _where(self, name: str) -> str:
        path = getattr(self.store, "path", None)
        return str(path(name)) if path else f"{self.store.describe()}/{name}"

    def _doc(
        self, name: str, *, refresh: bool = False, cache: bool = True
    ) -> tuple[dict[str, Any], Any]:
        if not refresh and name in self._docs:
            return self._docs[name]
        _check_lookup_name(name)
        got = self.store.read(name)
        if got is None:
            known = self.store.names()
            hint = f" (known keys: {', '.join(known[:12])}{', ...' if len(known) > 12 else ''})"
            raise NotFoundError(f"no key named {name!r}{hint if known else ''}")
        raw, token = got
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise ValueError
            if not isinstance(doc.get("meta"), dict) or not isinstance(doc.get("material"), dict):
                raise ValueError
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise IntegrityError(
                f"{self._where(name)} is not a valid key document (tampered or truncated); "
                "restore it from a backup"
            ) from None
        if self._mac_key is not None:
            want = self._mac(doc)
            if not isinstance(doc.get("mac"), str) or not hmac.compare_digest(doc["mac"], want):
                raise IntegrityError(
                    f"{self._where(name)} failed its integrity check (edited or tampered); "
                    "restore it from a backup"
                )
        if doc["meta"].get("name") != name:
            raise IntegrityError(
                f"{self._where(name)} holds key {str(doc['meta'].get('name'))[:64]!r}, not "
                f"{name!r} (renamed or swapped file)"
            )
        if cache:
            self._docs[name] = (doc, token)
        return doc, token

    def _mac(self, doc: dict[str, Any]) -> str:
        assert self._mac_key is not None
        body = {"format": doc["format"], "meta": doc["meta"], "material": doc["material"]}
        return hmac.new(self._mac_key, _canonical(body), hashlib.sha256).hexdigest()

    def load(self, name: str, *, refresh: bool = False) -> Key:
        doc, _ = self._doc(name, refresh=refresh)
        try:
            return Key.from_dict(doc["meta"])
        except InvalidError as exc:
            raise IntegrityError(f"{self._where(name)}: {exc} (tampered?)") from None

    def cached_documents(self) -> dict[str, tuple[dict[str, Any], Any]]:
        """The documents read so far, by name (read-only for callers).

        Each value is replaced by a new object whenever its document is saved, re-read or
        forgotten, so holding one and comparing with ``is`` later tells whether anything in
        that key changed meanwhile (ekm/ops/hot_records.py relies on this).
        """
        return self._docs

    def load_shared(self, name: str) -> Key:
        """A read-only Key for hot paths (record encryption): parsed once per document.

        The object is shared between calls: never modify it (mutators use :meth:`load`, which
        returns a fresh Key). A new document (after any save or refresh) is parsed again.
        """
        doc, _ = self._doc(name)
        cached = self._shared.get(name)
        if cached is not None and cached[0] is doc:
            return cached[1]
        key = self.load(name)
        self._shared[name] = (doc, key)
        return key

    def iter_meta(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(name, raw metadata) of every key, without building Key objects.

        The cron path (``rotate --check`` on 100,000 keys) needs only a few fields; MACs are
        checked as everywhere else when the master key is unlocked.
        """
        for name in self.names():
            yield name, self._doc(name, cache=False)[0]["meta"]

    def load_all(self) -> list[Key]:
        return [self.load(n) for n in self.names()]

    def has_material(self, name: str, version: int) -> bool:
        doc, _ = self._doc(name)
        return str(version) in doc["material"]

    def material(self, name: str, version: int) -> bytes:
        """Decrypt one version's material (needs the master key)."""
        if self._wrap_key is None:
            raise IntegrityError("the master key is locked; cannot read key material")
        doc, _ = self._doc(name)
        key = self.load_shared(name)  # read-only
        kv = key.version(version)
        blob = doc["material"].get(str(version))
        if blob is None:
            raise NotFoundError(
                f"key {name!r} version {version} has no material here "
                f"(state {kv.state.value}, backend {key.backend})"
            )
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            raw = base64.b64decode(blob, validate=True)
            if len(raw) < 28:
                raise ValueError
            return AESGCM(self._wrap_key).decrypt(
                raw[:12], raw[12:], material_aad(name, version, key.type_of(kv))
            )
        except (InvalidTag, ValueError, TypeError):
            raise IntegrityError(
                f"{self._where(name)}: material of version {version} failed "
                "authentication (tampered); restore it from a backup"
            ) from None

    # -- writing ----------------------------------------------------------------------------
    def save(
        self,
        key: Key,
        *,
        add_material: dict[int, bytes] | None = None,
        drop_material: set[int] | frozenset[int] = frozenset(),
        create: bool = False,
        replace: bool = False,
    ) -> None:
        """Write a key's metadata with material added or removed, atomically.

        ``replace`` drops every stored material first (restoring a key from a backup): the
        old document is replaced by the new one in a single atomic write.
        """
        if self._wrap_key is None:
            raise IntegrityError("the master key is locked; cannot change the keystore")
        if create:
            if self.store.read(key.name) is not None:
                from ekm.errors import KeyExistsError

                raise KeyExistsError(
                    f"key {key.name!r} already exists; use `ekm rotate "
                    f"{key.name}` to make a new version"
                )
            material: dict[str, str] = {}
            token = None
        else:
            doc, token = self._doc(key.name)
            material = {} if replace else dict(doc["material"])
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        aes = AESGCM(self._wrap_key)
        for version, secret in (add_material or {}).items():
            kv = key.version(version)
            nonce = os.urandom(12)
            ct = aes.encrypt(nonce, bytes(secret), material_aad(key.name, version, key.type_of(kv)))
            material[str(version)] = base64.b64encode(nonce + ct).decode()
        for version in drop_material:
            material.pop(str(version), None)
        doc = {"format": FORMAT, "meta": key.to_dict(), "material": material}
        doc["mac"] = self._mac(doc)
        data = _canonical(doc) + b"\n"
        if self._pending is not None:
            self._pending.append((key.name, data))
            self._docs[key.name] = (doc, token)
            return
        new_token = self.store.write(key.name, data, token)
        self._docs[key.name] = (doc, new_token)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Defer the writes of :meth:`save` and commit them together at the end.

        Only where the store can write many documents with one sync (the file store); on
        stores with check-and-set (Vault) every save is written at once, as before. If the
        commit fails, nothing of the batch is written and the cache is dropped.
        """
        if self._pending is not None or not hasattr(self.store, "write_many"):
            yield
            return
        self._pending = []
        try:
            yield
            pending, self._pending = self._pending, None
            self.store.write_many(pending)
        except BaseException:
            self._docs.clear()
            raise
        finally:
            self._pending = None

    def mutate(
        self,
        name: str,
        change: Callable[[Key], dict[str, Any] | None],
        *,
        attempts: int = 6,
        sleep: Callable[[float], None] | None = None,
    ) -> Key:
        """Read-modify-write one key; after a CAS conflict, re-run ``change`` on fresh state.

        ``change(key)`` edits the loaded key in place and returns :meth:`save`'s keyword
        arguments (``add_material`` / ``drop_material``). On a shared (Vault) store another
        host may write the key between our read and our write; the write is then refused and
        we start again from what that host wrote, so neither change is lost. Bounded, with
        jitter so two hosts do not collide in lockstep.
        """
        import random
        import time

        from ekm.backends.vault_client import CasConflict
        from ekm.errors import BackendError

        for attempt in range(attempts):
            key = self.load(name, refresh=attempt > 0)
            try:
                self.save(key, **(change(key) or {}))
                return key
            except CasConflict:
                delay = min(0.5, 0.02 * 2**attempt)
                (sleep or time.sleep)(random.uniform(delay / 2, delay))  # noqa: S311 - jitter
        raise BackendError(
            f"another host changed key {name!r} at the same time ({attempts} attempts); "
            "nothing was written for it; retry"
        )

    def delete(self, name: str) -> None:
        _, token = self._doc(name)
        self.store.delete(name, token)
        self._docs.pop(name, None)

    def forget(self) -> None:
        """Drop cached documents (after another process may have written)."""
        self._docs.clear()
        self._shared.clear()

    def verify_all(self) -> list[str]:
        """Check every document's MAC and every version's material; return problems found."""
        problems = []
        self.forget()
        for name in self.names():
            try:
                key = self.load(name)
                for v in key.versions:
                    if self.has_material(name, v.version):
                        self.material(name, v.version)
            except (IntegrityError, NotFoundError) as exc:
                problems.append(str(exc))
        return problems
