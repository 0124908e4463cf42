"""Data encryption through KeyManager: records, streams, files, rewrap, async.

Audit policy (DESIGN.md: every key operation is audited, fail closed):

* streams and files (``ekm encrypt/decrypt/rewrap``): one record per call, written before the
  output becomes visible; if the log cannot be written, no output is left behind;
* records (``encrypt``/``decrypt`` of small values): one record per *data-key* wrap or unwrap,
  not per record. With the data-key cache (the default) a data key serves many records, so an
  application encrypting 100,000 fields a second writes a few records a minute, while every key
  version used and every new data key is still on the log. With ``[cache] enabled = false``
  every record has its own data key and therefore its own audit record.
* every failure (wrong key, tampered input, destroyed version) is recorded with
  ``result = "denied"`` (integrity) or ``"error"``: the monitor counts bursts of these.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from ekm.errors import EkmError, InvalidError, NotFoundError, StorageError
from ekm.ops.handles import HandleOps
from ekm.ops.hot_records import (
    HotRecords,
    hot_decrypt,
    hot_encrypt,
    remember_decrypt,
    remember_encrypt,
)


class _Resolver:
    """What stream slots are opened with: named key versions and recipient private keys."""

    def __init__(self, mgr: Any, audit: Any = None) -> None:
        self._mgr = mgr
        self._audit = audit
        self.used: list[tuple[str, int]] = []

    def __call__(self, name: str, version: int) -> Any:
        self.used.append((name, version))
        return self._mgr._resolve(name, version, audit=self._audit)

    def recipient_key(self, recipient_id: str) -> Any:
        out = self._mgr.recipient_key(recipient_id)
        from ekm.crypto.jwt_tokens import parse_kid

        self.used.append(parse_kid(recipient_id))
        return out


def _aad(aad: bytes | str) -> bytes:
    if isinstance(aad, str):
        return aad.encode()
    if not isinstance(aad, (bytes, bytearray, memoryview)):
        raise InvalidError("associated data must be bytes or text")
    return bytes(aad)


class DataOps(HandleOps):
    """Mixin for KeyManager: envelope encryption of records and streams."""

    # ---- auditing helpers ----------------------------------------------------------------------
    def _audit_datakey(self, op: str, name: str, version: int) -> None:
        self.audit_log.append(op, key=name, version=version)

    def _failed(self, op: str, key: str | None, version: int | None, exc: EkmError) -> None:
        self._audit_failure(op, key, version, exc)

    # ---- records -------------------------------------------------------------------------------
    def encrypt(self, name: str, plaintext: bytes, aad: bytes | str = b"") -> bytes:
        """An ``ekm record v1`` of ``plaintext`` under the primary version of ``name``.

        ``aad`` (e.g. the table and row id) is authenticated, not stored: pass the same value
        to :meth:`decrypt`. Thread-safe.
        """
        hot = self.__dict__.get("_hot_records")
        if hot is not None and self._keystore is not None:
            out = hot_encrypt(
                hot, self._keystore.cached_documents(), self._dek_cache, name, plaintext, aad
            )
            if out is not None:
                return out
        from ekm.crypto import envelope

        if not isinstance(plaintext, (bytes, bytearray, memoryview)):
            raise InvalidError("plaintext must be bytes (encode text as UTF-8)")
        try:
            doc = self._doc_before(name)
            wrapper = self._encryption_wrapper(name, audit=self._audit_datakey)
            cache = self.dek_cache
            out = envelope.encrypt(wrapper, bytes(plaintext), _aad(aad), cache=cache)
        except EkmError as exc:
            self._failed("encrypt", name, None, exc)
            raise
        if cache is not None:
            remember_encrypt(self._hot(), name, doc, wrapper.version)
        return out

    def _hot(self) -> HotRecords:
        hot = self.__dict__.get("_hot_records")
        if hot is None:
            section = self.config.sections["cache"]
            hot = HotRecords(section["max_size"], float(section["ttl_seconds"]))
            self.__dict__["_hot_records"] = hot
        return hot

    def _doc_before(self, name: Any) -> Any:
        """The keystore's current document of ``name`` (None if not read yet), taken before
        the full path checks it: a warm entry is tied to what was actually checked."""
        if self._keystore is None or not isinstance(name, str):
            return None
        return self._keystore.cached_documents().get(name)

    def decrypt(self, blob: bytes, aad: bytes | str = b"") -> bytes:
        """The plaintext of a record made by :meth:`encrypt` (any non-retired version).

        IntegrityError (exit 4) for anything not authentic; NotFoundError (3) for an unknown
        key or version; StateError (3) for a disabled or destroyed version.
        """
        hot = self.__dict__.get("_hot_records")
        if hot is not None and self._keystore is not None:
            out = hot_decrypt(hot, self._keystore.cached_documents(), blob, aad)
            if out is not None:
                return out
        from ekm.crypto import envelope

        name = version = None
        try:
            parsed = envelope.parse(blob)  # parsed once: names the key for the audit too
            name, version = parsed.key_name, parsed.version
            doc = self._doc_before(name)
            cache = self.dek_cache
            out = envelope.decrypt_parsed(
                parsed, _aad(aad), resolve=self._record_resolver(), cache=cache
            )
            if cache is not None:
                warm = cache.decryption_entry(name, version, parsed.wrapped)
                if warm is not None:
                    remember_decrypt(self._hot(), blob, warm[0], doc, name, warm[1])
            return out
        except EkmError as exc:
            if name is None:
                with contextlib.suppress(EkmError):
                    name, version, _kind = envelope.peek(blob)
            self._failed("decrypt", name, version, exc)
            raise

    def _record_resolver(self) -> Callable[[str, int], Any]:
        """``resolve(name, version)`` for records: the state check and a counted wrapper
        whose unwraps are audited (one record per data-key unwrap)."""
        resolver = self.__dict__.get("_record_resolve")
        if resolver is None:
            audit = self._audit_datakey

            def resolver(name: str, version: int) -> Any:
                return self._resolve(name, version, audit=audit)

            self.__dict__["_record_resolve"] = resolver
        return resolver

    def rewrap(self, blob: bytes, name: str | None = None) -> bytes:
        """The record with its data key re-wrapped under the current primary (data untouched)."""
        from ekm.crypto import envelope

        old_name = version = None
        try:
            old_name, version, _ = envelope.peek(blob)
            target = self._encryption_wrapper(name or old_name)
            out = envelope.rewrap(blob, _Resolver(self), target)
            if out != bytes(blob):
                self.audit_log.append(
                    "rewrap", key=target.key_name, version=target.version,
                    from_key=old_name, from_version=version,
                )  # fmt: skip
            return out
        except EkmError as exc:
            self._failed("rewrap", old_name, version, exc)
            raise

    # ---- async (the crypto runs in a thread pool: AES-GCM releases the GIL) -----------------
    def _executor(self) -> Any:
        state = self._ops()
        with state.lock:
            if state.executor is None:
                from concurrent.futures import ThreadPoolExecutor

                state.executor = ThreadPoolExecutor(
                    max_workers=min(8, (os.cpu_count() or 2) + 2), thread_name_prefix="ekm-crypto"
                )
            return state.executor

    async def encrypt_data_async(
        self, name: str, plaintext: bytes, aad: bytes | str = b""
    ) -> bytes:
        """:meth:`encrypt` on a worker thread, so an event loop keeps serving meanwhile."""
        import asyncio

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), self.encrypt, name, plaintext, aad)

    async def decrypt_data_async(self, blob: bytes, aad: bytes | str = b"") -> bytes:
        """:meth:`decrypt` on a worker thread."""
        import asyncio

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), self.decrypt, blob, aad)

    # ---- streams -------------------------------------------------------------------------------
    def _slot_for(self, name: str | None, recipients: list[str] | None) -> tuple[Any, str, Any]:
        """(slot, audit key label, version) for a named key or a list of recipients."""
        if recipients:
            from ekm.crypto.recipient_slot import RecipientSlot

            self.unlock()
            resolved = [_parse_recipient(r) or self.recipient_public(r) for r in recipients]
            slot = RecipientSlot(resolved)
            return slot, ",".join(slot.recipient_ids)[:200], None
        if not name:
            raise InvalidError("give a key name (--key) or a recipient (--recipient)")
        wrapper = self._encryption_wrapper(name)
        return wrapper, name, wrapper.version

    def encrypt_stream(
        self,
        src: BinaryIO,
        dst: BinaryIO,
        name: str | None = None,
        aad: bytes | str = b"",
        *,
        recipients: list[str] | None = None,
        segment_size: int | None = None,
        before_commit: Callable[[], None] | None = None,
    ) -> int:
        """Encrypt ``src`` into ``dst`` (``ekm stream v1``) in constant memory; bytes read.

        Sealed to the primary of key ``name``, or to ``recipients`` (key names of this home or
        ``ekm-recipient:`` strings). One audit record per call.
        """
        from ekm.crypto import stream

        label, version = name, None
        try:
            self.audit_log.ensure_writable()
            slot, label, version = self._slot_for(name, recipients)
            total = stream.encrypt_stream(
                src, dst, slot, _aad(aad),
                segment_size=segment_size or stream.DEFAULT_SEGMENT_SIZE,
            )  # fmt: skip
            if before_commit is not None:
                before_commit()
        except EkmError as exc:
            self._failed("encrypt", label, version, exc)
            raise
        self.audit_log.append(
            "encrypt", key=label, version=version, bytes=total,
            to="recipients" if recipients else "key",
        )  # fmt: skip
        return total

    def decrypt_stream(self, src: BinaryIO, dst: BinaryIO, aad: bytes | str = b"") -> int:
        """Verify and decrypt ``src`` into ``dst``; plaintext bytes written.

        A segment's plaintext reaches ``dst`` only after it verified, but earlier segments are
        written before a later one fails: use :meth:`decrypt_file` to a path when a failure
        must leave nothing behind.
        """
        from ekm.crypto import stream

        resolver = _Resolver(self)
        try:
            self.audit_log.ensure_writable()
            total = stream.decrypt_stream(src, dst, resolver, _aad(aad))
        except EkmError as exc:
            self._failed("decrypt", *_used(resolver), exc)
            raise
        self.audit_log.append("decrypt", key=_used(resolver)[0], version=_used(resolver)[1],
                              bytes=total)  # fmt: skip
        return total

    def decrypt_file(
        self, src: BinaryIO | str | os.PathLike[str], out_path: str | os.PathLike[str],
        aad: bytes | str = b"", *, force: bool = False,
    ) -> int:  # fmt: skip
        """Decrypt into ``out_path``, which appears only after every segment verified and the
        audit record was written; nothing is left on disk otherwise."""
        from ekm.crypto import stream

        resolver = _Resolver(self)

        def audit(total: int) -> None:
            name, version = _used(resolver)
            self.audit_log.append("decrypt", key=name, version=version, bytes=total)

        try:
            self.audit_log.ensure_writable()
            return stream.decrypt_to_path(
                src, out_path, resolver, _aad(aad), force=force, before_commit=audit
            )
        except EkmError as exc:
            self._failed("decrypt", *_used(resolver), exc)
            raise

    def encrypt_file(
        self, src: BinaryIO, out_path: str | os.PathLike[str], name: str | None = None,
        aad: bytes | str = b"", *, recipients: list[str] | None = None, force: bool = False,
        segment_size: int | None = None,
    ) -> int:  # fmt: skip
        """Encrypt ``src`` into ``out_path`` atomically (temp file beside it, then rename)."""
        target = Path(out_path)
        if (target.exists() or target.is_symlink()) and not force:
            raise InvalidError(f"{target} already exists; pass --force to overwrite it")
        if not target.parent.is_dir():
            raise InvalidError(f"{target.parent} is not a directory; create it first")
        from ekm.crypto.stream import _commit, _temp_beside

        try:
            with _temp_beside(target) as (tmp, fh):
                total = self.encrypt_stream(
                    src, fh, name, aad, recipients=recipients, segment_size=segment_size
                )
                _commit(tmp, fh, target, replace=force)
        except FileExistsError:
            raise InvalidError(f"{target} already exists; pass --force to overwrite it") from None
        except OSError as exc:
            raise StorageError(f"could not write {target}: {exc.strerror}") from None
        return total

    def rewrap_file(self, path: str | os.PathLike[str], name: str | None = None) -> dict[str, Any]:
        """Re-seal a stream file's data key under the current primary; payload untouched.

        Returns ``{"path", "key", "from_version", "version", "changed"}``. Files sealed to
        recipients cannot be rewrapped (they name no symmetric key).
        """
        from ekm.crypto import stream

        p = Path(path)
        old = None
        try:
            with contextlib.ExitStack() as stack:
                try:
                    fh = stack.enter_context(open(p, "rb"))
                except FileNotFoundError:
                    raise NotFoundError(f"{p} does not exist") from None
                except OSError as exc:
                    raise NotFoundError(f"{p}: cannot read it ({exc.strerror})") from None
                header = stream.read_header(fh)
            old = (getattr(header.slot, "key_name", None), getattr(header.slot, "version", None))
            if old[0] is None:
                raise InvalidError(
                    f"{p} is sealed to recipient public keys; only files encrypted with --key "
                    "can be rewrapped"
                )
            target = self._encryption_wrapper(name or old[0])
            result = {"path": str(p), "key": target.key_name, "from_version": old[1],
                      "version": target.version}  # fmt: skip
            if (target.key_name, target.version) == old:
                return {**result, "changed": False}
            self.audit_log.ensure_writable()
            stream.rewrap_stream_header(p, _Resolver(self), target)
        except EkmError as exc:
            self._failed("rewrap", *(old or (None, None)), exc)
            raise
        self.audit_log.append(
            "rewrap", key=target.key_name, version=target.version,
            from_key=old[0], from_version=old[1], path=str(p),
        )  # fmt: skip
        return {**result, "changed": True}


def _parse_recipient(text: str) -> tuple[str, bytes, str] | None:
    """``ekm-recipient:TYPE:ID:BASE64URL`` where ID may itself hold colons (``name:v3``).

    None for a key name (resolved by the home). The public key is checked when sealing.
    """
    import base64
    import binascii

    from ekm.crypto.keytypes import parse_type, spec
    from ekm.errors import UsageError

    if not text.startswith("ekm-recipient:"):
        return None
    parts = text.strip().split(":")
    try:
        if len(parts) < 4 or not parts[-1]:
            raise ValueError
        key_type = parse_type(parts[1])
        raw = base64.urlsafe_b64decode(parts[-1] + "=" * (-len(parts[-1]) % 4))
    except (ValueError, binascii.Error):
        raise UsageError(
            "malformed recipient string; expected ekm-recipient:TYPE:ID:BASE64URL"
        ) from None
    if spec(key_type).family not in ("ecdh", "ml-kem", "hybrid-kem"):
        raise UsageError(f"a {key_type.value} key cannot be a recipient")
    return key_type.value, raw, ":".join(parts[2:-1])


def _used(resolver: _Resolver) -> tuple[str | None, int | None]:
    return resolver.used[-1] if resolver.used else (None, None)
