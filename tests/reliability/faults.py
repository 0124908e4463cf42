"""In-process fault injection at every storage step (open, write, fsync, rename, unlink).

``FaultyOS`` stands in for the ``os`` module inside ekm's storage modules only
(``ekm.storage.*``, ``ekm.auditlog``, ``ekm.backends.filestore``); everything else still sees the
real ``os``. It counts the storage steps an operation takes, and at step ``fail_at`` it either

* raises ``OSError(EIO)`` (``mode="eio"``): the error path ekm must turn into a one-line
  StorageError/AuditLogError with the previous state kept;
* writes half of the buffer, then raises ``OSError(ENOSPC)`` (``mode="short"``): a disk that
  fills up in the middle of a write (a torn record);
* raises ``SimulatedCrash`` (``mode="crash"``), a BaseException that no ``except OSError``
  cleanup catches: the process dies at that instant and the disk holds whatever it held.

Why patch ``os`` per module instead of using a FUSE or LD_PRELOAD fault layer: it runs in
milliseconds, needs no privileges, and names the exact step that failed.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from typing import Any

STEPS = ("open", "write", "fsync", "replace", "unlink", "ftruncate")
MODULES = (
    "ekm.storage.atomic",
    "ekm.storage.faults",
    "ekm.storage.lock",
    "ekm.auditlog",
    "ekm.backends.filestore",
)


class SimulatedCrash(BaseException):
    """The process died here (SIGKILL, power loss) in the middle of a storage step."""


class FaultyOS:
    """A stand-in for the ``os`` module that fails the ``fail_at``-th storage step."""

    def __init__(self, fail_at: int | None = None, mode: str = "eio") -> None:
        self.fail_at = fail_at
        self.mode = mode
        self.steps: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def _step(self, name: str, *args: Any) -> None:
        index = len(self.steps)
        self.steps.append(name)
        if index != self.fail_at:
            return
        if self.mode == "crash":
            raise SimulatedCrash(f"crash at step {index} ({name})")
        if self.mode == "short" and name == "write":
            fd, data = args
            half = bytes(memoryview(data)[: max(1, len(data) // 2)])
            os.write(fd, half)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    def open(self, path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            self._step("open")
        return os.open(path, flags, mode, **kw)

    def write(self, fd: int, data: Any) -> int:
        self._step("write", fd, data)
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        self._step("fsync")
        os.fsync(fd)

    def replace(self, src: Any, dst: Any, **kw: Any) -> None:
        self._step("replace")
        os.replace(src, dst, **kw)

    def unlink(self, path: Any, **kw: Any) -> None:
        self._step("unlink")
        os.unlink(path, **kw)

    def ftruncate(self, fd: int, length: int) -> None:
        self._step("ftruncate")
        os.ftruncate(fd, length)


@contextlib.contextmanager
def injected(fake: FaultyOS) -> Iterator[FaultyOS]:
    """Install ``fake`` as ``os`` in ekm's storage modules for the block."""
    import importlib

    modules = [importlib.import_module(m) for m in MODULES]
    saved = [m.os for m in modules]
    for m in modules:
        m.os = fake
    try:
        yield fake
    finally:
        for m, real in zip(modules, saved, strict=True):
            m.os = real
