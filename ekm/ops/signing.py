"""Detached signatures through KeyManager (the ``SigningOps`` mixin): ``ekm sign`` / ``ekm verify``.

The format and the cryptography are :mod:`ekm.crypto.signatures`; this module decides *which*
key version signs or verifies and keeps the audit trail:

* signing uses the key's **primary** version only (new data is only ever signed by the
  primary, as new data is only ever encrypted under it). File-held keys sign with their
  material; ``pkcs11`` keys sign inside the token through
  :class:`ekm.backends.hsm_handle.HsmSigner` (classic types only: no token has ML-DSA);
* verification resolves the key *and version named in the signature* from this home, so a
  signature made before a rotation, or before an algorithm migration (ed25519 -> ml-dsa-65),
  still verifies with the old version as long as that version is ``primary``, ``active`` or
  ``pending``;
* a ``disabled`` or ``destroyed`` version is refused with StateError (exit 3), exactly as
  ``ekm decrypt`` refuses a ciphertext for one (see ekm/ops/handles.py for why exit 3 and not
  4: the signature may be perfectly authentic; what refuses it is the key's lifecycle state,
  which the operator can look up). A signature that does not match is IntegrityError (exit 4,
  one message for every cause); a document that is not a signature at all is InvalidError
  (exit 3: a malformed input file);
* every sign and verify writes one audit record (``sign`` / ``verify``: key, version,
  algorithm, bytes); a failed one is recorded with ``result = "denied"`` (not authentic) or
  ``"error"``. The record of a signature is written before the signature is returned, so an
  unwritable log means no signature (fail closed).

Data is prehashed with SHA-512 in 1 MiB chunks, so a file of any size is signed or verified in
constant memory. Private and public key objects are cached per ``(name, version)`` for the
life of the manager: expanding an ML-DSA seed costs about as much as a signature.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any, BinaryIO

from ekm.crypto.keytypes import KeyState, KeyType, KeyUsage, spec
from ekm.errors import (
    EkmError,
    IntegrityError,
    InvalidError,
    NotFoundError,
    StateError,
    StorageError,
    UsageError,
)

_VERIFYING_STATES = (KeyState.PRIMARY, KeyState.ACTIVE, KeyState.PENDING)


class _SigningCache:
    """Loaded key objects per ``(name, version, type)``; never written anywhere."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.private: dict[tuple[str, int, KeyType], Any] = {}
        self.public: dict[tuple[str, int, KeyType], Any] = {}


def open_input(path: str | os.PathLike[str]) -> BinaryIO:
    p = Path(path)
    if p.is_dir():
        raise InvalidError(f"{p} is a directory; give a file")
    try:
        return open(p, "rb")
    except FileNotFoundError:
        raise NotFoundError(f"{p} does not exist") from None
    except OSError as exc:
        raise NotFoundError(f"{p}: cannot read it ({exc.strerror})") from None


def _digest_of(src: BinaryIO) -> tuple[bytes, int]:
    """SHA-512 of a stream read in 1 MiB chunks, and its length."""
    h = hashlib.sha512()
    n = 0
    while block := src.read(1 << 20):
        h.update(block)
        n += len(block)
    return h.digest(), n


def _as_bytes(data: Any, what: str) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidError(f"{what} must be bytes (encode text as UTF-8)")
    return bytes(data)


def default_sig_path(path: str | os.PathLike[str]) -> Path:
    """Where ``ekm sign FILE`` puts the signature and ``ekm verify FILE`` looks: FILE.sig."""
    p = Path(path)
    return p.with_name(p.name + ".sig")


class SigningOps:
    """Mixin for KeyManager: detached signatures made and checked by this home's keys."""

    # ---- state ---------------------------------------------------------------------------
    def _signing_cache(self) -> _SigningCache:
        cache = self.__dict__.get("_signing_cache_state")
        if cache is None:
            cache = self.__dict__.setdefault("_signing_cache_state", _SigningCache())
        return cache

    # ---- signing -------------------------------------------------------------------------
    def _signing_version(self, name: str) -> tuple[Any, Any, KeyType]:
        """(Key, primary KeyVersion, its type), refused unless the key may sign."""
        from ekm.crypto import signatures

        key = self.keystore.load(name)
        if key.usage is not KeyUsage.SIGNING:
            raise UsageError(
                f"key {name!r} is for {key.usage.value}, not signing (one key, one purpose)"
            )
        kv = key.primary
        if kv is None:
            raise StateError(f"key {name!r} has no primary version; rotate it first")
        key_type = key.type_of(kv)
        signatures._alg(key_type)  # InvalidError for types that cannot make documents
        return key, kv, key_type

    def _sign_digest(self, key: Any, kv: Any, key_type: KeyType, digest: bytes) -> bytes:
        from ekm.crypto import signatures

        if key.backend == "pkcs11":
            from ekm.backends.hsm_handle import signer_for

            return signer_for(self.hsm_token(), key, kv.version).sign_document(digest)
        cache = self._signing_cache()
        ident = (key.name, kv.version, key_type)
        with cache.lock:
            priv = cache.private.get(ident)
        if priv is None:
            from ekm.crypto import material

            self.unlock()
            priv = material.private_key(key_type, self.keystore.material(key.name, kv.version))
            with cache.lock:
                cache.private[ident] = priv
        return signatures.sign_with_key(
            key_type, priv, digest, key_name=key.name, version=kv.version
        )

    def sign_digest(self, name: str, digest: bytes, *, size: int | None = None) -> bytes:
        """A signature document over the data whose SHA-512 is ``digest`` (primary version).

        The audit record is written before the document is returned (fail closed).
        """
        kv = None
        try:
            self.unlock()
            self.audit_log.ensure_writable()
            key, kv, key_type = self._signing_version(name)
            doc = self._sign_digest(key, kv, key_type, digest)
            from ekm.crypto import signatures

            self.audit_log.append(
                "sign", key=name, version=kv.version, algorithm=signatures.algorithm_of(key_type),
                backend=key.backend, **({"bytes": size} if size is not None else {}),
            )  # fmt: skip
            return doc
        except EkmError as exc:
            self._audit_failure("sign", name, getattr(kv, "version", None), exc)
            raise

    def sign(self, name: str, data: bytes) -> bytes:
        """A detached signature document over ``data`` by the primary version of ``name``.

        Example: ``doc = km.sign("pq_signing", b"release manifest")``.
        """
        data = _as_bytes(data, "data to sign")
        return self.sign_digest(name, hashlib.sha512(data).digest(), size=len(data))

    def sign_stream(self, name: str, src: BinaryIO) -> bytes:
        """As :meth:`sign`, reading ``src`` to its end in constant memory."""
        digest, n = _digest_of(src)
        return self.sign_digest(name, digest, size=n)

    def sign_file(
        self,
        name: str,
        path: str | os.PathLike[str],
        sig_path: str | os.PathLike[str] | None = None,
        *,
        force: bool = False,
    ) -> Path:
        """Sign a file; the document goes to ``sig_path`` (default FILE.sig), written atomically.

        An existing ``sig_path`` is kept (InvalidError) unless ``force``.
        """
        target = check_sig_target(
            sig_path if sig_path is not None else default_sig_path(path), force
        )
        with open_input(path) as fh:
            doc = self.sign_stream(name, fh)
        write_signature(target, doc)
        return target

    # ---- verification ----------------------------------------------------------------------
    def signing_public_key(self, name: str, version: int) -> tuple[KeyType, Any]:
        """(type, public-key object) of a version that may verify; StateError otherwise.

        Unknown keys and versions are NotFoundError (exit 3); ``disabled`` and ``destroyed``
        versions are StateError (exit 3), as for ``ekm decrypt``.
        """
        key = self.keystore.load(name)
        kv = key.version(version)
        if kv.state not in _VERIFYING_STATES:
            hint = (
                f"re-enable it (ekm keys enable {name} --version {kv.version}) to verify with it"
                if kv.state is KeyState.DISABLED
                else "signatures it made can no longer be checked by this home"
            )
            raise StateError(f"version {kv.version} of key {name!r} is {kv.state.value}; {hint}")
        key_type = key.type_of(kv)
        if key.usage is not KeyUsage.SIGNING or not spec(key_type).asymmetric:
            raise UsageError(f"key {name!r} ({key_type.value}) is not a signing key")
        cache = self._signing_cache()
        ident = (name, kv.version, key_type)
        with cache.lock:
            pub = cache.public.get(ident)
        if pub is None:
            self.unlock()
            if key.backend == "pkcs11":
                from ekm.backends.hsm_handle import signer_for

                pub = signer_for(self.hsm_token(), key, kv.version, for_signing=False).public_key()
            else:
                from ekm.crypto import material

                pub = material.public_key(key_type, self.keystore.material(name, kv.version))
            with cache.lock:
                cache.public[ident] = pub
        return key_type, pub

    def verify_digest(
        self, sig: bytes, digest: bytes, *, size: int | None = None, key: str | None = None
    ) -> Any:
        """Check ``sig`` against the data whose SHA-512 is ``digest``; SignatureInfo.

        InvalidError (3) if ``sig`` is not a signature document; NotFoundError/StateError (3)
        for an unknown, disabled or destroyed key version; IntegrityError (4) if it does not
        verify, or if ``key`` pins the signer and another key of this home signed: a valid
        signature by the wrong key is no proof of who released the data. Every outcome is
        audit-logged.
        """
        from ekm.crypto import signatures

        name = version = None
        try:
            sig = _as_bytes(sig, "a signature")
            self.unlock()
            self.audit_log.ensure_writable()
            if key is not None:
                self.keystore.load(key)  # NotFoundError (3) for a pin to an unknown key
            header = signatures.parse(sig)
            name, version = header.key_name, header.version
            if key is not None and name != key:
                raise IntegrityError(f"signed by key {name!r}, not the expected {key!r}")
            info = signatures.verify_digest(sig, digest, self.signing_public_key)
            self.audit_log.append(
                "verify", key=name, version=version, algorithm=info.algorithm,
                **({"bytes": size} if size is not None else {}),
            )  # fmt: skip
            return info
        except EkmError as exc:
            self._audit_failure("verify", name, version, exc)
            raise

    def verify(self, sig: bytes, data: bytes, *, key: str | None = None) -> Any:
        """Check a detached signature over ``data``; returns ``SignatureInfo(key_name,
        version, key_type, algorithm)`` or raises (see :meth:`verify_digest`; ``key`` pins
        the signer)."""
        data = _as_bytes(data, "signed data")
        return self.verify_digest(sig, hashlib.sha512(data).digest(), size=len(data), key=key)

    def verify_stream(self, sig: bytes, src: BinaryIO, *, key: str | None = None) -> Any:
        """As :meth:`verify`, reading ``src`` to its end in constant memory."""
        digest, n = _digest_of(src)
        return self.verify_digest(sig, digest, size=n, key=key)

    def verify_file(
        self,
        path: str | os.PathLike[str],
        sig_path: str | os.PathLike[str] | None = None,
        *,
        key: str | None = None,
    ) -> Any:
        """Verify a file against ``sig_path`` (default FILE.sig); ``key`` pins the signer."""
        from ekm.crypto import signatures

        sig = read_signature(sig_path if sig_path is not None else default_sig_path(path))
        signatures.parse(sig)  # a malformed document fails before the data is read
        with open_input(path) as fh:
            return self.verify_stream(sig, fh, key=key)


def check_sig_target(path: str | os.PathLike[str], force: bool) -> Path:
    """``path`` if a signature may be written there: not existing (unless ``force``), in a
    directory. Checked before the data is read, so a long file is not hashed for nothing."""
    target = Path(path)
    if (target.exists() or target.is_symlink()) and not force:
        raise InvalidError(f"{target} already exists; pass --force to overwrite it")
    if not target.parent.is_dir():
        raise InvalidError(f"{target.parent} is not a directory; create it first")
    return target


def write_signature(target: Path, doc: bytes) -> None:
    """Write a signature document atomically (temp file, fsync, rename).

    Inside a multi-file call (ekm/ops/file_batch.py) the document is staged instead and
    renamed into place after the group's audit records are durable.
    """
    from ekm.crypto.stream import DEFERRED_COMMITS
    from ekm.fsutil import atomic_write

    batch = DEFERRED_COMMITS.get()
    if batch is not None:
        batch.stage(target, doc, replace=True)
        return

    try:
        atomic_write(target, doc)
    except OSError as exc:
        raise StorageError(f"could not write {target}: {exc.strerror}") from None


def read_signature(path: str | os.PathLike[str]) -> bytes:
    """A signature document from a file, refusing anything larger than one can be."""
    from ekm.crypto import signatures

    with open_input(path) as fh:
        doc = fh.read(signatures.MAX_DOC + 1)
    if len(doc) > signatures.MAX_DOC:
        raise InvalidError(
            f"{path} is larger than any ekm signature ({signatures.MAX_DOC} bytes); "
            "give the .sig file, not the data"
        )
    return doc
