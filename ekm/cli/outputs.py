"""Where a command's ``-o/--output`` goes: a regular file (atomically) or a stream.

``-``, a character device (``/dev/null``, ``/dev/stdout``, a tty) and a FIFO are *streams*:
written to in place, with no temporary file, no rename and no "already exists" check. Renaming
a temporary file over ``/dev/null`` would replace the device with a regular file holding the
data (and, as root, break the system), and a FIFO's reader would never see anything. Everything
else is a regular file, written atomically beside its target and never clobbered without
``--force``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ekm.errors import InvalidError, NotFoundError, StorageError, UsageError


def is_stream(path: str | os.PathLike[str] | None) -> bool:
    """True for stdout (``None`` or ``-``), an existing character device or FIFO."""
    if path is None or str(path) == "-":
        return True
    try:
        mode = os.stat(path).st_mode  # follows links: /dev/stdout -> /proc/self/fd/1
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


@contextlib.contextmanager
def open_stream(path: str | os.PathLike[str] | None) -> Iterator[BinaryIO]:
    """Open a stream output for writing (stdout for ``None``/``-``); never creates a file.

    The kind is checked again on the opened descriptor, so a device swapped for a regular file
    between :func:`is_stream` and here is refused rather than truncated.
    """
    if path is None or str(path) == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFoundError(f"{path} does not exist") from None
    except OSError as exc:
        raise StorageError(f"cannot write to {path}: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        os.close(fd)
        raise InvalidError(f"{path} changed while ekm was opening it; nothing was written")
    with os.fdopen(fd, "wb") as fh:
        yield fh


def write_output(path: str, data: bytes, *, force: bool = True, mode: int = 0o600) -> None:
    """Write a small document to ``path``: a stream in place, a file atomically.

    A regular file that exists is refused without ``force`` (exit 3); its directory must exist.
    """
    if is_stream(path):
        try:
            with open_stream(path) as fh:
                fh.write(data)
        except OSError as exc:
            raise StorageError(f"could not write to {path}: {exc.strerror}") from None
        return
    from ekm.fsutil import atomic_write

    atomic_write(check_target(path, force=force), data, mode=mode)


def check_target(path: str, *, force: bool = True) -> Path:
    """Refuse, before any work is done, an output that cannot be written (exit 3).

    Streams always pass; a regular file must not be a directory (a usage error, 2), must not
    exist unless ``force``, and its directory must exist.
    """
    target = Path(path)
    if is_stream(path):
        return target
    if target.is_dir():
        raise UsageError(f"-o/--output {target}: is a directory; name a file")
    if (target.exists() or target.is_symlink()) and not force:
        raise InvalidError(f"{target} already exists; pass --force to overwrite it")
    if not target.parent.is_dir():
        raise NotFoundError(f"{target.parent} does not exist; create the directory first")
    return target
