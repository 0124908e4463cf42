"""Stream format: STREAM segments, every mutation/truncation/reorder/splice rejected, no partial
plaintext on disk, header-only rewrap, pluggable key slots, bounded memory."""

from __future__ import annotations

import io
import os
import struct
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ekm.crypto import envelope, stream
from ekm.crypto.wrapping import NOT_AUTHENTIC
from ekm.errors import IntegrityError, InvalidError, NotFoundError
from tests.crypto.conftest import Keyring

SEG = 64


def _enc(wrapper, data: bytes, aad: bytes = b"", seg: int = SEG) -> bytes:
    out = io.BytesIO()
    stream.encrypt_stream(io.BytesIO(data), out, wrapper, aad, segment_size=seg)
    return out.getvalue()


def _dec(blob: bytes, ring, aad: bytes = b"") -> bytes:
    out = io.BytesIO()
    stream.decrypt_stream(io.BytesIO(blob), out, ring, aad)
    return out.getvalue()


def _rejects(blob: bytes, ring, aad: bytes = b"") -> None:
    with pytest.raises(IntegrityError) as exc:
        _dec(blob, ring, aad)
    assert str(exc.value) == NOT_AUTHENTIC


def _header_len(blob: bytes) -> int:
    (blen,) = struct.unpack_from(">H", blob, 42)
    return 44 + blen + 32


@given(data=st.binary(max_size=5 * SEG + 3), aad=st.binary(max_size=16))
@settings(max_examples=60, deadline=None)
def test_round_trip_every_length(data, aad):
    ring = Keyring()
    w = ring.add("files", 1)
    blob = _enc(w, data, aad)
    nseg = max(1, -(-len(data) // SEG))
    assert len(blob) == _header_len(blob) + len(data) + 16 * nseg
    assert _dec(blob, ring, aad) == data


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG])
def test_boundary_sizes(keyring, size):
    data = os.urandom(size)
    assert _dec(_enc(keyring.add("f", 1), data), keyring) == data


def test_every_single_byte_mutation_rejected(keyring):
    blob = _enc(keyring.add("f", 1), os.urandom(2 * SEG + 10), b"ctx")
    for i in range(len(blob)):
        mutated = bytearray(blob)
        mutated[i] ^= 0x01
        with pytest.raises((IntegrityError, NotFoundError)) as exc:
            _dec(bytes(mutated), keyring, b"ctx")
        if isinstance(exc.value, NotFoundError):  # the slot now names a key we do not have
            assert envelope.peek(bytes(mutated))[:2] != ("f", 1)
        else:
            assert str(exc.value) == NOT_AUTHENTIC


@given(data=st.data())
@settings(max_examples=80, deadline=None)
def test_random_mutations_rejected(data):
    ring = Keyring()
    blob = _enc(ring.add("f", 1), b"x" * (3 * SEG), b"ctx")
    i = data.draw(st.integers(0, len(blob) - 1))
    delta = data.draw(st.integers(1, 255))
    mutated = bytearray(blob)
    mutated[i] ^= delta
    with pytest.raises((IntegrityError, NotFoundError)):
        _dec(bytes(mutated), ring, b"ctx")


def test_every_truncation_rejected(keyring):
    blob = _enc(keyring.add("f", 1), os.urandom(3 * SEG))
    for n in range(len(blob)):
        _rejects(blob[:n], keyring)


def test_segment_swap_drop_and_append_rejected(keyring):
    w = keyring.add("f", 1)
    blob = _enc(w, os.urandom(3 * SEG + 5))
    h = _header_len(blob)
    b = SEG + 16
    s0, s1, s2, s3 = (blob[h + i * b : h + (i + 1) * b] for i in range(4))
    head = blob[:h]
    _rejects(head + s1 + s0 + s2 + s3, keyring)  # reorder
    _rejects(head + s0 + s2 + s3, keyring)  # drop a middle segment
    _rejects(head + s0 + s1 + s2, keyring)  # drop the last: s2 was not flagged last
    _rejects(blob + s3, keyring)  # append a copy of the last segment
    _rejects(blob + b"\x00" * 16, keyring)  # append an empty-looking segment


def test_splice_between_files_rejected(keyring):
    w = keyring.add("f", 1)
    a = _enc(w, b"A" * (2 * SEG))
    b = _enc(w, b"B" * (2 * SEG))
    ha, hb = _header_len(a), _header_len(b)
    _rejects(a[:ha] + b[hb:], keyring)  # header of a, body of b
    _rejects(a[: ha + SEG + 16] + b[hb + SEG + 16 :], keyring)  # segment from another file


def test_wrong_aad_wrong_key_unknown_key(keyring):
    w = keyring.add("f", 1)
    blob = _enc(w, b"data", b"ctx")
    _rejects(blob, keyring, b"other")
    keyring.add("f", 1)
    _rejects(blob, keyring, b"ctx")
    del keyring.wrappers[("f", 1)]
    with pytest.raises(NotFoundError, match="no usable version 1"):
        _dec(blob, keyring, b"ctx")


@pytest.mark.parametrize("garbage", [b"", b"EKMS", b"EKMS\x01" + b"\x00" * 100, os.urandom(300)])
def test_garbage_rejected(keyring, garbage):
    _rejects(garbage, keyring)


def test_hostile_segment_size_rejected_before_allocation(keyring):
    blob = bytearray(_enc(keyring.add("f", 1), b"data"))
    struct.pack_into(">I", blob, 5, 2**31)
    _rejects(bytes(blob), keyring)


def test_bad_segment_size_refused_on_encrypt(keyring):
    with pytest.raises(InvalidError, match="segment size must be between 64 and"):
        _enc(keyring.add("f", 1), b"x", seg=32)


class Trickle(io.RawIOBase):
    """A pipe-like reader that returns at most 7 bytes per read."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._buf.read(min(n, 7) if n >= 0 else 7)


def test_short_reads_from_pipes(keyring):
    w = keyring.add("f", 1)
    data = os.urandom(5 * SEG + 3)
    out = io.BytesIO()
    stream.encrypt_stream(Trickle(data), out, w, segment_size=SEG)
    plain = io.BytesIO()
    stream.decrypt_stream(Trickle(out.getvalue()), plain, keyring)
    assert plain.getvalue() == data


class TrickleInto(io.RawIOBase):
    """A pipe-like reader with ``readinto`` (the zero-copy path) returning at most 7 bytes."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def, override]
        chunk = self._buf.read(min(len(b), 7))
        b[: len(chunk)] = chunk
        return len(chunk)


class PartialSink(io.RawIOBase):
    """An unbuffered sink that accepts at most 1000 bytes per write (as a raw fd may)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[no-untyped-def, override]
        part = bytes(b[:1000])
        self.data += part
        return len(part)


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, 3 * SEG, 3 * SEG + 5])
def test_zero_copy_path_with_short_reads_and_partial_writes(keyring, size):
    w = keyring.add("f", 1)
    data = os.urandom(size)
    sink = PartialSink()
    assert stream.encrypt_stream(TrickleInto(data), sink, w, segment_size=SEG) == size
    reference = io.BytesIO()
    stream.decrypt_stream(io.BytesIO(bytes(sink.data)), reference, keyring)
    assert reference.getvalue() == data
    plain = PartialSink()
    assert stream.decrypt_stream(TrickleInto(bytes(sink.data)), plain, keyring) == size
    assert bytes(plain.data) == data


def test_peek_names_slot_key(keyring):
    blob = _enc(keyring.add("backups", 4), b"x")
    assert envelope.peek(blob) == ("backups", 4, "stream")


def test_decrypt_to_path_success_and_no_clobber(tmp_path, keyring):
    blob = _enc(keyring.add("f", 1), b"hello world" * 30)
    out = tmp_path / "plain.txt"
    assert stream.decrypt_to_path(io.BytesIO(blob), out, keyring) == 330
    assert out.read_bytes() == b"hello world" * 30
    assert (out.stat().st_mode & 0o777) == 0o600
    out.write_bytes(b"keep me")
    with pytest.raises(InvalidError, match="already exists; pass --force") as exc:
        stream.decrypt_to_path(io.BytesIO(blob), out, keyring)
    assert exc.value.exit_code == 3
    assert out.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt"]
    stream.decrypt_to_path(io.BytesIO(blob), out, keyring, force=True)
    assert out.read_bytes() == b"hello world" * 30


def test_decrypt_to_path_failure_leaves_nothing(tmp_path, keyring):
    blob = bytearray(_enc(keyring.add("f", 1), os.urandom(4 * SEG)))
    blob[-1] ^= 1  # only the last segment is bad: earlier ones verified and were written
    src = tmp_path / "in.ekm"
    src.write_bytes(bytes(blob))
    with pytest.raises(IntegrityError, match="not authentic"):
        stream.decrypt_to_path(src, tmp_path / "out", keyring)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ekm"]


def test_decrypt_to_path_missing_input_and_dir(tmp_path, keyring):
    with pytest.raises(NotFoundError, match="does not exist"):
        stream.decrypt_to_path(tmp_path / "nope", tmp_path / "out", keyring)
    with pytest.raises(InvalidError, match="is not a directory"):
        stream.decrypt_to_path(io.BytesIO(b""), tmp_path / "no" / "out", keyring)


def test_rewrap_header_in_place(tmp_path, keyring):
    old = keyring.add("f", 1)
    data = os.urandom(3 * SEG + 1)
    path = tmp_path / "data.ekm"
    path.write_bytes(_enc(old, data, b"ctx"))
    before = path.read_bytes()
    new = keyring.add("f", 2)
    stream.rewrap_stream_header(path, keyring, new)
    after = path.read_bytes()
    assert envelope.peek(after) == ("f", 2, "stream")
    assert after[_header_len(after) :] == before[_header_len(before) :]  # payload untouched
    del keyring.wrappers[("f", 1)]
    assert _dec(after, keyring, b"ctx") == data
    assert (path.stat().st_mode & 0o777) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.ekm"]


def test_rewrap_refuses_tampered_header_and_leaves_file(tmp_path, keyring):
    path = tmp_path / "data.ekm"
    blob = bytearray(_enc(keyring.add("f", 1), b"data"))
    blob[10] ^= 1  # salt: header MAC fails
    path.write_bytes(bytes(blob))
    with pytest.raises(IntegrityError, match="not authentic"):
        stream.rewrap_stream_header(path, keyring, keyring.add("f", 2))
    assert path.read_bytes() == bytes(blob)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.ekm"]


def test_rewrap_open_file_needs_dst_and_missing_path(tmp_path, keyring):
    w = keyring.add("f", 1)
    src = io.BytesIO(_enc(w, b"data"))
    with pytest.raises(InvalidError, match="needs dst"):
        stream.rewrap_stream_header(src, keyring, w)
    dst = io.BytesIO()
    stream.rewrap_stream_header(src, keyring, keyring.add("g", 1), dst=dst)
    assert _dec(dst.getvalue(), keyring) == b"data"
    with pytest.raises(NotFoundError, match="does not exist"):
        stream.rewrap_stream_header(tmp_path / "nope", keyring, w)


class XorSlot:
    """A toy slot kind (never use): shows a new kind plugs in without changing the container."""

    kind = 200

    def __init__(self, pad: bytes) -> None:
        self.pad = pad

    def seal(self, dek: bytes, context: bytes) -> bytes:
        return bytes(a ^ b for a, b in zip(dek, self.pad, strict=True))

    @classmethod
    def parse(cls, body: bytes) -> XorSlot:
        if len(body) != 32:
            raise IntegrityError(NOT_AUTHENTIC)
        return cls(body)

    def open(self, context: bytes, resolver) -> bytes:
        return bytes(a ^ b for a, b in zip(self.pad, resolver, strict=True))


def test_registered_slot_kind_round_trip_and_header_mac():
    stream.register_slot_kind(200, XorSlot.parse)
    stream.register_slot_kind(200, XorSlot.parse)  # idempotent for the same parser
    pad = os.urandom(32)
    out = io.BytesIO()
    stream.encrypt_stream(io.BytesIO(b"hi"), out, XorSlot(pad))
    assert _dec(out.getvalue(), pad) == b"hi"
    with pytest.raises(InvalidError, match="sealed to a recipient"):
        envelope.peek(out.getvalue())
    with pytest.raises(IntegrityError):
        _dec(out.getvalue(), os.urandom(32))  # wrong "identity": header MAC fails


@pytest.mark.parametrize("kind", [0, 256, "1"])
def test_register_slot_kind_validation(kind):
    with pytest.raises(InvalidError, match="slot kind must be between 1 and 255"):
        stream.register_slot_kind(kind, XorSlot.parse)


def test_register_slot_kind_conflict():
    with pytest.raises(InvalidError, match="slot kind 1 is already registered"):
        stream.register_slot_kind(1, XorSlot.parse)


class Zeros(io.RawIOBase):
    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = min(n, self.left)
        self.left -= n
        return bytes(n)


class Sink(io.RawIOBase):
    def __init__(self) -> None:
        self.n = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.n += len(b)
        return len(b)


def test_memory_is_bounded_by_segments_not_file_size(keyring):
    """16 MiB through 64 KiB segments stays within a few segments of Python allocations."""
    w = keyring.add("f", 1)
    enc = io.BytesIO()
    stream.encrypt_stream(Zeros(4 * 1024 * 1024), enc, w)
    tracemalloc.start()
    try:
        sink = Sink()
        stream.encrypt_stream(Zeros(16 * 1024 * 1024), sink, w)
        _, peak_enc = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        enc.seek(0)
        stream.decrypt_stream(enc, Sink(), keyring)
        _, peak_dec = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sink.n > 16 * 1024 * 1024
    assert peak_enc < 8 * stream.DEFAULT_SEGMENT_SIZE
    assert peak_dec < 8 * stream.DEFAULT_SEGMENT_SIZE
