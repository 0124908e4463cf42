"""Atomic, durable, checked writes and careful reads of the files of a home.

Every change ekm makes to a file goes through :func:`atomic_write`: a temporary file in the
same directory, every byte written (a short write goes on, an error is an error), fsync,
rename over the target, fsync of the directory. A crash at any point leaves the old or the new
file, never a torn one; an error before the rename leaves the old file whole and removes the
temporary one, so a full disk costs nothing once space is back.

Inside a home (``home=``) the directory is opened through :func:`ekm.storage.paths.open_dir`
(no symbolic link followed, owner and mode checked) and every step is relative to its
descriptor, so a link swapped in between check and use cannot redirect the write.

Temporary files of a process that died (SIGKILL, power loss) are never read; the next write
in the same directory removes those whose writer is gone.
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

from ekm.errors import NotDurableError, StorageError, UnsafePermissionsError
from ekm.storage import faults
from ekm.storage.paths import FILE_MODE, check_stat, inside, open_dir, refuse_link
from ekm.storage.temps import pid_alive, register_temp, unregister_temp

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_swept: set[tuple[int, int]] = set()


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    return exc.strerror or f"errno {exc.errno}"


def tmp_name(name: str) -> str:
    """``.<name>.<pid>.<ns>.tmp``: hidden, unique, and names the writer (for the sweep)."""
    return f".{name}.{os.getpid()}.{time.monotonic_ns()}.tmp"


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        faults.fsync(fd, "dir.fsync")
    finally:
        os.close(fd)


def _write_tmp(dfd: int, tmp: str, data: bytes, mode: int, *, sync: bool) -> None:
    fd = os.open(tmp, _CREATE, mode, dir_fd=dfd)
    try:
        os.fchmod(fd, mode)  # the umask must not narrow (or widen) what was asked for
        faults.write_all(fd, data, "file.write")
        if sync:
            faults.fsync(fd, "file.fsync")
    finally:
        os.close(fd)


def _rename(dfd: int, tmp: str, name: str) -> None:
    faults.check("file.rename")
    os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)


def _sync_after_rename(dfd: int, what: str) -> None:
    """Flush the directory after a rename; a failure then is not "nothing changed"."""
    try:
        faults.fsync(dfd, "dir.fsync")
    except OSError as exc:
        raise NotDurableError(
            f"wrote {what} but could not flush its directory ({_reason(exc)}); the new "
            "version is in place but may not survive a power loss"
        ) from None


def atomic_write(
    path: Path, data: bytes, *, mode: int = FILE_MODE, home: Path | None = None
) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    On any failure before the rename (ENOSPC, EIO, a short write) the temporary file is
    removed, the old file is left untouched, and a StorageError says so (exit 4). ``home``:
    the home ``path`` lives in, whose links are never followed (see the module docstring).
    """
    try:
        dfd = open_dir(path.parent, home=home)
    except OSError as exc:
        refuse_link(path.parent, exc)
        raise StorageError(
            f"could not write {path}: {_reason(exc)}; the previous version was kept"
        ) from None
    tmp: str | None = None
    try:
        if inside(home, path) is not None:
            sweep_stale(dfd)
        tmp = tmp_name(path.name)
        register_temp(path.parent / tmp)  # removed by a SIGTERM/SIGHUP handler if need be
        try:
            _write_tmp(dfd, tmp, data, mode, sync=True)
            _rename(dfd, tmp, path.name)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            if exc.errno == errno.ELOOP:
                refuse_link(path, exc)
            raise StorageError(
                f"could not write {path}: {_reason(exc)}; the previous version was kept"
            ) from None
        _sync_after_rename(dfd, str(path))
    finally:
        if tmp is not None:
            unregister_temp(path.parent / tmp)
        os.close(dfd)


def atomic_write_many(
    items: list[tuple[Path, bytes]], *, mode: int = FILE_MODE, home: Path | None = None
) -> None:
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
    if any(path.parent != directory for path, _ in items):
        raise ValueError("atomic_write_many writes into one directory")
    try:
        dfd = open_dir(directory, home=home)
    except OSError as exc:
        refuse_link(directory, exc)
        raise StorageError(
            f"could not write {len(items)} files in {directory}: {_reason(exc)}; the previous "
            "versions were kept"
        ) from None
    tmps: list[tuple[str, str]] = []
    try:
        if inside(home, directory) is not None:
            sweep_stale(dfd)
        try:
            for path, data in items:
                tmp = tmp_name(path.name)
                tmps.append((tmp, path.name))
                _write_tmp(dfd, tmp, data, mode, sync=False)
            _syncfs(dfd, [tmp for tmp, _ in tmps])
        except OSError as exc:
            for tmp, _ in tmps:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dfd)
            raise StorageError(
                f"could not write {len(items)} files in {directory}: {_reason(exc)}; the "
                "previous versions were kept"
            ) from None
        done = 0
        try:
            for tmp, name in tmps:
                _rename(dfd, tmp, name)
                done += 1
        except OSError as exc:
            for tmp, _ in tmps[done:]:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dfd)
            kept = (
                "the previous versions were kept"
                if done == 0
                else (f"{done} of {len(items)} were replaced, each whole")
            )
            raise (StorageError if done == 0 else NotDurableError)(
                f"could not write {len(items)} files in {directory}: {_reason(exc)}; {kept}"
            ) from None
        _sync_after_rename(dfd, f"{len(items)} files in {directory}")
    finally:
        os.close(dfd)


def _syncfs(dfd: int, files: list[str]) -> None:
    """Flush the file system holding the directory (Linux syncfs); else fsync each file."""
    faults.check("file.fsync")
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(dfd) == 0:
            return
    except (OSError, AttributeError):
        pass
    for name in files:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def tmp_writer(entry: str) -> int | None:
    """The writer's pid in a temporary file's name, or None if ``entry`` is not one.

    Two spellings: ours, ``.<name>.<pid>.<ns>.tmp``, and ``.<name>.<pid>.tmp`` (the audit
    log's head).
    """
    parts = entry.split(".")
    if not (entry.startswith(".") and entry.endswith(".tmp") and len(parts) >= 4):
        return None
    if len(parts) >= 5 and parts[-3].isdigit() and parts[-2].isdigit():
        return int(parts[-3])
    return int(parts[-2]) if parts[-2].isdigit() else None


def sweep_stale(dfd: int) -> int:
    """Remove temporary files whose writer is gone from the directory ``dfd`` (once a process).

    A write is only visible after its rename, so a dead writer's temporary file is never read;
    it would only pile up and be reported as an unexpected file. Returns how many were removed.
    """
    st = os.fstat(dfd)
    ident = (st.st_dev, st.st_ino)
    if ident in _swept:
        return 0
    _swept.add(ident)
    removed = 0
    try:
        entries = os.listdir(dfd)
    except OSError:
        return 0
    for entry in entries:
        pid = tmp_writer(entry)
        if pid is None or pid_alive(pid):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry, dir_fd=dfd)
            removed += 1
    return removed


def sweep_home(home: Path) -> int:
    """:func:`sweep_stale` in the home and each directory directly in it (not through links).

    The lock holder calls this once: a process killed while writing ``apikeys.json``, a backup
    or a key document leaves its temporary file in one of these, and the next writer, whatever
    it writes, removes it. Errors are ignored (the sweep only tidies).
    """
    removed = 0
    with contextlib.suppress(OSError, StorageError), opened_dir_quiet(home) as hfd:
        removed += sweep_stale(hfd)
        for entry in os.listdir(hfd):
            with contextlib.suppress(OSError, StorageError):
                fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=hfd)
                try:
                    if os.fstat(fd).st_uid == os.geteuid():
                        removed += sweep_stale(fd)
                finally:
                    os.close(fd)
    return removed


@contextlib.contextmanager
def opened_dir_quiet(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def _open_for_read(path: Path, home: Path | None) -> int:
    """Open ``path`` read-only without following a link, inside ``home`` relative to it."""
    try:
        if inside(home, path) is None:
            return os.open(path, _READ)
        dfd = open_dir(path.parent, home=home)
        try:
            return os.open(path.name, _READ, dir_fd=dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePermissionsError(
                f"{path} is a symbolic link; ekm refuses to follow it"
            ) from None
        raise


def read_private(path: Path, *, limit: int = 64 * 1024 * 1024, home: Path | None = None) -> bytes:
    """Read a file ekm owns, refusing links, non-regular files, unsafe modes and absurd sizes.

    The checks run on the opened descriptor (fstat), so the file checked is the file read.
    ``O_NONBLOCK`` keeps a FIFO planted in place of a file from hanging ekm in ``open``
    (it is then refused as not a regular file); on a regular file it changes nothing.
    """
    fd = _open_for_read(path, home)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StorageError(f"{path} is not a regular file")
        check_stat(path, st)
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


def open_regular(path: Path, *, home: Path | None = None) -> BinaryIO:
    """Open a file ekm reads as a stream (the audit log): no symlink, FIFO or device.

    Like :func:`read_private` the check runs on the opened descriptor, so a link or FIFO
    swapped in cannot hang or redirect the reader. Raises FileNotFoundError when missing,
    UnsafePermissionsError for a link, StorageError for anything but a regular file.
    """
    fd = _open_for_read(path, home)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StorageError(f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")
