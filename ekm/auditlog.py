"""A tamper-evident, hash-chained, MAC-keyed audit log (JSON lines).

Each record carries ``seq``, ``prev`` (SHA-256 of the previous line) and ``mac``: an
HMAC-SHA256 under a key derived from the master key. Editing, deleting or reordering a record
breaks the chain; forging one needs the master key. Records written while the master key is
locked (a wrong passphrase, ``rotate --check``) have ``mac: null``; the next keyed record's MAC
covers their hash, so only a trailing run of unkeyed records could be forged, and verification
reports them. ``audit.head`` remembers the last sequence number and hash so that truncation
(deleting the tail) is detected too.

Log files rotate past ``max_bytes`` (``audit.log`` -> ``audit.log.1`` ...): the chain goes on in
the next file, and verification walks all of them oldest first.

Fail closed: if a record cannot be written, ``append`` raises AuditLogError and the caller
refuses the operation. Nothing secret is ever passed in; ``append`` refuses fields that look
like material.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ekm.errors import AuditLogError, EkmError
from ekm.fsutil import FILE_MODE, check_private, open_regular
from ekm.timeutil import iso, utcnow

GENESIS = "0" * 64
HEAD_SIZE = 256
#: No record is anywhere near this long; a longer "line" is damage, not a record to parse.
MAX_LINE = 1024 * 1024
_FORBIDDEN_FIELDS = {
    "material",
    "key_material",
    "passphrase",
    "pin",
    "token",
    "secret",
    "plaintext",
    "password",
}


def _line_hash(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass
class VerifyResult:
    """Outcome of :meth:`AuditLog.verify`."""

    ok: bool
    records: int = 0
    files: list[str] = field(default_factory=list)
    head_hash: str = GENESIS
    last_seq: int = 0
    first_bad: str | None = None  # "audit.log line 12 (seq 40): MAC mismatch"
    unkeyed_tail: int = 0
    keyed: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "files": self.files,
            "head_hash": self.head_hash,
            "last_seq": self.last_seq,
            "first_bad": self.first_bad,
            "unkeyed_tail": self.unkeyed_tail,
            "mac_checked": self.keyed,
        }


class AuditLog:
    """Appends and verifies the audit log of one home."""

    def __init__(
        self,
        path: Path,
        *,
        mac_key: bytes | None = None,
        actor: str | None = None,
        max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.path = path
        self.head_path = path.with_name(path.name + ".head")
        self.mac_key = mac_key
        self.actor = actor or _login()
        self.max_bytes = max_bytes

    # -- writing ----------------------------------------------------------------------------
    def append(
        self,
        op: str,
        *,
        key: str | None = None,
        version: int | None = None,
        result: str = "ok",
        now: datetime | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Append one record and fsync it; AuditLogError (exit 4) when that is impossible."""
        return self.append_many(
            [dict(op=op, key=key, version=version, result=result, now=now, **fields)]
        )[0]

    def append_many(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append several records with one fsync (bulk rotation writes hundreds)."""
        for entry in entries:
            bad = _FORBIDDEN_FIELDS.intersection(entry)
            if bad:
                raise ValueError(f"refusing to audit-log secret-looking fields: {sorted(bad)}")
        try:
            return self._append(entries)
        except OSError as exc:
            raise AuditLogError(
                f"cannot write the audit log {self.path} ({exc.strerror}); the operation was "
                "refused (fix the file or disk, then retry)"
            ) from None

    def _append(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        import fcntl

        if self.path.exists():
            check_private(self.path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, FILE_MODE)
        try:
            self._check_regular(fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if self.max_bytes and size >= self.max_bytes:
                os.close(fd)
                fd = -1
                self._rotate_files()
                return self._append(entries)
            torn = self._torn_tail(fd, size)
            if torn:
                # A record cut short (crash or full disk mid-write) was never acknowledged:
                # cut it off so the chain goes on, and say so in the next keyed record.
                os.ftruncate(fd, size - torn)
                os.fsync(fd)
                size -= torn
                entries = [{**entries[0], "torn_tail_removed": torn}, *entries[1:]]
            seq, prev = self._tail(fd, size)
            head_seq = self._head_seq()
            if head_seq is not None and head_seq > seq:
                # Never start a fresh chain over a deleted or truncated log: that would hide
                # the damage. The operator restores the log, or moves the head aside knowingly.
                raise AuditLogError(
                    f"{self.path} ends at record {seq} but {self.head_path.name} records "
                    f"{head_seq}: the log was truncated or deleted; restore it (or move "
                    f"{self.head_path.name} aside to start a new chain), then retry"
                )
            out = bytearray()
            records = []
            for entry in entries:
                seq += 1
                now = entry.pop("now", None) or utcnow()
                record: dict[str, Any] = {"seq": seq, "time": iso(now), "actor": self.actor}
                record.update({k: v for k, v in entry.items() if v is not None})
                record["pid"] = os.getpid()
                record["prev"] = prev
                body = _canonical(record)
                record["mac"] = (
                    hmac.new(self.mac_key, body, hashlib.sha256).hexdigest()
                    if self.mac_key
                    else None
                )
                line = _canonical(record) + b"\n"
                out += line
                prev = _line_hash(line)
                records.append(record)
            os.write(fd, bytes(out))
            os.fsync(fd)
            self._write_head(seq, prev)
            return records
        finally:
            if fd >= 0:
                os.close(fd)

    def _check_regular(self, fd: int) -> None:
        """Fail closed on a FIFO, socket or device planted as the log: records written to a
        pipe would vanish while the operation they record went ahead."""
        import stat

        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise AuditLogError(
                f"{self.path} is not a regular file; the operation was refused (move it aside "
                "and restore the audit log, then retry)"
            )

    def _tail(self, fd: int, size: int) -> tuple[int, str]:
        """Sequence number and hash of the last complete record (or of the previous file)."""
        if size == 0:
            prev_file = self.path.with_name(self.path.name + ".1")
            if prev_file.exists():
                with open_regular(prev_file) as fh:
                    fh.seek(0, os.SEEK_END)
                    return self._tail_of(fh.fileno(), fh.tell())
            return 0, GENESIS
        return self._tail_of(fd, size)

    def _torn_tail(self, fd: int, size: int) -> int:
        """Bytes after the last newline (0 when the log ends with a complete record)."""
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return 0
        chunk = min(size, 1 << 16)
        data = os.pread(fd, chunk, size - chunk)
        cut = data.rfind(b"\n")
        if cut < 0 and size > chunk:
            raise AuditLogError(
                f"{self.path} ends with over 64 KiB that are not a record; run "
                "`ekm audit --verify-log`"
            )
        return len(data) - (cut + 1)

    def _tail_of(self, fd: int, size: int) -> tuple[int, str]:
        chunk = min(size, 1 << 16)
        data = os.pread(fd, chunk, size - chunk)
        if not data.endswith(b"\n"):
            # A torn final line (crash mid-write): it was never acknowledged. Chain from the
            # last complete line; verification reports the torn bytes.
            data = data[: data.rfind(b"\n") + 1]
            if not data:
                return 0, GENESIS
        last = data[data.rfind(b"\n", 0, len(data) - 1) + 1 :]
        try:
            seq = int(json.loads(last)["seq"])
        except (ValueError, KeyError, TypeError, RecursionError):
            raise AuditLogError(
                f"the last record of {self.path} is unreadable; run `ekm audit --verify-log`"
            ) from None
        return seq, _line_hash(last)

    def _write_head(self, seq: int, digest: str) -> None:
        """Record the last seq and hash in ``audit.log.head``.

        One fixed-size pwrite, not fsynced: the log itself was fsynced first, so after a
        power loss the head can only lag behind the log (which verification accepts), never
        run ahead of it. This keeps an append at one fsync instead of three.
        """
        head: dict[str, Any] = {"seq": seq, "hash": digest}
        if self.mac_key:
            head["mac"] = hmac.new(self.mac_key, _canonical(head), hashlib.sha256).hexdigest()
        data = _canonical(head).ljust(HEAD_SIZE - 1) + b"\n"
        fd = os.open(self.head_path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
        try:
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, HEAD_SIZE)
        finally:
            os.close(fd)

    def _head_seq(self) -> int | None:
        """The sequence number ``audit.log.head`` records (None when there is none)."""
        try:
            return int(json.loads(self._read_head())["seq"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, RecursionError, OSError, EkmError):
            raise AuditLogError(
                f"{self.head_path} is unreadable; run `ekm audit --verify-log`"
            ) from None

    def _read_head(self) -> bytes:
        """The bytes of ``audit.log.head``: a regular file (no link, FIFO) of bounded size."""
        with open_regular(self.head_path) as fh:
            data = fh.read(HEAD_SIZE * 4 + 1)
        if len(data) > HEAD_SIZE * 4:
            raise ValueError("head file too large")
        return data

    def _rotate_files(self) -> None:
        files = self.files()
        for old in reversed(files[:-1]):
            n = int(old.name.rsplit(".", 1)[1])
            os.replace(old, old.with_name(f"{self.path.name}.{n + 1}"))
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))

    def ensure_writable(self) -> None:
        """Fail closed before an operation starts if the log could not take its record."""
        try:
            if self.path.exists():
                check_private(self.path)
            fd = os.open(
                self.path,
                os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK,
                FILE_MODE,
            )
            try:
                self._check_regular(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise AuditLogError(
                f"cannot write the audit log {self.path} ({exc.strerror}); the operation was "
                "refused (fix the file or disk, then retry)"
            ) from None

    # -- reading ----------------------------------------------------------------------------
    def files(self) -> list[Path]:
        """Log files oldest first: audit.log.N ... audit.log.1, audit.log."""
        rotated = []
        for p in self.path.parent.glob(self.path.name + ".*"):
            suffix = p.name[len(self.path.name) + 1 :]
            if suffix.isdigit():
                rotated.append((int(suffix), p))
        ordered = [p for _, p in sorted(rotated, reverse=True)]
        if self.path.exists():
            ordered.append(self.path)
        return ordered

    def records(self) -> Iterator[dict[str, Any]]:
        """Every parseable record, oldest first (for reports and monitors; not verification)."""
        for path in self.files():
            with open_regular(path) as fh:
                for line in _lines(fh):
                    with contextlib.suppress(ValueError, RecursionError):
                        rec = json.loads(line)
                        if isinstance(rec, dict):
                            yield rec

    def verify(self, on_record: Callable[[dict[str, Any]], None] | None = None) -> VerifyResult:
        """Walk the whole chain; name the first bad record. MACs are checked when keyed.

        Each line is parsed once. ``on_record`` (optional) sees every record that passed the
        chain and MAC checks, in order, so a caller that needs some records (the audit's
        backup proofs) gets them from this one pass instead of reading the log again. It
        also sees records before a break: a caller must trust them only when the result is
        ``ok`` (a later bad record means the chain as a whole proves nothing).
        """
        res = VerifyResult(ok=True, keyed=self.mac_key is not None)
        prev, expected_seq, unkeyed = GENESIS, 1, 0
        files = self.files()
        res.files = [p.name for p in files]
        if not files:
            res.ok = False
            res.first_bad = f"{self.path.name} is missing"
            return res
        for path in files:
            try:
                fh = open_regular(path)
            except (OSError, EkmError) as exc:
                res.ok = False
                res.first_bad = f"{path.name}: {getattr(exc, 'message', None) or exc.strerror}"
                return res
            with fh:
                for lineno, line in enumerate(_lines(fh), 1):
                    rec, problem = self._check_line(line, prev, expected_seq)
                    if rec is None:
                        res.ok = False
                        res.first_bad = f"{path.name} line {lineno}: {problem}"
                        return res
                    unkeyed = unkeyed + 1 if rec.get("mac") is None else 0
                    if on_record is not None:
                        on_record(rec)
                    prev = _line_hash(line)
                    expected_seq += 1
                    res.records += 1
        res.last_seq, res.head_hash, res.unkeyed_tail = expected_seq - 1, prev, unkeyed
        problem = self._check_head(res.last_seq, prev, last_keyed=unkeyed == 0)
        if problem:
            res.ok = False
            res.first_bad = problem
        return res

    def _check_line(
        self, line: bytes, prev: str, expected_seq: int
    ) -> tuple[dict[str, Any] | None, str | None]:
        """Parse and check one line: ``(record, None)`` or ``(None, problem)``.

        The parsed record is returned (``mac`` field included) so the caller never parses
        the line a second time.
        """
        if len(line) > MAX_LINE:
            return None, f"record longer than {MAX_LINE} bytes (damaged or planted)"
        if not line.endswith(b"\n"):
            return None, "truncated record (no end of line)"
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError
        except (ValueError, RecursionError):
            return None, "not a JSON record"
        if rec.get("seq") != expected_seq:
            return None, (
                f"sequence number {rec.get('seq')!r}, expected {expected_seq} "
                "(deleted or reordered records)"
            )
        if rec.get("prev") != prev:
            return None, (
                f"seq {expected_seq}: hash chain broken (a previous record was changed or removed)"
            )
        mac = rec.get("mac")
        if mac is not None and self.mac_key is not None:
            if not isinstance(mac, str) or len(mac) != 64:
                return None, f"seq {expected_seq}: MAC mismatch (record edited or forged)"
            # The line is canonical JSON (sorted keys, no spaces) and "mac" is never its last
            # key, so the MAC'd body is the line without its `"mac":"...",` member: no
            # re-encoding. A line that is not canonical simply fails the comparison.
            member = b'"mac":"' + mac.encode("ascii", "replace") + b'",'
            body = line.rstrip(b"\n").replace(member, b"", 1)
            want = hmac.digest(self.mac_key, body, "sha256").hex()
            if not hmac.compare_digest(mac, want):
                return None, f"seq {expected_seq}: MAC mismatch (record edited or forged)"
        return rec, None

    def _check_head(self, last_seq: int, last_hash: str, *, last_keyed: bool = True) -> str | None:
        try:
            head = json.loads(self._read_head())
            seq, digest = int(head["seq"]), str(head["hash"])
        except FileNotFoundError:
            return None if last_seq == 0 else f"{self.head_path.name} is missing"
        except (ValueError, KeyError, TypeError, RecursionError, OSError, EkmError):
            return f"{self.head_path.name} is unreadable"
        if not isinstance(head, dict) or set(head) - {"seq", "hash", "mac"}:
            return f"{self.head_path.name} has unexpected fields (edited)"
        mac = head.pop("mac", None)
        if mac is None and self.mac_key is not None and last_keyed and last_seq:
            return f"{self.head_path.name} has no MAC although its record is keyed (edited)"
        if mac is not None and self.mac_key is not None:
            want = hmac.new(self.mac_key, _canonical(head), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(str(mac), want):
                return f"{self.head_path.name}: MAC mismatch (edited)"
        if seq > last_seq:
            return (
                f"log truncated: {self.head_path.name} records seq {seq} but the log ends at "
                f"seq {last_seq}"
            )
        if seq == last_seq and digest != last_hash:
            return f"{self.head_path.name}: last record differs from the one recorded (replaced)"
        return None


def _lines(fh: Any) -> Iterator[bytes]:
    """The lines of ``fh``, each read with a bound: a planted multi-gigabyte "line" yields
    one over-long chunk (reported as damage) instead of exhausting memory."""
    while True:
        line = fh.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LINE:
            yield line
            while line and not line.endswith(b"\n"):  # skip the rest of the long line
                line = fh.readline(MAX_LINE + 1)
            continue
        yield line


def _login() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.geteuid()}"
