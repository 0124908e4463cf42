"""Safe file-system primitives: atomic writes, an advisory lock, permission checks.

Every change ekm makes to its home goes through :func:`atomic_write`: a temporary file in the
same directory, fsync, rename over the target, fsync of the directory. A crash at any point
leaves the old or the new file, never a torn one. Files are 0600 and directories 0700, and
:func:`check_private` refuses (like ssh) anything group or others can read.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ekm.errors import LockBusyError, StorageError, UnsafePermissionsError

FILE_MODE = 0o600
DIR_MODE = 0o700


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and parents we own) with mode 0700; tighten an existing one we own."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    st = path.stat()
    if stat.S_IMODE(st.st_mode) != DIR_MODE and st.st_uid == os.geteuid():
        os.chmod(path, DIR_MODE)


def check_private(path: Path, *, is_dir: bool | None = None) -> None:
    """Refuse a file or directory that group/others can access or that another user owns."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePermissionsError(f"{path} is a symbolic link; ekm refuses to follow it")
    _check_stat(path, st)


def _check_stat(path: Path, st: os.stat_result) -> None:
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        want = "0700" if stat.S_ISDIR(st.st_mode) else "0600"
        raise UnsafePermissionsError(
            f"{path} has mode {mode:04o}; group or others can access it (run: chmod {want} {path})"
        )
    if st.st_uid != os.geteuid():
        raise UnsafePermissionsError(
            f"{path} is owned by uid {st.st_uid}, not by the user running ekm ({os.geteuid()})"
        )


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = FILE_MODE) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    On any failure (ENOSPC, EIO, ...) the temporary file is removed, the old file is left
    untouched, and a StorageError says what happened.
    """
    directory = path.parent
    tmp = directory / f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        try:
            os.fchmod(fd, mode)  # the umask must not narrow (or widen) what was asked for
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(directory)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        reason = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror
        raise StorageError(
            f"could not write {path}: {reason}; the previous version was kept"
        ) from None


def atomic_write_many(items: list[tuple[Path, bytes]], *, mode: int = FILE_MODE) -> None:
    """Replace several files in one directory, each atomically, with one sync for all.

    Bulk rotation writes hundreds of key documents: fsyncing each file and the directory per
    document costs two disk flushes a key. Here every temporary file is written, one
    ``syncfs`` makes them all durable, then each is renamed over its target and the directory
    is fsynced once. Every file is still old or new after a crash, never torn; a failure
    before the renames leaves every target untouched.
    """
    if not items:
        return
    directory = items[0][0].parent
    tmps: list[tuple[Path, Path]] = []
    try:
        for path, data in items:
            if path.parent != directory:
                raise ValueError("atomic_write_many writes into one directory")
            tmp = directory / f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
            tmps.append((tmp, path))
            try:
                os.fchmod(fd, mode)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        _syncfs(directory, [tmp for tmp, _ in tmps])
        for tmp, path in tmps:
            os.replace(tmp, path)
        fsync_dir(directory)
    except OSError as exc:
        for tmp, _ in tmps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        reason = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror
        raise StorageError(
            f"could not write {len(items)} files in {directory}: {reason}; the previous "
            "versions were kept"
        ) from None


def _syncfs(directory: Path, files: list[Path]) -> None:
    """Flush the file system holding ``directory`` (Linux syncfs); else fsync each file."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if libc.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_private(path: Path, *, limit: int = 64 * 1024 * 1024) -> bytes:
    """Read a file ekm owns, refusing links, non-regular files, unsafe modes and absurd sizes.

    The checks run on the opened descriptor (fstat), so the file checked is the file read.
    ``O_NONBLOCK`` keeps a FIFO planted in place of a file from hanging ekm in ``open``
    (it is then refused as not a regular file); on a regular file it changes nothing.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePermissionsError(
                f"{path} is a symbolic link; ekm refuses to follow it"
            ) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StorageError(f"{path} is not a regular file")
        _check_stat(path, st)
        if st.st_size > limit:
            raise StorageError(f"{path} is larger than {limit} bytes; refusing to read it")
        chunks = []
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise StorageError(f"{path} is larger than {limit} bytes; refusing to read it")
    return data


def open_regular(path: Path) -> BinaryIO:
    """Open a file ekm reads as a stream (the audit log): no symlink, FIFO or device.

    Like :func:`read_private` the check runs on the opened descriptor, so a link or FIFO
    swapped in cannot hang or redirect the reader. Raises FileNotFoundError when missing,
    UnsafePermissionsError for a link, StorageError for anything but a regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePermissionsError(
                f"{path} is a symbolic link; ekm refuses to follow it"
            ) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StorageError(f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


class FileLock:
    """An exclusive advisory lock (flock) on ``path``; one writer at a time per home.

    Waits up to ``timeout`` seconds, then raises LockBusyError naming the holder's pid.
    """

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self._fd: int | None = None
        self._depth = 0

    def acquire(self) -> None:
        if self._fd is not None:
            self._depth += 1
            return
        try:
            self._acquire()
        except OSError as exc:
            raise StorageError(
                f"cannot use the lock file {self.path} ({exc.strerror}); nothing was changed"
            ) from None

    def _acquire(self) -> None:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
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
