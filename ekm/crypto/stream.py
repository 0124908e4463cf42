"""Streaming encryption of files: format ``ekm stream v1`` (docs/FORMAT.md is the contract).

Layout: a header (magic, version, segment size, a per-file random salt, one *key slot*, and an
HMAC over all of it), then the payload in fixed-size segments, each sealed with AES-256-GCM
under a per-file payload key. The nonce of segment *i* is ``i`` (11 bytes, big-endian) plus a
last-segment flag byte, the STREAM construction age and Tink use: reordering, dropping,
truncating or appending segments changes a nonce and fails authentication.

Keys: a fresh 32-byte data key (DEK) per file. From it and the salt, HKDF-SHA256 derives a
header-MAC key and the payload key; the payload key also binds the caller's associated data, so
the wrong AAD fails on the first segment. The key slot only carries the DEK: it can be replaced
(:func:`rewrap_stream_header`) without touching the payload, and new slot kinds (recipient
public keys: X25519, ML-KEM, hybrids) plug in through :func:`register_slot_kind`.

Decryption parses, then verifies the header MAC, then verifies each segment before releasing
its plaintext; :func:`decrypt_to_path` puts nothing on disk under the target name unless every
segment verified. Memory use is about two segments whatever the file size.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import hmac
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from ekm.crypto.envelope import MAX_WRAPPED_LEN, check_key_name
from ekm.crypto.wrapping import NOT_AUTHENTIC, TAG_LEN, KeyWrapper
from ekm.errors import IntegrityError, InvalidError, NotFoundError, StorageError

MAGIC = b"EKMS"
STREAM_V1 = 0x01
DEFAULT_SEGMENT_SIZE = 64 * 1024
MIN_SEGMENT_SIZE = 64
MAX_SEGMENT_SIZE = 16 * 1024 * 1024
SALT_LEN = 32
DEK_LEN = 32
MAC_LEN = 32
_FIXED = struct.Struct(">4sBI32sBH")  # magic, version, segment size, salt, slot kind, body len
SLOT_WRAPPED_KEY = 0x01
_COPY_CHUNK = 1024 * 1024

#: Set by ekm/ops/file_batch.py while many files are processed in one call: ``_commit`` then
#: hands the temporary file over (``keep(tmp, target, replace)``) instead of fsyncing and
#: renaming it at once, and the batch commits every output after their audit records.
DEFERRED_COMMITS: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "ekm_deferred_commits", default=None
)


@runtime_checkable
class KeySlot(Protocol):
    """The sealing side of a key slot: puts the file's data key into opaque bytes."""

    kind: int

    def seal(self, dek: bytes, context: bytes) -> bytes:
        """Return the slot body; ``context`` (the header fields before it) must be bound."""
        ...


@runtime_checkable
class ParsedSlot(Protocol):
    """The opening side, as returned by a registered ``parse_fn(body)``."""

    kind: int

    def open(self, context: bytes, resolver: Any) -> bytes:
        """Return the 32-byte data key, or raise IntegrityError / NotFoundError.

        ``resolver`` is whatever the caller passed as ``resolve_slot``, unchanged.
        """
        ...


_SLOT_PARSERS: dict[int, Callable[[bytes], ParsedSlot]] = {}


def register_slot_kind(kind_id: int, parse_fn: Callable[[bytes], ParsedSlot]) -> None:
    """Teach the container a new slot kind (1..255; 1 is the named-key slot).

    ``parse_fn(body)`` must parse hostile bytes and raise IntegrityError (with
    :data:`ekm.crypto.wrapping.NOT_AUTHENTIC`) on anything malformed.
    """
    if not isinstance(kind_id, int) or not 1 <= kind_id <= 255:
        raise InvalidError(f"slot kind must be between 1 and 255, not {kind_id!r}")
    existing = _SLOT_PARSERS.get(kind_id)
    if existing is not None and existing != parse_fn:
        raise InvalidError(f"slot kind {kind_id} is already registered")
    _SLOT_PARSERS[kind_id] = parse_fn


class WrappedKeySlot:
    """Slot kind 1, sealing side: the DEK wrapped under a named symmetric key version."""

    kind = SLOT_WRAPPED_KEY

    def __init__(self, wrapper: KeyWrapper) -> None:
        self.wrapper = wrapper

    def seal(self, dek: bytes, context: bytes) -> bytes:
        name = check_key_name(self.wrapper.key_name)
        version = self.wrapper.version
        if not isinstance(version, int) or not 1 <= version < 2**32:
            raise InvalidError(f"key version must be between 1 and 2**32-1, not {version!r}")
        ident = struct.pack(">B", len(name)) + name + struct.pack(">I", version)
        wrapped = self.wrapper.wrap(dek, context + ident)
        if not 0 < len(wrapped) <= MAX_WRAPPED_LEN:
            raise InvalidError(f"key {self.wrapper.key_name} produced a wrapped key of bad length")
        return ident + wrapped


class WrappedKeyRef:
    """Slot kind 1, opening side: names the key version; ``open`` unwraps via the resolver."""

    kind = SLOT_WRAPPED_KEY

    def __init__(self, key_name: str, version: int, ident: bytes, wrapped: bytes) -> None:
        self.key_name = key_name
        self.version = version
        self._ident = ident
        self.wrapped = wrapped

    @classmethod
    def parse(cls, body: bytes) -> WrappedKeyRef:
        try:
            n = body[0]
            name = body[1 : 1 + n].decode()
            check_key_name(name)
            (version,) = struct.unpack_from(">I", body, 1 + n)
            wrapped = body[5 + n :]
            if len(name) != n or version < 1 or not 0 < len(wrapped) <= MAX_WRAPPED_LEN:
                raise ValueError
        except (IndexError, ValueError, UnicodeDecodeError, struct.error, InvalidError):
            raise IntegrityError(NOT_AUTHENTIC) from None
        return cls(name, version, body[: 5 + n], wrapped)

    def open(self, context: bytes, resolver: Callable[[str, int], KeyWrapper]) -> bytes:
        wrapper = resolver(self.key_name, self.version)  # NotFoundError if unknown/retired
        return wrapper.unwrap(self.wrapped, context + self._ident)


register_slot_kind(SLOT_WRAPPED_KEY, WrappedKeyRef.parse)


def _hkdf(dek: bytes, salt: bytes, info: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(hashes.SHA256(), 32, salt, info).derive(dek)


def _header_mac(dek: bytes, salt: bytes, header: bytes) -> bytes:
    key = _hkdf(dek, salt, b"ekm stream v1 header mac")
    return hmac.new(key, header, hashlib.sha256).digest()


def _payload_aead(dek: bytes, salt: bytes, segment_size: int, aad: bytes) -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not isinstance(aad, (bytes, bytearray, memoryview)):
        raise InvalidError("associated data must be bytes (encode text as UTF-8)")
    info = (
        b"ekm stream v1 payload"
        + struct.pack(">I", segment_size)
        + hashlib.sha256(bytes(aad)).digest()
    )
    return AESGCM(_hkdf(dek, salt, info))


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _read_exact(src: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes; fewer only at end of input (pipes return short reads)."""
    data = src.read(n)
    if data is None:
        data = b""
    if len(data) == n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = src.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _build_header(salt: bytes, segment_size: int, slot: KeySlot, dek: bytes) -> bytes:
    context = _FIXED.pack(MAGIC, STREAM_V1, segment_size, salt, slot.kind, 0)[:-2]
    body = slot.seal(dek, context)
    if not 0 < len(body) <= 0xFFFF:
        raise InvalidError("a key slot must be between 1 and 65535 bytes")
    header = context + struct.pack(">H", len(body)) + body
    return header + _header_mac(dek, salt, header)


def encrypt_stream(
    src: BinaryIO,
    dst: BinaryIO,
    slot: KeySlot,
    aad: bytes = b"",
    *,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> int:
    """Encrypt ``src`` to ``dst`` under a fresh data key sealed in ``slot``; returns bytes read.

    A :class:`KeyWrapper` may be passed as ``slot`` (it becomes a :class:`WrappedKeySlot`).
    """
    if isinstance(slot, KeyWrapper) and not isinstance(slot, KeySlot):
        slot = WrappedKeySlot(slot)
    if not isinstance(segment_size, int) or not (
        MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE
    ):
        raise InvalidError(
            f"segment size must be between {MIN_SEGMENT_SIZE} and {MAX_SEGMENT_SIZE} bytes"
        )
    dek = os.urandom(DEK_LEN)
    salt = os.urandom(SALT_LEN)
    _write_all(dst, _build_header(salt, segment_size, slot, dek))
    aead = _payload_aead(dek, salt, segment_size, aad)
    encrypt_into = getattr(aead, "encrypt_into", None)
    if encrypt_into is None or not _has_readinto(src):
        return _encrypt_segments_copying(src, dst, aead.encrypt, segment_size)
    # Zero-copy loop: two reused input buffers (one segment of look-ahead tells whether the
    # current one is the last) and one reused output buffer; nothing is allocated per segment.
    bufs = (memoryview(bytearray(segment_size)), memoryview(bytearray(segment_size)))
    out = memoryview(bytearray(segment_size + TAG_LEN))
    index = 0
    total = 0
    cur = 0
    n = _fill(src, bufs[0])
    while True:
        m = _fill(src, bufs[1 - cur]) if n == segment_size else 0
        last = m == 0
        k = encrypt_into(_nonce(index, last), bufs[cur][:n], None, out[: n + TAG_LEN])
        _write_all(dst, out[:k])
        total += n
        if last:
            return total
        index += 1
        cur = 1 - cur
        n = m


def _encrypt_segments_copying(src: BinaryIO, dst: BinaryIO, encrypt: Any, size: int) -> int:
    """The same segments for a source without ``readinto`` (or a library without _into)."""
    index = 0
    total = 0
    current = _read_exact(src, size)
    while True:
        nxt = _read_exact(src, size) if len(current) == size else b""
        last = not nxt
        _write_all(dst, encrypt(_nonce(index, last), current, None))
        total += len(current)
        if last:
            return total
        index += 1
        current = nxt


def _has_readinto(src: Any) -> bool:
    """True when ``src.readinto`` really reads (a RawIOBase may define only ``read``)."""
    import io

    fn = getattr(type(src), "readinto", None)
    return fn is not None and fn is not io.RawIOBase.readinto


def _fill(src: BinaryIO, buf: memoryview) -> int:
    """Read into ``buf`` until it is full or the input ends (pipes return short reads)."""
    got = src.readinto(buf) or 0
    size = len(buf)
    while 0 < got < size:
        more = src.readinto(buf[got:])
        if not more:
            break
        got += more
    return got


def _write_all(dst: BinaryIO, data: bytes | memoryview) -> None:
    """Write all of ``data``: an unbuffered file may accept only part of it per call."""
    done = dst.write(data)
    if done is None or done >= len(data):
        return
    view = memoryview(data)
    while done < len(view):
        more = dst.write(view[done:])
        if more is None:  # a non-blocking sink that would block: not a supported target
            raise StorageError("the output would block; write to a file or a blocking pipe")
        done += more


class StreamHeader:
    """A parsed (not yet verified) stream header."""

    def __init__(self, raw: bytes, segment_size: int, salt: bytes, slot: ParsedSlot) -> None:
        self.raw = raw
        self.segment_size = segment_size
        self.salt = salt
        self.slot = slot

    @property
    def context(self) -> bytes:
        return self.raw[: _FIXED.size - 2]

    def open(self, resolve_slot: Any) -> bytes:
        """Open the slot and verify the header MAC; return the data key."""
        dek = self.slot.open(self.context, resolve_slot)
        if len(dek) != DEK_LEN:
            raise IntegrityError(NOT_AUTHENTIC)
        mac = _header_mac(dek, self.salt, self.raw[:-MAC_LEN])
        if not hmac.compare_digest(mac, self.raw[-MAC_LEN:]):
            raise IntegrityError(NOT_AUTHENTIC)
        return dek


def read_header(src: BinaryIO) -> StreamHeader:
    """Read and parse a header from ``src``, leaving it at the first segment."""
    fixed = _read_exact(src, _FIXED.size)
    if len(fixed) != _FIXED.size:
        raise IntegrityError(NOT_AUTHENTIC)
    magic, version, seg, salt, kind, blen = _FIXED.unpack(fixed)
    parse = _SLOT_PARSERS.get(kind)
    if (
        magic != MAGIC
        or version != STREAM_V1
        or not MIN_SEGMENT_SIZE <= seg <= MAX_SEGMENT_SIZE
        or blen == 0
        or parse is None
    ):
        raise IntegrityError(NOT_AUTHENTIC)
    rest = _read_exact(src, blen + MAC_LEN)
    if len(rest) != blen + MAC_LEN:
        raise IntegrityError(NOT_AUTHENTIC)
    slot = parse(rest[:blen])
    return StreamHeader(fixed + rest, seg, salt, slot)


def peek_bytes(blob: bytes) -> tuple[str, int, str]:
    """``(key_name, version, "stream")`` of a stream whose slot names a key (unverified)."""
    import io

    header = read_header(io.BytesIO(blob))
    name = getattr(header.slot, "key_name", None)
    version = getattr(header.slot, "version", None)
    if name is None or version is None:
        raise InvalidError("this stream is sealed to a recipient, not to a named key")
    return name, version, "stream"


def decrypt_stream(src: BinaryIO, dst: BinaryIO, resolve_slot: Any, aad: bytes = b"") -> int:
    """Verify and decrypt ``src`` into ``dst``; returns plaintext bytes written.

    Each segment's plaintext is written only after that segment verified. Earlier segments
    reach ``dst`` before a later one fails: use :func:`decrypt_to_path` when a failure must
    leave no plaintext behind.
    """
    from cryptography.exceptions import InvalidTag

    header = read_header(src)
    dek = header.open(resolve_slot)
    aead = _payload_aead(dek, header.salt, header.segment_size, aad)
    block = header.segment_size + TAG_LEN
    decrypt_into = getattr(aead, "decrypt_into", None)
    if decrypt_into is None or not _has_readinto(src):
        return _decrypt_segments_copying(src, dst, aead.decrypt, block)
    bufs = (memoryview(bytearray(block)), memoryview(bytearray(block)))
    out = memoryview(bytearray(header.segment_size))
    index = 0
    total = 0
    cur = 0
    n = _fill(src, bufs[0])
    while True:
        m = _fill(src, bufs[1 - cur]) if n == block else 0
        last = m == 0
        if n < TAG_LEN or (last and index and n == TAG_LEN):
            raise IntegrityError(NOT_AUTHENTIC)  # truncated, or a non-canonical empty tail
        try:
            k = decrypt_into(_nonce(index, last), bufs[cur][:n], None, out[: n - TAG_LEN])
        except InvalidTag:
            raise IntegrityError(NOT_AUTHENTIC) from None
        _write_all(dst, out[:k])  # only verified plaintext is released
        total += k
        if last:
            return total
        index += 1
        cur = 1 - cur
        n = m


def _decrypt_segments_copying(src: BinaryIO, dst: BinaryIO, decrypt: Any, block: int) -> int:
    """The same checks for a source without ``readinto`` (or a library without _into)."""
    from cryptography.exceptions import InvalidTag

    index = 0
    total = 0
    current = _read_exact(src, block)
    while True:
        nxt = _read_exact(src, block) if len(current) == block else b""
        last = not nxt
        if len(current) < TAG_LEN or (last and index and len(current) == TAG_LEN):
            raise IntegrityError(NOT_AUTHENTIC)
        try:
            plain = decrypt(_nonce(index, last), current, None)
        except InvalidTag:
            raise IntegrityError(NOT_AUTHENTIC) from None
        _write_all(dst, plain)
        total += len(plain)
        if last:
            return total
        index += 1
        current = nxt


@contextlib.contextmanager
def _temp_beside(target: Path):
    """A new 0600 temp file beside ``target``; removed unless the caller renamed it."""
    from ekm.fsutil import register_temp, unregister_temp

    tmp = target.parent / f".{target.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
    register_temp(tmp)  # a SIGTERM/SIGHUP handler removes it even if its unwinding is lost
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as fh:
            yield tmp, fh
    finally:
        unregister_temp(tmp)
        batch = DEFERRED_COMMITS.get()
        if batch is None or not batch.kept(tmp):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def _commit(tmp: Path, fh: BinaryIO, target: Path, *, replace: bool = True) -> None:
    """fsync and move ``tmp`` to ``target``; without ``replace``, never clobber (link(2))."""
    from ekm.fsutil import fsync_dir

    fh.flush()
    batch = DEFERRED_COMMITS.get()
    if batch is not None:
        if not replace and (target.exists() or target.is_symlink()):
            raise FileExistsError(target)
        batch.keep(tmp, target, replace)
        return
    os.fsync(fh.fileno())
    if replace:
        os.replace(tmp, target)
    else:
        os.link(tmp, target)  # atomic no-clobber: EEXIST if someone created it meanwhile
    fsync_dir(target.parent)


def decrypt_to_path(
    src: BinaryIO | str | os.PathLike,
    out_path: str | os.PathLike,
    resolve_slot: Any,
    aad: bytes = b"",
    *,
    force: bool = False,
    before_commit: Callable[[int], None] | None = None,
) -> int:
    """Decrypt into ``out_path``, which appears only once every segment verified.

    The plaintext goes to a 0600 temporary file in the target directory and is renamed over
    ``out_path`` after the last segment verified; on any failure the temporary file is
    removed. An existing ``out_path`` is refused (InvalidError, exit 3) unless ``force``.
    ``before_commit(bytes)`` runs after verification and before the rename: a failure there
    (e.g. the audit log cannot be written) leaves no output either.
    """
    target = Path(out_path)
    if (target.exists() or target.is_symlink()) and not force:
        raise InvalidError(f"{target} already exists; pass --force to overwrite it")
    if not target.parent.is_dir():
        raise InvalidError(f"{target.parent} is not a directory; create it first")
    with contextlib.ExitStack() as stack:
        if isinstance(src, (str, os.PathLike)):
            try:
                src = stack.enter_context(open(src, "rb"))
            except FileNotFoundError:
                raise NotFoundError(f"{src} does not exist") from None
        try:
            tmp, fh = stack.enter_context(_temp_beside(target))
            total = decrypt_stream(src, fh, resolve_slot, aad)
            if before_commit is not None:
                before_commit(total)
            _commit(tmp, fh, target, replace=force)
        except FileExistsError:
            raise InvalidError(f"{target} already exists; pass --force to overwrite it") from None
        except OSError as exc:
            raise StorageError(f"could not write {target}: {exc.strerror}") from None
    return total


def rewrap_stream_header(
    path_or_file: str | os.PathLike | BinaryIO,
    resolve: Any,
    new_wrapper: KeyWrapper | KeySlot,
    *,
    dst: BinaryIO | None = None,
) -> None:
    """Replace a stream's key slot (e.g. after a rotation) without re-encrypting its payload.

    The old slot is opened and the header MAC verified first. For a path, the file is replaced
    atomically (temp file beside it, fsync, rename); for an open file, the new stream is
    written to ``dst``. Payload segments are copied as they are (verified on decryption).
    """
    slot = new_wrapper
    if isinstance(slot, KeyWrapper) and not isinstance(slot, KeySlot):
        slot = WrappedKeySlot(slot)
    if not isinstance(path_or_file, (str, os.PathLike)):
        if dst is None:
            raise InvalidError("rewrap of an open file needs dst, the file to write")
        _rewrap_copy(path_or_file, dst, resolve, slot)
        return
    target = Path(path_or_file)
    try:
        with open(target, "rb") as src, _temp_beside(target) as (tmp, fh):
            _rewrap_copy(src, fh, resolve, slot)
            _commit(tmp, fh, target)
    except FileNotFoundError:
        raise NotFoundError(f"{target} does not exist") from None
    except OSError as exc:
        raise StorageError(
            f"could not rewrap {target}: {exc.strerror}; the file was left unchanged"
        ) from None


def _rewrap_copy(src: BinaryIO, dst: BinaryIO, resolve: Any, slot: KeySlot) -> None:
    header = read_header(src)
    dek = header.open(resolve)
    dst.write(_build_header(header.salt, header.segment_size, slot, dek))
    while chunk := src.read(_COPY_CHUNK):
        dst.write(chunk)


def _register_builtin_kinds() -> None:
    """Kind 0x02 (recipient public keys) ships with ekm; see ekm/crypto/recipient_slot.py."""
    from ekm.crypto import recipient_slot

    recipient_slot.register()


_register_builtin_kinds()
