"""Group commit for many files in one ``ekm`` call: a few disk flushes per group, not three
per file.

One file costs three fsyncs on its own: its audit record, the output file, the output's
directory. Over a thousand small files those flushes are nearly all the time. Inside a
:class:`FileBatch` the KeyManager works as usual, but

* audit records are collected instead of appended one by one (the manager's audit log is
  stood in for by :class:`_CollectedAudit`; the failure records too);
* an output that would be renamed into place (``stream._commit``) or written whole (a
  signature, :meth:`FileBatch.stage`) stays a temporary file beside its target;

and :meth:`FileBatch.flush` then, in this order: appends every collected record with one
fsync (if that fails, every staged output is deleted: nothing appears without its record);
makes the temporary files durable with one ``syncfs`` (fsync each where there is none); renames
each into place; fsyncs each directory once. An output whose rename fails (a target created
meanwhile) gets an ``error`` record of its own. So what the log says is what happened, and an
output appears only after its record is durable, exactly as one file at a time.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ekm.errors import EkmError, InvalidError, StorageError


def same_path(path: str | os.PathLike[str]) -> str:
    """The key under which :meth:`FileBatch.flush` reports an output (absolute, normalised)."""
    return os.path.normpath(os.path.abspath(path))


class _CollectedAudit:
    """The manager's audit log during a batch: reads and checks pass through, records wait."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.entries: list[dict[str, Any]] = []

    def append(
        self,
        op: str,
        *,
        key: str | None = None,
        version: int | None = None,
        result: str = "ok",
        now: Any = None,
        **fields: Any,
    ) -> dict[str, Any]:
        from ekm.timeutil import utcnow

        entry = dict(op=op, key=key, version=version, result=result, now=now or utcnow(), **fields)
        self.entries.append(entry)
        return dict(entry)

    def append_many(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from ekm.timeutil import utcnow

        for entry in entries:
            self.entries.append({**entry, "now": entry.get("now") or utcnow()})
        return [dict(e) for e in entries]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class FileBatch:
    """Deferred audit records and output commits of one group of files (see module doc)."""

    def __init__(self, mgr: Any, op: str) -> None:
        self.mgr = mgr
        self.op = op  # the operation named in the record of an output that failed to appear
        self.staged: list[tuple[Path, Path, bool]] = []  # tmp, target, replace
        self._kept: set[Path] = set()
        self._audit: _CollectedAudit | None = None

    # -- installed around the work ----------------------------------------------------------
    @contextlib.contextmanager
    def active(self) -> Iterator[FileBatch]:
        """Collect records and stage outputs inside; whatever was not flushed is dropped."""
        from ekm.crypto import stream

        self.mgr.unlock()  # before collecting: an unlock mid-way would replace the audit log
        real = self.mgr.audit_log
        self._audit = _CollectedAudit(real)
        self.mgr._audit = self._audit
        token = stream.DEFERRED_COMMITS.set(self)
        try:
            yield self
        finally:
            stream.DEFERRED_COMMITS.reset(token)
            if self.mgr._audit is self._audit:
                self.mgr._audit = real
            self.discard()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Flush, then run one item the usual way (stdin to stdout: nothing to stage)."""
        from ekm.crypto import stream

        self.flush()
        collected = self.mgr._audit
        self.mgr._audit = collected.real if isinstance(collected, _CollectedAudit) else collected
        token = stream.DEFERRED_COMMITS.set(None)
        try:
            yield
        finally:
            stream.DEFERRED_COMMITS.reset(token)
            self.mgr._audit = collected

    # -- staging -------------------------------------------------------------------------------
    def keep(self, tmp: Path, target: Path, replace: bool) -> None:
        """Called by ``stream._commit``: ``tmp`` (flushed, not yet durable) becomes ``target``
        at the next :meth:`flush`."""
        self.staged.append((tmp, target, replace))
        self._kept.add(tmp)

    def kept(self, tmp: Path) -> bool:
        return tmp in self._kept

    def stage(self, target: Path, data: bytes, *, replace: bool) -> None:
        """Write ``data`` to a temporary file beside ``target``, renamed at :meth:`flush`."""
        tmp = target.parent / f".{target.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StorageError(f"could not write {target}: {exc.strerror}") from None
        self.staged.append((tmp, target, replace))

    def discard(self) -> None:
        for tmp, _target, _replace in self.staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self.staged.clear()
        self._kept.clear()
        if self._audit is not None:
            self._audit.entries.clear()

    # -- commit ----------------------------------------------------------------------------
    def flush(self) -> dict[str, EkmError]:
        """Records, then outputs (see module doc). Returns ``{target: error}`` for outputs that
        could not be put in place; raises (and drops every staged output) when the records
        cannot be written."""
        from ekm.fsutil import _syncfs, fsync_dir

        audit = self._audit
        entries = list(audit.entries) if audit is not None else []
        if audit is not None:
            audit.entries.clear()
        if entries and audit is not None:
            try:
                audit.real.append_many(entries)
            except EkmError:
                self.discard()
                raise
        staged, self.staged = self.staged, []
        self._kept.clear()
        failed: dict[str, EkmError] = {}
        if not staged:
            return failed
        dirs = sorted({str(target.parent) for _t, target, _r in staged})
        try:
            for d in dirs:
                _syncfs(Path(d), [t for t, target, _r in staged if str(target.parent) == d])
        except OSError as exc:
            for tmp, *_ in staged:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise StorageError(f"could not make the outputs durable: {exc.strerror}") from None
        for tmp, target, replace in staged:
            try:
                if replace:
                    os.replace(tmp, target)
                else:
                    os.link(tmp, target)  # no clobber: EEXIST if someone created it meanwhile
                    os.unlink(tmp)
            except FileExistsError:
                failed[same_path(target)] = InvalidError(
                    f"{target} already exists; pass --force to overwrite it"
                )
            except OSError as exc:
                failed[same_path(target)] = StorageError(
                    f"could not write {target}: {exc.strerror}"
                )
            if same_path(target) in failed:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        for d in dirs:
            with contextlib.suppress(OSError):
                fsync_dir(Path(d))
        if failed and audit is not None:
            audit.real.append_many(
                [
                    {"op": self.op, "key": None, "version": None, "result": "error",
                     "error": type(err).__name__, "path": path}
                    for path, err in failed.items()
                ]
            )  # fmt: skip
        return failed
