"""Old import path of the storage primitives; they live in :mod:`ekm.storage` now.

Kept so existing imports (``from ekm.fsutil import atomic_write``) go on working: atomic
writes and careful reads are in :mod:`ekm.storage.atomic`, permission checks and confinement
in :mod:`ekm.storage.paths`, the lock in :mod:`ekm.storage.lock`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ekm.storage import atomic as _atomic
from ekm.storage.atomic import (
    atomic_write,
    atomic_write_many,
    fsync_dir,
    open_regular,
    read_private,
)
from ekm.storage.lock import FileLock, private_umask
from ekm.storage.paths import (
    DIR_MODE,
    FILE_MODE,
    check_private,
    check_stat,
    ensure_private_dir,
)
from ekm.storage.temps import (
    pid_alive,
    register_temp,
    remove_live_temps,
    sweep_stale_temp,
    unregister_temp,
)

_check_stat = check_stat


def _syncfs(directory: Path, files: list[Path]) -> None:
    """Make ``files`` in ``directory`` durable with one syncfs (else one fsync each)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _atomic._syncfs(fd, [str(f) for f in files])
    finally:
        os.close(fd)


__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "FileLock",
    "atomic_write",
    "atomic_write_many",
    "check_private",
    "check_stat",
    "ensure_private_dir",
    "fsync_dir",
    "open_regular",
    "pid_alive",
    "private_umask",
    "read_private",
    "register_temp",
    "remove_live_temps",
    "sweep_stale_temp",
    "unregister_temp",
]
