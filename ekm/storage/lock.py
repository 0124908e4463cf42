"""The advisory lock of a home: one writer at a time.

``flock`` on ``$EKM_HOME/.lock`` (opened with ``O_NOFOLLOW``: a link planted there is refused,
not followed to lock or truncate some other file). The holder writes its pid into the file so a
waiting process can say who it waits for. The lock is released by the kernel when the holder
dies, so a SIGKILL never leaves a stuck lock.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ekm.errors import LockBusyError, StorageError
from ekm.storage.paths import FILE_MODE, refuse_link


class FileLock:
    """An exclusive advisory lock (flock) on ``path``; one writer at a time per home.

    Waits up to ``timeout`` seconds, then raises LockBusyError naming the holder's pid. The
    first time it is taken, temporary files of dead writers are swept from the home
    (:func:`ekm.storage.atomic.sweep_home`): whoever writes next tidies what a crash left.
    """

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self._fd: int | None = None
        self._depth = 0
        self._swept = False

    def acquire(self) -> None:
        if self._fd is not None:
            self._depth += 1
            return
        try:
            self._acquire()
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                refuse_link(self.path, exc)
            raise StorageError(
                f"cannot use the lock file {self.path} ({exc.strerror}); nothing was changed"
            ) from None
        if not self._swept:
            self._swept = True
            from ekm.storage.atomic import sweep_home

            sweep_home(self.path.parent)

    def _acquire(self) -> None:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        holder = _read_pid(fd)
                        raise LockBusyError(
                            f"another ekm process{holder} holds {self.path}; "
                            f"gave up after {self.timeout:g}s (try again when it has finished)"
                        ) from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.1)
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._depth = 1

    def release(self) -> None:
        if self._fd is None:
            return
        self._depth -= 1
        if self._depth:
            return
        import fcntl

        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Run a block with umask 077 so nothing it creates is group/world readable."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)
